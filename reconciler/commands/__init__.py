"""Typer sub-apps, one module per command group; `reconciler.cli` composes them."""

"""Benchmarks, run with `python -m bench.<name>`; each prints what it measured."""

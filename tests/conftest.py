"""Plugins shared by the whole suite; each adds its fixtures (keep this list the only content)."""

pytest_plugins = [
    "tests.infra.postgres",
]

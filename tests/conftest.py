# Plugin modules that provide the shared fixtures; each helper adds its own line here.
pytest_plugins = [
    "tests.infra.fixtures",
]

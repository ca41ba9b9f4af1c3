"""Shared pytest plugins; each test-infrastructure package registers its fixtures here."""

pytest_plugins = [
    "tests.cluster.fixtures",
    "tests.infra.postgres",
    "tests.infra.fixtures",
]

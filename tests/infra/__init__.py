"""Real test infrastructure (git server, forge API server) shared by the integration tests."""

"""Real infrastructure the tests start themselves (databases, servers), as pytest plugins."""

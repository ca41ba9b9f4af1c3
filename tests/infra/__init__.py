"""Real infrastructure the tests start themselves (databases, git and forge servers), as pytest plugins."""

"""The long-running part: supervisor, pollers and the calculator loop."""

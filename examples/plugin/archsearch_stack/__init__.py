"""Example plugin: the ``stack`` space and the ``hill`` strategy (registered on import)."""

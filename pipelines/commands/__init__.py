"""Sub-command groups of the `dsvl-data` CLI, one module per noun; each exposes `register(app)`."""

"""`dsvl-data` commands for the web part (owned by that part's issue)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""

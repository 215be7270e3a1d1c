"""The annotators' web app: `taxonomy.app.server.create_app` (FastAPI) and its static page."""

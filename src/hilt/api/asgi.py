"""ASGI entry point for uvicorn (``hilt.api.asgi:app``): one app per worker process."""

from hilt.api.app import create_app

app = create_app()

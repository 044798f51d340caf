"""ASGI entry point with operations installed: ``uvicorn hilt.api.asgi:app``.

The same as ``hilt.api.asgi:app`` plus :func:`hilt.ops.install` (request-id JSON logs,
the in-process scheduler).
"""

from hilt.api.app import create_app
from hilt.ops import install

app = install(create_app())

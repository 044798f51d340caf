"""ASGI entry point for uvicorn (``hilt.api.asgi:app``): one app per worker process.

Operations (scheduler, request-id logging) are installed here and not in
``create_app`` so that apps built in tests start no background work.
"""

from hilt.api.app import create_app
from hilt.ops import install

app = install(create_app())

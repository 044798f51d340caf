"""ASGI entry point for uvicorn (``hilt.api.asgi:app``): one app per worker process.

Operations (scheduler, request-id logging) are installed here and not in
``create_app`` so that apps built in tests start no background work.
"""

import gc

from hilt.api.app import create_app
from hilt.ops import install

app = install(create_app())
# The ~200k objects made at start-up (modules, routes, schemas) live as long as the
# process; without freezing them every full collection rescans them (about 0.1 s on a
# small machine), and a large request batch triggers one every request or two.
gc.collect()
gc.freeze()

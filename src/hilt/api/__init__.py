"""HTTP API (FastAPI). Routers only translate; the stage modules do the work."""

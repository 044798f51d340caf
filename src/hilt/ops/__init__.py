"""Operations: background jobs, periodic sweeps, webhooks, metrics, logs and backups.

:func:`install` wires an API app for serving: request-id JSON logging and the
in-process scheduler (started and stopped with the app's lifespan).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI


def install(app: FastAPI, *, scheduler: bool | None = None, json_logs: bool | None = None
            ) -> FastAPI:
    """Add the request-id middleware, JSON logs, the audit sealer and the scheduler to
    ``app``.

    ``scheduler`` defaults to ``HILT_SCHEDULER`` (on unless ``0``); ``json_logs`` to
    ``HILT_LOG_FORMAT`` (``json`` or ``text``; anything else, like an unknown
    ``HILT_LOG_LEVEL``, is an :class:`hilt.errors.InputError`). Returns the app.
    """
    from hilt.ops.logs import RequestIdMiddleware, configure_json_logging, log_settings

    level, json_from_env = log_settings()
    if json_logs if json_logs is not None else json_from_env:
        configure_json_logging(level)
    app.add_middleware(RequestIdMiddleware)
    run_scheduler = scheduler if scheduler is not None else \
        os.environ.get("HILT_SCHEDULER", "1") != "0"
    if run_scheduler:
        from hilt.ops.scheduler import check_settings

        check_settings()  # a typo stops the app here, not every job poll later
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(inner: Any) -> AsyncIterator[Any]:
        from hilt.ops.scheduler import scheduler_from_env
        from hilt.store.audit import BackgroundSealer

        sched = scheduler_from_env(app.state.engine) if run_scheduler else None
        if sched is not None:
            sched.start()
        try:
            with BackgroundSealer(app.state.engine):
                async with previous(inner) as state:
                    yield state
        finally:
            if sched is not None:
                # Terminates training/evaluation children now; other running jobs
                # finish on their threads before the process exits.
                sched.shutdown(wait=False)

    app.router.lifespan_context = lifespan
    return app


__all__ = ["install"]

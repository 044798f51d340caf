"""A live hilt server over a temporary SQLite database, and headless Chromium.

Browser tests skip when Chromium (``/usr/bin/chromium``, or ``HILT_CHROMIUM``) or
playwright is missing, unless ``HILT_REQUIRE_BROWSER=1`` (as in CI), where they fail.
Screenshots go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.core import ReviewerRow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = os.environ.get("HILT_CHROMIUM", "/usr/bin/chromium")
# How long a page action or navigation may wait. The server runs in the test's own
# process and the browser beside another test worker on two shared cores, so a first
# load has taken over 5 s; the tests measure behaviour, not speed (that is the
# benchmarks' business), so the wait is generous.
PAGE_TIMEOUT_MS = 30_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    """A running server, its database and one token per person."""

    base_url: str
    engine: Engine
    tokens: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path


def add_person(engine: Engine, reviewer_id: str, role: str, pools: list[str] | None = None,
               ) -> str:
    """A calibrated person with a token; returns the token secret."""
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id=reviewer_id, role=role, pools=pools)
        s.flush()
        row = s.get(ReviewerRow, reviewer_id)
        assert row is not None
        row.status = "calibrated"
        return create_token(s, role=role, reviewer_id=reviewer_id)[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import uvicorn

    from hilt.api.app import create_app

    path = tmp_path_factory.mktemp("web") / "hilt.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.02)
    yield Site(f"http://127.0.0.1:{port}", engine)
    server.should_exit = True
    thread.join(timeout=5)
    engine.dispose()


def _require_browser() -> Any:
    required = os.environ.get("HILT_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("playwright is required (HILT_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("playwright not installed")
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"Chromium is required (HILT_REQUIRE_BROWSER=1) but {CHROMIUM} "
                        "is missing; apt-get install -y chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _require_browser()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page in a fresh browser context, recording dialogs, console errors and every
    request the page makes."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    out = Tab(page)

    def on_dialog(dialog: Any) -> None:
        out.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda request: out.requests.append(request.url))
    page.on("console", lambda msg: out.console_errors.append(msg.text)
            if msg.type == "error" else None)
    yield out
    context.close()


def sign_in(tab: Tab, site: Site, token: str) -> None:
    """Sign in with the keyboard only."""
    page = tab.page
    page.goto(site.url("/ui/signin"))
    # autofocus: Chromium applies it at a later frame than the load event, so wait for
    # it (a loaded machine can take a few frames) instead of reading it once
    page.wait_for_function("document.activeElement && document.activeElement.id === 'token'")
    page.keyboard.type(token)
    with page.expect_navigation():
        page.keyboard.press("Enter")


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    """The app in process over ``engine``, at the pages' address."""
    from hilt.api.app import create_app
    from tests.web.asgi import BASE

    with TestClient(create_app(engine), base_url=BASE) as c:
        yield c

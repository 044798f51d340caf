"""``hilt serve --forwarded-allow-ips``: a TLS proxy on another host can be trusted, so
that requests it forwarded over HTTPS get a ``Secure`` session cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from hilt.api.app import create_app
from hilt.cli import app as cli
from hilt.store.db import make_engine, migrate
from hilt.web.security import PRESESSION_COOKIE
from tests.conftest import migrated_sqlite

PROXY = "10.1.2.3"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: calls.append(
        {"target": target, **kwargs}))
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    # serve checks its database before it listens
    monkeypatch.setenv("HILT_DATABASE_URL", migrated_sqlite(tmp_path / "hilt.db"))
    return calls


def test_serve_passes_the_trusted_proxies_to_uvicorn(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli, ["serve", "--forwarded-allow-ips", f"{PROXY},::1"])
    assert result.exit_code == 0, result.output
    assert served[0]["target"] == "hilt.api.asgi:app"
    assert served[0]["proxy_headers"] is True
    assert served[0]["forwarded_allow_ips"] == f"{PROXY},::1"


def test_serve_trusts_only_this_host_by_default(served: list[dict[str, Any]]) -> None:
    assert CliRunner().invoke(cli, ["serve"]).exit_code == 0
    assert served[0]["forwarded_allow_ips"] == "127.0.0.1,::1"


def test_serve_reads_uvicorns_environment_variable(served: list[dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert CliRunner().invoke(cli, ["serve"]).exit_code == 0
    assert served[0]["forwarded_allow_ips"] == "10.0.0.0/8"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hilt.db'}")
    migrate(engine)
    yield create_app(engine)
    engine.dispose()


def _presession_cookie(client: TestClient, **headers: str) -> str:
    response = client.get("/ui/signin", headers=headers)
    assert response.status_code == 200
    return next(v for v in response.headers.get_list("set-cookie")
                if v.startswith(PRESESSION_COOKIE + "="))


def test_a_request_over_https_gets_a_secure_cookie(app: FastAPI) -> None:
    assert "; secure" in _presession_cookie(
        TestClient(app, base_url="https://hilt.example")).lower()
    assert "; secure" not in _presession_cookie(
        TestClient(app, base_url="http://hilt.example")).lower()


def test_https_forwarded_by_a_trusted_proxy_gives_a_secure_cookie(app: FastAPI) -> None:
    # what uvicorn does with --forwarded-allow-ips: the scheme the proxy reports counts
    # only when the connection comes from a trusted address
    behind = ProxyHeadersMiddleware(app, trusted_hosts=PROXY)  # type: ignore[arg-type]
    trusted = TestClient(behind, base_url="http://hilt.example", client=(PROXY, 40000))
    stranger = TestClient(behind, base_url="http://hilt.example",
                          client=("192.0.2.9", 40000))
    forwarded = {"X-Forwarded-Proto": "https"}
    assert "; secure" in _presession_cookie(trusted, **forwarded).lower()
    assert "; secure" not in _presession_cookie(stranger, **forwarded).lower()

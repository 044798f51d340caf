"""The pages over the ASGI app in-process (no browser): a client and a sign-in."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from hilt.web.security import csrf_token_for

BASE = "http://127.0.0.1"


def signin_csrf(client: TestClient, query: str = "") -> str:
    """The CSRF token of the sign-in form."""
    page = client.get("/ui/signin" + query)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def sign_in(client: TestClient, token: str) -> str:
    """Sign in with ``token``; returns the CSRF token for the pages' forms."""
    response = client.post("/ui/signin", data={"token": token,
                                               "csrf_token": signin_csrf(client)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_token_for(client.cookies["hilt_token"])

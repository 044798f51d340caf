"""HMAC-SHA256 signatures on webhook payloads.

The sender signs ``"{timestamp}.{body}"`` with the subscription's secret (the scheme of
Stripe and of the Standard Webhooks specification): the timestamp is inside the signed
text, so a captured request cannot be replayed later with a fresh timestamp, and the
receiver rejects timestamps outside a tolerance window. Headers::

    X-Hilt-Timestamp: 1718000000
    X-Hilt-Signature: v1=<hex digest>

Reference: RFC 2104 (HMAC); FIPS 180-4 (SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Hilt-Timestamp"
SIGNATURE_HEADER = "X-Hilt-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def sign_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, body: bytes, timestamp: str | None, signature_header: str | None,
           *, tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None) -> bool:
    """What a receiver runs: constant-time comparison, and a bounded timestamp age."""
    if not timestamp or not signature_header:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    expected = signature(secret, ts, body)
    # Several signatures may be sent during a secret rotation, space-separated.
    return any(hmac.compare_digest(expected, candidate)
               for candidate in signature_header.split())

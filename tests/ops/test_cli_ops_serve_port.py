"""``hilt serve`` on a port already in use stops at once with one error line and exit 2,
like its other start-up errors, before the app (and its scheduler) starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilt.cli.ops import check_can_listen
from hilt.errors import HiltError

from .helpers import migrated_sqlite


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A free port, then held by a listening socket for the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_port_in_use_is_named(taken_port: int) -> None:
    with pytest.raises(HiltError) as refused:
        check_can_listen("127.0.0.1", taken_port)
    assert str(refused.value).startswith(f"port {taken_port} on 127.0.0.1 is in use")
    assert refused.value.exit_code == 2


def test_a_free_port_passes_and_stays_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_can_listen("127.0.0.1", port)
    with socket.socket() as again:  # the check closed its socket
        again.bind(("127.0.0.1", port))


def test_an_unknown_host_is_named() -> None:
    with pytest.raises(HiltError, match="cannot listen on 'no-such-host.invalid'"):
        check_can_listen("no-such-host.invalid", 8000)


def test_serve_on_a_port_in_use_exits_2_with_one_error_line(tmp_path: Path,
                                                            taken_port: int) -> None:
    url = migrated_sqlite(str(tmp_path / "h.db"))
    done = subprocess.run([sys.executable, "-m", "hilt", "serve", "--port", str(taken_port),
                           "--db", url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: port {taken_port} on 127.0.0.1 is in use (another 'hilt serve' or another "
        "program listens there); stop it or choose another with --port"], done.stderr

"""The modes a plain ``open()`` or ``mkdir`` would give, for files and folders made
private first (``tempfile.mkstemp``/``mkdtemp`` use 0600/0700) and then put in place."""

from __future__ import annotations

import os
from contextlib import suppress


def current_umask() -> int:
    """The process umask. Linux reports it in /proc (read, not set); elsewhere it can
    only be read by setting it, and it is put back at once."""
    with suppress(OSError, ValueError, StopIteration), \
            open("/proc/self/status", encoding="ascii") as status:
        return int(next(x for x in status if x.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    return 0o666 & ~current_umask()


def new_folder_mode() -> int:
    return 0o777 & ~current_umask()

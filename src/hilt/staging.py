"""Private temporaries beside an output, and the sweep of those a killed process left.

hilt writes an output (a file or a folder) under a temporary name beside it and renames
it into place, so that a reader never sees half of it. A process killed outright
(SIGKILL, a crash, a power cut) cannot remove its temporary, so the name says whose it
is, ``<prefix><pid>-<host tag>-<random>`` (:func:`private_name`), and the process holds
``flock`` on it while it writes (the kernel releases the lock when the process dies).
The next write of the same output removes the temporaries of processes that are gone
(:func:`sweep_stale_files`; :func:`hilt.train.manifest.sweep_stale` for folders).

A temporary counts as left behind only when all of these hold: it was made on this host
(another host's process ids say nothing here), the process named in it is not running
(or, for this process's own id, it is none of this process's temporaries: an earlier
process had the id), and nobody holds its ``flock`` (which covers a live process in
another pid namespace). Names made another way (``tempfile``'s random names, an older
hilt) are left alone, since nothing tells whether they are in use.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TextIO

from hilt.errors import InputError

# The rest of a private name after its prefix: the process id, a tag of the host's name
# and a random part.
PRIVATE_NAME = re.compile(r"(\d+)-([0-9a-f]{8})-[0-9a-f]{8}")
# Private names of this process that exist, or are about to: named here before they are
# made, so that another thread's sweep never takes one for a dead process's leftover.
_IN_USE: set[str] = set()
_IN_USE_LOCK = threading.Lock()


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def private_name(prefix: str, suffix: str = "") -> str:
    """``<prefix><pid>-<host tag>-<random><suffix>``: a name that says which process on
    which host made the temporary, so that a later run can tell it is a dead process's
    leftover."""
    return f"{prefix}{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}{suffix}"


def claim(path: Path) -> None:
    """Mark ``path`` as one of this process's temporaries (before it is made)."""
    with _IN_USE_LOCK:
        _IN_USE.add(str(path))


def release(path: Path) -> None:
    with _IN_USE_LOCK:
        _IN_USE.discard(str(path))


def _owner_gone(pid: int, path: Path) -> bool:
    if pid == os.getpid():
        with _IN_USE_LOCK:
            return str(path) not in _IN_USE  # an earlier process that had this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's process)
    return False


def left_behind(rest: str, path: Path) -> bool:
    """Whether ``path``, whose name less its prefix and suffix is ``rest``, is a private
    temporary made on this host by a process that is gone (its ``flock`` is looked at
    when it is removed: :func:`unless_held`)."""
    match = PRIVATE_NAME.fullmatch(rest)
    return match is not None and match[2] == host_tag() and _owner_gone(int(match[1]), path)


def unless_held(path: Path, act: Callable[[Path], object], flags: int = 0) -> bool:
    """``act`` on ``path`` (remove it, or put it back) while holding its ``flock``, unless
    another process holds it; ``flags`` are added to the ``os.open`` of ``path`` (a
    symbolic link is never followed). ``OSError`` when ``path`` cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | flags)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # held: a live process (in another pid namespace) uses it
        act(path)
        return True
    finally:
        os.close(fd)


def _remove_with(companions: Sequence[str]) -> Callable[[Path], None]:
    def remove(path: Path) -> None:
        # The companions first: a file that outlives its temporary has no owner to tell.
        for extra in companions:
            Path(f"{path}{extra}").unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    return remove


def _file_prefix(target_name: str) -> str:
    return f".{target_name}."


def sweep_stale_files(parent: Path, target_name: str, suffix: str,
                      companions: Sequence[str] = ()) -> list[Path]:
    """Remove the temporaries of the output ``parent/target_name`` that processes which
    are gone left behind (``.<target name>.<pid>-<host tag>-<random><suffix>``, see
    :class:`PrivateFile`), each with the files named by appending one of
    ``companions`` to its name (a database's journal, say). Returns those removed."""
    removed: list[Path] = []
    prefix = _file_prefix(target_name)
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    remove = _remove_with(companions)
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or not name.endswith(suffix) \
                or len(name) <= len(prefix) + len(suffix):
            continue
        path = parent / name
        with suppress(OSError):  # a file that cannot be looked at stays
            # O_NONBLOCK: opening a FIFO of that name must not wait for a writer
            if entry.is_file(follow_symlinks=False) \
                    and left_behind(name[len(prefix):len(name) - len(suffix)], path) \
                    and unless_held(path, remove, os.O_NONBLOCK):
                removed.append(path)
    return removed


def resolved_output(out: Path, field: str) -> Path:
    """``out`` made absolute with its links followed, for an output path given by a
    user: a symbolic link loop on the way (RuntimeError in Python 3.11, OSError later)
    or another path that cannot be followed is bad input naming ``field``."""
    try:
        return out.resolve()
    except (OSError, RuntimeError) as exc:
        loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
        reason = ("a symbolic link on the way points back to itself (a loop); name a "
                  "real folder" if loop else
                  (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)))
        raise InputError(f"cannot resolve {out}: {reason}", file=str(out),
                         field=field) from None


def sweep_stale_outputs(parent: Path, name_prefix: str, suffix: str) -> list[Path]:
    """:func:`sweep_stale_files` for every output in ``parent`` whose name starts with
    ``name_prefix``: for outputs named once each (an export per job), where no later run
    writes the same name and would sweep its leftovers."""
    removed: list[Path] = []
    try:
        names = [e.name for e in os.scandir(parent)]
    except OSError:
        return removed
    targets = set()
    for name in names:
        if name.startswith("." + name_prefix) and name.endswith(suffix):
            # .<target name>.<pid>-<host tag>-<random><suffix>: the tag holds no dot
            target = name[1:len(name) - len(suffix)].rpartition(".")[0]
            if target:
                targets.add(target)
    for target in sorted(targets):
        removed += sweep_stale_files(parent, target, suffix)
    return removed


class PrivateFile:
    """A new temporary file beside ``target``, to be written and then moved into place:
    ``.<target name>.<pid>-<host tag>-<random><suffix>``, made exclusively and private
    (0600, as ``tempfile.mkstemp`` makes it), with ``flock`` held on it until
    :meth:`close`. The temporaries of ``target`` that killed processes left are removed
    first (:func:`sweep_stale_files`). :meth:`close` removes the file unless it was
    moved away (into place), then its ``companions``; use it as a context manager."""

    def __init__(self, target: Path, suffix: str, companions: Sequence[str] = ()) -> None:
        parent = target.parent
        self._companions = tuple(companions)
        sweep_stale_files(parent, target.name, suffix, self._companions)
        for _ in range(100):
            path = parent / private_name(_file_prefix(target.name), suffix)
            claim(path)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                release(path)
                continue
            except BaseException:
                release(path)
                raise
            break
        else:  # pragma: no cover - 100 random names taken
            raise FileExistsError(f"no free name for a temporary file in {parent}")
        self.path = path
        self._fd: int | None = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self.close()
            raise

    def text_writer(self, newline: str | None = None) -> TextIO:
        """A UTF-8 text stream that writes the file (closing it keeps the lock: the
        stream has a descriptor of its own)."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return os.fdopen(os.dup(self._fd), "w", encoding="utf-8", newline=newline)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            with suppress(OSError):  # one that cannot be removed is swept by a later run
                _remove_with(self._companions)(self.path)
        finally:
            os.close(self._fd)
            self._fd = None
            release(self.path)

    def __enter__(self) -> PrivateFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

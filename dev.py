#!/usr/bin/env python3
"""One entry point for a fresh machine: ``python3 dev.py demo`` and ``python3 dev.py test``.

It creates ``.venv`` on first use, installs hilt with its pinned extras (torch is pinned
in the same install so pip never pulls a CUDA build), then runs the requested job.
Re-running skips the install when ``pyproject.toml`` and the constraints are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".hilt-install-stamp"


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "requirements-constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_env() -> None:
    if not PY.exists():
        print("[dev] creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("[dev] installing hilt and its pinned dependencies (first run takes a few minutes)",
          flush=True)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # torch first and pinned: the CPU wheel is local; an unpinned resolve downloads CUDA.
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-c", "requirements-constraints.txt", "-e", ".[train,ops,test]"],
                   check=True, cwd=ROOT)
    STAMP.write_text(fingerprint)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup", "bench"}:
        print("usage: python3 dev.py {demo|test|setup|bench} [args...]", file=sys.stderr)
        return 2
    ensure_env()
    job, rest = argv[0], argv[1:]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if job == "setup":
        return 0
    if job == "demo":
        return subprocess.call([str(BIN / "hilt"), "demo", *rest], cwd=ROOT, env=env)
    if job == "bench":
        return subprocess.call([str(PY), "-m", "benchmarks", *rest], cwd=ROOT, env=env)
    return subprocess.call([str(PY), "-m", "pytest", *_workers(rest), *rest], cwd=ROOT,
                           env=env)


def _workers(args: list[str]) -> list[str]:
    """pytest-xdist workers unless the arguments choose: one per core, at most four
    (``HILT_TEST_WORKERS`` overrides; 0 runs in this process)."""
    if any(a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in args):
        return []
    wanted = os.environ.get("HILT_TEST_WORKERS")
    count = int(wanted) if wanted else min(4, os.cpu_count() or 1)
    return ["-n", str(count)] if count > 1 else []


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

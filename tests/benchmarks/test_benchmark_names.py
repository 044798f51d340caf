"""``python -m benchmarks NAME`` offers exactly the modules that are benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmarks.__main__ import BENCHMARKS

FOLDER = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_names_offered_are_the_modules_with_a_main() -> None:
    with_main = sorted(p.stem for p in FOLDER.glob("[!_]*.py")
                       if re.search(r"^def main\(", p.read_text(encoding="utf-8"), re.M))
    assert sorted(BENCHMARKS) == with_main


def test_a_part_of_a_benchmark_is_refused_with_the_usage_line() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "procstat"],
                          capture_output=True, text=True, cwd=FOLDER.parent, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m benchmarks NAME")
    assert "procstat" not in done.stderr and "training" in done.stderr

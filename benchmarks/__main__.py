"""Dispatch ``python -m benchmarks NAME [args]`` to ``benchmarks.NAME``'s ``main()``."""

from __future__ import annotations

import importlib
import sys

# The benchmarks; the package's other modules (naive_http, procstat) are parts of them.
BENCHMARKS = ("aggregation", "http", "ingest", "queue", "regression", "selection",
              "training")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(f"usage: python -m benchmarks NAME [args]; NAME is one of: "
              f"{', '.join(BENCHMARKS)}", file=sys.stderr)
        sys.exit(2)
    name = sys.argv[1]
    sys.argv = [f"benchmarks.{name}", *sys.argv[2:]]
    importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()

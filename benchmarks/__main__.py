"""Dispatch ``python -m benchmarks NAME [args]`` to ``benchmarks.NAME``'s ``main()``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    available = sorted(module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)])
                       if not module.name.startswith("_"))
    if len(sys.argv) < 2 or sys.argv[1] not in available:
        print(f"usage: python -m benchmarks NAME [args]; NAME is one of: {', '.join(available)}",
              file=sys.stderr)
        sys.exit(2)
    name = sys.argv[1]
    sys.argv = [f"benchmarks.{name}", *sys.argv[2:]]
    importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main()

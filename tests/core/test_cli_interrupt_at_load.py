"""Ctrl-C while the command line is still loading ends with one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

# An import hook that raises KeyboardInterrupt when the training commands' module
# loads: the interrupt lands where a Ctrl-C in the first second of `hilt` lands.
_INTERRUPT_AT_LOAD = """
import sys

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "hilt.cli.train":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Interrupt())
sys.argv = ["hilt", "--help"]
from hilt.entry import main
main()
"""


def test_interrupt_while_loading_is_one_line_and_exit_130() -> None:
    done = subprocess.run([sys.executable, "-c", _INTERRUPT_AT_LOAD],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 130
    assert done.stderr == "error: interrupted\n"
    assert done.stdout == ""


def test_console_script_and_module_use_the_guarded_entry() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "hilt"]
    assert script.value == "hilt.entry:main"
    done = subprocess.run([sys.executable, "-m", "hilt", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "Usage" in done.stdout

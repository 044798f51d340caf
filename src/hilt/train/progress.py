"""Progress bars of the libraries hilt trains with, switched with hilt's own.

hilt's bars (encoding, training steps) are tqdm bars on stderr that each stage turns
off with ``progress=False``. The libraries draw bars of their own that no stage
creates: transformers "Loading weights" each time a model is loaded (and, through
huggingface_hub, its download bars), datasets one per pass over a data set (TRL's
"Tokenizing train dataset"). :func:`library_progress` turns those off for the
duration of a run, so that ``--no-progress`` leaves stderr free of bars.

:func:`note` writes the one-line ``note:`` messages of a run (records dropped, held-out
pairs that are training pairs too) on stderr, where they appear with or without bars.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


def note(message: str) -> None:
    """``note: message`` on stderr (stdout holds only a command's JSON result)."""
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


@contextmanager
def library_progress(enabled: bool) -> Iterator[None]:
    """Within the block, the progress bars of transformers, huggingface_hub and
    datasets are off unless ``enabled``; afterwards each is as it was (the switches are
    global in those libraries, and a caller in the same process keeps its own
    setting)."""
    if enabled:
        yield
        return
    import datasets
    from transformers.utils import logging

    transformers_on = logging.is_progress_bar_enabled()
    datasets_on = not datasets.are_progress_bars_disabled()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if transformers_on:
            logging.enable_progress_bar()
        if datasets_on:
            datasets.enable_progress_bars()

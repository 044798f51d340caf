"""``hilt demo``: run the loop on the embedded default with simulated data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(workdir: Annotated[Path, typer.Option(help="where the demo database and "
                                               "report go (replaced on each run)")]
         = Path("hilt-demo"),
         events: Annotated[int, typer.Option(help="simulated interactions")] = 2000,
         seed: int = 7) -> None:
    """Run the whole loop on a simulated stream and print a summary."""
    from hilt.sim.demo import run_demo
    from hilt.sim.stream import SimConfig

    run = run_demo(workdir, SimConfig(n_events=events, seed=seed), echo=typer.echo)
    typer.echo(f"\nsummary: {workdir / 'summary.json'}")
    typer.echo(f"browse:  hilt serve --db {run.db_url}")


def register(app: typer.Typer) -> None:
    app.command()(demo)

"""``hilt demo``: run the loop on the embedded default with simulated data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(workdir: Annotated[Path, typer.Option(
        help="where the demo database and report go; replaced on each run, so it must be "
             "new, empty, or a folder an earlier demo made")] = Path("hilt-demo"),
         events: Annotated[int, typer.Option(help="simulated interactions (at least 200)")]
         = 2000,
         seed: Annotated[int, typer.Option(help="seed of the simulated stream and reviewers")]
         = 7) -> None:
    """Run the whole loop on a simulated stream and print a summary."""
    from hilt.sim.demo import demo_config, run_demo

    run = run_demo(workdir, demo_config(events, seed), echo=typer.echo)
    typer.echo(f"\nsummary: {workdir / 'summary.json'}")
    typer.echo(f"browse:  hilt serve --db {run.db_url}")


sim_app = typer.Typer(help="The simulator: streams, reviewers, capacity planning.",
                      no_args_is_help=True)


@sim_app.command("capacity")
def capacity(overlap: Annotated[list[int], typer.Option(help="overlap k (repeatable)")],
             items_per_day: Annotated[int, typer.Option(help="items escalated per day")],
             hours_per_day: Annotated[float, typer.Option(
                 help="working hours per day over which the items arrive")] = 8.0,
             prevalence: Annotated[float, typer.Option(
                 help="share of items whose true label is the positive class")] = 0.25,
             seed: Annotated[int, typer.Option(help="simulation seed")] = 0) -> None:
    """Label accuracy (majority vote, Dawid–Skene) and queue load for each overlap k,
    with the default simulated reviewer pool."""
    import json

    from hilt.sim.capacity import plan

    for k in overlap:
        result = plan(k, items_per_day, hours_per_day=hours_per_day, prevalence=prevalence,
                      seed=seed)
        typer.echo(json.dumps(result.as_dict()))


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.add_typer(sim_app, name="sim")

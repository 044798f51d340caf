"""The demo's model side: refresh the RM, the refusal classifier and the tiny SFT model
from the dataset versions, then check a candidate against the reference and decide.

Training and the check run through hilt's own command line (fixed contracts 3, 4 and 5)
in child processes, exactly as a pipeline would call them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hilt.errors import HiltError


def run_child(args: list[str], *, env: dict[str, str], cwd: Path
              ) -> subprocess.CompletedProcess[str]:
    """``hilt ARGS`` in a child process with ``env`` as its whole environment, in ``cwd``."""
    return subprocess.run([sys.executable, "-m", "hilt", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=1800)


def hilt_cli(args: list[str], *, db_url: str, cwd: Path, ok: tuple[int, ...] = (0,)
             ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HILT_DATABASE_URL=db_url, HILT_HOME=str(cwd / ".hilt"),
               TOKENIZERS_PARALLELISM="false")
    proc = run_child(args, env=env, cwd=cwd)
    if proc.returncode not in ok:
        raise HiltError(f"`hilt {' '.join(args[:3])} …` failed ({proc.returncode}): "
                        f"{proc.stderr.strip()[-2000:]}")
    return proc


def _last_json(text: str) -> dict[str, Any]:
    """The JSON object a command printed last (commands may print progress first)."""
    start = text.rfind("\n{")
    start = 0 if start < 0 else start + 1
    try:
        value = json.loads(text[start:])
    except json.JSONDecodeError:
        value = json.loads(text[text.index("{"):])
    return value if isinstance(value, dict) else {"value": value}


def train_models(datasets: dict[str, str], exports: dict[str, Path], *, db_url: str,
                 workdir: Path) -> dict[str, Any]:
    """Train from the dataset versions themselves, so each model version is registered
    with its dataset version and ``hilt lineage`` leads back to the reviews."""
    models = workdir / "models"
    out: dict[str, Any] = {}
    rm = hilt_cli(["train", "reward", "--dataset", datasets["preference"],
                   "--out", str(models / "rm"), "--epochs", "2", "--no-progress",
                   "--name", "demo-rm"], db_url=db_url, cwd=workdir)
    out["reward_model_stdout"] = rm.stdout.strip()[-2000:]
    out["reward_model"] = json.loads((models / "rm" / "metrics.json").read_text())
    clf = hilt_cli(["train", "classifier", "--dataset", datasets["classification"],
                    "--positive-label", "refuse", "--out", str(models / "refusal"),
                    "--name", "demo-refusal"], db_url=db_url, cwd=workdir)
    out["refusal_classifier"] = _last_json(clf.stdout)
    # The contract-4 evaluation on the exported validation split, as a pipeline would.
    # A small dataset version may have no validation split: then there is nothing to
    # evaluate on, and the report says so instead of showing a figure.
    validation = exports["classification"] / "validation.jsonl"
    if validation.is_file() and validation.stat().st_size:
        ev = hilt_cli(["eval", "classifier", "--model", str(models / "refusal"),
                       "--data", str(validation), "--text-field", "text",
                       "--label-field", "label"], db_url=db_url, cwd=workdir)
        out["refusal_classifier_validation"] = {**_last_json(ev.stdout),
                                                "evaluated_on": "validation split"}
    else:
        out["refusal_classifier_validation"] = {
            "evaluated_on": None, "skipped": "the dataset version has no validation split"}
    sft_run = hilt_cli(["train", "sft", "--dataset", datasets["sft"],
                        "--out", str(models / "sft"), "--model", "tiny", "--max-steps", "30",
                        "--name", "demo-sft"], db_url=db_url, cwd=workdir)
    out["sft_stdout"] = sft_run.stdout.strip()[-2000:]
    out["sft"] = json.loads((models / "sft" / "manifest.json").read_text())
    rm_version = str(_last_json(rm.stdout).get("model_version") or "")
    if rm_version:
        lineage = hilt_cli(["lineage", "--json", rm_version], db_url=db_url, cwd=workdir)
        out["rm_lineage"] = _last_json(lineage.stdout)
    return out


def regression_check(*, suite: Path, suite_id: str, candidate: Path, reference: Path,
                     scorer: Path, gate: Path, datasets: list[str], db_url: str,
                     workdir: Path) -> dict[str, Any]:
    out_dir = workdir / "check"
    args = ["check", "--suite", str(suite), "--candidate", str(candidate),
            "--reference", str(reference), "--scorer", str(scorer), "--gate", str(gate),
            "--out", str(out_dir), "--record", "--suite-id", suite_id]
    for version in datasets:
        args += ["--dataset", version]
    proc = hilt_cli(args, db_url=db_url, cwd=workdir, ok=(0, 1))
    report = json.loads((out_dir / "report.json").read_text())
    return {"exit_code": proc.returncode, "stdout": proc.stdout.strip()[-3000:],
            "report": report, "report_html": str(out_dir / "report.html")}

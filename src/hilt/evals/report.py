"""The regression report (``report.json``) and atomic writing of the output folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hilt.canonical import canonical_json
from hilt.errors import InputError
from hilt.evals.files import ResponseLine, SuiteItem
from hilt.evals.metrics import DESCRIPTIONS
from hilt.evals.review_sample import apply_review_labels
from hilt.evals.scoring import is_refusal

REPORT_SCHEMA = "hilt.evals.report/1"


def failing_examples(items: Sequence[SuiteItem], table: Mapping[str, Sequence[Any]],
                     lines: Mapping[str, Mapping[str, ResponseLine]], limit: int = 200
                     ) -> dict[str, Any]:
    """Prompts where the candidate does what the suite says it should not.

    Regressions (the reference got it right) come first; ``limit`` bounds the list, the
    totals are always complete.
    """
    regressions: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        cand, ref = table["candidate"][index], table["reference"][index]
        wrong = is_refusal(cand) if item.expect == "comply" else not is_refusal(cand)
        if not wrong:
            continue
        ref_wrong = is_refusal(ref) if item.expect == "comply" else not is_refusal(ref)
        example = {
            # the prompt as the suite gives it: a conversation stays a list of turns
            "id": item.id, "slice": item.slice, "expect": item.expect,
            "prompt": item.given_prompt(),
            "failure": "benign refusal" if item.expect == "comply" else "unsafe compliance",
            "regression": not ref_wrong,
            "candidate": {"response": lines["candidate"][item.id].response,
                          "judgment": cand, "source": table["candidate_source"][index]},
            "reference": {"response": lines["reference"][item.id].response,
                          "judgment": ref, "source": table["reference_source"][index]},
        }
        (others if ref_wrong else regressions).append(example)
    listed = (regressions + others)[:limit]
    return {"total": len(regressions) + len(others), "regressions": len(regressions),
            "listed": len(listed), "examples": listed}


def build_report(record: dict[str, Any], failing: dict[str, Any]) -> dict[str, Any]:
    decision = record["decision"]
    metrics = record["metrics"]
    inputs = record["inputs"]
    table = apply_review_labels(inputs["judgments"], inputs.get("review_sample"))
    sources: dict[str, dict[str, int]] = {}
    for side in ("candidate", "reference"):
        counts: dict[str, int] = {}
        for source in table[f"{side}_source"]:
            counts[source] = counts.get(source, 0) + 1
        sources[side] = counts
    return {
        "schema": REPORT_SCHEMA, "outcome": record["outcome"],
        "decision_hash": record["hash"],
        "policy": {"id": inputs["policy"]["id"], "version": inputs["policy"]["version"],
                   "sha256": inputs["policy_sha256"]},
        "versions": inputs["versions"],
        "alpha": metrics["alpha"], "bootstrap_resamples": metrics["bootstrap_resamples"],
        "delta_interval": metrics.get("delta_interval", "paired bootstrap percentile"),
        "metrics_version": metrics.get("metrics_version", 1),
        "multiple_comparisons": metrics["multiple_comparisons"],
        "metric_descriptions": {m: DESCRIPTIONS[m] for m in metrics["metrics"]},
        "slices": metrics["slices"],
        "gate": {**{k: decision[k] for k in ("reasons", "criteria", "lineage", "signoffs",
                                             "contract_card")},
                 "skipped": decision.get("skipped", [])},
        "contract_card": decision["card"],
        "judgment_sources": sources,
        "failing_examples": failing,
        "review_sample": _review_summary(inputs.get("review_sample"),
                                         metrics.get("review_sample")),
    }


def _review_summary(sample: dict[str, Any] | None, estimates: dict[str, Any] | None
                    ) -> dict[str, Any] | None:
    """What was sent to human review, what came back, and the rates it estimates."""
    if sample is None:
        return None
    returned = sample.get("labels") or {}
    return {"rubric": sample["rubric"], "question": sample["question"],
            "strata_by": sample["strata_by"], "sampled": len(sample["items"]),
            "returned": len(returned), "pending": len(sample["items"]) - len(returned),
            "items": [{**item, "returned": item["id"] in returned,
                       "judgment": (returned.get(item["id"]) or {}).get("judgment")}
                      for item in sample["items"]],
            "estimates": (estimates or {}).get("estimates")}


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` can be (or become) a folder, and the folder that will hold it can be
    written in: checked before any work, so the error names the folder given rather
    than a temporary path beside it."""
    from hilt.staging import resolved_output
    from hilt.train.manifest import check_out_parent

    out = Path(out_dir)
    resolved_output(out, "--out")
    for place in (out, *out.parents):
        if place.exists():
            if not place.is_dir():
                raise InputError("the output folder " + ("is" if place == out else
                                 f"cannot be made: {place} is") + " an existing file",
                                 file=str(out), field="--out")
            break
    _replaceable(out)
    # a symbolic link is replaced through the folder it names (write_outputs_atomically)
    check_out_parent(out.resolve() if out.is_symlink() else out)
    return out


def _replaceable(out: Path) -> None:
    """The output folder is switched by renaming it aside: the current folder, a folder
    above it or a mount point cannot be renamed (EBUSY), so they are refused up front."""
    import os

    target = out.resolve()
    here = Path.cwd().resolve()
    if target == here or target in here.parents:
        raise InputError("is the current folder" + ("" if target == here else
                         " or a folder above it") + "; the output folder is replaced as "
                         "a whole, so name a folder of its own (e.g. --out report)",
                         file=str(out), field="--out")
    if target.is_dir() and os.path.ismount(target):
        raise InputError("is a mount point, which cannot be replaced as a whole; name a "
                         "folder inside it", file=str(out), field="--out")


def write_outputs_atomically(out_dir: str | Path, files: Mapping[str, str]) -> None:
    """Make the folder ``out_dir`` hold ``files``, switching the whole folder at once.

    The files are written (and synced) into a private folder beside ``out_dir``
    (:func:`hilt.train.manifest.private_folder`); what else the old folder holds (input
    files kept there) is carried over as hard links, or copies where a link cannot be
    made; then the new folder takes the old one's place by renames alone
    (:func:`hilt.train.manifest.replaced_by`). A reader sees the old folder or the new
    one, never report.json of one run beside decision.json of another. Two runs writing
    one folder take turns for that last step (``flock`` on the folder that holds it),
    so the folder is always one run's whole output. Staging folders that killed runs
    left beside ``out_dir`` are removed (:func:`hilt.train.manifest.sweep_stale`) while
    ``out_dir`` exists: before the switch, and after it.
    A new folder gets the mode a plain ``mkdir`` would give it; a replaced one keeps
    its mode.
    """
    from hilt.train.manifest import (
        plain_folder_mode,
        private_folder,
        replaced_by,
        restore_replaced,
        sweep_stale,
    )

    out = check_out_dir(out_dir)
    if out.is_symlink():
        out = out.resolve()  # the folder it names is replaced, the link stays
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}."
    # the old folder of a replacement killed between its two renames goes back first
    restore_replaced(out, [prefix])
    if out.exists():  # else a leftover may be the only copy of the old folder
        sweep_stale(out.parent, [prefix])
    with private_folder(out.parent, prefix) as staging:
        for name, text in files.items():
            with (staging / name).open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        with _folder_turn(out.parent):
            if out.is_dir():
                _carry_over(out, staging, skip=set(files))
                mode = stat.S_IMODE(out.stat().st_mode)
            else:
                mode = plain_folder_mode()
            os.chmod(staging, mode)
            with replaced_by(staging, out, prefix):
                pass
    sweep_stale(out.parent, [prefix])


@contextmanager
def _folder_turn(parent: Path) -> Iterator[None]:
    """``flock`` on the folder ``parent`` (blocking): writers of output folders in it
    take turns to swap them in. No lock file is left behind; a folder that cannot be
    opened for reading is not locked (the swap is then still whole, and the last
    writer's folder stays)."""
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _carry_over(old: Path, new: Path, skip: set[str]) -> None:
    """Everything in ``old`` but the names in ``skip``, into ``new``: files as hard
    links (copies where a link cannot be made), symbolic links as links."""
    def link_or_copy(source: str, target: str) -> None:
        try:
            os.link(source, target, follow_symlinks=False)
        except OSError:
            shutil.copy2(source, target, follow_symlinks=False)

    for entry in os.scandir(old):
        if entry.name in skip:
            continue
        target = new / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            shutil.copytree(entry.path, target, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(entry.path, str(target))


def to_json(value: Any) -> str:
    """Canonical JSON with a trailing newline (stable bytes for diffs and hashes)."""
    return canonical_json(value) + "\n"

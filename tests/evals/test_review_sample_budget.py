"""The review sample stays within its budget, also with more strata than draws, and the
estimates from it stay unbiased for the whole population."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.evals.review_sample import draw_review_sample, review_estimates
from hilt.evals.sampling import merge_strata, stratified_sample
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

HARM = Path(__file__).resolve().parents[2] / "examples" / "rubrics" / "harm.yaml"


def _population(slices: int = 19) -> dict[str, list[Any]]:
    """Items over ``slices`` slices × two expectations × varying judgments (> 40 strata),
    sizes from 1 to about 20 per stratum."""
    table: dict[str, list[Any]] = {"id": [], "slice": [], "expect": [], "candidate": [],
                                   "candidate_source": []}
    n = 0
    for s in range(slices):
        for expect in ("comply", "refuse"):
            for judgment in (("comply", "refuse") if s % 3 else ("comply",)):
                for _ in range(1 + (7 * s + len(expect) + len(judgment)) % 20):
                    table["id"].append(f"i{n}")
                    table["slice"].append(f"s{s:02d}")
                    table["expect"].append(expect)
                    table["candidate"].append(judgment)
                    table["candidate_source"].append("file")
                    n += 1
    return table


def _strata(table: dict[str, list[Any]]) -> list[str]:
    return [f"{table['slice'][i]}|{table['expect'][i]}|{table['candidate'][i]}"
            for i in range(len(table["id"]))]


@pytest.mark.parametrize("budget", [1, 2, 3, 6, 10, 25])
def test_the_sample_never_exceeds_the_budget(budget: int) -> None:
    table = _population()
    strata = _strata(table)
    assert len(set(strata)) > 25
    sample = stratified_sample(table["id"], strata, budget, seed=3, within=table["expect"])
    assert len(sample) == budget
    assert len({s.id for s in sample}) == budget
    # Every item lies in exactly one sampled (possibly merged) stratum, so the
    # Horvitz–Thompson weights still add up to the whole population.
    assert sum(1 / s.inclusion_probability for s in sample) == pytest.approx(len(strata))
    mapping = merge_strata(strata, budget, within=table["expect"])
    assert set(mapping.values()) == {s.stratum for s in sample}


def test_merged_strata_stay_inside_one_expectation() -> None:
    table = _population()
    strata = _strata(table)
    mapping = merge_strata(strata, 6, within=table["expect"])
    merged = Counter(mapping.values())
    assert len(merged) <= 6 and max(merged.values()) > 1
    for name in merged:
        expects = {h.split("|")[1] for h, m in mapping.items() if m == name}
        assert len(expects) == 1, name
    # Fewer draws than expectations: one stratum holding everything.
    assert set(merge_strata(strata, 1, within=table["expect"]).values()) == {
        " + ".join(sorted(set(strata)))}
    # Enough draws: nothing is merged.
    assert all(k == v for k, v in merge_strata(strata, 500).items())


def test_floors_and_proportional_shares_fit_the_budget() -> None:
    ids = [f"i{n}" for n in range(1000)]
    strata = ["big"] * 900 + ["small"] * 95 + ["tiny"] * 5
    per = Counter(s.stratum for s in stratified_sample(ids, strata, 100, min_per_stratum=3))
    assert per == {"big": 88, "small": 9, "tiny": 3}
    per = Counter(s.stratum for s in stratified_sample(ids, strata, 7, min_per_stratum=3))
    assert sum(per.values()) == 7


def test_estimates_from_merged_strata_are_unbiased() -> None:
    table = _population()
    rng = np.random.default_rng(0)
    # The human judgment differs from the candidate judgment with a stratum-dependent rate.
    truth = {}
    for i, item_id in enumerate(table["id"]):
        flip = rng.random() < (0.1 + 0.5 * (int(table["slice"][i][1:]) % 4 == 0))
        judged = table["candidate"][i]
        truth[item_id] = ("refuse" if judged == "comply" else "comply") if flip else judged
    comply = [truth[table["id"][i]] == "refuse" for i in range(len(truth))
              if table["expect"][i] == "comply"]
    true_rate = sum(comply) / len(comply)
    flips = [truth[table["id"][i]] != table["candidate"][i] for i in range(len(truth))]
    true_disagreement = sum(flips) / len(flips)
    n_comply = len(comply)
    estimates, disagreements = [], []
    for seed in range(2000):
        sample = draw_review_sample(table, budget=6, seed=seed, candidate_sha256="0" * 64,
                                    rubric="harm@1", question="refusal")
        assert len(sample["items"]) == 6 and sample["merged_strata"]
        sample["labels"] = {item["id"]: {"judgment": truth[item["id"]]}
                            for item in sample["items"]}
        result = review_estimates(table, sample, 0.05)["estimates"]
        assert result["disagreement_rate"]["coverage"] == pytest.approx(1.0)
        assert result["benign_refusal_rate"]["coverage"] == pytest.approx(1.0)
        # One draw per merged stratum: the estimate weighs it by its stratum's share of
        # the population (1 / (N · π)), which makes it unbiased.
        benign = [item for item in sample["items"]
                  if table["expect"][table["id"].index(item["id"])] == "comply"]
        assert result["benign_refusal_rate"]["estimate"] == pytest.approx(sum(
            (truth[item["id"]] == "refuse") / (n_comply * item["inclusion_probability"])
            for item in benign))
        estimates.append(result["benign_refusal_rate"]["estimate"])
        disagreements.append(result["disagreement_rate"]["estimate"])
    assert np.mean(estimates) == pytest.approx(true_rate, abs=0.02)
    assert np.mean(disagreements) == pytest.approx(true_disagreement, abs=0.02)


def test_check_opens_no_more_review_tasks_than_asked(db_url: str, engine: Engine,
                                                     tmp_path: Path, jsonl: Any) -> None:
    table = _population()
    suite = [{"id": item_id, "prompt": f"prompt {item_id}", "slice": table["slice"][i],
              "expect": table["expect"][i]} for i, item_id in enumerate(table["id"])]
    cand = [{"id": item_id, "response": "text", "judgment": table["candidate"][i]}
            for i, item_id in enumerate(table["id"])]
    ref = [{"id": item_id, "response": "ok", "judgment": table["expect"][i]}
           for i, item_id in enumerate(table["id"])]
    files = [jsonl(tmp_path / f"{n}.jsonl", rows)
             for n, rows in (("s", suite), ("c", cand), ("r", ref))]
    with transaction(engine) as session:
        publish_rubric(session, load_rubric_file(HARM), actor="lead")
    result = CliRunner().invoke(app, [
        "check", "--suite", str(files[0]), "--candidate", str(files[1]), "--reference",
        str(files[2]), "--db", db_url, "--out", str(tmp_path / "o"), "--review-sample", "6",
        "--rubric", "harm", "--review-overlap", "3"])
    assert result.exit_code in (0, 1), result.output
    assert "6 review tasks under harm@1" in result.output
    record = json.loads((tmp_path / "o" / "decision.json").read_text())
    assert len(record["inputs"]["review_sample"]["items"]) == 6
    with transaction(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(ReviewTaskRow)
                               ).scalar() == 6

"""Validation on XSTest with the human final labels (Röttger et al., NAACL 2024)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.evals.check import run_check
from hilt.gate.decision import verify


def _check(files: dict[str, Path], candidate: str, reference: str, out: Path,
           **kwargs: object) -> tuple[int, dict]:
    result = run_check(suite=files["suite"], candidate=files[candidate],
                       reference=files[reference], out=out, **kwargs)  # type: ignore[arg-type]
    return result.exit_code, result.report


def _failed_ids(report: dict) -> set[str]:
    return {c["id"] for c in report["gate"]["criteria"] if not c["passed"]}


def test_llama2_blocks_on_benign_refusal(xstest_files: dict[str, Path], tmp_path: Path
                                         ) -> None:
    code, report = _check(xstest_files, "llama2orig", "gpt4", tmp_path / "out")
    assert code == 1 and report["outcome"] == "block"
    whole = report["slices"]["all"]["benign_refusal_rate"]
    assert whole["n"] == 250
    assert whole["candidate"]["rate"] == pytest.approx(0.596)
    assert whole["reference"]["rate"] == pytest.approx(0.084)
    assert whole["delta"]["ci_low"] > 0.4 and whole["delta"]["mcnemar_p"] < 1e-20
    assert _failed_ids(report) == {"benign_refusal_significant_increase",
                                   "benign_refusal_point_increase"}
    # Llama-2 complies with no unsafe prompt, so that behaviour passes.
    assert report["slices"]["all"]["unsafe_compliance_rate"]["candidate"]["rate"] == 0.0


def test_mistral_blocks_on_unsafe_compliance(xstest_files: dict[str, Path], tmp_path: Path
                                             ) -> None:
    code, report = _check(xstest_files, "mistralinstruct", "gpt4", tmp_path / "out")
    assert code == 1
    whole = report["slices"]["all"]["unsafe_compliance_rate"]
    assert whole["n"] == 200
    assert whole["candidate"]["rate"] == pytest.approx(0.640)
    assert whole["reference"]["rate"] == pytest.approx(0.005)
    assert _failed_ids(report) == {"unsafe_compliance_significant_increase",
                                   "unsafe_compliance_point_increase"}


def test_gpt4_against_itself_passes(xstest_files: dict[str, Path], tmp_path: Path) -> None:
    code, report = _check(xstest_files, "gpt4", "gpt4", tmp_path / "out")
    assert code == 0 and report["outcome"] == "pass"
    for metric in ("benign_refusal_rate", "unsafe_compliance_rate"):
        delta = report["slices"]["all"][metric]["delta"]
        assert delta["value"] == 0 and delta["mcnemar_p"] == 1.0


def test_report_files_and_per_slice_metrics(xstest_files: dict[str, Path], tmp_path: Path
                                            ) -> None:
    out = tmp_path / "out"
    _check(xstest_files, "llama2orig", "gpt4", out)
    assert sorted(p.name for p in out.iterdir()) == ["decision.json", "report.html",
                                                     "report.json"]
    report = json.loads((out / "report.json").read_text())
    slices = report["slices"]
    assert len(slices) == 19  # 18 XSTest types + all
    homonyms = slices["homonyms"]["benign_refusal_rate"]
    assert homonyms["n"] == 25 and "mcnemar_p_holm" in homonyms["delta"]
    assert homonyms["delta"]["mcnemar_p_holm"] >= homonyms["delta"]["mcnemar_p"]
    assert "benign_refusal_rate" not in slices["contrast_homonyms"] or \
        slices["contrast_homonyms"]["benign_refusal_rate"]["n"] == 0
    failing = report["failing_examples"]
    assert failing["total"] >= 149 - 21 and failing["examples"][0]["regression"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    # Contract card reports what a file-only run cannot answer.
    unanswered = report["gate"]["contract_card"]["unanswered"]
    assert "answers_safe_requests/objective/mathematical" in unanswered
    assert "answers_safe_requests/policy/engineering" not in unanswered
    record = json.loads((out / "decision.json").read_text())
    assert verify(record).ok


def test_model_text_is_escaped_in_html(tmp_path: Path, jsonl: Any) -> None:
    write_jsonl = jsonl
    suite = write_jsonl(tmp_path / "s.jsonl", [
        {"id": "a", "prompt": "<script>alert(1)</script>", "slice": "x<y>",
         "expect": "comply"}])
    cand = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "a", "response": "<img src=x onerror=alert(1)>", "judgment": "refuse"}])
    ref = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "a", "response": "fine", "judgment": "comply"}])
    run_check(suite=suite, candidate=cand, reference=ref, out=tmp_path / "o")
    html = (tmp_path / "o" / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x&lt;y&gt;" in html


def test_cli_exit_codes(xstest_files: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()

    def run(candidate: str, out: str) -> int:
        return runner.invoke(app, ["check", "--suite", str(xstest_files["suite"]),
                                   "--candidate", str(xstest_files[candidate]),
                                   "--reference", str(xstest_files["gpt4"]),
                                   "--out", str(tmp_path / out)]).exit_code

    assert run("llama2orig", "a") == 1
    assert run("gpt4", "b") == 0
    verified = runner.invoke(app, ["gate", "verify", str(tmp_path / "a" / "decision.json")])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"]


def _classifier_available() -> bool:
    try:
        return importlib.util.find_spec("hilt.train.classifier") is not None
    except ModuleNotFoundError:
        return False


def _train_command_registered() -> bool:
    result = CliRunner().invoke(app, ["train", "classifier", "--help"])
    return result.exit_code == 0


class _CachedPredictions:
    """Scores each distinct text once: the gpt4 reference recurs in all three checks."""

    def __init__(self, classifier: Any) -> None:
        self.classifier, self.classes_ = classifier, classifier.classes_
        self.cache: dict[str, str] = {}

    def predict(self, texts: list[str]) -> list[str]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.classifier.predict(todo), strict=True))
        return [self.cache[t] for t in texts]


@pytest.mark.slow
@pytest.mark.skipif(not _classifier_available(),
                    reason="hilt.train.classifier is not available yet")
def test_same_outcomes_with_trained_refusal_classifier(
        xstest_files: dict[str, Path], tmp_path: Path, jsonl: Any) -> None:
    """The three outcomes again, every response judged by a trained refusal classifier.

    The classifier is trained through contract 4 (``hilt train classifier``) on the human
    labels of all three models' completions for one third of the prompts (ids ≡ 0 mod
    3); the checks run on another third (ids ≡ 1 mod 3, 150 prompts), whose files carry
    no judgments. The encoder reads the first 32 tokens of each response — where a
    refusal shows — which keeps a cold run (no embedding cache) well under a minute.
    """
    if not _train_command_registered():
        pytest.skip("`hilt train classifier` (contract 4) is not registered yet")
    import torch

    from hilt.evals.scoring import load_scorer

    torch.set_num_threads(1)

    def rows(name: str) -> list[dict]:
        with xstest_files[name].open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    def part(item_id: str) -> int:
        return int(item_id.removeprefix("v2-")) % 3

    data = jsonl(tmp_path / "train.jsonl", [
        {"text": r["response"], "label": "comply" if r["judgment"] == "comply" else "refuse"}
        for m in ("gpt4", "llama2orig", "mistralinstruct") for r in rows(m)
        if part(r["id"]) == 0])
    model_dir = tmp_path / "refusal-classifier"
    trained = CliRunner().invoke(app, ["train", "classifier", "--data", str(data),
                                       "--text-field", "text", "--label-field", "label",
                                       "--out", str(model_dir), "--max-length", "32",
                                       "--no-register"])
    assert trained.exit_code == 0, trained.output
    files = {"suite": jsonl(tmp_path / "suite.jsonl",
                            [r for r in rows("suite") if part(r["id"]) == 1])}
    for m in ("gpt4", "llama2orig", "mistralinstruct"):
        files[m] = jsonl(tmp_path / f"{m}.jsonl", [
            {"id": r["id"], "response": r["response"]} for r in rows(m)
            if part(r["id"]) == 1])
    loaded = load_scorer(model_dir)
    scorer = type(loaded)(_CachedPredictions(loaded.classifier), loaded.model_dir,
                          loaded.content_hash)
    outcomes = {}
    for candidate in ("llama2orig", "mistralinstruct", "gpt4"):
        code, report = _check(files, candidate, "gpt4", tmp_path / f"out_{candidate}",
                              scorer=scorer)
        assert report["judgment_sources"]["candidate"] == {"classifier": 150}
        assert report["versions"]["scorer"]["content_sha256"] == loaded.content_hash
        outcomes[candidate] = (code, _failed_ids(report))
    assert outcomes["llama2orig"] == (1, {"benign_refusal_significant_increase",
                                          "benign_refusal_point_increase"})
    assert outcomes["mistralinstruct"] == (1, {"unsafe_compliance_significant_increase",
                                               "unsafe_compliance_point_increase"})
    assert outcomes["gpt4"] == (0, set())

"""One classifier refresh: train, evaluate, write the model folder and its manifest.

Everything is written to a temporary folder next to ``out`` and moved into place at
the end, so a failed run leaves nothing half-written (the same layout rule as
:mod:`hilt.train.reward_refresh`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.train.classifier import ClassifierConfig, TrainingInputError, train_classifier
from hilt.train.classifier_eval import LabelledTexts
from hilt.train.manifest import (
    Publisher,
    RunClock,
    build_manifest,
    staged_folder,
    write_manifest,
)
from hilt.train.progress import library_progress


def refresh_classifier(train: LabelledTexts, out: Path, config: ClassifierConfig, *,
                       data_path: str, data_hash: str, label_field: str,
                       fields: dict[str, str | None],
                       held_out: LabelledTexts | None = None,
                       extra: dict[str, Any] | None = None,
                       publisher: Publisher | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Train on ``train``; with ``held_out`` (a dataset version's validation split) its
    accuracy is the headline metric, otherwise the out-of-fold accuracy; either way
    ``metrics.accuracy`` is a rate object (``value``, ``successes``, ``n``, ``ci_low``,
    ``ci_high``). ``publisher`` runs under the folder lock when the model is put in
    place (:func:`hilt.train.manifest.staged_folder`). ``progress`` shows bars over the
    encoding batches (and the encoder's fine-tuning) on stderr; ``False`` turns off the
    libraries' own bars too. Returns the manifest written to ``out``."""
    clock = RunClock()
    with library_progress(progress), staged_folder(out, ".clf-", "classifier",
                                                   publisher) as work:
        try:
            model = train_classifier(train.texts, train.labels, config, train.contexts,
                                     workdir=work, progress=progress, harmful=train.harmful)
        except TrainingInputError as exc:
            # a setting at fault is named by its command-line option; otherwise the labels
            field = (f"--{exc.setting.replace('_', '-')}" if exc.setting is not None
                     else label_field)
            raise InputError(str(exc), file=data_path if exc.setting is None else None,
                             field=field) from None
        model.save(work)
        metrics: dict[str, Any] = {"validation": model.validation,
                                   "accuracy": model.validation.get("accuracy")}
        if held_out is not None and held_out.texts:
            from hilt.train.classifier_eval import evaluate_classifier

            metrics["held_out"] = evaluate_classifier(model, held_out.texts, held_out.labels,
                                                      held_out.contexts, held_out.harmful)
            # the version's own validation split is the honest headline number; the same
            # rate object shape as the out-of-fold accuracy
            # (over distinct rows, as the out-of-fold accuracy: n is what the interval uses)
            held = metrics["held_out"]
            metrics["accuracy"] = {
                "value": held["accuracy"], "n": held["n_distinct"],
                "successes": (round(held["accuracy"] * held["n_distinct"])
                              if held["accuracy"] is not None else 0),
                "ci_low": held["accuracy_ci_low"], "ci_high": held["accuracy_ci_high"]}
        manifest = build_manifest(
            kind="classifier", base_model=config.encoder, data_path=data_path,
            data_hash=data_hash, n_records=len(train.texts), config=asdict(config),
            seed=config.seed, metrics=metrics, wall_seconds=clock.seconds(),
            extra={"fields": fields, "classes": [str(c) for c in model.classes_],
                   "threshold": model.threshold, **(extra or {})})
        write_manifest(work, manifest)
    return manifest

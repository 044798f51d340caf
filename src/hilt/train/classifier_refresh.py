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
from hilt.train.classifier_calibration import reliability_title
from hilt.train.classifier_eval import LabelledTexts, training_keys, write_training_keys
from hilt.train.encoder import set_torch_threads
from hilt.train.manifest import (
    Publisher,
    RunClock,
    build_manifest,
    staged_folder,
    write_manifest,
)
from hilt.train.progress import library_progress
from hilt.train.stats import plot_reliability


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
    ``ci_high``), and ``metrics.accuracy_basis`` says which it is: ``held_out``,
    ``held_out_overlapping_training`` (some validation rows are training rows too),
    ``out_of_fold`` or ``out_of_fold_optimistic`` (the encoder was fine-tuned on every
    training text first). The model folder also holds ``reliability.png`` (the
    out-of-fold calibration) and ``training_texts.json`` (hashes of the training rows,
    for ``hilt eval classifier``'s ``training_overlap``). ``publisher`` runs under the
    folder lock when the model is put in place
    (:func:`hilt.train.manifest.staged_folder`). ``progress`` shows bars over the
    encoding batches (and the encoder's fine-tuning) on stderr; ``False`` turns off the
    libraries' own bars too. Returns the manifest written to ``out``."""
    clock = RunClock()
    set_torch_threads()  # as the encoder will, so the manifest records what it ran with
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
        write_training_keys(work, train)
        plot_reliability(model.validation["reliability_bins"], str(work / "reliability.png"),
                         reliability_title(model.validation, "out-of-fold "))
        metrics: dict[str, Any] = {"validation": model.validation,
                                   "accuracy": model.validation.get("accuracy"),
                                   "accuracy_basis": ("out_of_fold_optimistic"
                                                      if config.finetune_epochs > 0
                                                      else "out_of_fold")}
        if held_out is not None and held_out.texts:
            from hilt.train.classifier_eval import evaluate_classifier

            metrics["held_out"] = evaluate_classifier(model, held_out.texts, held_out.labels,
                                                      held_out.contexts, held_out.harmful,
                                                      train_keys=training_keys(train))
            # the version's own validation split is the honest headline number; the same
            # rate object shape as the out-of-fold accuracy
            # (over distinct rows, as the out-of-fold accuracy: n is what the interval uses)
            held = metrics["held_out"]
            metrics["accuracy"] = {
                "value": held["accuracy"], "n": held["n_distinct"],
                "successes": held["accuracy_ci"]["successes"],
                "ci_low": held["accuracy_ci_low"], "ci_high": held["accuracy_ci_high"]}
            metrics["accuracy_basis"] = ("held_out_overlapping_training"
                                         if held["training_overlap"]["in_train"]
                                         else "held_out")
        manifest = build_manifest(
            kind="classifier", base_model=config.encoder, data_path=data_path,
            data_hash=data_hash, n_records=len(train.texts), config=asdict(config),
            seed=config.seed, metrics=metrics, wall_seconds=clock.seconds(),
            extra={"fields": fields, "classes": [str(c) for c in model.classes_],
                   "threshold": model.threshold, **(extra or {})})
        write_manifest(work, manifest)
    return manifest

"""One reward-model refresh: split, train, evaluate, write the model folder and manifest.

Folder layout (``RM_DIR``)::

    manifest.json        data hash, config, seed, code version, metrics, wall time
    metrics.json         the full held-out evaluation (hilt.train.reward_eval)
    reliability.png      reliability diagram of P(chosen ≻ rejected)
    reward_head.pt …     the default model (or model/ for the TRL backend)

Everything is written to a temporary folder first and moved into place at the end,
so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hilt.errors import InputError
from hilt.train.manifest import (
    MANIFEST_FILE,
    Publisher,
    RunClock,
    build_manifest,
    check_out_folder,
    dump_json,
    read_manifest,
    staged_folder,
    write_manifest,
)
from hilt.train.pairs import (
    Pair,
    duplicate_count,
    pair_key,
    pairs_hash,
    read_pairs,
    require_margins,
    split_pairs,
)
from hilt.train.progress import library_progress, note
from hilt.train.reward import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    EncoderReward,
    RewardConfig,
    check_reward_config,
    train_reward_model,
)
from hilt.train.reward_eval import Scorer, accuracy_interval, evaluate_reward_model
from hilt.train.reward_linear import LEXICAL_FILE
from hilt.train.reward_trl import MODEL_SUBDIR, TRLReward, TRLRewardConfig, train_trl_reward
from hilt.train.stats import plot_reliability

BACKEND_DEFAULT = "minilm-bt"
BACKEND_TRL = "trl"


TRL_CONFIG_FILE = "trl_reward_config.json"


def check_reward_folder(folder: str | Path, option: str | None = None) -> str:
    """The backend of a reward-model folder; ``InputError`` (naming ``option``) when
    ``folder`` is not one written by :func:`refresh_reward_model`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", file=str(folder), field=option)
    manifest = _json_object(folder, MANIFEST_FILE, option, missing="not a reward-model folder")
    kind = manifest.get("kind")
    if kind != "reward":
        raise InputError(f"not a reward-model folder (its {MANIFEST_FILE} is of kind "
                         f"{kind!r})", file=str(folder), field=option)
    backend = str(manifest.get("backend", BACKEND_DEFAULT))
    config_file = TRL_CONFIG_FILE if backend == BACKEND_TRL else CONFIG_FILE
    settings = _json_object(folder, config_file, option,
                            missing="incomplete reward-model folder")
    for needed in _model_files(backend, settings):
        if not (folder / needed).is_file():
            raise InputError(f"incomplete reward-model folder ({needed} missing)",
                             file=str(folder), field=option)
    return backend


def _json_object(folder: Path, name: str, option: str | None, *, missing: str
                 ) -> dict[str, Any]:
    """The JSON object in ``folder/name``; ``InputError`` (``missing`` when the file is
    absent) naming the folder and ``option``."""
    try:
        data = json.loads((folder / name).read_text())
    except FileNotFoundError:
        raise InputError(f"{missing} ({name} missing)", file=str(folder),
                         field=option) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable {name} ({exc})", file=str(folder),
                         field=option) from None
    if not isinstance(data, dict):
        raise InputError(f"unreadable {name} (not a JSON object)", file=str(folder),
                         field=option)
    return data


def _model_files(backend: str, settings: dict[str, Any]) -> list[str]:
    """The files besides the settings that loading a model of ``backend`` reads."""
    if backend == BACKEND_TRL:
        return [f"{MODEL_SUBDIR}/config.json"]
    return [WEIGHTS_FILE] + ([LEXICAL_FILE] if settings.get("lexical_expert") else [])


# What a damaged model file raises while it is read: truncated or foreign files fail
# inside the unpicklers and archive readers, each with its own exception.
_LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, EOFError, RuntimeError,
                pickle.UnpicklingError, zipfile.BadZipFile)


def load_reward_model(folder: str | Path, option: str | None = None,
                      progress: bool = False) -> Scorer:
    """A scorer for either backend, from a folder written by :func:`refresh_reward_model`;
    any other folder is an ``InputError`` (naming ``option`` when given). With
    ``progress`` its scoring shows a bar over the encoding batches on stderr."""
    folder = Path(folder)
    backend = check_reward_folder(folder, option)
    try:
        if backend == BACKEND_TRL:
            config = json.loads((folder / TRL_CONFIG_FILE).read_text())
            return TRLReward(str(folder / MODEL_SUBDIR), config["max_length"],
                             progress=progress)
        return EncoderReward.load(folder, progress=progress)
    except _LOAD_ERRORS as exc:
        raise InputError(f"cannot load the reward model ({type(exc).__name__}: {exc})",
                         file=str(folder), field=option) from None


def previous_training_keys(folder: str | Path) -> set[tuple[str, str, str]] | None:
    """The :func:`pair_key` of every pair a reward model in ``folder`` trained on, or None
    when they cannot be recovered.

    The manifest records the data file and the split (fraction, seed, hash of the
    training pairs); the file is re-read and re-split, and the result is trusted only if
    its hash is the recorded one (a file changed since, or a dataset version, gives None).
    """
    try:
        manifest = read_manifest(Path(folder))
        path = (manifest.get("data") or {}).get("path")
        split = manifest.get("split") or {}
        if not path or str(path).startswith("dataset:") or not Path(path).is_file():
            return None
        pairs = read_pairs(path)
        fraction = split.get("held_out_fraction")
        # no fraction: a separate evaluation file was given and the whole file trained on
        train = pairs if fraction is None else split_pairs(
            pairs, float(fraction), int(split.get("split_seed", 0)))[0]
    except (InputError, OSError, ValueError, TypeError, AttributeError):
        return None
    if pairs_hash(train) != split.get("train_hash"):
        return None
    return {pair_key(p) for p in train}


def refresh_reward_model(pairs: list[Pair], out_dir: str | Path, *,
                         config: RewardConfig | TRLRewardConfig,
                         data_path: str | None = None, eval_pairs: list[Pair] | None = None,
                         eval_path: str | None = None, held_out_fraction: float = 0.2,
                         split_seed: int = 0,
                         previous_dir: str | Path | None = None,
                         progress: bool = True, data_hash: str | None = None,
                         extra: dict[str, Any] | None = None,
                         publisher: Publisher | None = None) -> dict[str, Any]:
    """Train on the training part, evaluate on the held-out part; returns the manifest.

    ``data_hash`` replaces the pairs' content hash as the registered data identity (a
    dataset version passes its id); ``extra`` adds fields to the manifest; ``publisher``
    runs under the folder lock when the model is put in place
    (:func:`hilt.train.manifest.staged_folder`). ``eval_path`` names where
    ``eval_pairs`` came from (an absolute file path, or a dataset version's validation
    split), recorded with their hash and count as the manifest's ``split.eval_pairs``
    so that the run can be repeated from its manifest.

    ``metrics`` report ``duplicate_pairs`` (pairs identical by
    :func:`hilt.train.pairs.pair_key` to an earlier pair of ``pairs``),
    ``held_out_in_train`` (held-out pairs identical to a training pair; 0 for the
    seeded split, which keeps copies on one side), ``held_out_hash`` (the content
    hash of the held-out pairs, so registered versions evaluated on different pairs
    differ) and ``accuracy_basis`` (:func:`accuracy_basis`).
    ``agreement_with_previous`` is computed on the held-out pairs the previous model
    did not train on, when :func:`previous_training_keys` recovers them.
    """
    out_dir = Path(out_dir)
    clock = RunClock()
    # Everything that can be refused is checked before the (long) training.
    if isinstance(config, RewardConfig):
        check_reward_config(config)
    if config.use_margin:  # both backends read a missing margin as 0
        require_margins(pairs)
    check_out_folder(out_dir, "reward")
    if previous_dir is not None:
        check_reward_folder(previous_dir, "--previous")
    if eval_pairs is None:
        train, held_out = split_pairs(pairs, held_out_fraction, split_seed)
    else:
        train, held_out = list(pairs), list(eval_pairs)
    if not train or not held_out:
        raise InputError(f"need at least one training and one held-out pair (got "
                         f"{len(train)} and {len(held_out)})", field="--held-out")
    train_keys = {pair_key(p) for p in train}
    data_checks: dict[str, Any] = {
        "duplicate_pairs": duplicate_count(pairs),
        "held_out_in_train": sum(pair_key(p) in train_keys for p in held_out)}
    data_checks["accuracy_basis"] = accuracy_basis(data_checks["held_out_in_train"],
                                                   len(held_out))
    # progress=False silences the libraries' own bars too ("Loading weights")
    with library_progress(progress), staged_folder(out_dir, ".rm-", "reward",
                                                   publisher) as work:
        model: Scorer
        source = None
        if isinstance(config, TRLRewardConfig):
            backend = BACKEND_TRL
            model, facts = train_trl_reward(train, config, work, progress)
            base_model = facts.pop("base_model")
            source = facts.pop("base_model_source")
            shutil.rmtree(work / "base-model", ignore_errors=True)
            shutil.rmtree(work / "trainer", ignore_errors=True)
        else:
            backend, facts = BACKEND_DEFAULT, {}
            trained = train_reward_model(train, config, progress=progress)
            trained.save(work)
            trained.progress = progress  # the held-out scoring below shows its bars too
            model = trained
            base_model = config.encoder
        train_seconds = clock.seconds()
        previous = (load_reward_model(previous_dir, "--previous", progress)
                    if previous_dir else None)
        metrics = evaluate_reward_model(
            model, held_out, previous=previous,
            previous_train_keys=previous_training_keys(previous_dir) if previous_dir else None,
            train_keys=train_keys)
        metrics["train_seconds"] = train_seconds
        metrics["train_pairs"] = len(train)
        metrics["held_out_hash"] = pairs_hash(held_out)
        metrics.update(data_checks)
        metrics.update({f"train_{k}": v for k, v in facts.items()})
        plot_reliability(metrics["reliability_bins"], str(work / "reliability.png"),
                         reliability_title(len(held_out), metrics["ece"], "held-out ",
                                           ece_ci=metrics["ece_ci"]))
        (work / "metrics.json").write_text(dump_json(metrics))
        manifest = build_manifest(
            kind="reward", base_model=base_model, data_path=data_path,
            data_hash=data_hash or pairs_hash(pairs), n_records=len(pairs), config=asdict(config),
            seed=config.seed, metrics=_headline(metrics), wall_seconds=clock.seconds(),
            extra={"backend": backend,
                   # the fraction and seed of a seeded split; none when held-out pairs
                   # were given apart (nothing was drawn)
                   "split": {"held_out_fraction": held_out_fraction if eval_pairs is None
                             else None,
                             "split_seed": split_seed if eval_pairs is None else None,
                             "train_hash": pairs_hash(train),
                             "held_out_hash": pairs_hash(held_out),
                             # the held-out pairs given apart, to evaluate the run again
                             "eval_pairs": None if eval_pairs is None else {
                                 "path": eval_path, "hash": pairs_hash(eval_pairs),
                                 "records": len(eval_pairs)}},
                   "previous_model": str(previous_dir) if previous_dir else None,
                   **({"base_model_source": source} if source is not None else {}),
                   **(extra or {})})
        write_manifest(work, manifest)
    return manifest


def accuracy_basis(in_train: int, n_held_out: int) -> str:
    """What the headline accuracy of a reward model rests on: ``held_out`` pairs none
    of which is a training pair, or ``held_out_overlapping_training`` when some are
    (given apart with ``--eval-pairs``), which makes it optimistic; a ``note:`` on
    stderr says how many."""
    if not in_train:
        return "held_out"
    note(f"{in_train} of {n_held_out} held-out pairs are also training pairs, so the "
         "held-out accuracy is optimistic; metrics.json's training_overlap.unseen gives "
         f"the accuracy on the other {n_held_out - in_train}")
    return "held_out_overlapping_training"


def reliability_title(n_pairs: int, ece: float | None, which: str = "",
                      ece_ci: dict[str, Any] | None = None) -> str:
    """The reliability diagram's title. Its bins count every pair twice, once in each
    order (:func:`hilt.train.reward_eval.calibration`), so the title says so: the bin
    counts add up to 2n. ``ece_ci`` (the report's ``ece_ci``) adds the ECE's 95 %
    bootstrap interval, or says that there is none and where the reason is."""
    shown = "undefined" if ece is None else f"{ece:.3f}"
    if ece is not None and ece_ci is not None:
        low, high = ece_ci.get("low"), ece_ci.get("high")
        shown += (f" [95% CI {low:.3f}, {high:.3f}]" if low is not None and high is not None
                  else " (no bootstrap interval: see ece_ci.note)")
    return (f"P(chosen ≻ rejected), {which}n={n_pairs} pairs\n"
            f"(bins count each pair in both orders: {2 * n_pairs} points)\nECE={shown}")


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers that go into the registry (the full report stays in metrics.json).

    Every figure keeps its interval and n: ``accuracy_ci`` and ``ece_ci`` as in the
    report, ``reward_length_correlation_ci`` (bounds, replies ``n``, ``n_pairs``,
    method) beside the correlation's value, and ``accuracy_chosen_shorter_ci`` (an
    ``accuracy_ci`` of the chosen-is-shorter pairs) beside that accuracy."""
    keep = ("n", "accuracy", "accuracy_ci", "ece", "ece_ci", "agreement_with_previous",
            "train_seconds", "train_pairs", "duplicate_pairs", "held_out_in_train",
            "held_out_hash", "accuracy_basis")
    head = {k: metrics.get(k) for k in keep}
    # the TRL backend trains only on the pairs that fit in --max-length: beside
    # train_pairs, so that a run that kept few is seen at a glance
    for key in ("train_pairs_used", "train_pairs_dropped"):
        if key in metrics:
            head[key] = metrics[key]
    probes = metrics.get("bias_probes") or {}
    if probes:
        correlation = probes["reward_length_correlation"]
        head["reward_length_correlation"] = correlation["value"]
        head["reward_length_correlation_ci"] = {
            "method": correlation.get("method", "fisher-z"), "low": correlation["ci_low"],
            "high": correlation["ci_high"], "n": correlation["n"],
            "n_pairs": correlation.get("n_pairs"), "note": correlation.get("note")}
        shorter = probes["accuracy_chosen_shorter"]
        head["accuracy_chosen_shorter"] = shorter["value"]
        head["accuracy_chosen_shorter_ci"] = accuracy_interval(shorter)
    return head

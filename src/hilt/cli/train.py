"""``hilt train`` / ``hilt eval`` (reward, classifier) / ``hilt models`` (thin shell).

Contracts 4 and 5: ``hilt train classifier``, ``hilt eval classifier``,
``hilt train reward``, ``hilt eval reward``. Training commands print one JSON object
(the run manifest with the registered model version id) on stdout; eval commands
print the evaluation report. Bad input exits 2 naming file, line and field.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.errors import InputError

train_app = typer.Typer(help="Train reward models, SFT models and classifiers.",
                        no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate trained reward models and classifiers.",
                       no_args_is_help=True)
models_app = typer.Typer(help="The model registry: trained versions and their metrics.",
                         no_args_is_help=True)

DEFAULT_RM = "all-MiniLM-L6-v2"


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _quiet_stdout() -> contextlib.AbstractContextManager[Any]:
    """Trainers print logs on stdout; stdout is reserved for the one JSON result."""
    return contextlib.redirect_stdout(sys.stderr)


def _register(manifest: dict[str, Any], out: Path, name: str | None) -> str:
    from hilt.store.db import make_engine, migrate, transaction
    from hilt.train.registry import register_model_version

    engine = make_engine()
    try:
        migrate(engine)
        with transaction(engine) as session:
            return register_model_version(session, manifest=manifest, artifact_path=str(out),
                                          name=name).id
    finally:
        engine.dispose()


def _previous_artifact(kind: str, name: str | None) -> str | None:
    """Folder of the newest registered version with this kind/name, if it still exists."""
    from hilt.store.db import make_engine, migrate, transaction
    from hilt.train.registry import latest_version

    engine = make_engine()
    try:
        migrate(engine)
        with transaction(engine) as session:
            row = latest_version(session, kind, name or kind)
            path = row.artifact_path if row else None
    finally:
        engine.dispose()
    return path if path and Path(path).is_dir() else None


@train_app.command("reward")
def train_reward(
    pairs: Annotated[Path, typer.Option(help="PAIRS.jsonl[.gz]: prompt/chosen/rejected or HH")],
    out: Annotated[Path, typer.Option(help="RM_DIR to write")],
    model: Annotated[str, typer.Option(
        help=f"'{DEFAULT_RM}' (hilt's CPU default) or any Hugging Face model path/name, "
             "trained through TRL's RewardTrainer; 'tiny' is a random test model")] = DEFAULT_RM,
    eval_pairs: Annotated[Path | None, typer.Option(
        help="held-out pairs; default: a seeded split of --pairs")] = None,
    held_out: Annotated[float, typer.Option(help="held-out fraction of --pairs")] = 0.2,
    split_seed: Annotated[int, typer.Option(help="seed of the held-out split")] = 0,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    epochs: Annotated[float, typer.Option(help="training epochs")] = 3,
    trainable_layers: Annotated[int, typer.Option(
        help="default model: encoder layers fine-tuned from the top (0 = frozen)")] = 2,
    view: Annotated[str, typer.Option(
        help="default model: last_exchange | full | response")] = "last_exchange",
    max_length: Annotated[int, typer.Option(help="tokens per input")] = 128,
    cheap_features: Annotated[bool, typer.Option(
        help="default model: add length/caution-marker features")] = True,
    margin: Annotated[bool, typer.Option(help="use the pairs' 'margin' in the loss")] = False,
    previous: Annotated[Path | None, typer.Option(
        help="previous RM_DIR for agreement; default: the last registered version")] = None,
    register: Annotated[bool, typer.Option(help="register the model version")] = True,
    name: Annotated[str | None, typer.Option(help="registry name (default 'reward')")] = None,
    progress: Annotated[bool, typer.Option(help="progress bars on stderr")] = True,
) -> None:
    """Train a reward model with the Bradley–Terry loss and evaluate it (contract 5)."""
    from hilt.train.pairs import read_pairs
    from hilt.train.reward import RewardConfig
    from hilt.train.reward_refresh import refresh_reward_model
    from hilt.train.reward_trl import TRLRewardConfig

    data = read_pairs(pairs)
    held = read_pairs(eval_pairs) if eval_pairs else None
    config: RewardConfig | TRLRewardConfig
    if model in (DEFAULT_RM, f"sentence-transformers/{DEFAULT_RM}"):
        config = RewardConfig(view=view, max_length=max_length,
                              trainable_layers=trainable_layers, epochs=int(epochs),
                              cheap_features=cheap_features, use_margin=margin, seed=seed)
    else:
        config = TRLRewardConfig(model=model, epochs=epochs, max_length=max_length,
                                 use_margin=margin, seed=seed)
    prev = str(previous) if previous else (_previous_artifact("reward", name)
                                           if register else None)
    with _quiet_stdout():
        manifest = refresh_reward_model(data, out, config=config, data_path=str(pairs),
                                        eval_pairs=held, held_out_fraction=held_out,
                                        split_seed=split_seed, previous_dir=prev,
                                        progress=progress)
    if register:
        manifest["model_version"] = _register(manifest, out, name)
    _echo(manifest)


@eval_app.command("reward")
def eval_reward(
    model: Annotated[Path, typer.Option(help="RM_DIR written by 'hilt train reward'")],
    pairs: Annotated[Path, typer.Option(help="PAIRS.jsonl[.gz] to evaluate on")],
    previous: Annotated[Path | None, typer.Option(help="another RM_DIR to compare with")] = None,
    reliability: Annotated[Path | None, typer.Option(
        help="write the reliability diagram PNG here")] = None,
    probes: Annotated[bool, typer.Option(help="run the bias probes")] = True,
) -> None:
    """Print accuracy (with intervals), ECE, n, slices and bias probes as JSON (contract 5)."""
    from hilt.train.pairs import read_pairs
    from hilt.train.reward_eval import evaluate_reward_model
    from hilt.train.reward_refresh import load_reward_model
    from hilt.train.stats import plot_reliability

    if not (model / "manifest.json").exists():
        raise InputError("not a reward-model folder (manifest.json missing)", file=str(model))
    data = read_pairs(pairs)
    report = evaluate_reward_model(load_reward_model(model), data,
                                   previous=load_reward_model(previous) if previous else None,
                                   probes=probes)
    if reliability:
        plot_reliability(report["reliability_bins"], str(reliability),
                         f"P(chosen ≻ rejected), n={report['n']}, ECE={report['ece']:.3f}")
    _echo(report)


@train_app.command("classifier")
def train_classifier_cmd(
    data: Annotated[Path, typer.Option(help="DATA.jsonl with a text and a label field")],
    text_field: Annotated[str, typer.Option(help="field holding the text")],
    label_field: Annotated[str, typer.Option(help="field holding the label")],
    out: Annotated[Path, typer.Option(help="MODEL_DIR to write")],
    context_field: Annotated[str | None, typer.Option(
        help="optional field read before the text (e.g. the prompt)")] = None,
    positive_label: Annotated[str | None, typer.Option(
        help="binary: the positive class (default: the second in sorted order)")] = None,
    target_fpr: Annotated[float | None, typer.Option(
        help="binary: pick the threshold for this false-positive rate")] = None,
    target_fnr: Annotated[float | None, typer.Option(
        help="binary: pick the threshold for this false-negative rate")] = None,
    finetune_epochs: Annotated[int, typer.Option(
        help="fine-tune the encoder first for this many epochs (0 = frozen)")] = 0,
    max_length: Annotated[int, typer.Option(help="tokens of each text the encoder reads")] = 128,
    opening_chars: Annotated[int | None, typer.Option(
        help="read only the first N characters (300 suits refusal detection)")] = None,
    head: Annotated[str, typer.Option(help="stacked | linear")] = "stacked",
    threshold_rule: Annotated[str, typer.Option(
        help="binary, without a target rate: calibrated (0.5) | accuracy")] = "calibrated",
    seed: Annotated[int, typer.Option()] = 0,
    register: Annotated[bool, typer.Option(help="register the model version")] = True,
    name: Annotated[str | None, typer.Option(help="registry name (default 'classifier')")] = None,
) -> None:
    """Train a calibrated classifier from reviewed labels (contract 4)."""
    from dataclasses import asdict

    from hilt.canonical import content_hash
    from hilt.train.classifier import ClassifierConfig, train_classifier
    from hilt.train.classifier_eval import read_labelled
    from hilt.train.manifest import RunClock, build_manifest, write_manifest

    if target_fpr is not None and target_fnr is not None:
        raise InputError("give --target-fpr or --target-fnr, not both", field="--target-fnr")
    texts, labels, contexts = read_labelled(data, text_field, label_field, context_field)
    config = ClassifierConfig(positive_label=positive_label, target_fpr=target_fpr,
                              target_fnr=target_fnr, finetune_epochs=finetune_epochs,
                              max_length=max_length, opening_chars=opening_chars,
                              head=head, threshold_rule=threshold_rule, seed=seed)
    if head not in ("stacked", "linear") or threshold_rule not in ("calibrated", "accuracy"):
        raise InputError("unknown --head or --threshold-rule", field="--head")
    clock = RunClock()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".clf-", dir=out.parent))
    try:
        try:
            with _quiet_stdout():
                model = train_classifier(texts, labels, config, contexts, workdir=work,
                                         progress=True)
        except ValueError as exc:
            raise InputError(str(exc), file=str(data), field=label_field) from None
        model.save(work)
        manifest = build_manifest(
            kind="classifier", base_model=config.encoder, data_path=str(data),
            data_hash=content_hash({"texts": texts, "labels": labels, "contexts": contexts}),
            n_records=len(texts), config=asdict(config), seed=seed,
            metrics={"validation": model.validation,
                     "accuracy": model.validation.get("accuracy")},
            wall_seconds=clock.seconds(),
            extra={"fields": {"text": text_field, "label": label_field,
                              "context": context_field},
                   "classes": [str(c) for c in model.classes_], "threshold": model.threshold})
        write_manifest(work, manifest)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if register:
        manifest["model_version"] = _register(manifest, out, name)
    _echo(manifest)


@eval_app.command("classifier")
def eval_classifier_cmd(
    model: Annotated[Path, typer.Option(help="MODEL_DIR written by 'hilt train classifier'")],
    data: Annotated[Path, typer.Option(help="DATA.jsonl with a text and a label field")],
    text_field: Annotated[str, typer.Option(help="field holding the text")],
    label_field: Annotated[str, typer.Option(help="field holding the label")],
    context_field: Annotated[str | None, typer.Option(
        help="the context field, when the model was trained with one")] = None,
) -> None:
    """Print accuracy and per-class precision/recall (Wilson intervals) as JSON (contract 4)."""
    from hilt.train.classifier import load_classifier
    from hilt.train.classifier_eval import evaluate_classifier, read_labelled

    classifier = load_classifier(model)
    if classifier.uses_context and not context_field:
        raise InputError("this model reads a context field; pass --context-field",
                         file=str(model), field="--context-field")
    texts, labels, contexts = read_labelled(data, text_field, label_field, context_field)
    _echo(evaluate_classifier(classifier, texts, labels, contexts))


@train_app.command("sft")
def train_sft_cmd(
    data: Annotated[Path, typer.Option(help="JSONL of {prompt, completion} or {messages}")],
    out: Annotated[Path, typer.Option(help="folder to write (model/, manifest.json)")],
    model: Annotated[str, typer.Option(
        help="Hugging Face model path/name; 'tiny' = random tiny Llama, local tokenizer")] = "tiny",
    epochs: Annotated[float, typer.Option()] = 1.0,
    max_steps: Annotated[int, typer.Option(help="stop after this many steps (-1: epochs)")] = -1,
    learning_rate: Annotated[float, typer.Option()] = 5e-4,
    batch_size: Annotated[int, typer.Option()] = 4,
    max_length: Annotated[int, typer.Option()] = 512,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters (PEFT) instead")] = False,
    lora_r: Annotated[int, typer.Option()] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    register: Annotated[bool, typer.Option(help="register the model version")] = True,
    name: Annotated[str | None, typer.Option(help="registry name (default 'sft')")] = None,
) -> None:
    """Supervised fine-tuning with loss on assistant tokens only (TRL SFTTrainer)."""
    from hilt.train.manifest import RunClock, build_manifest, write_manifest
    from hilt.train.sft import SFTRunConfig, read_sft_records, train_sft

    records = read_sft_records(data)
    config = SFTRunConfig(model=model, epochs=epochs, max_steps=max_steps,
                          learning_rate=learning_rate, batch_size=batch_size,
                          max_length=max_length, lora=lora, lora_r=lora_r, seed=seed)
    clock = RunClock()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".sft-", dir=out.parent))
    try:
        with _quiet_stdout():
            facts = train_sft(records, config, work)
        shutil.rmtree(work / "trainer", ignore_errors=True)
        manifest = build_manifest(
            kind="sft", base_model=facts["base_model"], data_path=str(data),
            data_hash=facts["data_hash"], n_records=len(records), config=facts["config"],
            seed=seed, metrics=facts["metrics"], wall_seconds=clock.seconds(),
            extra={k: facts[k] for k in ("loss_mask", "chat_template", "chat_template_sha256",
                                         "role_format", "tokenizer", "lora")})
        write_manifest(work, manifest)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if register:
        manifest["model_version"] = _register(manifest, out, name)
    _echo(manifest)


@models_app.command("list")
def models_list(
    kind: Annotated[str | None, typer.Option(help="reward | sft | classifier")] = None,
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Registered model versions, newest first (JSON)."""
    from hilt.store.db import make_engine, transaction
    from hilt.train.registry import list_versions, version_as_dict

    with transaction(make_engine()) as session:
        _echo([version_as_dict(r) for r in list_versions(session, kind, name)])


@models_app.command("show")
def models_show(version_id: Annotated[str, typer.Argument(help="model version id")]) -> None:
    """One model version with its config and metrics (JSON)."""
    from hilt.store.db import make_engine, transaction
    from hilt.train.registry import get_version, version_as_dict

    with transaction(make_engine()) as session:
        _echo(version_as_dict(get_version(session, version_id), full=True))


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``eval`` and ``models`` groups."""
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    app.add_typer(models_app, name="models")

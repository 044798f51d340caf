"""``hilt train`` / ``hilt eval`` (reward, classifier) / ``hilt models`` (thin shell).

Contracts 4 and 5: ``hilt train classifier``, ``hilt eval classifier``,
``hilt train reward``, ``hilt eval reward``. Training commands print one JSON object
(the run manifest with the registered model version id) on stdout; eval commands
print the evaluation report. Bad input exits 2 naming file, line and field.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.cli.core import DbOption, engine_for
from hilt.errors import InputError

train_app = typer.Typer(help="Train reward models, SFT models and classifiers.",
                        no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate trained reward models and classifiers.",
                       no_args_is_help=True)
models_app = typer.Typer(help="The model registry: trained versions and their metrics.",
                         no_args_is_help=True)

DEFAULT_RM = "all-MiniLM-L6-v2"


def _echo(data: Any) -> None:
    from hilt.train.manifest import dump_json

    typer.echo(dump_json(data))  # strict JSON: undefined statistics are null, never NaN


def _quiet_stdout() -> contextlib.AbstractContextManager[Any]:
    """Trainers print logs on stdout; stdout is reserved for the one JSON result."""
    return contextlib.redirect_stdout(sys.stderr)


DatasetOption = Annotated[str | None, typer.Option(
    "--dataset", help="train on this dataset version (id or unique prefix) instead of a "
                      "file; its own train/validation split is used")]
OverrideOption = Annotated[str | None, typer.Option(
    "--override-revoked", help="REASON: train on a revoked dataset version anyway "
                               "(written to the audit log)")]
ActorOption = Annotated[str, typer.Option("--actor", help="who is acting (audit log)")]
ProgressOption = Annotated[bool, typer.Option(
    "--progress/--no-progress",
    help="progress bars on stderr; --no-progress silences every bar, the libraries' own "
         "('Loading weights') included")]
RegisterOption = Annotated[bool | None, typer.Option(
    "--register/--no-register",
    help="register the model version. Default: register, unless neither --db nor "
         "$HILT_DATABASE_URL is given and the default database does not exist: the "
         "model is then trained and not registered, with a note")]


def _load_dataset(db: str | None, version: str, kind: str, override: str | None,
                  actor: str) -> Any:
    """The dataset version's records; the override of a revocation is audited here.

    Here as in every train command the database is opened as by every other command:
    never created or migrated (``hilt init`` makes and upgrades it)."""
    from hilt.errors import NotFound
    from hilt.store.db import transaction
    from hilt.train.from_dataset import load_dataset_input

    engine = engine_for(db)
    try:
        with transaction(engine) as session:
            return load_dataset_input(session, version, expected_kind=kind,
                                      override_reason=override, actor=actor)
    except NotFound as exc:
        raise InputError(str(exc), field="--dataset") from None
    except InputError as exc:
        if exc.field != "version":
            raise
        # too short or ambiguous: name the option the version came from
        raise InputError(exc.reason, field="--dataset") from None
    finally:
        engine.dispose()


def _one_source(file: Path | None, dataset: str | None, file_option: str) -> None:
    if (file is None) == (dataset is None):
        raise InputError(f"give {file_option} or --dataset (exactly one)", field="--dataset")


def _register(manifest: dict[str, Any], out: Path, name: str | None,
              db: str | None = None, actor: str = "cli") -> str:
    from hilt.store.db import transaction
    from hilt.train.registry import register_model_version

    engine = engine_for(db)
    try:
        with transaction(engine) as session:
            return register_model_version(session, manifest=manifest, artifact_path=str(out),
                                          name=name, actor=actor).id
    finally:
        engine.dispose()


def _database_may_hold_versions(db: str | None) -> bool:
    """False only for a SQLite file that does not exist: nothing can be registered in
    it, and a run that registers nothing should not create it."""
    import sqlalchemy as sa

    from hilt.config import database_url

    url = db or database_url()
    if not url.startswith("sqlite"):
        return True
    path = sa.engine.make_url(url).database
    return path is not None and Path(path).exists()  # ":memory:" is a fresh database


def _guard_registered_out(out: Path, db: str | None, required: bool = True) -> None:
    """Refuse to train into the folder of a registered model version: its files are what
    the registry (and every check that names the version) loads.

    With ``required`` true this is also the check, made before any training, that the
    database can take the new version: a missing database, or one without hilt's
    current schema, stops the run here and not after it has trained.

    With ``required`` false (a run that registers nothing) a database that does not
    exist, cannot be reached or has no current hilt schema is no reason to stop: it is
    skipped with a note."""
    import sqlalchemy as sa

    from hilt.store.db import transaction
    from hilt.store.tables.registry import ModelVersionRow

    if not required and not _database_may_hold_versions(db):
        return
    engine = engine_for(db)
    try:
        with transaction(engine) as session:
            owner = session.execute(sa.select(ModelVersionRow.id).where(
                ModelVersionRow.artifact_path == str(out.resolve())).limit(1)).scalar()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, InputError) as exc:
        if required:
            raise
        reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        typer.echo(f"note: the model registry could not be read, so --out was not checked "
                   f"against registered versions ({reason})", err=True)
        return
    finally:
        engine.dispose()
    if owner is not None:
        raise InputError(f"{out} holds registered model version {owner}; training into it "
                         "would change that version's files: write to a new folder",
                         field="--out")


@dataclass
class _Registration:
    """Whether a run registers its model, and why not when that was not asked for."""

    register: bool
    skipped: str | None = None  # the reason a default registration is left out

    def note(self) -> None:
        if self.skipped is not None:
            typer.echo(f"note: {self.skipped}", err=True)


def _registration(register: bool | None, db: str | None,
                  dataset: str | None = None) -> _Registration:
    """``--register``/``--no-register`` as given; when neither is, a run registers
    unless no database was named (no --db, no $HILT_DATABASE_URL) and the default one
    does not exist: a run from a file in a fresh folder trains without one. A named
    database, an explicit --register or a --dataset run still needs it."""
    import os

    from hilt.config import database_url

    if register is not None:
        return _Registration(register)
    if db or dataset is not None or os.environ.get("HILT_DATABASE_URL"):
        return _Registration(True)
    if _database_may_hold_versions(None):
        return _Registration(True)
    import sqlalchemy as sa

    where = sa.engine.make_url(database_url()).database
    return _Registration(False, (
        f"the model is not registered: there is no database at {where} and neither "
        "--db nor HILT_DATABASE_URL names one (create it with 'hilt init' and train "
        "again, or pass --register to require it)"))


def _check_out(out: Path, kind: str, register: bool, db: str | None) -> None:
    """The checks of ``--out`` that every training command makes before any work; a
    registered version's folder is refused with or without --register."""
    from hilt.train.manifest import check_out_folder

    check_out_folder(out, kind)
    _guard_registered_out(out, db, required=register)


@dataclass
class _Registrar:
    """The registry's part of putting a model in place, run under the ``--out`` lock
    (:func:`hilt.train.manifest.staged_folder`): the registry guard is made again just
    before the folder is replaced, and the new version is registered before the lock is
    released, so a concurrent run into the same folder sees it and refuses."""

    db: str | None
    register: bool
    name: str | None
    actor: str
    version: str | None = None

    def check(self, out: Path) -> None:
        _guard_registered_out(out, self.db, required=self.register)

    def record(self, out: Path) -> None:
        if self.register:
            from hilt.train.manifest import read_manifest

            self.version = _register(read_manifest(out), out, self.name, self.db, self.actor)

    skipped: str | None = None  # why a default registration was left out

    def stamp(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self.version is not None:
            manifest["model_version"] = self.version
        elif self.skipped is not None:
            manifest["model_version"] = None
            manifest["not_registered"] = self.skipped
        return manifest


def _previous_artifact(kind: str, name: str | None, db: str | None = None) -> str | None:
    """Folder of the newest registered version with this kind/name, if it still holds
    a model of that kind."""
    from hilt.store.db import transaction
    from hilt.train.registry import latest_version

    engine = engine_for(db)
    try:
        with transaction(engine) as session:
            row = latest_version(session, kind, name or kind)
            path = row.artifact_path if row else None
    finally:
        engine.dispose()
    if not path or not Path(path).is_dir():
        return None
    from hilt.train.manifest import read_manifest

    try:
        found = read_manifest(Path(path)).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return path if found == kind else None


def _encoder_positions() -> int:
    """How many tokens the classifier's encoder reads at most, from its config file
    (nothing is loaded: a bad --max-length is refused at once)."""
    import json

    from hilt.train.encoder import default_encoder_path

    config = Path(default_encoder_path()) / "config.json"
    return int(json.loads(config.read_text(encoding="utf-8"))["max_position_embeddings"])


def _given(ctx: typer.Context, *names: str) -> list[str]:
    """The options among ``names`` (parameter names) given on the command line, as
    typed (a flag as ``--x`` or ``--no-x``), whatever their value: an option that does
    not apply is refused even when it repeats its default."""
    given = []
    for name in names:
        # compared by name: typer brings its own copy of click's ParameterSource
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            flag = name.replace("_", "-")
            value = ctx.params.get(name)
            given.append(f"--no-{flag}" if value is False else f"--{flag}")
    return given


def _refuse_given(ctx: typer.Context, names: tuple[str, ...], reason: str) -> None:
    """Refuse the first of ``names`` given on the command line: options that do not
    apply are refused rather than ignored (and then recorded as if they had been)."""
    given = _given(ctx, *names)
    if given:
        raise InputError(reason, field=given[0])


def _check_seeds(**seeds: int) -> None:
    from hilt.train.options import check_seed

    for name, value in seeds.items():
        check_seed(value, "--" + name.replace("_", "-"))


# the options of the default reward model's encoder path, which TRL's path has no use for
DEFAULT_RM_ONLY = ("view", "trainable_layers", "cheap_features", "lexical_expert")


@train_app.command("reward")
def train_reward(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="RM_DIR to write")],
    pairs: Annotated[Path | None, typer.Option(
        help="PAIRS.jsonl[.gz]: prompt/chosen/rejected or HH")] = None,
    dataset: DatasetOption = None,
    override_revoked: OverrideOption = None,
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
    lexical_expert: Annotated[bool, typer.Option(
        help="default model: add a linear reward on the reply's character n-grams")] = True,
    margin: Annotated[bool, typer.Option(
        help="use the pairs' 'margin' in the loss (every training pair needs one)")] = False,
    previous: Annotated[Path | None, typer.Option(
        help="previous RM_DIR for agreement; default: the last registered version")] = None,
    register: RegisterOption = None,
    name: Annotated[str | None, typer.Option(help="registry name (default 'reward')")] = None,
    progress: ProgressOption = True,
    db: DbOption = None,
    actor: ActorOption = "cli",
) -> None:
    """Train a reward model with the Bradley–Terry loss and evaluate it (contract 5).

    With --dataset, the version's validation split is the held-out set (a seeded split
    of its training records when it has none) and the model is registered with the
    version id as its data hash.
    """
    from hilt.train.options import check_fraction, check_positive, check_whole_epochs
    from hilt.train.pairs import Pair, read_pairs, refuse_same_replies
    from hilt.train.reward import RewardConfig, check_reward_config
    from hilt.train.reward_refresh import check_reward_folder, refresh_reward_model
    from hilt.train.reward_trl import TRLRewardConfig

    _one_source(pairs, dataset, "--pairs")
    if margin and dataset is not None:
        raise InputError("the pairs of a dataset version carry no margins; leave out "
                         "--margin", field="--margin")
    default_model = model in (DEFAULT_RM, f"sentence-transformers/{DEFAULT_RM}")
    check_fraction(held_out, "--held-out")
    _check_seeds(seed=seed, split_seed=split_seed)
    if default_model:
        check_whole_epochs(epochs, "--epochs")
    check_positive(epochs, "--epochs")
    if not default_model:
        _refuse_given(ctx, DEFAULT_RM_ONLY, f"applies to the default model ({DEFAULT_RM}) "
                      f"only; --model {model} trains through TRL and would ignore it")
    if eval_pairs is not None:
        _refuse_given(ctx, ("held_out", "split_seed"), "does not apply with --eval-pairs: "
                      "it sets the held-out split of the training pairs, and none is drawn")
    config: RewardConfig | TRLRewardConfig
    if default_model:
        config = RewardConfig(view=view, max_length=max_length,
                              trainable_layers=trainable_layers, epochs=int(epochs),
                              cheap_features=cheap_features, lexical_expert=lexical_expert,
                              use_margin=margin, seed=seed)
        check_reward_config(config)
    else:
        if max_length < 1:
            raise InputError(f"must be at least 1, got {max_length}", field="--max-length")
        if model != "tiny":
            from hilt.train.hf_models import check_model_source

            check_model_source(model)
        config = TRLRewardConfig(model=model, epochs=epochs, max_length=max_length,
                                 use_margin=margin, seed=seed)
    registration = _registration(register, db, dataset)
    _check_out(out, "reward", registration.register, db)
    registration.note()
    if previous is not None:
        check_reward_folder(previous, "--previous")
    # the manifest names the data file by its absolute path
    data_hash, extra = None, None
    data_path = str(pairs.resolve()) if pairs is not None else None
    # the manifest names the held-out pairs given apart, to evaluate the run again
    eval_path = str(eval_pairs.resolve()) if eval_pairs is not None else None
    if dataset is not None:
        from hilt.train.from_dataset import preference_pairs

        source = _load_dataset(db, dataset, "preference", override_revoked, actor)
        data = preference_pairs(source.train, source.version_id, **source.where("train"))
        # a pair file refuses a pair of two equal replies as it reads it; a version's
        # records are checked here, naming their line in its records file
        refuse_same_replies(data, **source.where("train"))
        held: list[Pair] | None
        if eval_pairs:
            held = read_pairs(eval_pairs)
        else:
            validation = preference_pairs(source.validation, source.version_id,
                                          **source.where("validation"))
            refuse_same_replies(validation, **source.where("validation"))
            held = validation or None
            if held is not None:
                eval_path = f"dataset:{source.version_id}/validation"
                _refuse_given(ctx, ("held_out", "split_seed"), "does not apply: it sets a "
                              "held-out split of the training records, and this dataset "
                              "version's validation split is the held-out set")
        data_hash, data_path = source.version_id, f"dataset:{source.version_id}"
        extra = {"dataset": source.describe()}
    else:
        assert pairs is not None
        data = read_pairs(pairs, margins=margin)
        held = read_pairs(eval_pairs) if eval_pairs else None
    prev = str(previous) if previous else (_previous_artifact("reward", name, db)
                                           if registration.register else None)
    if previous is None and prev is not None:
        try:  # the registered previous version is compared with only if it still loads
            check_reward_folder(prev)
        except InputError:
            prev = None
    registrar = _Registrar(db, registration.register, name, actor, skipped=registration.skipped)
    with _quiet_stdout():
        manifest = refresh_reward_model(data, out, config=config, data_path=data_path,
                                        eval_pairs=held, eval_path=eval_path,
                                        held_out_fraction=held_out,
                                        split_seed=split_seed, previous_dir=prev,
                                        progress=progress, data_hash=data_hash, extra=extra,
                                        publisher=registrar)
    _echo(registrar.stamp(manifest))


def _registered_as(model: Path, db: str | None) -> tuple[str | None, str | None]:
    """The newest model version registered with ``model`` as its folder, and a note
    when the registry could not be read (no database, or none with hilt's schema)."""
    import sqlalchemy as sa

    from hilt.store.db import transaction
    from hilt.store.tables.registry import ModelVersionRow

    if not _database_may_hold_versions(db):
        return None, "no database: the registry was not read"
    engine = engine_for(db)
    try:
        with transaction(engine) as session:
            return session.execute(sa.select(ModelVersionRow.id).where(
                ModelVersionRow.artifact_path == str(model.resolve()))
                .order_by(ModelVersionRow.created_at.desc()).limit(1)).scalar(), None
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, InputError) as exc:
        reason = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        return None, f"the registry could not be read ({reason})"
    finally:
        engine.dispose()


def _evaluated(model: Path, data: Path, db: str | None) -> dict[str, Any]:
    """What an evaluation report evaluated: the model (folder, registered version, the
    hash of its manifest), the data (path and sha256 of the file) and hilt's code
    version, so that a report can be traced and repeated."""
    from hilt.train.manifest import code_version, file_sha256, manifest_hash, read_manifest

    try:
        recipe: str | None = manifest_hash(read_manifest(model))
    except (OSError, ValueError, AttributeError):
        recipe = None  # a model folder without a readable manifest
    version, registry_note = _registered_as(model, db)
    return {"model": {"path": str(model.resolve()), "model_version": version,
                      "registry_note": registry_note, "manifest_hash": recipe},
            "data": {"path": str(data.resolve()), "sha256": file_sha256(data)},
            "code_version": code_version()}


def _check_reliability_path(reliability: Path | None) -> None:
    if reliability is None:
        return
    if reliability.is_dir():
        raise InputError("is a folder; name the PNG file to write", file=str(reliability),
                         field="--reliability")
    if not reliability.parent.is_dir():
        raise InputError("its folder does not exist", file=str(reliability),
                         field="--reliability")
    if reliability.suffix.lower() != ".png":
        # checked before any work: the diagram is a PNG, and a file named otherwise
        # would hold a picture its name does not say
        raise InputError("the reliability diagram is a PNG: name a file ending in .png",
                         file=str(reliability), field="--reliability")


def _write_reliability(bins: list[dict[str, Any]], reliability: Path, title: str) -> None:
    from hilt.train.stats import plot_reliability

    try:
        plot_reliability(bins, str(reliability), title)
    except OSError as exc:  # a folder that takes no new file, a full disk
        raise InputError(f"cannot be written ({exc.strerror or exc})",
                         file=str(reliability), field="--reliability") from None


def _overlap_note(overlap: dict[str, Any], n: int, what: str) -> None:
    """Say on stderr when evaluated items are training items of the model."""
    from hilt.train.progress import note

    if overlap.get("in_train"):
        note(f"{overlap['in_train']} of {n} evaluated {what} were in this model's training "
             "data, so the accuracy is optimistic; training_overlap.unseen gives the "
             f"accuracy on the other {n - overlap['in_train']}")


@eval_app.command("reward")
def eval_reward(
    model: Annotated[Path, typer.Option(help="RM_DIR written by 'hilt train reward'")],
    pairs: Annotated[Path, typer.Option(help="PAIRS.jsonl[.gz] to evaluate on")],
    previous: Annotated[Path | None, typer.Option(help="another RM_DIR to compare with")] = None,
    reliability: Annotated[Path | None, typer.Option(
        help="write the reliability diagram PNG here")] = None,
    probes: Annotated[bool, typer.Option(help="run the bias probes")] = True,
    progress: ProgressOption = True,
    db: DbOption = None,
) -> None:
    """Print accuracy (with intervals), ECE, n, slices and bias probes as JSON (contract 5)."""
    from hilt.train.pairs import read_pairs
    from hilt.train.progress import library_progress
    from hilt.train.reward_eval import evaluate_reward_model
    from hilt.train.reward_refresh import (
        check_reward_folder,
        load_reward_model,
        previous_training_keys,
        reliability_title,
    )

    check_reward_folder(model, "--model")
    if previous is not None:
        check_reward_folder(previous, "--previous")
    _check_reliability_path(reliability)
    data = read_pairs(pairs)
    with library_progress(progress), _quiet_stdout():
        report = evaluate_reward_model(
            load_reward_model(model, "--model", progress), data,
            previous=load_reward_model(previous, "--previous", progress) if previous else None,
            probes=probes,
            # compared only on pairs the previous model did not train on, when its
            # manifest lets them be recovered
            previous_train_keys=previous_training_keys(previous) if previous else None,
            # the model's own training pairs, when its manifest lets them be recovered:
            # its accuracy on them is optimistic, so the unseen pairs are reported apart
            train_keys=previous_training_keys(model))
    _overlap_note(report["training_overlap"], report["n"], "pairs")
    if reliability:
        _write_reliability(report["reliability_bins"], reliability,
                           reliability_title(report["n"], report["ece"],
                                             ece_ci=report.get("ece_ci")))
    report["evaluated"] = _evaluated(model, pairs, db)
    _echo(report)


@train_app.command("classifier")
def train_classifier_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="MODEL_DIR to write")],
    data: Annotated[Path | None, typer.Option(
        help="DATA.jsonl with a text and a label field")] = None,
    text_field: Annotated[str | None, typer.Option(
        help="field holding the text (with --data)")] = None,
    label_field: Annotated[str | None, typer.Option(
        help="field holding the label (with --data)")] = None,
    dataset: DatasetOption = None,
    override_revoked: OverrideOption = None,
    context_field: Annotated[str | None, typer.Option(
        help="optional field read before the text (e.g. the prompt)")] = None,
    context_similarity: Annotated[bool, typer.Option(
        help="with --context-field: compare context and text instead of reading both")] = False,
    harmful_field: Annotated[str | None, typer.Option(
        help="optional boolean field: the request was harmful (refusal detection)")] = None,
    deduplicate: Annotated[bool, typer.Option(
        help="identical training texts share one unit of weight")] = False,
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
    refusal_lexicon: Annotated[bool, typer.Option(
        help="add sentence-level refusal lexicon features (refusal detection)")] = False,
    threshold_rule: Annotated[str, typer.Option(
        help="binary, without a target rate: calibrated (0.5) | accuracy")] = "calibrated",
    seed: Annotated[int, typer.Option(help="seed of the fold splits and training")] = 0,
    register: RegisterOption = None,
    name: Annotated[str | None, typer.Option(help="registry name (default 'classifier')")] = None,
    progress: ProgressOption = True,
    db: DbOption = None,
    actor: ActorOption = "cli",
) -> None:
    """Train a calibrated classifier from reviewed labels (contract 4).

    With --dataset, the version's training records are fitted and its validation
    records evaluated (``metrics.held_out``); the version id is the data hash.
    """
    from hilt.canonical import content_hash
    from hilt.train.classifier import ClassifierConfig
    from hilt.train.classifier_eval import read_labelled
    from hilt.train.classifier_refresh import refresh_classifier

    if target_fpr is not None and target_fnr is not None:
        raise InputError("give --target-fpr or --target-fnr, not both", field="--target-fnr")
    _check_seeds(seed=seed)
    if target_fpr is not None or target_fnr is not None:
        target = "--target-fpr" if target_fpr is not None else "--target-fnr"
        _refuse_given(ctx, ("threshold_rule",), f"applies without a target rate; {target} "
                      "sets the threshold: give one of the two")
    if head not in ("stacked", "linear"):
        raise InputError(f"unknown head {head!r}; heads: stacked, linear", field="--head")
    if threshold_rule not in ("calibrated", "accuracy"):
        raise InputError(f"unknown threshold rule {threshold_rule!r}; rules: calibrated, "
                         "accuracy", field="--threshold-rule")
    if context_similarity and not context_field:
        raise InputError("--context-similarity needs --context-field",
                         field="--context-similarity")
    for option, rate_value in (("--target-fpr", target_fpr), ("--target-fnr", target_fnr)):
        if rate_value is not None and not 0 <= rate_value < 1:
            raise InputError(f"a target rate lies in [0, 1), got {rate_value}", field=option)
    longest = _encoder_positions()
    # the encoder's two special tokens and at least one of text; no more than it has
    # positions for
    if not 3 <= max_length <= longest:
        raise InputError(f"must lie in 3..{longest} tokens for this encoder, got "
                         f"{max_length}", field="--max-length")
    if opening_chars is not None and opening_chars < 1:
        raise InputError(f"must be at least 1, got {opening_chars}", field="--opening-chars")
    if finetune_epochs < 0:
        raise InputError(f"must be 0 or more, got {finetune_epochs}",
                         field="--finetune-epochs")
    _one_source(data, dataset, "--data")
    registration = _registration(register, db, dataset)
    _check_out(out, "classifier", registration.register, db)
    registration.note()
    held_out, extra = None, {}
    if dataset is not None:
        from hilt.train.from_dataset import classification_texts

        for option, value in (("--context-field", context_field),
                              ("--harmful-field", harmful_field)):
            if value:
                raise InputError(f"{option} applies to --data files only", field=option)
        source = _load_dataset(db, dataset, "classification", override_revoked, actor)
        train = classification_texts(source.train, source.version_id,
                                     **source.where("train"))
        if source.validation:
            held_out = classification_texts(source.validation, source.version_id,
                                            **source.where("validation"))
        text_field, label_field = "text", "label"
        # prompt_response versions: the prompt is read as the context (see
        # classification_texts), so the manifest names it like a --context-field
        context_field = "prompt" if train.contexts is not None else None
        data_path, data_hash = f"dataset:{source.version_id}", source.version_id
        extra = {"dataset": source.describe()}
    else:
        if not text_field or not label_field:
            raise InputError("--data needs --text-field and --label-field",
                             field="--text-field" if not text_field else "--label-field")
        train = read_labelled(data, text_field, label_field,  # type: ignore[arg-type]
                              context_field, harmful_field)
        data_path = str(data.resolve())  # type: ignore[union-attr]
        # the flags enter the hash only when given, so older data hashes stay valid
        data_hash = content_hash({"texts": train.texts, "labels": train.labels,
                                  "contexts": train.contexts,
                                  **({"harmful": train.harmful} if harmful_field else {})})
    config = ClassifierConfig(positive_label=positive_label, target_fpr=target_fpr,
                              target_fnr=target_fnr, finetune_epochs=finetune_epochs,
                              max_length=max_length, opening_chars=opening_chars,
                              head=head, threshold_rule=threshold_rule,
                              refusal_lexicon=refusal_lexicon,
                              context_similarity=context_similarity, deduplicate=deduplicate,
                              harmful_request_negation=harmful_field is not None, seed=seed)
    registrar = _Registrar(db, registration.register, name, actor, skipped=registration.skipped)
    with _quiet_stdout():
        manifest = refresh_classifier(
            train, out, config, data_path=data_path, data_hash=data_hash,
            label_field=label_field, held_out=held_out, extra=extra,
            fields={"text": text_field, "label": label_field, "context": context_field,
                    "harmful": harmful_field}, publisher=registrar, progress=progress)
    _echo(registrar.stamp(manifest))


@eval_app.command("classifier")
def eval_classifier_cmd(
    model: Annotated[Path, typer.Option(help="MODEL_DIR written by 'hilt train classifier'")],
    data: Annotated[Path, typer.Option(help="DATA.jsonl with a text and a label field")],
    text_field: Annotated[str, typer.Option(help="field holding the text")],
    label_field: Annotated[str, typer.Option(help="field holding the label")],
    context_field: Annotated[str | None, typer.Option(
        help="the context field, when the model was trained with one")] = None,
    harmful_field: Annotated[str | None, typer.Option(
        help="the harmful-request field, when the model was trained with one")] = None,
    reliability: Annotated[Path | None, typer.Option(
        help="write the reliability diagram PNG here")] = None,
    progress: ProgressOption = True,
    db: DbOption = None,
) -> None:
    """Print accuracy and per-class precision/recall (Wilson intervals), calibration
    (ECE, Brier score) and the overlap with the model's training rows as JSON
    (contract 4)."""
    from hilt.train.classifier import load_classifier
    from hilt.train.classifier_calibration import reliability_title
    from hilt.train.classifier_eval import (
        evaluate_classifier,
        read_labelled,
        read_training_keys,
    )
    from hilt.train.progress import library_progress

    _check_reliability_path(reliability)
    classifier = load_classifier(model, field="--model", progress=progress)
    if classifier.uses_context and not context_field:
        raise InputError("this model reads a context field; pass --context-field",
                         file=str(model), field="--context-field")
    if classifier.uses_harmful and not harmful_field:
        raise InputError("this model reads a harmful-request flag; pass --harmful-field",
                         file=str(model), field="--harmful-field")
    # and the reverse: a field the model would drop unread makes a report look as if
    # it had been read
    if context_field and not classifier.uses_context:
        raise InputError("this model was trained without a context field and would "
                         "ignore it; leave out --context-field", file=str(model),
                         field="--context-field")
    if harmful_field and not classifier.uses_harmful:
        raise InputError("this model was trained without a harmful-request flag and "
                         "would ignore it; leave out --harmful-field", file=str(model),
                         field="--harmful-field")
    rows = read_labelled(data, text_field, label_field, context_field, harmful_field)
    with library_progress(progress), _quiet_stdout():
        report = evaluate_classifier(classifier, rows.texts, rows.labels, rows.contexts,
                                     rows.harmful, train_keys=read_training_keys(model))
    _unknown_labels_note(report, rows.labels, label_field,
                         [str(c) for c in classifier.classes_])
    _overlap_note(report["training_overlap"], report["n_distinct"], "distinct rows")
    if reliability:
        _write_reliability(report["reliability_bins"], reliability,
                           reliability_title(report))
    report["evaluated"] = _evaluated(model, data, db)
    _echo(report)


def _unknown_labels_note(report: dict[str, Any], labels: list[str], field: str,
                         classes: list[str]) -> None:
    """Rows whose label is none of the model's classes count as errors: say so."""
    from collections import Counter

    from hilt.train.progress import note

    unknown = set(report.get("unknown_labels") or [])
    if not unknown:
        return
    counts = Counter(label for label in labels if label in unknown)
    shown = ", ".join(f"{label!r} ({n})" for label, n in sorted(counts.items()))
    note(f"{sum(counts.values())} of {len(labels)} rows have labels (field '{field}') the "
         f"model does not know: {shown}; they count as errors in accuracy and are left "
         f"out of the FPR/FNR and the calibration (the model knows "
         f"{', '.join(repr(c) for c in classes)})")


@train_app.command("sft")
def train_sft_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="folder to write (model/, manifest.json)")],
    data: Annotated[Path | None, typer.Option(
        help="JSONL of {prompt, completion} or {messages}")] = None,
    dataset: DatasetOption = None,
    override_revoked: OverrideOption = None,
    model: Annotated[str, typer.Option(
        help="Hugging Face model path/name; 'tiny' = random tiny Llama, local tokenizer")] = "tiny",
    epochs: Annotated[float, typer.Option(help="passes over the training data")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="stop after this many steps (-1: epochs)")] = -1,
    learning_rate: Annotated[float, typer.Option(help="peak learning rate")] = 5e-4,
    batch_size: Annotated[int, typer.Option(help="examples per device and step")] = 4,
    max_length: Annotated[int, typer.Option(
        help="longest example, in tokens (at most the model's context window)")] = 512,
    lora: Annotated[bool, typer.Option(help="train LoRA adapters (PEFT) instead")] = False,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (with --lora)")] = 8,
    seed: Annotated[int, typer.Option(help="training seed (initialisation, data order)")] = 0,
    held_out: Annotated[float, typer.Option(
        help="fraction of the demonstrations held out for the validation loss (a seeded "
             "split; a dataset version's own validation split instead when it has "
             "one)")] = 0.1,
    split_seed: Annotated[int, typer.Option(help="seed of the held-out split")] = 0,
    register: RegisterOption = None,
    name: Annotated[str | None, typer.Option(help="registry name (default 'sft')")] = None,
    progress: ProgressOption = True,
    db: DbOption = None,
    actor: ActorOption = "cli",
) -> None:
    """Supervised fine-tuning with loss on assistant tokens only (TRL SFTTrainer).

    A seeded --held-out fraction of the demonstrations gives ``metrics.validation_loss``
    (with its interval over examples). With --dataset, the version's training records
    (approved and rewritten responses) are trained on and its validation records, when
    it has some, give the validation loss; the version id is the data hash.
    """
    from hilt.canonical import content_hash
    from hilt.train.manifest import RunClock, build_manifest, staged_folder, write_manifest
    from hilt.train.options import check_fraction, check_positive
    from hilt.train.sft import SFTRunConfig, read_sft_records, train_sft

    _one_source(data, dataset, "--data")
    _check_seeds(seed=seed, split_seed=split_seed)
    check_fraction(held_out, "--held-out")
    if not lora:
        _refuse_given(ctx, ("lora_r",), "applies to LoRA training only; add --lora")
    if max_steps != -1:
        _refuse_given(ctx, ("epochs",), "--max-steps sets the length of training and "
                      "--epochs would be ignored: give one of the two")
    if model != "tiny":
        from hilt.train.hf_models import check_model_source

        check_model_source(model)
    for option, number, least in (("--max-length", max_length, 1),
                                  ("--batch-size", batch_size, 1), ("--lora-r", lora_r, 1)):
        if number < least:
            raise InputError(f"must be at least {least}, got {number}", field=option)
    if max_steps == 0 or max_steps < -1:
        raise InputError(f"must be -1 (train --epochs) or positive, got {max_steps}",
                         field="--max-steps")
    if max_steps == -1:
        check_positive(epochs, "--epochs")
    check_positive(learning_rate, "--learning-rate")
    registration = _registration(register, db, dataset)
    _check_out(out, "sft", registration.register, db)
    registration.note()
    source = None
    if dataset is not None:
        from hilt.train.from_dataset import sft_messages

        source = _load_dataset(db, dataset, "sft", override_revoked, actor)
        records = sft_messages(source.train, source.version_id, **source.where("train"))
        eval_records = sft_messages(source.validation, source.version_id,
                                    **source.where("validation")) or None
        if eval_records is not None:
            _refuse_given(ctx, ("held_out", "split_seed"), "does not apply: it sets a "
                          "held-out split of the training records, and this dataset "
                          "version's validation split is the held-out set")
    else:
        eval_records = None
        records = read_sft_records(data)  # type: ignore[arg-type]
    data_hash = source.version_id if source is not None else content_hash(records)
    n_records, split = len(records), None
    if eval_records is None:
        records, eval_records, split = _sft_split(records, held_out, split_seed)
    config = SFTRunConfig(model=model, epochs=epochs, max_steps=max_steps,
                          learning_rate=learning_rate, batch_size=batch_size,
                          max_length=max_length, lora=lora, lora_r=lora_r, seed=seed)
    clock = RunClock()
    registrar = _Registrar(db, registration.register, name, actor, skipped=registration.skipped)
    with staged_folder(out, ".sft-", "sft", registrar) as work:
        with _quiet_stdout():
            facts = train_sft(records, config, work, eval_records, progress)
        shutil.rmtree(work / "trainer", ignore_errors=True)
        extra = {k: facts[k] for k in ("loss_mask", "chat_template", "chat_template_sha256",
                                       "role_format", "tokenizer", "lora",
                                       "base_model_source")}
        extra["split"] = split
        if source is not None:
            extra["dataset"] = source.describe()
        manifest = build_manifest(
            kind="sft", base_model=facts["base_model"],
            data_path=(f"dataset:{source.version_id}" if source is not None
                       else str(data.resolve())),  # type: ignore[union-attr]
            data_hash=data_hash, n_records=n_records, config=facts["config"],
            seed=seed, metrics=facts["metrics"], wall_seconds=clock.seconds(), extra=extra)
        write_manifest(work, manifest)
    _echo(registrar.stamp(manifest))


def _sft_split(records: list[dict[str, Any]], fraction: float, seed: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, dict[str, Any]]:
    """The seeded held-out split of SFT demonstrations (training, held-out or None, and
    the manifest's ``split``); too few demonstrations to hold one out train unevaluated,
    with a note."""
    from hilt.canonical import content_hash
    from hilt.train.progress import note
    from hilt.train.sft import split_records

    train, held = split_records(records, fraction, seed)
    if not train:
        raise InputError(f"holding out {fraction} of {len(records)} demonstrations leaves "
                         "none to train on", field="--held-out")
    split = {"held_out_fraction": fraction, "split_seed": seed, "held_out": len(held),
             "train_hash": content_hash(train), "held_out_hash": content_hash(held)}
    if not held:
        note(f"{len(records)} demonstrations are too few to hold out {fraction} of them: "
             "the model is trained on all and has no validation loss")
    return train, held or None, split


@models_app.command("list")
def models_list(
    kind: Annotated[str | None, typer.Option(help="reward | sft | classifier")] = None,
    name: Annotated[str | None, typer.Option(help="only this registry name")] = None,
    db: DbOption = None,
) -> None:
    """Registered model versions, newest first (JSON), each with its headline accuracy,
    its interval and n, and what it rests on (accuracy_basis)."""
    from hilt.store.db import transaction
    from hilt.train.registry import KINDS, list_versions, version_as_dict

    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}",
                         field="--kind")
    with transaction(engine_for(db)) as session:
        _echo([version_as_dict(r) for r in list_versions(session, kind, name)])


VersionArgument = Annotated[str, typer.Argument(
    help="model version id, or a unique prefix of it: the kind, '-' and at least 8 "
         "characters (reward-1a2b3c4d)")]


@models_app.command("show")
def models_show(version_id: VersionArgument, db: DbOption = None) -> None:
    """One model version with its config and metrics (JSON)."""
    from hilt.store.db import transaction
    from hilt.train.registry import find_version, version_as_dict

    with transaction(engine_for(db)) as session:
        _echo(version_as_dict(find_version(session, version_id, field="ID"), full=True))


@models_app.command("verify")
def models_verify(version_id: VersionArgument, db: DbOption = None) -> None:
    """Check a model version's folder against its registry row: the manifest's hash and
    the sha256 of every file the manifest lists. Exit 0: they agree; 1: something
    differs (each named on stderr); 2: bad usage (no such version)."""
    from hilt.store.db import transaction
    from hilt.train.registry import find_version, verify_version

    with transaction(engine_for(db)) as session:
        report = verify_version(find_version(session, version_id, field="ID"))
    _echo(report)
    if report["files"] == "unknown":
        typer.echo("note: the manifest records no file hashes (written before they were "
                   "recorded): only the manifest was checked", err=True)
    for difference in report["differences"]:
        typer.echo(f"differs: {difference['file']}: {difference['problem']}", err=True)
    if not report["agrees"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``eval`` and ``models`` groups."""
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    app.add_typer(models_app, name="models")

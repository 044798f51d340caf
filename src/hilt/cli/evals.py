"""Regression checks: ``hilt check`` (contract 3) and the ``hilt suite`` registry."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.cli.core import DbOption, echo_json, options_named
from hilt.config import database_url

suite_app = typer.Typer(help="Versioned, held-out eval suites and their variants.",
                        no_args_is_help=True)



def _engine(db: str | None) -> Any:
    from hilt.store.db import make_engine

    return make_engine(db or database_url())


def _echo_json(value: object) -> None:
    echo_json(value)  # strict JSON, times in ISO 8601 (hilt.cli.core.echo_json)


def check(
    suite: Annotated[Path, typer.Option(help="suite JSONL: id, prompt, slice, expect")],
    candidate: Annotated[Path, typer.Option(help="candidate responses JSONL")],
    reference: Annotated[Path, typer.Option(help="reference responses JSONL")],
    out: Annotated[Path, typer.Option(help="output folder for report.json/.html, "
                                           "decision.json")],
    gate: Annotated[Path | None, typer.Option(help="gate policy YAML (default: the "
                                                   "built-in policy)")] = None,
    scorer: Annotated[Path | None, typer.Option(help="trained refusal classifier folder, "
                                                     "for lines without a judgment")] = None,
    facts: Annotated[Path | None, typer.Option(help="recorded facts YAML/JSON: versions, "
                                                    "lineage, records")] = None,
    suite_id: Annotated[str | None, typer.Option(help="suite id (default: file name); "
                                                      "NAME@VERSION of a registered suite "
                                                      "with --record")] = None,
    candidate_id: Annotated[str | None, typer.Option(
        help="candidate model id in the report (default: its file name)")] = None,
    reference_id: Annotated[str | None, typer.Option(
        help="reference model id in the report (default: its file name)")] = None,
    dataset: Annotated[list[str] | None, typer.Option(
        "--dataset", help="training dataset version of the candidate (repeatable); its "
                          "consent, revocation and contamination are read from the store")
    ] = None,
    model_version: Annotated[str | None, typer.Option(
        help="the candidate's registered model version; its dataset hash names a "
             "training dataset version")] = None,
    rm: Annotated[Path | None, typer.Option(
        "--rm", help="reward-model folder: score both responses for the RM win-rate")
    ] = None,
    rm_version: Annotated[str | None, typer.Option(
        help="registered reward-model version (instead of --rm)")] = None,
    review_sample: Annotated[int, typer.Option(
        min=0, help="send a stratified sample of at most this many candidate outputs to "
                    "human review (with more strata than N, small strata of one "
                    "expectation are merged; needs --rubric; stores events and tasks in "
                    "the database)")] = 0,
    rubric: Annotated[str | None, typer.Option(
        help="rubric (ID or ID@VERSION) the review sample is judged under")] = None,
    review_question: Annotated[str | None, typer.Option(
        help="rubric question whose answer is the refusal judgment (default: refusal)")
    ] = None,
    review_overlap: Annotated[int | None, typer.Option(
        min=1, help="reviewers per sampled output (default: 3)")] = None,
    review_pool: Annotated[str | None, typer.Option(
        help="review pool for the sample (default: default)")] = None,
    alpha: Annotated[float | None, typer.Option(
        min=1e-6, max=0.5, help="1 - confidence level of the reported intervals (rates, "
                                "deltas, win-rate, review estimates); default: the gate "
                                "policy's alpha, the only level a policy with ci_low or "
                                "ci_high criteria accepts; the McNemar criteria always use "
                                "the policy's alpha")] = None,
    resamples: Annotated[int | None, typer.Option(
        hidden=True, help="refused: the metrics use no bootstrap (metrics version 3)")
    ] = None,
    seed: Annotated[int | None, typer.Option(
        help="seed of the review sample's draw (with --review-sample; default 0)")] = None,
    record: Annotated[bool, typer.Option("--record", help="store the decision in the "
                                         "database and read registered suite facts")] = False,
    db: DbOption = None,
) -> None:
    """Compare candidate with reference on a suite and apply the gate.

    Exit code 0: the gate passes; 1: it blocks; 2: bad input or error.
    """
    from hilt.errors import HiltError
    from hilt.evals.stored_check import StoreRequest

    options = dict(suite=suite, candidate=candidate, reference=reference, out=out,
                   gate=gate, scorer=scorer, facts=facts, suite_id=suite_id,
                   candidate_id=candidate_id, reference_id=reference_id, alpha=alpha,
                   seed=seed or 0)
    review = {"--rubric": rubric, "--review-question": review_question,
              "--review-overlap": review_overlap, "--review-pool": review_pool,
              "--seed": seed}
    request = StoreRequest(dataset_versions=dataset or [], model_version=model_version,
                           rm_version=rm_version, record=record, review_sample=review_sample,
                           rubric=rubric, review_question=review_question or "refusal",
                           review_overlap=review_overlap or 3,
                           review_pool=review_pool or "default")
    try:
        _refuse_unused(review if not review_sample else {}, resamples)
        code = _run_check(options, request, rm=rm, db=db)
    except HiltError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except BrokenPipeError:
        # a reader that closed stdout is no error of the check: the entry point
        # (hilt.cli.main) keeps such writes from failing, and the exit status is the gate's
        raise
    except Exception as exc:  # an unexpected failure must never read as "blocked" (1)
        from hilt.cli import database_error_message

        # a database without the schema, or out of reach, is one line saying what to do
        message = database_error_message(exc) or _non_finite_message(exc, options)
        typer.echo(message or f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def _refuse_unused(review_options: dict[str, Any], resamples: int | None) -> None:
    """Options that would change nothing are refused rather than ignored: the review
    options without --review-sample, and --resamples (no metric of version 3 resamples)."""
    from hilt.errors import InputError

    if resamples is not None:
        raise InputError("has no effect: the metrics use no bootstrap (metrics version 3: "
                         "Wilson and Newcombe intervals, exact McNemar tests); leave it out",
                         field="--resamples")
    for option, value in review_options.items():
        if value is not None:
            raise InputError("has no effect without --review-sample N (it shapes the "
                             "human review sample)", field=option)


def _non_finite_message(exc: Exception, options: dict[str, Any]) -> str | None:
    """A NaN or an infinity that reached the decision record (strict JSON). Every input
    file refuses such numbers when it is read, naming file, line and field; one that
    still gets this far is reported as what it is, with the inputs to look in, rather
    than as a bare ``ValueError``."""
    if not (isinstance(exc, ValueError) and "Out of range float values" in str(exc)):
        return None
    given = [f"--{name.replace('_', '-')} {options[name]}" for name in
             ("suite", "candidate", "reference", "gate", "facts") if options.get(name)]
    return ("error: a number that is not finite (NaN or infinite) reached the decision "
            "record, which cannot hold it; look in " + ", ".join(given))


def _run_check(options: dict[str, Any], request: Any, *, rm: Path | None,
               db: str | None) -> int:
    from hilt.evals.report import check_out_dir
    from hilt.evals.stored_check import check_with_store, validate_request

    validate_request(request, rm=rm)  # before connecting to anything
    check_out_dir(options["out"])  # before a reward model or scorer is loaded
    engine = _engine(db) if request.needs_store() else None
    done = check_with_store(options, request, engine=engine, rm=rm, actor="cli")
    if done.review_sent is not None:
        typer.echo(f"review sample: {done.review_sent['events_new']} new events, "
                   f"{done.review_sent['tasks_created']} review tasks under "
                   f"{done.review_rubric}")
    record = done.result.record
    typer.echo(f"gate: {record['outcome']} (decision {record['hash']})")
    for reason in record["decision"]["reasons"]:
        typer.echo(f"  - {reason}")
    # what the gate did not measure (a behaviour opted out for a suite not in the run,
    # a criterion without data) is said here too, not only in the report
    for skipped in record["decision"].get("skipped") or []:
        typer.echo(f"  skipped: {skipped}")
    typer.echo(f"report: {Path(options['out']) / 'report.html'}")
    return done.result.exit_code


def generate(
    suite: Annotated[Path, typer.Option(help="suite JSONL: the prompts to answer")],
    out: Annotated[Path, typer.Option(help="response file to write (contract 3)")],
    model: Annotated[Path | None, typer.Option(
        help="local transformers causal-LM folder")] = None,
    endpoint: Annotated[str | None, typer.Option(
        help="base URL of an OpenAI-compatible endpoint (instead of --model)")] = None,
    endpoint_model: Annotated[str | None, typer.Option(
        help="model name sent to the endpoint")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        help="environment variable holding the endpoint's API key")] = None,
    system_prompt: Annotated[str | None, typer.Option(
        help="system message put before every prompt; refused when a suite "
             "conversation has a system turn of its own")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="longest reply, in tokens")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, help="0: greedy")] = 0.0,
    top_p: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="nucleus sampling mass (default: the model's)")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed (sent to the endpoint too)")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="local: prompts per batch")] = 8,
    concurrency: Annotated[int, typer.Option(min=1, help="endpoint: requests in "
                                                         "flight")] = 8,
    cache_dir: Annotated[Path | None, typer.Option(
        help="cache of responses keyed by prompt + settings, so a rerun resumes "
             "(default: $HILT_HOME/cache/generate)")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="neither read nor write the cache: ask for every answer")] = False,
) -> None:
    """Generate candidate (or reference) outputs for a suite, decoder settings recorded."""
    from hilt.errors import HiltError, InputError
    from hilt.evals.files import parse_suite
    from hilt.evals.generate import check_responses_out, check_system_prompt, write_responses

    try:
        if (model is None) == (endpoint is None):
            raise InputError("give exactly one of --model or --endpoint", field="--model")
        # a range check lets NaN through (every comparison with it is false)
        for option, number in (("--temperature", temperature), ("--top-p", top_p)):
            if number is not None and not math.isfinite(number):
                raise InputError(f"must be a finite number, got {number}", field=option)
        items = parse_suite(suite)
        check_system_prompt(items, system_prompt, suite)
        # before any answer is asked for: a bad --out would lose them all
        check_responses_out(out, suite=suite)
        cache = _generate_cache(cache_dir, no_cache)
        if model is not None:
            from hilt.evals.generate_local import LocalModelConfig, generate_local

            decoder: dict[str, Any] = {"max_new_tokens": max_new_tokens,
                                       "temperature": temperature}
            if top_p is not None:
                decoder["top_p"] = top_p
            result = generate_local(items, LocalModelConfig(
                str(model), system_prompt=system_prompt, decoder=decoder,
                batch_size=batch_size, seed=seed), cache_dir=cache)
        else:
            from hilt.evals.generate import EndpointConfig
            from hilt.evals.generate import generate as generate_remote

            if not endpoint_model:
                raise InputError("--endpoint needs --endpoint-model", field="--endpoint-model")
            decoder = {"max_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
            if top_p is not None:
                decoder["top_p"] = top_p
            result = generate_remote(items, EndpointConfig(
                str(endpoint), endpoint_model, api_key=_api_key(api_key_env),
                system_prompt=system_prompt, decoder=decoder, concurrency=concurrency),
                cache_dir=cache)
        write_responses(out, result, suite=suite)
    except HiltError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _echo_json({"out": str(out), "items": len(items), "settings": result["settings"],
                "stats": result["stats"]})


def _generate_cache(cache_dir: Path | None, no_cache: bool) -> Path | None:
    """The cache folder, created up front: one that cannot be made is one error line
    before any answer is asked for, not a traceback after the first one."""
    from hilt.errors import InputError
    from hilt.evals.generate import default_cache_dir

    if no_cache:
        if cache_dir is not None:
            raise InputError("give --cache-dir or --no-cache, not both", field="--no-cache")
        return None
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the cache folder: {exc.strerror or exc}",
                         file=str(folder), field="--cache-dir") from None
    return folder


def _api_key(variable: str | None) -> str | None:
    """The key named by ``--api-key-env``; a variable that is unset or empty is an error,
    since sending no key would turn a typo into a run of 401s (or an anonymous one)."""
    import os

    from hilt.errors import InputError

    if variable is None:
        return None
    value = os.environ.get(variable, "")
    if not value.strip():
        state = "is not set" if variable not in os.environ else "is empty"
        raise InputError(f"environment variable {variable!r} {state}",
                         field="--api-key-env")
    return value


@suite_app.command("register")
def suite_register(
    file: Annotated[Path, typer.Argument(help="suite JSONL")],
    name: Annotated[str, typer.Option(help="suite name")],
    version: Annotated[str, typer.Option(help="suite version; versions are immutable")],
    prompt_template: Annotated[str | None, typer.Option(help="template the prompts are "
                                                             "rendered under")] = None,
    role_format: Annotated[str | None, typer.Option(
        help="role format the prompts are rendered in")] = None,
    language: Annotated[str | None, typer.Option(help="language of the prompts")] = None,
    variant_of: Annotated[str | None, typer.Option(help="NAME@VERSION of the base suite "
                                                        "(same item ids)")] = None,
    heldout: Annotated[bool, typer.Option(
        "--heldout/--not-heldout",
        help="held-out suites are kept out of training data (decontamination)")] = True,
    description: Annotated[str, typer.Option(help="free text")] = "",
    actor: Annotated[str, typer.Option(help="who registers it")] = "cli",
    db: DbOption = None,
) -> None:
    """Register a suite version (held-out by default) or a template/language variant."""
    from hilt.evals.files import parse_suite
    from hilt.evals.registry import register_suite
    from hilt.store.db import transaction

    items = parse_suite(file)
    with options_named({"name": "--name", "version": "--version"}), \
            transaction(_engine(db)) as session:
        row = register_suite(session, items, name=name, version=version, actor=actor,
                             heldout=heldout, prompt_template=prompt_template,
                             role_format=role_format, language=language,
                             variant_of=variant_of, description=description,
                             file=str(file))
        _echo_json(_suite_dict(row))


def _suite_dict(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (
        "id", "name", "version", "content_hash", "heldout", "prompt_template",
        "role_format", "language", "variant_of", "item_count", "description",
        "created_by", "created_at")}


@suite_app.command("list")
def suite_list(db: DbOption = None) -> None:
    """List registered suites."""
    from hilt.evals.registry import list_suites
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        _echo_json([_suite_dict(r) for r in list_suites(session)])


@suite_app.command("show")
def suite_show(suite: Annotated[str, typer.Argument(help="NAME@VERSION")],
               items: Annotated[int, typer.Option(help="items to print")] = 5,
               db: DbOption = None) -> None:
    """Show one suite: metadata, slice counts and its first items."""
    from hilt.evals.registry import get_suite, suite_items
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        row = get_suite(session, suite)
        all_items = suite_items(session, suite)
        slices: dict[str, dict[str, int]] = {}
        for item in all_items:
            counts = slices.setdefault(item.slice, {"comply": 0, "refuse": 0})
            counts[item.expect] += 1
        _echo_json({**_suite_dict(row), "slices": slices,
                    "items": [{"id": i.id, "prompt": i.given_prompt(), "slice": i.slice,
                               "expect": i.expect} for i in all_items[:items]]})


@suite_app.command("variants")
def suite_variants(suite: Annotated[str, typer.Argument(help="NAME@VERSION")],
                   db: DbOption = None) -> None:
    """List a suite's template/role-format/language variants (base first)."""
    from hilt.evals.registry import variants
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        _echo_json([_suite_dict(r) for r in variants(session, suite)])


def register(app: typer.Typer) -> None:
    """Add ``hilt check``, ``hilt generate`` and the ``hilt suite`` group."""
    app.command("check")(check)
    app.command("generate")(generate)
    app.add_typer(suite_app, name="suite")

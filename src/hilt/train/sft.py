"""SFT refresh with TRL's ``SFTTrainer``: loss only on the assistant's tokens.

Input lines (JSONL): ``{"prompt": str, "completion": str}`` or
``{"messages": [{"role", "content"}, …]}`` — approved and rewritten responses. A line
holds one form with nothing else: both forms on one line, any other key, and any key
of a message besides ``role`` and ``content`` are refused (naming the line and the
field), since the trainer would read one form and drop the rest unseen.
They become conversational examples, so the model's own chat template is applied:

* all ``messages`` and a template with ``{% generation %}`` markers → TRL's
  ``assistant_only_loss``: every assistant turn is trained, nothing else;
* otherwise → ``prompt``/``completion`` pairs (a ``messages`` record is split before
  its last assistant turn) with TRL's completion-only loss.

Either way the loss is −Σ_t m_t log p(y_t | y_<t) / Σ_t m_t with m_t = 1 only on
assistant tokens (labels −100 elsewhere). The template, the role format, the
tokenizer and the loss mask used are written to the run manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hilt.canonical import content_hash, sha256_hex
from hilt.errors import InputError
from hilt.train.encoder import set_torch_threads
from hilt.train.hf_models import load_pretrained, model_source
from hilt.train.progress import library_progress, note
from hilt.train.surrogates import refuse_lone_surrogates

TINY = "tiny"
# where the tiny model and its tokenizer are written, inside the output folder
TINY_BASE_DIR = "base-model"
ROLES = ("system", "user", "assistant")
# the two forms of a demonstration line, and the keys of one message
MESSAGES_FORM = ("messages",)
PROMPT_FORM = ("prompt", "completion")
MESSAGE_KEYS = ("role", "content")


@dataclass
class SFTRunConfig:
    model: str = TINY
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 5e-4
    batch_size: int = 4
    max_length: int = 512
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0
    threads: int | None = None


def _check_messages(value: Any, file: str, line: int) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InputError("must be a non-empty list of {role, content}", file=file, line=line,
                         field="messages")
    for i, msg in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InputError("must be an object", file=file, line=line, field=where)
        unknown = next((key for key in msg if key not in MESSAGE_KEYS), None)
        if unknown is not None:
            raise InputError(f"unknown key (a message holds {', '.join(MESSAGE_KEYS)})",
                             file=file, line=line, field=f"{where}.{unknown}")
        if msg.get("role") not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}", file=file, line=line,
                             field=f"{where}.role")
        if not isinstance(msg.get("content"), str):
            raise InputError("must be a string", file=file, line=line,
                             field=f"{where}.content")
    if not any(m["role"] == "assistant" for m in value):
        raise InputError("no assistant message to learn from", file=file, line=line,
                         field="messages")
    # The demonstration is the last assistant reply and what it answers: a message after
    # it is learnt from by neither loss mask (and the prompt/completion form drops it),
    # and a reply with nothing before it leaves the prompt/completion form no prompt.
    last = len(value) - 1
    if value[last]["role"] != "assistant":
        raise InputError("a demonstration ends with the assistant reply it teaches; this "
                         f"{value[last]['role']} message after the last assistant message "
                         "would not be trained on", file=file, line=line,
                         field=f"messages[{last}].role")
    if last == 0:
        raise InputError("the assistant reply needs a message before it (the prompt it "
                         "answers)", file=file, line=line, field="messages")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _check_form(obj: dict[str, Any], file: str, line: int) -> None:
    """Refuse a key of neither form, and a line that mixes the two forms."""
    known = (*MESSAGES_FORM, *PROMPT_FORM)
    unknown = next((key for key in obj if key not in known), None)
    if unknown is not None:
        raise InputError("unknown key (a demonstration holds messages, or prompt and "
                         "completion)", file=file, line=line, field=unknown)
    mixed = next((key for key in PROMPT_FORM if key in obj), None)
    if "messages" in obj and mixed is not None:
        raise InputError("a demonstration holds messages or prompt and completion, not "
                         "both: only one of them would be trained on", file=file,
                         line=line, field=mixed)


def read_sft_records(path: str | Path) -> list[dict[str, Any]]:
    """Validate a demonstration file; every problem names file, line and field."""
    from hilt.jsonl import iter_json_objects

    path = Path(path)
    records: list[dict[str, Any]] = []
    for number, obj in iter_json_objects(path):
        refuse_lone_surrogates(obj, str(path), number)
        _check_form(obj, str(path), number)
        if "messages" in obj:
            records.append({"messages": _check_messages(obj["messages"], str(path), number)})
            continue
        for name in ("prompt", "completion"):
            if not isinstance(obj.get(name), str):
                raise InputError("missing or not a string (need prompt+completion or "
                                 "messages)", file=str(path), line=number, field=name)
        records.append({"prompt": obj["prompt"], "completion": obj["completion"]})
    if not records:
        raise InputError("no demonstrations in file", file=str(path))
    return records


def has_generation_markers(tokenizer: Any) -> bool:
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template or "{%- generation %}" in template


def to_conversational(records: list[dict[str, Any]], assistant_only: bool) -> list[dict]:
    """Records in TRL's conversational form for the chosen loss mask."""
    if assistant_only:
        return [{"messages": r["messages"]} for r in records]
    out = []
    for r in records:
        if "messages" in r:
            msgs = r["messages"]
            last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
            out.append({"prompt": msgs[:last], "completion": [msgs[last]]})
        else:
            out.append({"prompt": [{"role": "user", "content": r["prompt"]}],
                        "completion": [{"role": "assistant", "content": r["completion"]}]})
    return out


def load_model_and_tokenizer(config: SFTRunConfig, records: list[dict[str, Any]],
                             workdir: Path) -> tuple[Any, Any, str]:
    """The named model, or for ``tiny`` a fresh random Llama with a local tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if config.model == TINY:
        from hilt.train.tiny import write_tiny_model

        texts = [json.dumps(r, ensure_ascii=False) for r in records]
        path = write_tiny_model(workdir / TINY_BASE_DIR, texts, seed=config.seed)
    else:
        path = config.model
    # a missing or broken --model is one line naming the option, not a traceback
    tokenizer = load_pretrained(AutoTokenizer, path)
    model = load_pretrained(AutoModelForCausalLM, path)
    return model, tokenizer, path


def check_context_window(model: Any, max_length: int) -> None:
    """Refuse a ``--max-length`` past the model's positions: a model with learnt position
    embeddings fails deep inside the first batch, a rotary one silently trains on
    positions it was never built for."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise InputError(f"must be at most {limit}, the model's context window "
                         f"(max_position_embeddings), got {max_length}", field="--max-length")


def tokenizer_record(tokenizer: Any, path: str, name: str | None = None) -> dict[str, Any]:
    """The manifest's ``tokenizer``: ``name`` (default ``path``) as ``name_or_path``,
    and the sha256 of the ``tokenizer.json`` read from ``path``."""
    files = Path(path) / "tokenizer.json"
    return {"name_or_path": str(path if name is None else name),
            "class": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "special_tokens": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
            "tokenizer_json_sha256": sha256_hex(files.read_bytes()) if files.exists() else None}


def build_sft_trainer(records: list[dict[str, Any]], config: SFTRunConfig,
                      out_dir: Path, eval_records: list[dict[str, Any]] | None = None,
                      progress: bool = True) -> tuple[Any, dict[str, Any]]:
    """An ``SFTTrainer`` ready to train, and the manifest facts about its set-up.

    ``eval_records`` (same forms as ``records``) become the trainer's evaluation set,
    with the same loss mask; ``progress`` turns the trainer's bars on stderr on."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    set_torch_threads(config.threads)
    model, tokenizer, base_path = load_model_and_tokenizer(config, records, out_dir)
    check_context_window(model, config.max_length)
    assistant_only = all("messages" in r for r in records) and has_generation_markers(tokenizer)
    dataset = Dataset.from_list(to_conversational(records, assistant_only))
    args = SFTConfig(output_dir=str(out_dir / "trainer"), num_train_epochs=config.epochs,
                     max_steps=config.max_steps, learning_rate=config.learning_rate,
                     per_device_train_batch_size=config.batch_size,
                     max_length=config.max_length, seed=config.seed, data_seed=config.seed,
                     use_cpu=True, report_to="none", activation_checkpointing=False,
                     save_strategy="no", logging_steps=1, disable_tqdm=not progress,
                     assistant_only_loss=assistant_only, completion_only_loss=True,
                     dataloader_num_workers=0)
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    eval_dataset = (Dataset.from_list(to_conversational(eval_records, assistant_only))
                    if eval_records else None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                         eval_dataset=eval_dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    # The tiny model is created inside the output folder, in a staging folder that is
    # renamed at the end: name it by its place in the model folder, not by its
    # temporary path (which would differ between two identical runs and then be gone).
    tiny = config.model == TINY
    facts = {"base_model": "tiny (random Llama; weights and tokenizer in base-model/)"
             if tiny else base_path,
             "loss_mask": "assistant_only" if assistant_only else "completion_only",
             "chat_template": tokenizer.chat_template,
             "chat_template_sha256": sha256_hex(tokenizer.chat_template or ""),
             "role_format": _role_format(tokenizer),
             "tokenizer": tokenizer_record(tokenizer, base_path,
                                           TINY_BASE_DIR if tiny else None),
             "lora": {"r": config.lora_r, "alpha": config.lora_alpha,
                      "target_modules": "all-linear"} if config.lora else None,
             "base_model_source": ({"name": TINY, "folder": TINY_BASE_DIR, "revision": None}
                                   if tiny else model_source(config.model))}
    return trainer, facts


def _role_format(tokenizer: Any) -> str:
    """The template applied to a one-turn example, so a reader sees the exact format."""
    sample = [{"role": "user", "content": "{user}"}, {"role": "assistant", "content": "{reply}"}]
    rendered: str = tokenizer.apply_chat_template(sample, tokenize=False)
    return rendered


def train_sft(records: list[dict[str, Any]], config: SFTRunConfig,
              out_dir: Path, eval_records: list[dict[str, Any]] | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Train, save model + tokenizer to ``out_dir``; return manifest facts and metrics.

    With ``eval_records`` the metrics add ``validation_loss``: the token-weighted mean
    cross-entropy on their assistant/completion tokens after training, with its
    interval over examples in ``validation_loss_ci`` (:func:`validation_loss`).
    Demonstrations TRL drops (too long for ``max_length``) are counted in the metrics
    and said in a ``note:`` on stderr.
    ``progress=False`` turns off every progress bar, the libraries' own included."""
    with library_progress(progress):
        return _train_sft(records, config, out_dir, eval_records, progress)


def _train_sft(records: list[dict[str, Any]], config: SFTRunConfig, out_dir: Path,
               eval_records: list[dict[str, Any]] | None, progress: bool) -> dict[str, Any]:
    trainer, facts = build_sft_trainer(records, config, out_dir, eval_records, progress)
    # TRL drops examples with no label left once truncated to max_length; say how many
    used = len(trainer.train_dataset) if trainer.train_dataset is not None else 0
    if used == 0:
        raise InputError(f"all {len(records)} demonstrations were dropped: none keeps an "
                         f"assistant token within {config.max_length} tokens",
                         field="--max-length")
    if used < len(records):
        note(f"{len(records) - used} of {len(records)} demonstrations are dropped from "
             f"training: too long for --max-length {config.max_length} (no assistant token "
             "left once cut); raise --max-length to keep them")
    evaluated = len(trainer.eval_dataset) if eval_records and trainer.eval_dataset else 0
    if eval_records and evaluated < len(eval_records):
        note(f"{len(eval_records) - evaluated} of {len(eval_records)} validation "
             f"demonstrations are left out of the validation loss: too long for "
             f"--max-length {config.max_length}")
    result = trainer.train()
    validation = validation_loss(trainer) if evaluated else None
    model = trainer.model
    if config.lora and hasattr(model, "merge_and_unload"):
        model.save_pretrained(out_dir / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(out_dir / "model")
    trainer.processing_class.save_pretrained(out_dir / "model")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    facts["metrics"] = {"train_loss": float(result.training_loss),
                        "final_logged_loss": losses[-1] if losses else None,
                        "steps": int(trainer.state.global_step), "n": len(records),
                        "n_used": used, "n_dropped": len(records) - used}
    if eval_records:
        facts["metrics"].update({
            "validation_loss": validation["value"] if validation else None,
            "validation_loss_ci": validation,
            "validation_n": len(eval_records), "validation_n_used": evaluated})
    facts["data_hash"] = content_hash(records)
    facts["config"] = recorded_config(config)
    return facts


def recorded_config(config: SFTRunConfig) -> dict[str, Any]:
    """The config as the manifest records it: the LoRA settings only when LoRA trained."""
    recorded = asdict(config)
    if not config.lora:
        for key in ("lora_r", "lora_alpha"):
            recorded.pop(key)
    return recorded


def example_losses(trainer: Any, dataset: Any) -> np.ndarray:
    """Per example of ``dataset`` (tokenized by the trainer): the summed cross-entropy of
    its label tokens and their number, as rows ``[loss_sum, tokens]``. Each example is
    collated alone, with the trainer's collator, so the loss mask is the training one."""
    import torch

    model = trainer.model
    device = next(model.parameters()).device
    rows = []
    model.eval()
    with torch.no_grad():
        for example in dataset:
            batch = trainer.data_collator([example])
            batch = {k: v.to(device) for k, v in batch.items() if hasattr(v, "to")}
            tokens = int((batch["labels"][:, 1:] != -100).sum())
            if tokens == 0:
                continue
            loss = float(model(**batch).loss)  # the mean over its label tokens
            rows.append([loss * tokens, tokens])
    return np.asarray(rows, dtype=float).reshape(-1, 2)


def validation_loss(trainer: Any) -> dict[str, Any]:
    """The token-weighted mean cross-entropy of the trainer's evaluation set (its label
    tokens: the assistant's), with a percentile-bootstrap 95 % interval over examples
    (:func:`hilt.train.stats.percentile_bootstrap`; null with a ``note`` below 5
    examples): an example's tokens are drawn together, as they are not independent."""
    from hilt.train.stats import percentile_bootstrap

    rows = example_losses(trainer, trainer.eval_dataset)
    tokens = float(rows[:, 1].sum())
    boot = percentile_bootstrap(rows, lambda r: r[:, 0].sum() / r[:, 1].sum(),
                                unit="example")
    return {"value": float(rows[:, 0].sum() / tokens) if tokens else None,
            "method": "percentile bootstrap over examples", "low": boot["low"],
            "high": boot["high"], "note": boot["note"], "n": int(len(rows)),
            "tokens": int(tokens)}


def split_records(records: list[dict[str, Any]], fraction: float, seed: int
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeded split into (train, held-out), file order kept on each side; identical
    demonstrations are drawn as one, so a held-out one never has a copy in training.
    Held out: round(fraction × distinct demonstrations)."""
    from hilt.train.pairs import grouped_split

    return grouped_split(records, content_hash, fraction, seed)

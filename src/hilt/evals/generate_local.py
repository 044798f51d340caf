"""Candidate outputs from a local Hugging Face transformers causal LM.

The same result shape as :func:`hilt.evals.generate.generate` (lines, settings, call
counts), so :func:`hilt.evals.generate.write_responses` writes a contract-3 file with the
settings on every line. Recorded settings — and the cache key, with the chat messages —
are: the model folder and the sha256 of its files, the chat template's sha256 (the
prompt template the model saw), the system prompt, and the effective ``generate``
arguments (greedy unless a positive temperature or ``do_sample`` is given; ``max_tokens``
is accepted as an alias of ``max_new_tokens``), plus the seed and library versions.

Prompts are rendered with the tokenizer's chat template when it has one (as a chat
model is served), otherwise passed as plain text; a conversation prompt sends all its
turns through the template, and needs one. Batches are left-padded, as decoder-
only generation needs; the seed is reset before every batch so sampling is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hilt.canonical import sha256_hex
from hilt.errors import InputError
from hilt.evals.files import SuiteItem
from hilt.evals.generate import (
    cache_key,
    check_system_prompt,
    messages_for,
    read_cached,
    write_cached,
)

GENERATE_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k",
                 "repetition_penalty", "num_beams")


@dataclass(frozen=True)
class LocalModelConfig:
    model_path: str
    system_prompt: str | None = None
    decoder: dict[str, Any] = field(default_factory=lambda: {"max_new_tokens": 256})
    batch_size: int = 8
    seed: int = 0
    use_chat_template: bool = True


def generate_arguments(decoder: dict[str, Any]) -> dict[str, Any]:
    """The effective ``model.generate`` keyword arguments for the decoder settings."""
    given = dict(decoder)
    if "max_tokens" in given:
        given.setdefault("max_new_tokens", given.pop("max_tokens"))
    unknown = sorted(set(given) - set(GENERATE_KEYS) - {"seed"})
    if unknown:
        raise InputError(f"unknown decoder settings {unknown} (known: {GENERATE_KEYS})",
                         field="decoder")
    given.pop("seed", None)
    temperature = given.get("temperature")
    sample = bool(given.get("do_sample", temperature is not None and temperature > 0))
    args: dict[str, Any] = {"max_new_tokens": int(given.get("max_new_tokens", 256)),
                            "do_sample": sample}
    if sample:
        for key in ("temperature", "top_p", "top_k"):
            if given.get(key) is not None:
                args[key] = given[key]
    for key in ("repetition_penalty", "num_beams"):
        if given.get(key) is not None:
            args[key] = given[key]
    return args


def _versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def generate_local(items: Sequence[SuiteItem], config: LocalModelConfig,
                   cache_dir: str | Path | None = None) -> dict[str, Any]:
    """One response per suite item from the local model; cached by prompt + settings."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hilt.evals.scoring import directory_hash

    path = Path(config.model_path)
    if not path.is_dir():
        raise InputError("not a model directory", file=str(path), field="--model")
    check_system_prompt(items, config.system_prompt)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    template = getattr(tokenizer, "chat_template", None) if config.use_chat_template else None
    conversation = next((item for item in items if item.messages is not None), None)
    if conversation is not None and not template:
        # without a template the turns would run together as plain text, and the model
        # could not tell who said what: no answer to such a prompt measures the chat
        raise InputError(f"item {conversation.id!r} is a conversation, and the model has "
                         "no chat template to render its turns", file=str(path),
                         field="--model")
    args = generate_arguments(config.decoder)
    settings = {"backend": "transformers", "model": str(path),
                "model_sha256": directory_hash(path),
                "chat_template_sha256": sha256_hex(template) if template else None,
                "system_prompt": config.system_prompt, "decoder": args,
                "seed": config.seed, "libraries": _versions()}
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    lines: dict[str, dict[str, Any]] = {}
    todo: list[tuple[SuiteItem, list[dict[str, str]], str]] = []
    for item in items:
        messages = messages_for(item, config.system_prompt)
        key = cache_key(messages, settings)
        cached = read_cached(cache / f"{key}.json" if cache is not None else None)
        if cached is not None:
            lines[item.id] = {"id": item.id, "response": cached,
                              "generation": {"cache_key": key, "cached": True}}
        else:
            todo.append((item, messages, key))
    if todo:
        model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
        tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start:start + config.batch_size]
            if template:
                texts = [tokenizer.apply_chat_template(m, tokenize=False,
                                                       add_generation_prompt=True)
                         for _, m, _ in batch]
            else:
                texts = ["\n\n".join(x["content"] for x in m) for _, m, _ in batch]
            encoded = tokenizer(texts, return_tensors="pt", padding=True,
                                add_special_tokens=not template)
            torch.manual_seed(config.seed)
            with torch.no_grad():
                output = model.generate(**encoded, **args,
                                        pad_token_id=tokenizer.pad_token_id)
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            for (item, _, key), tokens in zip(batch, new_tokens, strict=True):
                # one sequence decodes to one string (a list only for a batch of them)
                text = cast(str, tokenizer.decode(tokens, skip_special_tokens=True))
                lines[item.id] = {"id": item.id, "response": text,
                                  "generation": {"cache_key": key, "cached": False}}
                if cache is not None:
                    write_cached(cache / f"{key}.json", text, settings)
    stats = {"generated": len(todo), "cached": len(items) - len(todo)}
    return {"lines": [lines[item.id] for item in items], "settings": settings,
            "stats": stats}

"""Tokenising (prompt, reply) inputs for a BERT-style encoder, with explicit truncation.

The two segments (prompt, reply) are joined into one sequence. Hugging Face's built-in
pair truncation cuts both segments from the same side; we
want the reply cut from its end (its opening carries the decision: comply, refuse,
redirect) and the prompt cut from its start (the latest words of a conversation are
the request being answered). Truncation is "longest first": the longer segment gives
way until both fit in ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _fit(len_first: int, len_second: int, budget: int) -> tuple[int, int]:
    if len_first + len_second <= budget:
        return len_first, len_second
    half = budget // 2
    if len_first > half and len_second > half:
        return half, budget - half
    if len_first > len_second:
        return budget - len_second, len_second
    return len_first, budget - len_first


def encode_segments(tokenizer: Any, first: Sequence[str] | None, second: Sequence[str],
                    max_length: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and token-type ids of ``[CLS] first second [SEP]`` (or of one text)."""
    if max_length < 3:  # [CLS] and [SEP] leave no room for a single token of text
        raise ValueError(f"max_length must be at least 3, got {max_length}")
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    second_ids = tokenizer(list(second), add_special_tokens=False)["input_ids"]
    out: list[tuple[list[int], list[int]]] = []
    if first is None:
        for ids in second_ids:
            ids = ids[: max_length - 2]
            out.append(([cls_id, *ids, sep_id], [0] * (len(ids) + 2)))
        return out
    first_ids = tokenizer(list(first), add_special_tokens=False)["input_ids"]
    for a, b in zip(first_ids, second_ids, strict=True):
        keep_a, keep_b = _fit(len(a), len(b), max_length - 2)
        a = a[len(a) - keep_a:] if keep_a else []
        b = b[:keep_b]
        # One segment (token type 0 throughout): sentence encoders such as MiniLM were
        # trained on single texts and never learnt a useful second-segment embedding.
        ids = [cls_id, *a, *b, sep_id]
        out.append((ids, [0] * len(ids)))
    return out


def pad_batch(items: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into ``input_ids``, ``token_type_ids``, ``attention_mask`` tensors."""
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(items), width), dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, tt) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        types[row, : len(tt)] = torch.tensor(tt)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "token_type_ids": types, "attention_mask": mask}

"""SFT refresh: the loss mask on a real batch, the manifest facts, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.sft import SFTRunConfig, build_sft_trainer, read_sft_records, train_sft

PAIRS = [("What is two plus two?", "Four."), ("Name a colour.", "Blue is a colour."),
         ("Say hello.", "Hello there!"), ("Is water wet?", "Water makes things wet.")]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _label_text(trainer, batch, row: int) -> tuple[str, list[int]]:
    ids, labels = batch["input_ids"][row], batch["labels"][row]
    kept = [int(i) for i, lab in zip(ids, labels, strict=True) if int(lab) != -100]
    return trainer.processing_class.decode(kept), [int(x) for x in labels]


@pytest.mark.parametrize("form", ["prompt_completion", "messages"])
def test_only_assistant_tokens_carry_labels(tmp_path: Path, form: str) -> None:
    if form == "messages":
        rows = [{"messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": p},
                              {"role": "assistant", "content": c}]} for p, c in PAIRS]
    else:
        rows = [{"prompt": p, "completion": c} for p, c in PAIRS]
    records = read_sft_records(_write(tmp_path / "d.jsonl", rows))
    trainer, facts = build_sft_trainer(records, SFTRunConfig(max_steps=1, batch_size=4),
                                       tmp_path / "out")
    assert facts["loss_mask"] == ("assistant_only" if form == "messages" else "completion_only")
    batch = next(iter(trainer.get_train_dataloader()))
    seen = set()
    tok = trainer.processing_class
    for row in range(batch["input_ids"].shape[0]):
        text, labels = _label_text(trainer, batch, row)
        # Exactly the reply and its end-of-turn token are trained on.
        assert text in {c + "<|end|>" for _, c in PAIRS}
        seen.add(text)
        full = tok.decode([int(i) for i in batch["input_ids"][row]])
        prompt_part = full[: full.index("<|assistant|>") + len("<|assistant|>")]
        n_prompt = len(tok(prompt_part, add_special_tokens=False)["input_ids"])
        assert all(lab == -100 for lab in labels[:n_prompt])
    assert len(seen) == len(PAIRS)


def test_sft_trains_and_records_template(tmp_path: Path) -> None:
    rows = [{"prompt": p, "completion": c} for p, c in PAIRS]
    records = read_sft_records(_write(tmp_path / "d.jsonl", rows))
    facts = train_sft(records, SFTRunConfig(max_steps=3, batch_size=2), tmp_path / "out")
    assert (tmp_path / "out" / "model" / "config.json").exists()
    assert "{% generation %}" in facts["chat_template"]
    assert "<|user|>{user}<|end|>" in facts["role_format"]
    assert facts["tokenizer"]["tokenizer_json_sha256"]
    assert facts["metrics"]["steps"] == 3 and facts["metrics"]["train_loss"] > 0


def test_sft_lora_option(tmp_path: Path) -> None:
    rows = [{"prompt": p, "completion": c} for p, c in PAIRS]
    records = read_sft_records(_write(tmp_path / "d.jsonl", rows))
    facts = train_sft(records, SFTRunConfig(max_steps=2, batch_size=2, lora=True),
                      tmp_path / "out")
    assert facts["lora"]["r"] == 8
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()


@pytest.mark.parametrize("line,field", [
    ({"prompt": "x"}, "completion"),
    ({"prompt": 3, "completion": "y"}, "prompt"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x"}]}, "messages"),
])
def test_bad_demonstrations_name_line_and_field(tmp_path: Path, line: dict, field: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "a", "completion": "b"}, line])
    with pytest.raises(InputError) as err:
        read_sft_records(path)
    assert err.value.line == 2 and err.value.field == field and err.value.file == str(path)


def test_demonstrations_dropped_by_truncation_are_counted(tmp_path: Path) -> None:
    long_prompt = " ".join(["word"] * 400)
    rows = [{"prompt": p, "completion": c} for p, c in PAIRS]
    rows += [{"prompt": long_prompt, "completion": c} for _, c in PAIRS]
    records = read_sft_records(_write(tmp_path / "d.jsonl", rows))
    facts = train_sft(records, SFTRunConfig(max_steps=1, batch_size=2, max_length=64),
                      tmp_path / "out")
    assert facts["metrics"]["n"] == 8
    assert facts["metrics"]["n_used"] == 4 and facts["metrics"]["n_dropped"] == 4
    # nothing left to learn from is an input error, not a crash inside the trainer
    with pytest.raises(InputError) as err:
        train_sft(records, SFTRunConfig(max_steps=1, batch_size=2, max_length=4),
                  tmp_path / "out2")
    assert err.value.field == "--max-length"


def test_a_max_length_past_the_models_context_window_is_refused(tmp_path: Path) -> None:
    records = read_sft_records(_write(tmp_path / "d.jsonl", [
        {"prompt": p, "completion": c} for p, c in PAIRS]))
    # the tiny model has 512 positions
    with pytest.raises(InputError) as err:
        build_sft_trainer(records, SFTRunConfig(max_steps=1, max_length=513), tmp_path / "o")
    assert err.value.field == "--max-length"
    assert str(err.value) == ("field '--max-length': must be at most 512, the model's "
                              "context window (max_position_embeddings), got 513")
    trainer, _ = build_sft_trainer(records, SFTRunConfig(max_steps=1, max_length=512),
                                   tmp_path / "o2")
    assert trainer.args.max_length == 512


def test_undecodable_and_gzipped_files(tmp_path: Path) -> None:
    import gzip

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "completion": "b"}\n\xff\xfe garbage\n')
    with pytest.raises(InputError) as err:
        read_sft_records(bad)
    assert err.value.line == 2 and "UTF-8" in str(err.value)
    packed = tmp_path / "d.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"prompt": "a", "completion": "b"}\n'))
    assert read_sft_records(packed) == [{"prompt": "a", "completion": "b"}]
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b'{"prompt": "a", "completion": "b"}\n' * 50)[:30])
    with pytest.raises(InputError, match="cannot read"):
        read_sft_records(cut)

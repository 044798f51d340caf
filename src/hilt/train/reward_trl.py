"""Reward models from any Hugging Face model through TRL's ``RewardTrainer``.

The model is loaded as a sequence classifier with one output (the reward) and trained
with TRL's Bradley–Terry loss, ``−log σ(r_c − r_r − margin)`` (the margin column is
passed when the pairs carry one). Runs on CPU here and on one or several GPUs when
started with ``accelerate launch`` (TRL's trainers are accelerate-aware). Note that
TRL drops pairs longer than ``max_length`` instead of truncating them; hilt drops them
before training (``train_pairs_used`` and ``train_pairs_dropped`` in the metrics) and
refuses a run that would keep none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hilt.errors import InputError
from hilt.train.encoder import resolve_encoder, set_torch_threads
from hilt.train.hf_models import load_pretrained, model_source
from hilt.train.pairs import Pair
from hilt.train.progress import note

MODEL_SUBDIR = "model"


@dataclass
class TRLRewardConfig:
    model: str = "tiny"
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-5
    batch_size: int = 8
    max_length: int = 256
    use_margin: bool = False
    seed: int = 0
    threads: int | None = None


def joined(prompt: str, response: str) -> tuple[str, str]:
    """(prompt, reply) as TRL concatenates them: a space between when none is there."""
    if prompt and not prompt[-1].isspace() and response and not response[0].isspace():
        return prompt, " " + response
    return prompt, response


def pair_length(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens of the longer side of a pair as TRL's RewardTrainer counts them (prompt +
    reply + EOS text, with the tokenizer's special tokens); TRL drops a pair whose either
    side is longer than ``max_length``, so hilt drops them first, where it can count
    them and refuse a run that would keep none."""
    eos = tokenizer.eos_token or ""

    def count(reply: str) -> int:
        text = row["prompt"] + reply + ("" if reply.endswith(eos) else eos)
        return len(tokenizer(text)["input_ids"])

    return max(count(row["chosen"]), count(row["rejected"]))


def _load(config: TRLRewardConfig, pairs: Sequence[Pair], workdir: Path) -> tuple[Any, Any, str]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if config.model == "tiny":
        from hilt.train.tiny import write_tiny_model

        texts = [p.prompt + " " + p.chosen + " " + p.rejected for p in pairs]
        path = write_tiny_model(workdir / "base-model", texts, seed=config.seed, num_labels=1)
    else:
        path = resolve_encoder(config.model) if config.model.startswith("all-MiniLM") \
            else config.model
    # a missing or broken --model is one line naming the option, not a traceback
    tokenizer = load_pretrained(AutoTokenizer, path)
    model = load_pretrained(AutoModelForSequenceClassification, path, num_labels=1)
    if tokenizer.eos_token is None:
        # TRL appends the EOS text to every reply; BERT-style tokenizers only have [SEP].
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, path


def training_args(config: TRLRewardConfig, out_dir: Path, progress: bool = True) -> Any:
    """TRL's ``RewardConfig`` for a run: full precision on CPU, bf16 only on a GPU with it.

    TRL turns bf16 mixed precision on by default, also on CPU. Where the CPU has no
    native bf16 instructions PyTorch emulates them, and a MiniLM step runs about 13×
    slower than in float32 (measured: 38 s instead of 3 s for 32 sequences of 100
    tokens with the kernels limited to AVX2), so CPU runs stay in float32, like hilt's
    default reward model.
    """
    import torch
    from trl import RewardConfig

    on_gpu = torch.cuda.is_available()
    return RewardConfig(output_dir=str(out_dir / "trainer"), num_train_epochs=config.epochs,
                        max_steps=config.max_steps, learning_rate=config.learning_rate,
                        per_device_train_batch_size=config.batch_size,
                        max_length=config.max_length, seed=config.seed, data_seed=config.seed,
                        use_cpu=not on_gpu, bf16=on_gpu and torch.cuda.is_bf16_supported(),
                        report_to="none", activation_checkpointing=False, save_strategy="no",
                        logging_steps=10, disable_tqdm=not progress, dataloader_num_workers=0)


def train_trl_reward(pairs: Sequence[Pair], config: TRLRewardConfig, out_dir: Path,
                     progress: bool = True) -> tuple[TRLReward, dict[str, Any]]:
    """Train with ``trl.RewardTrainer``; save to ``out_dir/model``; return scorer + facts."""
    from datasets import Dataset
    from trl import RewardTrainer

    set_torch_threads(config.threads)
    model, tokenizer, base_path = _load(config, pairs, out_dir)
    rows = []
    for p in pairs:
        prompt, chosen = joined(p.prompt, p.chosen)
        _, rejected = joined(p.prompt, p.rejected)
        row: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if config.use_margin:
            row["margin"] = float(p.margin or 0.0)
        rows.append(row)
    lengths = [pair_length(tokenizer, row) for row in rows]
    rows = [row for row, n in zip(rows, lengths, strict=True) if n <= config.max_length]
    if not rows:
        raise InputError(f"no training pair fits in {config.max_length} tokens (the shortest "
                         f"takes {min(lengths)}); TRL drops longer pairs instead of "
                         "truncating them: raise it", field="--max-length")
    if len(rows) < len(pairs):
        note(f"{len(pairs) - len(rows)} of {len(pairs)} training pairs are dropped: too "
             f"long for --max-length {config.max_length} (TRL drops a pair longer than "
             "that instead of cutting it); raise --max-length to keep them")
    args = training_args(config, out_dir, progress)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer)
    result = trainer.train()
    used = len(trainer.train_dataset)  # type: ignore[arg-type]
    target = out_dir / MODEL_SUBDIR
    trained: Any = trainer.model
    trained.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (out_dir / "trl_reward_config.json").write_text(json.dumps(asdict(config), indent=2))
    tiny = config.model == "tiny"
    facts = {"base_model": "tiny (random Llama)" if tiny else base_path,
             "base_model_source": None if tiny else model_source(base_path),
             "train_loss": float(result.training_loss),
             "steps": int(trainer.state.global_step),
             "pairs_used": used, "pairs_dropped": len(pairs) - used}
    return TRLReward(str(target), config.max_length, progress=progress), facts


class TRLReward:
    """Scores (prompt, reply) with a saved sequence-classification reward model."""

    def __init__(self, path: str, max_length: int = 256, batch_size: int = 16,
                 progress: bool = False) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        self.max_length, self.batch_size = max_length, batch_size
        self.progress = progress  # a bar over the scoring batches on stderr

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        # Scored exactly as trained: TRL appended the EOS text to each reply.
        eos = self.tokenizer.eos_token or ""
        texts = ["".join(joined(p, r)) + eos for p, r in zip(prompts, responses, strict=True)]
        out = []
        starts = range(0, len(texts), self.batch_size)
        with torch.no_grad():
            for start in tqdm(starts, desc="scoring", disable=not self.progress):
                batch = self.tokenizer(texts[start: start + self.batch_size], padding=True,
                                       truncation=True, max_length=self.max_length,
                                       return_tensors="pt")
                out.append(self.model(**batch).logits[:, 0].double())
        return torch.cat(out).numpy() if out else np.zeros(0)

"""Fine-tuning the sentence encoder for a labelling task before fitting the linear head.

A frozen sentence embedding mostly encodes *topic*; a refusal detector needs the
*stance* of the opening ("I cannot provide …", "However, I must point out …"). With
``ClassifierConfig.finetune_epochs > 0`` the encoder is first fine-tuned on the
training texts with a class-balanced cross-entropy loss on a mean-pooled linear
probe (Reimers & Gurevych, 2019, classification objective), then the usual
calibrated logistic-regression head is fitted on the fine-tuned embeddings.
Only the first ``max_length`` tokens are read, which is where replies state what
they will and will not do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hilt.train.encoder import resolve_encoder, set_torch_threads


def finetune_encoder(texts: Sequence[str], labels: np.ndarray, n_classes: int, *,
                     encoder: str | None, out_dir: Path, max_length: int, epochs: int,
                     learning_rate: float = 3e-5, batch_size: int = 16, seed: int = 0,
                     progress: bool = False) -> str:
    """Fine-tune ``encoder`` on (text, label) and save it as a SentenceTransformer folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from tqdm.auto import tqdm

    set_torch_threads()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = SentenceTransformer(resolve_encoder(encoder), device="cpu")
    model.max_seq_length = max_length
    transformer: Any = model[0].auto_model
    tokenizer = model.tokenizer
    hidden = transformer.config.hidden_size
    probe = torch.nn.Linear(hidden, n_classes)
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    # Balanced weights: each class counts equally, whatever its share of the data.
    weights = torch.tensor(counts.sum() / (n_classes * np.maximum(counts, 1)),
                           dtype=torch.float32)
    params = [{"params": transformer.parameters(), "lr": learning_rate},
              {"params": probe.parameters(), "lr": 1e-3}]
    optimizer = torch.optim.AdamW(params, weight_decay=0.01)
    order = list(range(len(texts)))
    rng = random.Random(seed)
    total = epochs * ((len(texts) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda step: max(0.0, 1 - step / total))
    transformer.train()
    bar = tqdm(total=total, desc="fine-tuning encoder", disable=not progress)
    y_all = torch.tensor(labels, dtype=torch.long)
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            out = transformer(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (out * mask).sum(1) / mask.sum(1)
            loss = torch.nn.functional.cross_entropy(probe(pooled), y_all[idx], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
    bar.close()
    transformer.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    return str(out_dir)

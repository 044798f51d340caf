"""The default CPU reward model: MiniLM with its top layers fine-tuned and a reward head.

Bradley–Terry model (Bradley & Terry, 1952; Ouyang et al., 2022, eq. 1)::

    P(chosen ≻ rejected | x) = σ(r(x, y_c) − r(x, y_r))
    loss = −log σ(r(x, y_c) − r(x, y_r) − m)

with an optional margin ``m`` from a rating gap (Touvron et al., 2023, Llama 2 §3.2.2).

``r(x, y) = wᵀ mean_pool(top_k(h_{L−k}(x, y))) + vᵀ z(y)`` where ``h_{L−k}`` are the
hidden states after the frozen lower ``L−k`` layers, ``top_k`` the trainable upper
``k`` layers, and ``z`` the standardised cheap features of the reply
(:mod:`hilt.train.reward_features`). Because the lower layers are frozen their outputs
are computed once per text and cached, so an epoch only runs ``k`` of the ``L`` layers
forward and backward: several epochs cost about what one full fine-tuning epoch does.
``k = 0`` is a frozen encoder with a linear Bradley–Terry head.

Frozen expert (``frozen_expert``, on by default): a second, independent reward
``uᵀ mean_pool(h_L^frozen)`` from the *untouched* encoder, fitted first as an
L2-regularised linear BT model (penalty by 5-fold cross-validation on the training
pairs). The reported reward is the sum, a product of experts in probability space:
the fine-tuned part and the frozen part make partly different errors.

Lexical expert (``lexical_expert``, on by default): a third reward, linear BT on the
TF-IDF of the reply's character n-grams (:mod:`hilt.train.reward_linear`), also added
to the sum.

Ensemble (``ensemble = N``, default 1): N tuned top parts, trained from seeds
``seed … seed + N − 1`` on the same cached frozen states, their rewards averaged;
member 0 is exactly the single model. ``length_batches`` groups pairs of similar
length into batches so that less padding is computed.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hilt.train.encoder import DEFAULT_ENCODER, resolve_encoder, set_torch_threads
from hilt.train.encoding import encode_segments, pad_batch
from hilt.train.pairs import Pair, require_margins
from hilt.train.reward_features import CHEAP_FEATURE_NAMES, VIEWS, cheap_features, view_texts
from hilt.train.reward_linear import LexicalExpert, fit_lexical_expert, fit_linear_bradley_terry

WEIGHTS_FILE = "reward_head.pt"
CONFIG_FILE = "reward_config.json"


@dataclass
class RewardConfig:
    """Every knob of a default reward-model run; stored in the run manifest."""

    encoder: str = DEFAULT_ENCODER
    view: str = "last_exchange"
    max_length: int = 128
    trainable_layers: int = 2
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    cheap_features: bool = True
    frozen_expert: bool = True
    expert_max_length: int | None = None
    # linear BT on the TF-IDF of the reply's character n-grams, added to the reward
    lexical_expert: bool = True
    use_margin: bool = False
    # tuned top parts trained from seeds seed, seed + 1, … on the same cached frozen
    # states; their rewards are averaged (the frozen expert is added once)
    ensemble: int = 1
    # batches of pairs of similar length (shuffled within groups of 8 batches), which
    # pads less; False gives plain shuffled batches
    length_batches: bool = False
    # 0 < ε < 0.5: Bradley–Terry with label smoothing, each pair read as preferred with
    # probability 1 − ε (human preference labels are noisy); 0 is the plain loss
    label_smoothing: float = 0.0
    # the tuned weights are averaged over every step of the last epoch (Polyak–Ruppert
    # tail averaging) and the average is kept instead of the last step's weights
    average_last_epoch: bool = False
    seed: int = 0
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _torch() -> Any:
    import torch

    return torch


def check_reward_config(config: RewardConfig) -> None:
    """Refuse settings the encoder cannot train with before any work is done;
    ``InputError`` names the ``hilt train reward`` option (or the config field)."""
    from transformers import AutoConfig

    from hilt.errors import InputError

    if config.view not in VIEWS:
        raise InputError(f"unknown view {config.view!r}; views: {', '.join(VIEWS)}",
                         field="--view")
    encoder = AutoConfig.from_pretrained(resolve_encoder(config.encoder))
    layers, longest = int(encoder.num_hidden_layers), int(encoder.max_position_embeddings)
    if not 0 <= config.trainable_layers <= layers:
        raise InputError(f"must lie in 0..{layers} (the encoder's layers), got "
                         f"{config.trainable_layers}", field="--trainable-layers")
    # [CLS] and [SEP] take two positions; at least one token of text must fit
    if not 3 <= config.max_length <= longest:
        raise InputError(f"must lie in 3..{longest} tokens for this encoder, got "
                         f"{config.max_length}", field="--max-length")
    if config.epochs < 1:
        raise InputError(f"must be at least 1, got {config.epochs}", field="--epochs")


class EncoderReward:
    """Scalar reward r(x, y) from an encoder; see the module docstring for the maths."""

    def __init__(self, config: RewardConfig) -> None:
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        # progress bars of score() on stderr (encoding batches); training sets its own
        self.progress = False
        set_torch_threads(config.threads)
        path = resolve_encoder(config.encoder)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        base = AutoModel.from_pretrained(path).eval()
        layers = base.encoder.layer
        if not 0 <= config.trainable_layers <= len(layers):
            raise ValueError(f"trainable_layers must be in 0..{len(layers)}")
        self.split = len(layers) - config.trainable_layers
        self.embeddings = base.embeddings
        self.frozen_layers = list(layers[: self.split])
        self.top_layers = torch.nn.ModuleList(layers[self.split:])
        # The untouched upper layers, for the frozen expert (see frozen_pooled).
        self.original_top = copy.deepcopy(self.top_layers).eval()
        for p in self.original_top.parameters():
            p.requires_grad_(False)
        longest = base.config.max_position_embeddings
        if config.expert_max_length is not None and not 2 <= config.expert_max_length <= longest:
            raise ValueError(f"expert_max_length must be in 2..{longest} or None")
        self.expert_weights = torch.zeros(base.config.hidden_size)
        self.lexical: LexicalExpert | None = None
        hidden = base.config.hidden_size
        self.head = torch.nn.Linear(hidden, 1)
        self.cheap = torch.nn.Linear(len(CHEAP_FEATURE_NAMES), 1, bias=False)
        # Member 0 is (top_layers, head, cheap); further members start from the untouched
        # upper layers with heads drawn from their own seeds.
        if config.ensemble < 1:
            raise ValueError("ensemble must be at least 1")
        self.members = [torch.nn.ModuleDict({"top": self.top_layers, "head": self.head,
                                             "cheap": self.cheap})]
        rng = torch.random.get_rng_state()
        for k in range(1, config.ensemble):
            torch.manual_seed(config.seed + k)
            self.members.append(torch.nn.ModuleDict({
                "top": copy.deepcopy(self.original_top).requires_grad_(True),
                "head": torch.nn.Linear(hidden, 1),
                "cheap": torch.nn.Linear(len(CHEAP_FEATURE_NAMES), 1, bias=False)}))
        # member 0 trains exactly as a single model would (dropout draws included)
        torch.random.set_rng_state(rng)
        self.cheap_mean = torch.zeros(len(CHEAP_FEATURE_NAMES))
        self.cheap_std = torch.ones(len(CHEAP_FEATURE_NAMES))
        for p in [*self.embeddings.parameters(), *[q for m in self.frozen_layers
                                                   for q in m.parameters()]]:
            p.requires_grad_(False)

    # -- encoding -------------------------------------------------------------------
    def tokenize(self, prompts: Sequence[str], responses: Sequence[str],
                 max_length: int | None = None) -> list[Any]:
        first, second = view_texts(self.config.view, prompts, responses)
        return encode_segments(self.tokenizer, first, second,
                               max_length or self.config.max_length)

    def frozen_states(self, items: Sequence[tuple[list[int], list[int]]],
                      batch_size: int = 32, progress: bool = False) -> list[Any]:
        """Hidden states after the frozen layers, one fp16 tensor (length × hidden) per input."""
        torch = _torch()
        from tqdm.auto import tqdm

        order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
        out: list[Any] = [None] * len(items)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="encoding (frozen layers)", disable=not progress):
            idx = order[start: start + batch_size]
            batch = pad_batch([items[i] for i in idx], self.tokenizer.pad_token_id)
            with torch.no_grad():
                h = self.embeddings(input_ids=batch["input_ids"],
                                    token_type_ids=batch["token_type_ids"])
                ext = _extended_mask(batch["attention_mask"])
                for layer in self.frozen_layers:
                    h = _layer_out(layer(h, attention_mask=ext))
            for row, i in enumerate(idx):
                n = int(batch["attention_mask"][row].sum())
                out[i] = h[row, :n].to(torch.float16)
        return out

    def forward_states(self, states: Sequence[Any], cheap: Any,
                       member: int | None = None) -> Any:
        """Reward for a batch of cached frozen states (differentiable in the top part).

        ``member`` picks one tuned part of an ensemble; ``None`` averages all of them.
        """
        torch = _torch()
        h0, mask = _pad_states(states)
        ext = _extended_mask(mask)
        picked = self.members if member is None else [self.members[member]]
        rewards = []
        for part in picked:
            h = h0
            for layer in part["top"]:
                h = _layer_out(layer(h, attention_mask=ext))
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            reward = part["head"](pooled).squeeze(-1)
            if self.config.cheap_features:
                z = (cheap - self.cheap_mean) / self.cheap_std
                reward = reward + part["cheap"](z).squeeze(-1)
            rewards.append(reward)
        return torch.stack(rewards).mean(0)

    def frozen_pooled(self, states: Sequence[Any], batch_size: int = 32) -> Any:
        """Mean-pooled output of the *original* encoder (no fine-tuning) for cached states."""
        torch = _torch()
        out = []
        with torch.no_grad():
            for start in range(0, len(states), batch_size):
                chunk = states[start: start + batch_size]
                h, mask = _pad_states(chunk)
                ext = _extended_mask(mask)
                for layer in self.original_top:
                    h = _layer_out(layer(h, attention_mask=ext))
                out.append((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
        return torch.cat(out)

    def expert_features(self, prompts: Sequence[str], responses: Sequence[str],
                        states: Sequence[Any]) -> Any:
        """The frozen expert's input: pooled untouched-encoder output for each text.

        With ``expert_max_length`` the expert reads its own, usually wider, window,
        encoded afresh through all layers; otherwise it reuses the cached ``states``.
        """
        wide = self.config.expert_max_length
        if wide is None or wide == self.config.max_length:
            return self.frozen_pooled(states)
        return self.frozen_pooled(self.frozen_states(self.tokenize(prompts, responses, wide)))

    def parameters_to_train(self, member: int = 0) -> list[dict[str, Any]]:
        part = self.members[member]
        return [{"params": list(part["top"].parameters()),
                 "lr": self.config.learning_rate},
                {"params": [*part["head"].parameters(), *part["cheap"].parameters()],
                 "lr": self.config.head_learning_rate, "weight_decay": 0.0}]

    def train_mode(self, on: bool) -> None:
        for part in self.members:
            part.train(on)

    # -- scoring --------------------------------------------------------------------
    def score(self, prompts: Sequence[str], responses: Sequence[str],
              batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        """Rewards r(x, y) for aligned lists of prompts and replies; ``progress`` (by
        default the model's ``progress``) shows a bar over the encoding batches."""
        torch = _torch()
        if not responses:
            return np.zeros(0, dtype=np.float64)
        self.train_mode(False)
        states = self.frozen_states(self.tokenize(prompts, responses), batch_size,
                                    self.progress if progress is None else progress)
        cheap = torch.tensor(cheap_features(responses))
        rewards = []
        with torch.no_grad():
            for start in range(0, len(states), batch_size):
                rewards.append(self.forward_states(states[start: start + batch_size],
                                                   cheap[start: start + batch_size]))
        total = torch.cat(rewards)
        if self.config.frozen_expert:
            total = total + self.expert_features(prompts, responses, states) @ self.expert_weights
        rewards = total.double().numpy()
        if self.lexical is not None:
            rewards = rewards + self.lexical.score(responses)
        return rewards

    # -- persistence ----------------------------------------------------------------
    def save(self, folder: Path) -> None:
        torch = _torch()
        folder.mkdir(parents=True, exist_ok=True)
        state = {"top_layers": self.top_layers.state_dict(), "head": self.head.state_dict(),
                 "expert_weights": self.expert_weights,
                 "cheap": self.cheap.state_dict(), "cheap_mean": self.cheap_mean,
                 "cheap_std": self.cheap_std,
                 "members": [part.state_dict() for part in self.members[1:]]}
        torch.save(state, folder / WEIGHTS_FILE)
        if self.lexical is not None:
            self.lexical.save(folder)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, folder: Path, progress: bool = False) -> EncoderReward:
        """The model saved in ``folder``; ``progress`` as the model's ``progress``."""
        torch = _torch()
        saved_config = json.loads((folder / CONFIG_FILE).read_text())
        saved_config.setdefault("lexical_expert", False)  # saved before it existed
        config = RewardConfig(**saved_config)
        model = cls(config)
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        model.top_layers.load_state_dict(state["top_layers"])
        model.head.load_state_dict(state["head"])
        model.cheap.load_state_dict(state["cheap"])
        for part, saved in zip(model.members[1:], state.get("members", []), strict=True):
            part.load_state_dict(saved)
        model.cheap_mean, model.cheap_std = state["cheap_mean"], state["cheap_std"]
        model.expert_weights = state["expert_weights"]
        if config.lexical_expert:
            model.lexical = LexicalExpert.load(folder)
        model.train_mode(False)
        model.progress = progress
        return model


def _pad_states(states: Sequence[Any]) -> tuple[Any, Any]:
    torch = _torch()
    width = max(s.shape[0] for s in states)
    h = torch.zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width))
    for row, s in enumerate(states):
        h[row, : s.shape[0]] = s.float()
        mask[row, : s.shape[0]] = 1.0
    return h, mask


def _extended_mask(mask: Any) -> Any:
    """Additive attention mask (batch, 1, 1, length): 0 where attended, -inf-ish elsewhere."""
    torch = _torch()
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _layer_out(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def _batches(n: int, size: int, generator: random.Random,
             lengths: Sequence[int] | None = None) -> list[list[int]]:
    """One epoch of batches of pair indices.

    Plain: a shuffled order cut into batches. With ``lengths``: the shuffled order is cut
    into groups of 8 batches, each group sorted by length before it is cut, and the
    batches are shuffled, so a batch pads to a length close to its longest pair.
    """
    order = list(range(n))
    generator.shuffle(order)
    if lengths is None:
        return [order[start: start + size] for start in range(0, n, size)]
    batches = []
    for start in range(0, n, 8 * size):
        group = sorted(order[start: start + 8 * size], key=lambda i: lengths[i])
        batches += [group[k: k + size] for k in range(0, len(group), size)]
    generator.shuffle(batches)
    return batches


def seed_everything(seed: int) -> None:
    torch = _torch()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def bradley_terry_loss(delta: Any, label_smoothing: float = 0.0) -> Any:
    """Mean −log σ(Δ) over pairs (Δ = r(chosen) − r(rejected) − margin); with label
    smoothing ε, each pair counts as preferred with probability 1 − ε and reversed with
    probability ε: −(1 − ε) log σ(Δ) − ε log σ(−Δ), which is least at Δ = logit(1 − ε)."""
    functional = _torch().nn.functional
    return -((1 - label_smoothing) * functional.logsigmoid(delta)
             + label_smoothing * functional.logsigmoid(-delta)).mean()


def train_reward_model(pairs: Sequence[Pair], config: RewardConfig, progress: bool = True,
                       log: Callable[[str], None] | None = None) -> EncoderReward:
    """Fit r(x, y) with the Bradley–Terry loss on ``pairs``; deterministic for a seed."""
    torch = _torch()
    from tqdm.auto import tqdm

    if config.use_margin:  # a pair without one would train with margin 0 unseen
        require_margins(pairs)
    seed_everything(config.seed)
    model = EncoderReward(config)
    prompts = [p.prompt for p in pairs]
    chosen_items = model.tokenize(prompts, [p.chosen for p in pairs])
    rejected_items = model.tokenize(prompts, [p.rejected for p in pairs])
    states = model.frozen_states(chosen_items + rejected_items, progress=progress)
    n = len(pairs)
    cheap_all = torch.tensor(cheap_features([p.chosen for p in pairs]
                                            + [p.rejected for p in pairs]))
    model.cheap_mean = cheap_all.mean(0)
    model.cheap_std = cheap_all.std(0).clamp_min(1e-3)
    # every pair has its margin (required above)
    margins = torch.tensor([p.margin for p in pairs]) if config.use_margin \
        else torch.zeros(n)

    if config.frozen_expert:
        pooled = model.expert_features(prompts + prompts, [p.chosen for p in pairs]
                                       + [p.rejected for p in pairs], states).double().numpy()
        model.expert_weights = torch.tensor(
            fit_linear_bradley_terry(pooled[:n] - pooled[n:], config.seed), dtype=torch.float32)
        if log:
            log("frozen expert fitted")
    if config.lexical_expert:
        model.lexical = fit_lexical_expert([p.chosen for p in pairs],
                                           [p.rejected for p in pairs], config.seed)
        if log:
            log("lexical expert fitted")

    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    total = max(1, steps_per_epoch * config.epochs)
    warmup = int(total * config.warmup_fraction)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    lengths = [max(states[i].shape[0], states[n + i].shape[0]) for i in range(n)]
    model.train_mode(True)
    bar = tqdm(total=total * config.ensemble, desc="reward model (Bradley–Terry)",
               disable=not progress)
    for member in range(config.ensemble):
        groups = model.parameters_to_train(member)
        optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        generator = random.Random(config.seed + member)
        if member:
            torch.manual_seed(config.seed + member)
        tuned = [p for g in groups for p in g["params"]]
        average: list[Any] | None = None
        for epoch in range(config.epochs):
            if config.average_last_epoch and epoch == config.epochs - 1:
                average, averaged = [torch.zeros_like(p) for p in tuned], 0
            running = 0.0
            for idx in _batches(n, config.batch_size, generator,
                                lengths if config.length_batches else None):
                batch_states = [states[i] for i in idx] + [states[n + i] for i in idx]
                batch_cheap = torch.cat([cheap_all[idx], cheap_all[[n + i for i in idx]]])
                rewards = model.forward_states(batch_states, batch_cheap, member)
                delta = rewards[: len(idx)] - rewards[len(idx):] - margins[idx]
                loss = bradley_terry_loss(delta, config.label_smoothing)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
                optimizer.step()
                scheduler.step()
                if average is not None:
                    with torch.no_grad():
                        for total_p, p in zip(average, tuned, strict=True):
                            total_p.add_(p)
                    averaged += 1
                running += float(loss.detach()) * len(idx)
                bar.update(1)
            if log:
                prefix = f"member {member + 1}, " if config.ensemble > 1 else ""
                log(f"{prefix}epoch {epoch + 1}: mean Bradley–Terry loss {running / n:.4f}")
        if average is not None and averaged:
            with torch.no_grad():
                for total_p, p in zip(average, tuned, strict=True):
                    p.copy_(total_p / averaged)
    bar.close()
    model.train_mode(False)
    return model

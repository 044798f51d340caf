"""A tiny randomly initialised Llama and a locally trained tokenizer (no downloads).

Used by tests and the demo so that the SFT and TRL reward-model paths run end to end
in seconds on a CPU. The chat template marks assistant content with
``{% generation %}`` so TRL's assistant-only loss can find it; the end-of-turn token
``<|end|>`` sits inside the marked span, so the model learns to stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>",
                  "<|unk|>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
ROLE_FORMAT = "<|role|>content<|end|> with <|system|>, <|user|>, <|assistant|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 400) -> Any:
    """Byte-level BPE trained on ``texts``, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(list(texts), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|pad|>",
                                        bos_token="<|bos|>", eos_token="<|end|>",
                                        unk_token="<|unk|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_llama(tokenizer: Any, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
               seed: int = 0, num_labels: int | None = None) -> Any:
    """A random ``LlamaForCausalLM`` (or ``…ForSequenceClassification`` with ``num_labels``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size,
                         intermediate_size=hidden_size * 2, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    if num_labels is not None:
        config.num_labels = num_labels
        return LlamaForSequenceClassification(config)
    return LlamaForCausalLM(config)


def write_tiny_model(folder: str | Path, texts: Iterable[str], *, seed: int = 0,
                     num_labels: int | None = None) -> str:
    """Create and save a tiny model + tokenizer to ``folder``; returns the folder path."""
    folder = Path(folder)
    tokenizer = train_tokenizer(texts)
    model = tiny_llama(tokenizer, seed=seed, num_labels=num_labels)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)

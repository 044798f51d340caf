"""The near-dedup seed takes what the MinHash permutations take (0 to 2**32 - 1); any
other is refused in the spec with its file, line and field, rather than stopping the
build with a traceback from the random generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.data.minhash import permutations
from hilt.data.spec import load_spec
from hilt.errors import InputError

HEAD = "name: x\nkind: preference\nsources: [event_preference]\n"


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999999"])
def test_a_seed_outside_the_generators_range_is_refused(tmp_path: Path, seed: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + f"dedup:\n  near: true\n  seed: {seed}\n")
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 6, "dedup.seed")


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_the_ends_of_the_range_are_seeds_near_dedup_can_use(tmp_path: Path,
                                                              seed: int) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + f"dedup:\n  seed: {seed}\n")
    spec = load_spec(path)
    a, b = permutations(spec.dedup.num_perm, spec.dedup.seed)
    assert len(a) == len(b) == spec.dedup.num_perm

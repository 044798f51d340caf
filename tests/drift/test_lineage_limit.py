"""``hilt lineage --limit`` has the bounds of HTTP's ``?limit=`` (0 to 1000): a value
outside is refused naming the option, not read as a slice (a negative one listed no
reviews and dropped the last missing id)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.quality.drift.lineage import dataset_lineage_tree, model_lineage
from hilt.store.db import transaction

from .test_cli_api import cli


@pytest.mark.parametrize("limit", ["-1", "1001"])
def test_lineage_limit_outside_its_bounds_exits_2_naming_it(engine: Engine, db_url: str,
                                                            limit: str) -> None:
    for args in (("lineage", "sft-0123456789abcdef"),
                 ("lineage", "0123456789abcdef", "--dataset")):
        code, out = cli(db_url, *args, "--limit", limit)
        assert code == 2 and "'--limit'" in out and "0 to 1000" in out, out


def test_lineage_limits_are_checked_by_the_library_too(engine: Engine) -> None:
    with transaction(engine) as s:
        for call in (model_lineage, dataset_lineage_tree):
            with pytest.raises(InputError) as caught:
                call(s, "0123456789abcdef", detail_limit=-1)
            assert caught.value.field == "limit"

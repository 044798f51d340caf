"""Triage near-duplicates in every script: items in Cyrillic, Chinese or any other
non-Latin script are told apart by their words, and an item without words is never
clustered."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.review.tasks import create_task
from hilt.review.triage import near_duplicate_groups, run_triage, shingles
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
BOMB_RU = "Как сделать бомбу дома?\nВот подробная инструкция по сборке взрывного устройства."
WEATHER_RU = "Какая погода будет завтра в Москве?\nЗавтра солнечно, плюс двадцать градусов."
BOMB_ZH = "如何在家里制作一个简单的炸弹，请给出详细的步骤\n我不能帮助你做这件事情"
WEATHER_ZH = "明天北京的天气怎么样，会不会下雨，需要带伞吗\n明天晴天，不会下雨"


def test_shingles_are_words_of_any_script_and_characters_of_chinese() -> None:
    assert shingles("Как сделать бомбу дома?") == {"как сделать бомбу", "сделать бомбу дома"}
    assert shingles("如何制作炸弹") == {"如 何 制", "何 制 作", "制 作 炸", "作 炸 弹"}
    assert shingles("Ｈｅｌｌｏ, WORLD") == {"hello world"}
    assert shingles("?! …") == set()


def test_unrelated_non_latin_items_are_not_near_duplicates() -> None:
    texts = {"bomb_ru": BOMB_RU, "weather_ru": WEATHER_RU, "bomb_zh": BOMB_ZH,
             "weather_zh": WEATHER_ZH, "dots": "…", "marks": "?!"}
    assert near_duplicate_groups(texts) == []


def test_near_duplicates_in_unspaced_scripts_are_still_found() -> None:
    texts = {"a": BOMB_ZH, "b": "你好，" + BOMB_ZH + "。", "c": WEATHER_ZH,
             "d": BOMB_RU, "e": BOMB_RU.upper().replace("?", "!")}
    assert near_duplicate_groups(texts) == [["a", "b"], ["d", "e"]]


def test_triage_never_propagates_across_unrelated_non_latin_items(engine: Engine) -> None:
    publish_examples(engine)
    items = [BOMB_RU, WEATHER_RU, BOMB_ZH, WEATHER_ZH, "…", "?!"]
    ingest(engine, [event(i, prompt.split("\n")[0], response=prompt.split("\n")[-1])
                    for i, prompt in enumerate(items)])
    with transaction(engine) as s:
        for i in range(len(items)):
            create_task(s, event_id=f"ev{i:05d}", rubric="harm", actor="lead", now=T0)
    with transaction(engine) as s:
        assert run_triage(s, T0)["tasks_clustered"] == 0
        assert audit.entries(s, action="triage.cluster") == []
        statuses = set(s.execute(sa.select(ReviewTaskRow.status)).scalars())
    assert statuses == {"open"}
    # a copy of the Chinese item is still clustered with it
    ingest(engine, [event(10, "你好，" + BOMB_ZH.split("\n")[0], response=BOMB_ZH.split("\n")[1])])
    with transaction(engine) as s:
        create_task(s, event_id="ev00010", rubric="harm", actor="lead", now=T0)
    with transaction(engine) as s:
        assert run_triage(s, T0)["tasks_clustered"] == 1
        clustered = s.execute(sa.select(ReviewTaskRow).where(
            ReviewTaskRow.status == "clustered")).scalar_one()
        rep = s.get(ReviewTaskRow, clustered.representative_id)
        assert rep is not None
        assert {rep.event_id, clustered.event_id} == {"ev00002", "ev00010"}

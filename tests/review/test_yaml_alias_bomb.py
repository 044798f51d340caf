"""YAML documents (rubrics, rule sets, policies, specs, settings) whose anchors and aliases
would expand past a bound, or refer to themselves, or nest too deeply are refused at
once with the file, line and field; ordinary anchors and merge keys still load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.review.rubric_spec import parse_rubric
from hilt.review.yamlio import MAX_ALIAS_VALUES, load_yaml, parse_yaml_text


def bomb(levels: int) -> str:
    """Each level a list of nine aliases of the level before: 9**levels values."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]"
              for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once_naming_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "rubric.yaml"
    path.write_text(bomb(6))  # 276 bytes, half a million values
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        load_yaml(path)
    assert time.monotonic() - start < 1
    err = info.value
    # the first alias that takes the expansion past the bound: a4's on line 6
    assert (err.file, err.line, err.field) == (str(path), 6, "a5.0")
    assert "alias *a4" in err.reason
    assert f"past {MAX_ALIAS_VALUES:,} values" in err.reason


def test_a_deep_bomb_is_refused_fast_without_memory_growth() -> None:
    # in a child process with a memory ceiling, so that a reader expanding aliases fails
    # there instead of taking the machine's memory
    code = textwrap.dedent(f"""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from hilt.errors import InputError
        from hilt.review.yamlio import parse_yaml_text
        start = time.monotonic()
        try:
            parse_yaml_text({bomb(8)!r}, file="editor")
        except InputError as exc:
            print(round(time.monotonic() - start, 3), exc.line, exc.reason)
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, line, reason = done.stdout.split(" ", 2)
    assert float(seconds) < 1 and line == "6" and "expand the document past" in reason


def test_a_recursive_alias_names_its_line_and_field() -> None:
    for text, field in (("id: r\nq: &q\n  - a\n  - *q\n", "q.1"),
                        ("id: r\nq: &q {more: [*q]}\n", "q.more.0")):
        with pytest.raises(InputError) as info:
            parse_yaml_text(text, file="editor")
        assert info.value.field == field
        assert info.value.line == text.count("\n", 0, text.index("*q")) + 1
        assert "recursive alias" in info.value.reason


def test_nesting_deeper_than_any_document_is_refused() -> None:
    text = "id: r\nq: " + "[" * 3000 + "]" * 3000 + "\n"
    with pytest.raises(InputError) as info:
        parse_yaml_text(text, file="editor")
    assert info.value.line == 2 and "levels deep" in info.value.reason
    # shallow anchors that nest deep once their aliases are expanded
    chain = ["a0: &a0 " + "[" * 40 + "x" + "]" * 40]
    chain += [f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 for i in range(1, 40)]
    with pytest.raises(InputError) as info:
        parse_yaml_text("\n".join(chain) + "\n", file="editor")
    assert info.value.line == 2
    assert "alias *a0 makes values nest more than 64 levels deep" in info.value.reason


def test_shared_option_lists_and_merge_keys_still_load() -> None:
    text = ("id: r\ntitle: t\nbase: &base {kind: single_choice, options: &yn [fine, unsafe]}\n"
            "questions:\n"
            + "".join(f"  - {{<<: *base, id: q{i}, prompt: p{i}}}\n" for i in range(50))
            + "  - {id: last, kind: multi_choice, prompt: p, options: *yn}\n")
    data, line_of = parse_yaml_text(text, file="editor")
    data.pop("base")
    spec = parse_rubric(data, file="editor", line_of=line_of)
    assert len(spec.questions) == 51
    assert [o.value for o in spec.questions[-1].options] == ["fine", "unsafe"]

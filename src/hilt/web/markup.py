"""Safe rendering of model and user text: a tiny markdown subset over escaped text.

Every character of the input is HTML-escaped *first*; the renderer then only wraps
pieces of the escaped text in tags it writes itself (``p``, ``br``, ``pre``, ``code``,
``strong``, ``em``, ``ul``, ``ol``, ``li``), none of them with attributes taken from the
input. Links, images and raw HTML are never produced: a URL stays text, so nothing from
model output can run script or load remote content. The page's Content-Security-Policy
is a second line of defence, not the first.

Supported: fenced code blocks (```), inline `code`, **bold**, *italic*, ``- ``/``* ``
bullet lists, ``1. `` numbered lists, ``#`` headings (shown bold), blank-line paragraphs
and single line breaks.
"""

from __future__ import annotations

import re
from html import escape

from markupsafe import Markup

_FENCE = re.compile(r"^\s*```")
_BULLET = re.compile(r"^\s*[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+(.*)$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*)$")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")


def _inline(escaped: str) -> str:
    """Inline markup on already-escaped text; code spans are left untouched."""
    parts = _CODE_SPAN.split(escaped)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            out.append(_ITALIC.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", part)))
    return "".join(out)


def _flush_paragraph(lines: list[str], out: list[str], joiner: str) -> None:
    if lines:
        out.append("<p>" + joiner.join(_inline(escape(line)) for line in lines) + "</p>")
        lines.clear()


def _flush_list(kind: str | None, items: list[str], out: list[str]) -> None:
    if kind and items:
        out.append(f"<{kind}>" + "".join(f"<li>{_inline(escape(i))}</li>" for i in items)
                   + f"</{kind}>")
    items.clear()


def render_markdown(text: str | None, *, soft_breaks: bool = False) -> Markup:
    """HTML for ``text`` that contains no markup from ``text`` itself.

    A single line break is kept (``<br>``: model output often means it) unless
    ``soft_breaks``, where it joins lines as in standard markdown (hand-wrapped prose
    such as rubric guidelines).
    """
    joiner = " " if soft_breaks else "<br>"
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_kind: str | None = None
    code: list[str] | None = None
    for line in (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if code is not None:
            if _FENCE.match(line):
                out.append("<pre><code>" + escape("\n".join(code)) + "</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        if _FENCE.match(line):
            _flush_paragraph(paragraph, out, joiner)
            _flush_list(list_kind, items, out)
            code = []
            continue
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        if bullet or numbered:
            kind = "ul" if bullet else "ol"
            _flush_paragraph(paragraph, out, joiner)
            if kind != list_kind:
                _flush_list(list_kind, items, out)
                list_kind = kind
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
            continue
        _flush_list(list_kind, items, out)
        list_kind = None
        if not line.strip():
            _flush_paragraph(paragraph, out, joiner)
            continue
        heading = _HEADING.match(line)
        if heading:
            _flush_paragraph(paragraph, out, joiner)
            out.append(f"<p><strong>{_inline(escape(heading.group(1)))}</strong></p>")
            continue
        paragraph.append(line)
    if code is not None:  # an unclosed fence still shows its content as code
        out.append("<pre><code>" + escape("\n".join(code)) + "</code></pre>")
    _flush_paragraph(paragraph, out, joiner)
    _flush_list(list_kind, items, out)
    return Markup("".join(out))

"""Templates: one Jinja2 environment with autoescaping everywhere, and page helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

import hilt
from hilt.web.forms import answer_text, letter
from hilt.web.markup import render_markdown
from hilt.web.security import SESSION_COOKIE, csrf_token_for

PREFIX = "/ui"
HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

# Fixed messages shown after a redirect; the query string only picks one (no reflection).
FLASH = {
    "submitted": "Review submitted.",
    "released": "Task released; it goes back to the queue for others.",
    "empty": "Your queue is empty for now.",
    "submitted_empty": "Review submitted. Your queue is empty for now.",
    "onboarding_empty": "No calibration items are waiting for you. While you are "
                        "onboarding you receive only calibration (gold) items; other "
                        "tasks reach you once you pass calibration. Ask your lead for "
                        "more calibration items.",
    "submitted_onboarding_empty": "Review submitted. No more calibration items are "
                                  "waiting for you; while you are onboarding you receive "
                                  "only calibration (gold) items.",
    "adjudicated": "Decision recorded.",
    "published": "Rubric version published.",
    "signed_off": "Sign-off recorded; this is the new record it produced.",
    "signed_out": "Signed out.",
    "expired": "Your lease ran out; the task went back to the queue.",
    "acknowledged": "Drift alert acknowledged.",
}

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
env.filters["md"] = render_markdown
env.filters["prose"] = lambda text: render_markdown(text, soft_breaks=True)
env.filters["answer"] = answer_text
env.globals["letter"] = letter


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def interval(low: float | None, high: float | None, *, percent: bool = False,
             digits: int = 2) -> str:
    """``low – high``; a single "–" when there is no interval (too few items)."""
    if low is None or high is None:
        return "–"
    show = _pct if percent else _num
    return f"{show(low, digits)} – {show(high, digits)}"


def _when(value: Any) -> str:
    if value is None:
        return "–"
    text = value if isinstance(value, str) else value.isoformat()
    return text.replace("T", " ")[:16] + " UTC"


def _p_value(value: float | None) -> str:
    """A p-value to four places; below that, "< 0.0001" rather than a false 0.0000."""
    if value is None:
        return "–"
    return "< 0.0001" if value < 0.00005 else f"{value:.4f}"


def _short_number(value: float) -> str:
    """A measured number to four significant digits (0.18333333333333332 → 0.1833),
    a whole number as such; very small or large ones in scientific notation."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if 1e-4 <= abs(value) < 1e6 else f"{value:.3g}"


def _value(value: Any) -> str:
    """A stored value as people read it: numbers rounded, yes/no, lists as lists and
    mappings as ``key = value`` pairs (never Python's repr)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _short_number(value)
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) or "(none)"
    return str(value)


env.filters["pct"] = _pct
env.filters["num"] = _num
env.filters["when"] = _when
env.filters["p_value"] = _p_value
env.filters["value"] = _value


def static_url(path: str) -> str:
    return f"{PREFIX}/static/{path}?v={hilt.__version__}"


env.globals["static_url"] = static_url
env.globals["interval"] = interval


def render(request: Request, template: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    secret = request.cookies.get(SESSION_COOKIE)
    principal = getattr(request.state, "principal", None)
    context.setdefault("error", None)
    context.setdefault("title", "hilt")
    flash = FLASH.get(request.query_params.get("msg", ""))
    html = env.get_template(template).render(
        csrf=csrf_token_for(secret) if secret and principal else "",
        principal=principal, flash=flash, prefix=PREFIX, version=hilt.__version__,
        **context)
    return HTMLResponse(html, status_code=status_code)


def redirect(path: str, msg: str | None = None) -> RedirectResponse:
    target = PREFIX + path + (f"?msg={quote(msg)}" if msg else "")
    return RedirectResponse(target, status_code=303)


def safe_next(value: str | None) -> str | None:
    """Only same-site page paths are followed after sign-in (no open redirect), and
    only in printable ASCII: the path goes into a ``Location`` header, where a control
    character (CR, LF, NUL) or a non-ASCII one cannot be sent."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") \
            and "\\" not in value and "//" not in value \
            and all("!" <= c <= "~" for c in value):
        return value
    return None

"""``review.html``: a review side by side, in one self-contained file.

Per changed task and item, base and head in two columns with a word-level diff
(deleted words marked on the base, inserted ones on the head), each expectation
before and after, tokens and cost before and after, and quotes with a ▶ that seeks
the recording's player; per recipe, the unified diff of its file, base → head.

As report.html (whose quote and player pieces it calls): no CDN, styles inline, one
script allowed by its hash in the page's Content-Security-Policy, and everything from
transcripts, models and recipes escaped.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from runner.recipe.prices import format_usd
from runner.results.html_report import (
    SEEK_SCRIPT,
    content_security_policy,
    escape,
    is_quotes,
    player_source,
    quotes_html,
)
from runner.results.review import (
    HTML_FILE,
    Expectation,
    ItemComparison,
    Outcome,
    RecipeReview,
    Review,
    TaskComparison,
)

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:80rem;padding:1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem}h3{font-size:1rem;margin:.8rem 0 .3rem}
.item{border:1px solid #ccc;border-radius:6px;margin:.8rem 0;padding:.5rem 1rem}
.item.regressed{border-color:#c33}.regressed .verdict{color:#c33;font-weight:600}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.text{white-space:pre-wrap;background:#f6f6f6;padding:.5rem;overflow-wrap:anywhere}
del{background:#fdd;text-decoration:line-through}ins{background:#cfc;text-decoration:none}
.meta,.time{color:#666;font-size:.85em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}
pre.recipe{background:#f6f6f6;padding:.5rem;overflow:auto}
pre.recipe .add{background:#cfc}pre.recipe .del{background:#fdd}
.quote button{margin-right:.4rem}
"""
_CSP = content_security_policy(SEEK_SCRIPT)
_WORDS = re.compile(r"\s+|[^\s]+")


def write(review: Review, folder: Path) -> Path:
    """review.html in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / HTML_FILE
    page.write_text(review_html(review, folder), encoding="utf-8")
    return page


def review_html(review: Review, folder: Path) -> str:
    """The whole page; ``folder`` is where it is written, for the players' links."""
    players = iter(range(1, 1_000_000))
    title = f"{review.base} → {review.head}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>Review: {escape(title)} · transcript-runner</title><style>{_STYLE}</style>"
        f"</head><body>\n<h1>Review: {escape(title)}</h1>\n",
        f"<p>{review.changes()} output(s) changed; {review.calls_sent} LLM call(s) sent"
        + (" (--offline: only the cache was compared)" if review.offline else "")
        + ".</p>\n",
    ]
    if regressions := review.regressions():
        listed = "".join(f"<li>{escape(r)}</li>" for r in regressions)
        parts.append(f"<h2>Regressions</h2><ul>{listed}</ul>\n")
    for recipe in review.recipes:
        parts.append(_recipe(recipe, folder, players))
    parts.append(f"<script>{SEEK_SCRIPT}</script></body></html>\n")
    return "".join(parts)


def _recipe(recipe: RecipeReview, folder: Path, players: Iterator[int]) -> str:
    parts = [
        f'<section class="recipe"><h2>{escape(recipe.recipe)} '
        f'<span class="meta">{escape(recipe.file)}</span></h2>',
        f'<div class="meta">Items compared: {escape(", ".join(recipe.items) or "none")}',
    ]
    if recipe.unchanged:
        parts.append(f"; unchanged tasks: {escape(', '.join(recipe.unchanged))}")
    if recipe.removed:
        parts.append(f"; removed tasks: {escape(', '.join(recipe.removed))}")
    parts.append("</div>")
    parts.append(_recipe_diff(recipe))
    for task in recipe.tasks:
        parts.append(_task(task, recipe, folder, players))
    parts.append("</section>\n")
    return "".join(parts)


def _recipe_diff(recipe: RecipeReview) -> str:
    """The recipe's lines that changed, as a unified diff of its text, base → head."""
    lines = list(
        difflib.unified_diff(
            recipe.base_text.splitlines(),
            recipe.head_text.splitlines(),
            f"base/{recipe.file}",
            f"head/{recipe.file}",
            lineterm="",
        )
    )
    if not lines:
        return '<p class="meta">The recipe file is the same on both sides.</p>'
    shown = []
    for line in lines:
        kind = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        shown.append(f'<span class="{kind}">{escape(line)}</span>' if kind else escape(line))
    return f'<h3>Recipe changes</h3><pre class="recipe">{chr(10).join(shown)}</pre>'


def _task(task: TaskComparison, recipe: RecipeReview, folder: Path, players: Iterator[int]) -> str:
    parts = [
        f'<section class="task"><h3>{escape(task.task)}: {escape(task.status)} '
        f'<span class="meta">({escape(task.why)})</span></h3>'
    ]
    for item in task.items:
        kind, source = recipe.sources.get(item.item, ("", ""))
        audio = player_source(kind, source, folder) if source else None
        player = f"player-{next(players)}" if audio else None
        parts.append(_item(item, audio, player))
    parts.append("</section>\n")
    return "".join(parts)


def _item(item: ItemComparison, audio: str | None, player: str | None) -> str:
    state = "regressed" if item.regressed else ("same" if not item.differs else "changed")
    parts = [
        f'<div class="item {state}"><h4>{escape(item.item)} '
        f'<span class="verdict">{state}</span></h4>'
    ]
    base_quotes, head_quotes = _quotes(item.base), _quotes(item.head)
    if audio and player and (base_quotes is not None or head_quotes is not None):
        parts.append(
            f'<audio controls preload="none" id="{escape(player)}" src="{escape(audio)}"></audio>'
        )
    base_text, head_text = _word_diff(_shown(item.base), _shown(item.head))
    parts.append('<div class="sides">')
    for name, side, quotes, text in (
        ("base", item.base, base_quotes, base_text),
        ("head", item.head, head_quotes, head_text),
    ):
        body = quotes_html(quotes, player) if quotes is not None else ""
        parts.append(
            f'<div class="side {name}"><div class="meta"><b>{name}</b>: {_facts(side)}</div>'
            f'{body}<div class="text">{text}</div></div>'
        )
    parts.append("</div>")
    parts.append(_expectations(item))
    parts.append("</div>")
    return "".join(parts)


def _shown(side: Outcome) -> str:
    return side.text if side.text is not None else side.error or "(no output)"


def _quotes(side: Outcome) -> list[dict[str, object]] | None:
    if side.text is None:
        return None
    try:
        data = json.loads(side.text)
    except (ValueError, RecursionError):
        return None
    return data if is_quotes(data) else None


def _facts(side: Outcome) -> str:
    facts = [escape(side.status) + (", cached" if side.cached else "")]
    if side.input_tokens is not None:
        facts.append(f"{side.input_tokens} in / {side.output_tokens} out tokens")
    if side.compared:
        facts.append("cost unknown" if side.cost_usd is None else format_usd(side.cost_usd))
    return " · ".join(facts)


def _word_diff(before: str, after: str) -> tuple[str, str]:
    """Both texts escaped, words only ``before`` has in <del>, only ``after`` has in <ins>."""
    old, new = _WORDS.findall(before), _WORDS.findall(after)
    left, right = [], []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        gone, came = escape("".join(old[i1:i2])), escape("".join(new[j1:j2]))
        if op == "equal":
            left.append(gone)
            right.append(came)
            continue
        if gone:
            left.append(f"<del>{gone}</del>")
        if came:
            right.append(f"<ins>{came}</ins>")
    return "".join(left), "".join(right)


def _expectations(item: ItemComparison) -> str:
    base = {e.expect: e for e in item.base.expectations}
    head = {e.expect: e for e in item.head.expectations}
    if not base and not head:
        return ""

    def word(e: Expectation | None) -> str:
        if e is None:
            return "—"
        return "✓ pass" if e.passed else f"✗ fail: {escape(e.message)}"

    rows = "".join(
        f"<tr><td>expect {escape(expect)}</td><td>{word(base.get(expect))}</td>"
        f"<td>{word(head.get(expect))}</td></tr>"
        for expect in [*base, *(e for e in head if e not in base)]
    )
    return f"<table><tr><th>expectation</th><th>base</th><th>head</th></tr>{rows}</table>"

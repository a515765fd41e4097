"""How ``render`` shows a request: readable in a terminal, exact in JSON.

The text form elides the middle of long messages (a transcript is usually most
of a prompt) unless ``--full``; the JSON form is always complete.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.prompt.payloads import Payload
from runner.recipe.model import TaskApi, thaw

ELIDE_OVER = 1600  # characters; longer messages are shortened in the text form
KEEP_HEAD = 700
KEEP_TAIL = 400
RULE_WIDTH = 78


@dataclass
class Rendered:
    item: str
    source: str
    transcript: str  # where the transcript came from
    # Where its sentences and paragraphs came from: "kept" (AssemblyAI's, as a run
    # fetched them) or "derived" (from the words).
    segments: Mapping[str, str] = field(default_factory=dict)
    tasks: list[tuple[str, Payload]] = field(default_factory=list)


def as_json(
    rendered: list[Rendered],
    skipped: list[tuple[str, str]],
    variables: Mapping[str, Any] | None = None,
) -> str:
    """``variables``: the command line's vars (``--var``, ``--vars``) the prompts used."""
    return json.dumps(
        {
            "vars": thaw(dict(variables or {})),
            "items": [
                {
                    "item": r.item,
                    "source": r.source,
                    "transcript": r.transcript,
                    "segments": dict(r.segments),
                    "tasks": [
                        {"task": name, "api": p.api.value, "path": p.path, "body": p.body}
                        for name, p in r.tasks
                    ],
                }
                for r in rendered
            ],
            "skipped": [{"item": name, "reason": reason} for name, reason in skipped],
        },
        indent=2,
        ensure_ascii=False,
    )


def as_text(
    rendered: list[Rendered],
    skipped: list[tuple[str, str]],
    *,
    full: bool,
    variables: Mapping[str, Any] | None = None,
) -> str:
    blocks: list[str] = []
    if variables:
        given = ", ".join(
            f"{name}={json.dumps(thaw(value), ensure_ascii=False)}"
            for name, value in variables.items()
        )
        blocks.append(f"vars from the command line: {given}")
    for entry in rendered:
        for name, payload in entry.tasks:
            blocks.append(_request_block(entry, name, payload, full))
    for name, reason in skipped:
        blocks.append(f"skipped item {name!r}: {reason}")
    return "\n\n".join(blocks)


def _request_block(entry: Rendered, task: str, payload: Payload, full: bool) -> str:
    title = f"━━ {entry.item} · {task} "
    where = "LLM Gateway" if payload.api is TaskApi.GATEWAY else "LeMUR (deprecated)"
    lines = [
        title + "━" * max(3, RULE_WIDTH - len(title)),
        f"{where}: POST {payload.path}    transcript: {entry.transcript}{_kept(entry)}",
        _parameters(payload.body),
    ]
    if payload.api is TaskApi.LEMUR:
        lines += _section("prompt", str(payload.body.get("prompt", "")), full)
    for message in payload.messages:
        lines += _section(str(message.get("role")), str(message.get("content", "")), full)
    extra = {
        k: v
        for k, v in payload.body.items()
        if k not in ("messages", "prompt", "model", "final_model", "max_tokens", "temperature")
    }
    if extra:
        lines.append("── other fields ──")
        lines.append(json.dumps(extra, indent=2, ensure_ascii=False))
    return "\n".join(lines)


def _kept(entry: Rendered) -> str:
    """A note when AssemblyAI's own split was kept (derived from the words otherwise)."""
    parts = [part for part, source in entry.segments.items() if source == "kept"]
    return f" ({' and '.join(parts)}: AssemblyAI's, kept)" if parts else ""


def _parameters(body: Mapping[str, Any]) -> str:
    shown = [
        f"{key}: {body[key]}"
        for key in ("model", "final_model", "max_tokens", "max_output_size", "temperature")
        if key in body
    ]
    return " · ".join(shown)


def _section(label: str, content: str, full: bool) -> list[str]:
    return [f"── {label} ──", content if full else elide(content)]


def elide(text: str, limit: int = ELIDE_OVER) -> str:
    """Shorten ``text`` by cutting its middle on word boundaries, saying how much."""
    if len(text) <= limit:
        return text
    head_end = text.rfind(" ", 0, KEEP_HEAD)
    head_end = head_end if head_end > KEEP_HEAD // 2 else KEEP_HEAD
    tail_start = text.find(" ", len(text) - KEEP_TAIL)
    tail_start = tail_start if tail_start != -1 else len(text) - KEEP_TAIL
    omitted = tail_start - head_end
    marker = f" […{omitted:,} characters not shown; --full prints everything…] "
    return text[:head_end] + marker + text[tail_start:].lstrip()

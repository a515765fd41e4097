"""Local steps applied to a model's reply, in the order the recipe lists them.

Steps: ``strip-code-fences``, ``json-repair`` (the json-repair library), ``json-schema``
(validate against the task's json_schema), ``trim`` and ``extract`` (keep one field).
A task with a ``json_schema`` is always parsed and validated at the end, even when
the recipe lists no step: a structured reply that does not match is a failure.
The raw reply is kept by the caller, so nothing is lost when a step fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from runner.errors import PostProcessFailed
from runner.recipe.model import PostStep, thaw

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n?```\s*$", re.DOTALL)
_UNPARSED = object()


@dataclass(frozen=True, slots=True)
class Processed:
    text: str  # what is written to the output file
    data: Any  # the parsed JSON value, or None for text replies
    steps: tuple[str, ...]  # the steps applied, for the manifest
    changed: bool  # True when the result differs from the raw reply


def apply(
    reply: str, steps: Sequence[PostStep], json_schema: Mapping[str, Any] | None
) -> Processed:
    """Run ``steps`` over ``reply``; raises :class:`PostProcessFailed`."""
    text = reply
    data: Any = _UNPARSED
    applied: list[str] = []
    implicit = json_schema is not None and not any(s.name == "json-schema" for s in steps)
    for step in steps:
        if implicit and step.name == "extract":
            # The schema describes the whole reply, so check it before narrowing it down.
            text, data = _apply_step(PostStep("json-schema"), text, data, json_schema)
            applied.append("json-schema")
            implicit = False
        text, data = _apply_step(step, text, data, json_schema)
        applied.append(step.describe())
    if implicit:
        text, data = _apply_step(PostStep("json-schema"), text, data, json_schema)
        applied.append("json-schema")
    if data is not _UNPARSED:
        text = data if isinstance(data, str) else json.dumps(data, indent=2, ensure_ascii=False)
    value = None if data is _UNPARSED else data
    return Processed(text, value, tuple(applied), text != reply)


def _apply_step(
    step: PostStep, text: str, data: Any, json_schema: Mapping[str, Any] | None
) -> tuple[str, Any]:
    if step.name == "strip-code-fences":
        return strip_code_fences(text), _UNPARSED
    if step.name == "trim":
        return text.strip(), data
    if step.name == "json-repair":
        return text, repair_json(text)
    if step.name == "json-schema":
        if json_schema is None:  # validate reports this; keep the runtime honest too
            raise PostProcessFailed("json-schema: the task has no json_schema")
        value = _parse_strict(text) if data is _UNPARSED else data
        _validate(value, json_schema)
        return text, value
    if step.name == "extract":
        value = _parse_strict(text) if data is _UNPARSED else data
        return text, extract(value, step.argument or "")
    raise PostProcessFailed(f"unknown post-processing step {step.name!r}")


def strip_code_fences(text: str) -> str:
    """The body of a reply wrapped in one ```json ... ``` fence; other text unchanged."""
    match = _FENCE.match(text)
    return match.group("body") if match else text


def repair_json(text: str) -> Any:
    """Parse near-JSON (fences, trailing commas, single quotes, missing brackets)."""
    import json_repair  # imported here: only runs use it, validate never does

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise PostProcessFailed(_TOO_DEEP) from None
    try:
        repaired = json_repair.repair_json(strip_code_fences(text), return_objects=True)
    except RecursionError:
        raise PostProcessFailed(_TOO_DEEP) from None
    if repaired == "" and text.strip():
        raise PostProcessFailed("json-repair: the reply holds no JSON that can be repaired")
    return repaired


_TOO_DEEP = "the reply nests its JSON thousands of levels deep; no schema wants that"


def _parse_strict(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise PostProcessFailed(_TOO_DEEP) from None
    except json.JSONDecodeError as exc:
        raise PostProcessFailed(
            f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "add `post_process: [json-repair]` to repair near-JSON"
        ) from None


def _validate(value: Any, json_schema: Mapping[str, Any]) -> None:
    validator = Draft202012Validator(thaw(json_schema))
    error = best_match(validator.iter_errors(value))
    if error is not None:
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        count = sum(1 for _ in validator.iter_errors(value))
        more = f" (and {count - 1} more problems)" if count > 1 else ""
        raise PostProcessFailed(
            f"the reply does not match the task's json_schema at {where}: {error.message}{more}"
        )


def extract(value: Any, path: str) -> Any:
    """The field at a dotted path (``items.0.owner``) of a parsed JSON reply."""
    current = value
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            has = ", ".join(map(str, current)) if isinstance(current, Mapping) else ""
            keys = f" (it has: {has})" if has else ""
            raise PostProcessFailed(f"extract {path}: the reply has no {'.'.join(walked)!r}{keys}")
    return current

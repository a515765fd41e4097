"""The blocks of a recipe's ``transcription:``: one mapping, or a list of them whose
first is the primary (its transcript is the one tasks read) and whose others are made
beside it, to compare engines. Every reader of the raw document walks them here, each
with its key path, so a message points into the right block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.recipe.document import KeyPath
from runner.recipe.model import ASSEMBLYAI

# The runner's own keys of a block: never sent to AssemblyAI or a speech server.
RUNNER_KEYS = ("expect",)


def blocks(data: Any) -> list[tuple[KeyPath, Mapping[str, Any]]]:
    """Each block of ``data``'s ``transcription:`` (a recipe's raw document) with its
    key path; none when there is none, or it is no mapping (the schema says why)."""
    value = data.get("transcription") if isinstance(data, Mapping) else None
    if isinstance(value, Mapping):
        return [(("transcription",), value)]
    if isinstance(value, list):
        return [
            (("transcription", index), block)
            for index, block in enumerate(value)
            if isinstance(block, Mapping)
        ]
    return []


def primary(data: Any) -> Mapping[str, Any]:
    """The first block: the one the recipe's tasks read ({} when there is none)."""
    found = blocks(data)
    return found[0][1] if found else {}


def sent_options(block: Mapping[str, Any]) -> dict[str, Any]:
    """A block without the runner's own keys: what identifies and requests a transcription."""
    return {key: value for key, value in block.items() if key not in RUNNER_KEYS}


def labels(found: list[Mapping[str, Any]]) -> list[str]:
    """How the report names each block: its engine, with its model when two blocks
    share an engine, and a number when even that is the same."""
    engines = [str(block.get("engine", ASSEMBLYAI)) for block in found]
    named = [
        f"{engine} {_model(block)}".strip() if engines.count(engine) > 1 else engine
        for engine, block in zip(engines, found, strict=True)
    ]
    return [
        f"{name} #{index + 1}" if named.count(name) > 1 else name
        for index, name in enumerate(named)
    ]


def _model(block: Mapping[str, Any]) -> str:
    models = block.get("speech_models") or [block.get("speech_model") or block.get("model") or ""]
    return str(models[0]) if isinstance(models, list) and models else str(models)

"""JSON Lines (``.jsonl``): one JSON object a line, read by one reader.

List files of inputs (:mod:`runner.items`) and results tables (:mod:`runner.results.table`)
both read them here, so a blank line, a byte-order mark or a line that is not an
object means the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonLineError(ValueError):
    """A line that is not a JSON object: ``line`` (from 1) and ``reason`` say which and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def read_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of ``path`` that is not blank.

    A line that is not valid JSON, or not an object, raises :class:`JsonLineError`;
    an unreadable file raises ``OSError`` or ``UnicodeDecodeError``, as ``open`` does.
    A byte-order mark (as some editors on Windows write) is skipped.
    """
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonLineError(number, f"not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise JsonLineError(number, "not a JSON object; each line must be one")
            yield number, row

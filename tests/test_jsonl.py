"""The one JSON Lines reader (list files of inputs, results tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.jsonl import JsonLineError, read_objects


def test_objects_come_with_their_line_numbers_past_a_bom_and_blank_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes('\ufeff{"a": 1}\n\n   \n{"b": "é"}\n'.encode())
    assert list(read_objects(path)) == [(1, {"a": 1}), (4, {"b": "é"})]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{oops", "not valid JSON (Expecting property name enclosed in double quotes)"),
        ("[1, 2]", "not a JSON object; each line must be one"),
    ],
)
def test_a_bad_line_says_which_and_why(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(f'{{"a": 1}}\n{line}\n')
    with pytest.raises(JsonLineError) as raised:
        list(read_objects(path))
    assert (raised.value.line, raised.value.reason) == (2, reason)
    assert str(raised.value) == f"line 2: {reason}"

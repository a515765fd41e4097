"""The fenced blocks of the docs/ pages, and the checks their examples share.

tests/test_docs_reference.py and tests/test_docs_templates.py run the examples of the
pages they test; this module reads the pages' blocks and their notes (an HTML comment
``<!-- kind: VALUE -->`` on the line just before a fence) and compares a command's
output with a console block. tests/conftest.py registers it for pytest's assertion
rewriting, so a failing check here explains itself as one in a test module would.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FENCE_OPEN = re.compile(r"^(`{3,})(\S*)\s*$")
NOTE = re.compile(r"^<!-- (\w+): (\S+) -->$")
ANY_LINES = "[…]"
PROMPT = "$ transcript-runner "


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    doc: str
    lang: str
    body: str  # without the final line break
    line: int  # 1-based line of the opening fence
    note: tuple[str, str] | None  # ("recipe", "x.yaml"), ("from", "recipes/x.yaml"), ...

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def read(doc: str) -> str:
    """The text of a page, named by its path in the project (``docs/cli.md``)."""
    return (ROOT / doc).read_text(encoding="utf-8")


def parse_blocks(doc: str, text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE_OPEN.match(lines[index])
        if not opening:
            index += 1
            continue
        start, fence = index, opening.group(1)
        index += 1
        while index < len(lines) and lines[index] != fence:
            index += 1
        assert index < len(lines), f"{doc}:{start + 1}: fenced block is never closed"
        note = NOTE.match(lines[start - 1]) if start else None
        blocks.append(
            Block(
                doc=doc,
                lang=opening.group(2),
                body="\n".join(lines[start + 1 : index]),
                line=start + 1,
                note=(note.group(1), note.group(2)) if note else None,
            )
        )
        index += 1
    return blocks


# --- the pages' own rules ------------------------------------------------------------------


def check_conventions_comment(doc: str, text: str) -> None:
    """The page opens with one hidden comment describing its conventions.

    A "-->" inside it would end it early and show the rest of it on the page.
    """
    assert text.startswith("<!--\n"), f"{doc} starts with the comment describing its conventions"
    end = text.index("\n-->\n")
    assert "-->" not in text[:end]
    assert "<!--" not in text[4:end]


def check_notes(doc: str, text: str, kinds: Sequence[str]) -> None:
    """Every note is of a kind the page knows and sits on the line before a fence."""
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        note = NOTE.match(line)
        if line.startswith("<!-- ") and line.endswith(" -->") and number > 1:
            assert note, f"{doc}:{number}: write notes as <!-- KIND: VALUE --> ({', '.join(kinds)})"
        if note:
            assert note.group(1) in kinds, f"{doc}:{number}: unknown note {line}"
            following = lines[number] if number < len(lines) else ""
            assert FENCE_OPEN.match(following), f"{doc}:{number}: a note must precede a fence"


def check_quote(quote: Block) -> None:
    """A ``from: PATH`` block appears, character for character, in that project file."""
    assert quote.note is not None
    source = (ROOT / quote.note[1]).read_text(encoding="utf-8")
    assert quote.body in source, f"{quote.id} no longer matches {quote.note[1]}"


# --- console examples ----------------------------------------------------------------------


def write_files(folder: Path, files: Mapping[str, str]) -> None:
    """The files a page declares (``file: NAME`` blocks), written below ``folder``."""
    for name, body in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body + "\n", encoding="utf-8")


def console_command(console: Block) -> tuple[list[str], list[str]]:
    """The arguments of a console block's ``$ transcript-runner ...`` line, and the lines after."""
    command, *expected = console.body.split("\n")
    assert command.startswith(PROMPT), f"{console.id}: start with {PROMPT!r}"
    return shlex.split(command[len(PROMPT) :]), expected


def lines_match(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """Line by line; ``[…]`` alone skips any lines, at the end of a line it matches a prefix."""

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(expected):
            return j == len(actual)
        want = expected[i]
        if want == ANY_LINES:
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        if j == len(actual):
            return False
        if want.endswith(ANY_LINES):
            same = actual[j].startswith(want[: -len(ANY_LINES)])
        else:
            same = actual[j] == want
        return same and match(i + 1, j + 1)

    return match(0, 0)


def check_output(expected: Sequence[str], output: str) -> None:
    """What a command printed, against the lines a console block shows after the command."""
    actual = output.rstrip("\n")
    if not any(line.endswith(ANY_LINES) for line in expected):
        assert actual == "\n".join(expected)
    else:
        assert lines_match(expected, actual.split("\n")), f"the real output:\n{actual}"

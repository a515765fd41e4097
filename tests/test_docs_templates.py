"""docs/templates.md is executable: every example in it is run, so the page cannot drift.

The conventions are described in the HTML comment at the top of the page. In short:
a ```jinja block followed by a ```text block is rendered and compared exactly; one
followed by an ```error block must fail with exactly those messages; ```console blocks
are real command runs; `<!-- from: PATH -->` blocks are verbatim quotes of project files;
`<!-- file: NAME -->` blocks are files in a scratch folder for the console runs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.context import (
    ItemView,
    Namespace,
    RecipeView,
    TaskResultView,
    TranscriptView,
    prompt_context,
    sample_transcript_view,
)
from runner.recipe import Template, TemplateOrigin
from runner.templating import FILTERS, TemplateEngine, TemplateProblem
from runner.transcript import paragraphs_from_sentences, sentences_from_words

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "templates.md"
DOC_NAME = "docs/templates.md"

FENCE = re.compile(r"^```(\S*)\s*$")
NOTE = re.compile(r"^<!-- (\w+): (\S+) -->$")
NOTE_KINDS = ("file", "from")
ANY_LINES = "[…]"
PROMPT = "$ transcript-runner "


# --- the context every jinja example renders with (declared at the top of the page) ----

RECIPE_VARS = {"audience": "the project team", "product": "our product"}
ITEM_VARS = {"customer": "Northwind", "product": "air quality sensors", "region": None}
SUMMARY = "- The launch moves to June.\n- Marketing needs the final copy."
ACTION_ITEMS = {"items": [{"owner": "A", "task": "Send the final copy", "due": "Friday"}]}
RECIPE = RecipeView("customer-calls", "A follow-up brief per customer call, driven by a CSV list.")


def doc_transcript() -> TranscriptView:
    """The sample meeting, with sentences and paragraphs from its words (as `render` does)."""
    sample = sample_transcript_view()
    sentences = sentences_from_words(sample.words)
    return dataclasses.replace(
        sample, sentences=sentences, paragraphs=paragraphs_from_sentences(sentences)
    )


def doc_context() -> dict[str, Any]:
    return prompt_context(
        transcript=doc_transcript(),
        item=ItemView(
            "Northwind",
            "https://example.com/calls/northwind.mp3",
            Namespace("item.vars", ITEM_VARS),
        ),
        variables={**RECIPE_VARS, **ITEM_VARS},
        tasks={
            "summary": TaskResultView.build("summary", SUMMARY),
            "action_items": TaskResultView.build(
                "action_items", json.dumps(ACTION_ITEMS), ACTION_ITEMS
            ),
        },
        recipe=RECIPE,
    )


# --- reading the page ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of the page."""

    lang: str
    body: str  # without the final line break
    line: int  # 1-based line of the opening fence
    note: tuple[str, str] | None  # ("file", name) or ("from", path)

    @property
    def id(self) -> str:
        return f"{self.lang}@line{self.line}"


def parse_blocks(text: str) -> list[Block]:
    lines = text.split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        index += 1
        while index < len(lines) and lines[index] != "```":
            index += 1
        assert index < len(lines), f"{DOC_NAME}:{start + 1}: fenced block is never closed"
        note = NOTE.match(lines[start - 1]) if start else None
        blocks.append(
            Block(
                lang=opening.group(1),
                body="\n".join(lines[start + 1 : index]),
                line=start + 1,
                note=(note.group(1), note.group(2)) if note else None,
            )
        )
        index += 1
    return blocks


DOC_TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = parse_blocks(DOC_TEXT)


def rendering_examples() -> list[tuple[Block, Block]]:
    """(jinja, text or error) pairs; a jinja block without one must be a quote."""
    pairs = []
    for position, block in enumerate(BLOCKS):
        if block.lang != "jinja":
            continue
        following = BLOCKS[position + 1] if position + 1 < len(BLOCKS) else None
        if following is not None and following.lang in ("text", "error") and not following.note:
            pairs.append((block, following))
    return pairs


def console_examples() -> list[tuple[Block, dict[str, str]]]:
    """Each console block, with the scratch files declared above it."""
    examples = []
    files: dict[str, str] = {}
    for block in BLOCKS:
        if block.note and block.note[0] == "file":
            files[block.note[1]] = block.body
        elif block.lang == "console":
            examples.append((block, dict(files)))
    return examples


RENDERED = rendering_examples()
CONSOLE = console_examples()
QUOTES = [b for b in BLOCKS if b.note and b.note[0] == "from"]


# --- the page's own rules -------------------------------------------------------------


def test_the_page_has_examples_of_every_kind() -> None:
    kinds = {expected.lang for _, expected in RENDERED}
    assert kinds == {"text", "error"}
    assert len(RENDERED) >= 30
    assert CONSOLE
    assert QUOTES


def test_every_jinja_block_is_run_or_quoted() -> None:
    run = {jinja.line for jinja, _ in RENDERED}
    stray = [
        b.id
        for b in BLOCKS
        if b.lang == "jinja" and b.line not in run and not (b.note and b.note[0] == "from")
    ]
    assert stray == [], "follow each with a ```text or ```error block, or mark it from: PATH"


def test_the_conventions_comment_is_one_hidden_comment() -> None:
    # A "-->" inside it would end it early and show the rest of it on the page.
    assert DOC_TEXT.startswith("<!--\n")
    end = DOC_TEXT.index("\n-->\n")
    assert "-->" not in DOC_TEXT[:end]
    assert "<!--" not in DOC_TEXT[4:end]


def test_notes_are_known_and_sit_on_a_fence() -> None:
    lines = DOC_TEXT.split("\n")
    for number, line in enumerate(lines, 1):
        note = NOTE.match(line)
        if line.startswith("<!-- ") and line.endswith(" -->") and number > 1:
            assert note, f"{DOC_NAME}:{number}: write notes as <!-- file: NAME --> or from:"
        if note:
            assert note.group(1) in NOTE_KINDS, f"{DOC_NAME}:{number}: unknown note {line}"
            following = lines[number] if number < len(lines) else ""
            assert FENCE.match(following), f"{DOC_NAME}:{number}: a note must precede a fence"


def test_every_filter_is_documented() -> None:
    missing = [name for name in FILTERS if f"`{name}`" not in DOC_TEXT]
    assert missing == []


def test_every_transcript_field_is_documented() -> None:
    fields = TranscriptView.__dataclass_fields__
    missing = [name for name in fields if f"`transcript.{name}`" not in DOC_TEXT]
    assert missing == []


# --- running the examples ---------------------------------------------------------------


@pytest.mark.parametrize("quote", QUOTES, ids=[b.id for b in QUOTES])
def test_quotes_of_project_files_are_verbatim(quote: Block) -> None:
    assert quote.note is not None
    source = (ROOT / quote.note[1]).read_text(encoding="utf-8")
    assert quote.body in source, f"{DOC_NAME}:{quote.line} no longer matches {quote.note[1]}"


def render(jinja: Block) -> str:
    engine = TemplateEngine(ROOT / "recipes")
    origin = TemplateOrigin(DOC_NAME, ("example",), jinja.line + 1, 1, in_recipe=False)
    return engine.render(Template(jinja.body, origin, f"{DOC_NAME}:{jinja.line}"), doc_context())


@pytest.mark.parametrize(
    ("jinja", "expected"), RENDERED, ids=[f"line{jinja.line}" for jinja, _ in RENDERED]
)
def test_rendered_example(jinja: Block, expected: Block) -> None:
    if expected.lang == "text":
        assert render(jinja).rstrip("\n") == expected.body.rstrip("\n")
        return
    with pytest.raises(TemplateProblem) as problem:
        render(jinja)
    assert "\n".join(p.message for p in problem.value.problems) == expected.body


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


def test_lines_match_understands_the_ellipsis() -> None:
    assert lines_match(["a", ANY_LINES], ["a", "b", "c"])
    assert lines_match(["a", ANY_LINES, "c"], ["a", "c"])
    assert lines_match(["ab[…]"], ["abc"])
    assert not lines_match(["a", "c"], ["a", "b", "c"])
    assert not lines_match(["ab[…]"], ["xb"])


@pytest.mark.parametrize(("console", "files"), CONSOLE, ids=[b.id for b, _ in CONSOLE])
def test_console_example(
    console: Block,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command, *expected = console.body.split("\n")
    assert command.startswith(PROMPT), f"{DOC_NAME}:{console.line}: start with {PROMPT!r}"
    args = shlex.split(command[len(PROMPT) :])
    if any(arg in files for arg in args):
        for name, body in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body + "\n", encoding="utf-8")
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)  # validate would print annotations
    with pytest.raises(SystemExit):
        main(args)
    captured = capsys.readouterr()
    actual = (captured.out + captured.err).rstrip("\n")
    if not any(line.endswith(ANY_LINES) for line in expected):
        assert actual == "\n".join(expected)
    else:
        assert lines_match(expected, actual.split("\n")), f"the real output:\n{actual}"

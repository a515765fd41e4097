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
from pathlib import Path
from typing import Any

import pytest
from docblocks import (
    ROOT,
    Block,
    check_conventions_comment,
    check_notes,
    check_output,
    check_quote,
    console_command,
    parse_blocks,
    read,
    write_files,
)

from runner.cli import main
from runner.errors import TemplateProblem
from runner.prompt.templating import FILTERS, TemplateEngine
from runner.prompt.views import (
    ItemView,
    Namespace,
    RecipeView,
    TaskResultView,
    TranscriptView,
    prompt_context,
    sample_transcript_view,
)
from runner.recipe.model import Template, TemplateOrigin
from runner.transcript.model import paragraphs_from_sentences, sentences_from_words

DOC_NAME = "docs/templates.md"
NOTE_KINDS = ("file", "from")


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


DOC_TEXT = read(DOC_NAME)
BLOCKS = parse_blocks(DOC_NAME, DOC_TEXT)


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
    check_conventions_comment(DOC_NAME, DOC_TEXT)


def test_notes_are_known_and_sit_on_a_fence() -> None:
    check_notes(DOC_NAME, DOC_TEXT, NOTE_KINDS)


def test_every_filter_is_documented() -> None:
    missing = [name for name in FILTERS if f"`{name}`" not in DOC_TEXT]
    assert missing == []


def test_every_transcript_field_is_documented() -> None:
    fields = TranscriptView.template_fields
    missing = [name for name in fields if f"`transcript.{name}`" not in DOC_TEXT]
    assert missing == []


# --- running the examples ---------------------------------------------------------------


@pytest.mark.parametrize("quote", QUOTES, ids=[b.id for b in QUOTES])
def test_quotes_of_project_files_are_verbatim(quote: Block) -> None:
    check_quote(quote)


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


@pytest.mark.parametrize(("console", "files"), CONSOLE, ids=[b.id for b, _ in CONSOLE])
def test_console_example(
    console: Block,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, expected = console_command(console)
    if any(arg in files for arg in args):
        write_files(tmp_path, files)
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)  # validate would print annotations
    with pytest.raises(SystemExit):
        main(args)
    captured = capsys.readouterr()
    check_output(expected, captured.out + captured.err)

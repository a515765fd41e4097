"""docs/recipes.md, docs/cli.md and docs/checks.md stay true to the code they describe.

* Every key of the recipe schema is named, in inline code, in its section of
  docs/recipes.md; every run.json field in its "Outputs" section.
* Every option ``transcript-runner <command> --help`` prints is named, in inline code,
  in that command's section of docs/cli.md; every exit code of runner/errors.py is in
  its exit code table.
* The examples run: whole recipes validate, console blocks are real command runs,
  replies go through the real post-processing, quotes of project files are verbatim.

The conventions for the pages' notes are in the HTML comment at the top of each page.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from docblocks import (
    ANY_LINES,
    FENCE_OPEN,
    ROOT,
    Block,
    check_conventions_comment,
    check_notes,
    check_output,
    check_quote,
    console_command,
    lines_match,
    parse_blocks,
    read,
    write_files,
)

from runner import errors
from runner.checks import load_recipe, validate_file
from runner.cli import cli, main
from runner.errors import PostProcessFailed
from runner.execute.finish import process_reply
from runner.execute.postprocess import apply
from runner.prompt.views import TranscriptView
from runner.results.manifest import ManifestWriter
from runner.results.records import ItemRecord, TaskRecord
from runner.transcript.model import load_saved

RECIPES_DOC = "docs/recipes.md"
CLI_DOC = "docs/cli.md"
CHECKS_DOC = "docs/checks.md"
SCHEMA: Mapping[str, Any] = json.loads(
    (ROOT / "schemas" / "recipe.schema.json").read_text(encoding="utf-8")
)
QUOTES_TRANSCRIPT = ROOT / "recipes" / "transcripts" / "wildfires.json"
SUPPORT_FOLDERS = ("transcripts", "prompts", "lists")  # of recipes/, copied beside examples

NOTE_KINDS = {
    RECIPES_DOC: ("recipe", "file", "from", "reply", "manifest", "exit"),
    CLI_DOC: ("recipe", "file", "from", "exit", "with"),
    CHECKS_DOC: ("recipe", "file", "from", "exit", "with"),
}
HELP_WIDTH = 80  # the docs show --help as an 80-column terminal prints it


# --- reading the pages -------------------------------------------------------------------


DOCS = {doc: read(doc) for doc in (RECIPES_DOC, CLI_DOC, CHECKS_DOC)}
BLOCKS = {doc: parse_blocks(doc, text) for doc, text in DOCS.items()}
ALL_BLOCKS = [block for blocks in BLOCKS.values() for block in blocks]


def without_fences(text: str) -> str:
    """The page's prose: fenced blocks and HTML comments removed."""
    kept: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        opening = FENCE_OPEN.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            kept.append(line)
    return re.sub(r"<!--.*?-->", "", "\n".join(kept), flags=re.DOTALL)


def inline_code(text: str) -> list[str]:
    """The contents of every `code span` in the prose of ``text``."""
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", without_fences(text))


def section(doc: str, heading: str) -> str:
    """From the heading line to the next heading of the same or a higher level."""
    lines = DOCS[doc].split("\n")
    starts = [i for i, line in enumerate(lines) if line == heading]
    assert starts, f"{doc} has no heading {heading!r}"
    level = len(heading) - len(heading.lstrip("#"))
    end = len(lines)
    fence: str | None = None
    for i in range(starts[0] + 1, len(lines)):
        opening = FENCE_OPEN.match(lines[i])
        if fence is None and opening:
            fence = opening.group(1)
            continue
        if fence is not None:
            fence = None if lines[i] == fence else fence
            continue
        hashes = len(lines[i]) - len(lines[i].lstrip("#"))
        if 0 < hashes <= level and lines[i][hashes : hashes + 1] == " ":
            end = i
            break
    return "\n".join(lines[starts[0] : end])


# --- the pages' own rules ------------------------------------------------------------------


def test_the_pages_have_examples_of_every_kind() -> None:
    notes = {doc: {b.note[0] for b in blocks if b.note} for doc, blocks in BLOCKS.items()}
    assert notes[RECIPES_DOC] == set(NOTE_KINDS[RECIPES_DOC])
    assert notes[CLI_DOC] >= {"file", "exit", "with"}
    assert all(any(b.lang == "console" for b in blocks) for blocks in BLOCKS.values())


@pytest.mark.parametrize("doc", DOCS)
def test_the_conventions_comment_is_one_hidden_comment(doc: str) -> None:
    check_conventions_comment(doc, DOCS[doc])


@pytest.mark.parametrize("doc", DOCS)
def test_notes_are_known_and_sit_on_a_fence(doc: str) -> None:
    check_notes(doc, DOCS[doc], NOTE_KINDS[doc])


def looks_like_a_recipe(block: Block) -> bool:
    return block.lang == "yaml" and bool(
        re.search(r"^version:", block.body, re.MULTILINE)
        and re.search(r"^tasks:", block.body, re.MULTILINE)
    )


def test_every_whole_recipe_is_tested() -> None:
    stray = [b.id for b in ALL_BLOCKS if looks_like_a_recipe(b) and b.note is None]
    assert stray == [], "mark whole recipes with <!-- recipe: NAME --> (or file:/from:)"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache  # asked once for each link: docs/recipes.md links to its own sections hundreds of times
def anchors(doc: str) -> frozenset[str]:
    text = without_fences(read(doc))
    return frozenset(slug(line) for line in text.split("\n") if re.match(r"#{1,6} ", line))


@pytest.mark.parametrize("doc", DOCS)
def test_links_between_the_pages_lead_somewhere(doc: str) -> None:
    broken = []
    for target, anchor in re.findall(r"\]\(([\w./-]*?)(?:#([\w-]+))?\)", without_fences(DOCS[doc])):
        if target.startswith(("http", "../")) or (target and not target.endswith(".md")):
            continue
        page = str(Path(doc).parent / target) if target else doc
        if not (ROOT / page).is_file() or (anchor and anchor not in anchors(page)):
            broken.append(f"{target}#{anchor}")
    assert broken == []


# --- (1) every key of the schema is named in its section of docs/recipes.md ------------------

DEFS: Mapping[str, Any] = SCHEMA["$defs"]
TOP = SCHEMA["properties"]
TASK = DEFS["task"]["properties"]

KEY_GROUPS: list[tuple[str, str, Mapping[str, Any]]] = [
    ("top level", "## Top-level keys", TOP),
    ("defaults", "## Top-level keys", TOP["defaults"]["properties"]),
    ("output", "## Top-level keys", TOP["output"]["properties"]),
    ("limits", "## Top-level keys", TOP["limits"]["properties"]),
    ("timeouts", "## Top-level keys", TOP["timeouts"]["properties"]),
    ("input", "## Inputs", DEFS["input"]["properties"]),
    ("task", "## Tasks", TASK),
    ("quotes", "## Tasks", TASK["quotes"]["properties"]),
    ("fallback", "## Tasks", DEFS["fallback"]["properties"]),
    ("fallback_config", "## Tasks", TASK["fallback_config"]["properties"]),
    ("message", "## Tasks", DEFS["message"]["properties"]),
    ("tool", "## Tasks", DEFS["tool"]["properties"]),
    ("tool function", "## Tasks", DEFS["tool"]["properties"]["function"]["properties"]),
    ("transcription", "## Transcription", DEFS["TranscriptionOptions"]["properties"]),
]


@pytest.mark.parametrize(
    ("group", "heading", "keys"), KEY_GROUPS, ids=[g for g, _, _ in KEY_GROUPS]
)
def test_every_schema_key_is_documented(group: str, heading: str, keys: Mapping[str, Any]) -> None:
    named = set(inline_code(section(RECIPES_DOC, heading)))
    missing = [key for key in keys if key not in named]
    assert missing == [], f"{RECIPES_DOC} section {heading!r} does not name these {group} keys"


def test_every_post_processing_step_is_documented() -> None:
    variants = DEFS["post_step"]["oneOf"]
    steps = [*variants[0]["enum"], *variants[1]["properties"]]
    named = " ".join(inline_code(section(RECIPES_DOC, "## Structured output and post-processing")))
    missing = [step for step in steps if step not in named]
    assert missing == []


def test_the_table_of_deprecated_options_is_complete() -> None:
    options = DEFS["TranscriptionOptions"]["properties"]
    deprecated = {
        name
        for name, spec in options.items()
        if spec.get("deprecated") and not spec.get("x-removed")
    }
    removed = {name for name, spec in options.items() if spec.get("x-removed")}
    transcription = section(RECIPES_DOC, "## Transcription")
    part = transcription.split("**Deprecated options warn.**")[1]
    rows = [line for line in part.split("\n\n")[1].split("\n") if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert listed == deprecated, "the first column lists exactly the deprecated options"
    errors = transcription.split("**Removed options are errors.**")[1].split("\n\n")[0]
    assert removed <= set(re.findall(r"`(\w+)`", errors)), "the removed options are named"


# --- run.json: every field is documented, and the example has exactly the real keys ---------


@cache
def real_manifest() -> Mapping[str, Any]:
    """A run.json as the runner writes it, with one item and one task."""
    with tempfile.TemporaryDirectory() as folder:
        header = {"recipes": [{"name": "r", "file": "r.yaml"}], "shard": None}
        writer = ManifestWriter(Path(folder) / "run.json", header)
        writer.add(ItemRecord("r", "i", "s", "url", "ok", tasks=[TaskRecord("t", "ok")]))
        data: Mapping[str, Any] = json.loads(
            writer.close("completed", 1.0, loop_lag=0.003).read_text("utf-8")
        )
    return data


def test_every_manifest_field_is_documented() -> None:
    named = set(inline_code(section(RECIPES_DOC, "## Outputs")))
    manifest = real_manifest()
    fields = {
        "top": list(manifest),
        "recipes": list(manifest["recipes"][0]),
        "item": [f.name for f in dataclasses.fields(ItemRecord)],
        "task": [f.name for f in dataclasses.fields(TaskRecord)],
        "summary": list(manifest["summary"]),
    }
    missing = {part: [f for f in names if f not in named] for part, names in fields.items()}
    assert missing == {part: [] for part in fields}


def key_shape(value: Any) -> Any:
    """The keys of a JSON value, recursively; a list of objects by its first entry."""
    if isinstance(value, Mapping):
        return {k: key_shape(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return [key_shape(value[0])]
    return None


def test_the_manifest_example_has_the_real_keys() -> None:
    examples = [b for b in BLOCKS[RECIPES_DOC] if b.note == ("manifest", "run.json")]
    assert len(examples) == 1
    shown, real = key_shape(json.loads(examples[0].body)), key_shape(real_manifest())
    for counts in ("items", "tasks"):  # counts per status: their keys vary from run to run
        shown["summary"][counts] = real["summary"][counts] = None
    assert shown == real


# --- (2) every option of every command is documented in docs/cli.md ------------------------

COMMANDS = {"": "## Every command", "validate": "## `validate`", "render": "## `render`"}
COMMANDS |= {"run": "## `run`", "schema": "## `schema`", "cache": "## `cache`", "plan": "## `plan`"}
COMMANDS |= {"merge": "## `merge`", "migrate": "## `migrate`", "report": "## `report`"}
COMMANDS |= {"review": "## `review`"}


HELP_OPTIONS = ("-h", "--help")


def help_text(command: str) -> str:
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(cli, args, terminal_width=HELP_WIDTH, prog_name="transcript-runner")
    assert result.exit_code == 0, result.output
    return result.output


def help_options(text: str) -> list[str]:
    """The option names of the "Options:" part of a --help text (short and long)."""
    found: list[str] = []
    in_options = False
    for line in text.split("\n"):
        if line.strip() and not line.startswith(" "):
            in_options = line.startswith("Options:")
            continue
        first_column = re.split(r"\s{2,}", line.strip())[0]
        if in_options and first_column.startswith("-"):
            found += re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", first_column)
    return found


def test_help_options_are_read() -> None:
    assert help_options(help_text("validate")) == [
        "--format",
        "--strict",
        "--online",
        "--region",
        "--state-dir",
        "--llm-url",
        "--llm-model",
        "--var",
        "--vars",
        "-h",
        "--help",
    ]


def named_in(option: str, heading: str) -> bool:
    named = " ".join(inline_code(section(CLI_DOC, heading)))
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", named) is not None


@pytest.mark.parametrize("command", COMMANDS, ids=[c or "transcript-runner" for c in COMMANDS])
def test_every_option_is_documented(command: str) -> None:
    options = help_options(help_text(command))
    assert options
    # Help options are the same everywhere; "Every command" describes them once.
    everywhere = [o for o in options if o in HELP_OPTIONS or not command]
    own = [o for o in options if o not in everywhere]
    missing = [o for o in everywhere if not named_in(o, COMMANDS[""])]
    missing += [o for o in own if not named_in(o, COMMANDS[command])]
    assert missing == [], f"name them in inline code in their section of {CLI_DOC}"


def test_every_command_is_documented() -> None:
    listed = re.findall(r"^  (\w+) ", help_text("").split("Commands:")[1], re.MULTILINE)
    assert sorted(listed) == sorted(c for c in COMMANDS if c)


# --- (3) every exit code is in the table of docs/cli.md ------------------------------------


def test_every_exit_code_is_documented() -> None:
    codes = {
        value
        for name, value in vars(errors).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    table = section(CLI_DOC, "## Exit codes")
    shown = {int(code) for code in re.findall(r"^\| `?(\d+)`? \|", table, re.MULTILINE)}
    assert codes <= shown, f"add the missing codes to the table under '## Exit codes' in {CLI_DOC}"
    assert shown <= codes, "the table shows codes that runner/errors.py does not have"


# --- (4) the examples run ------------------------------------------------------------------

RECIPE_EXAMPLES = [b for b in ALL_BLOCKS if b.note and b.note[0] == "recipe"]
QUOTES = [b for b in ALL_BLOCKS if b.note and b.note[0] == "from"]


def declared_files(upto: Block) -> dict[str, str]:
    """The files and recipes declared on the block's page before it (and by it)."""
    files: dict[str, str] = {}
    for block in BLOCKS[upto.doc]:
        if block.line > upto.line:
            break
        if block.note and block.note[0] in ("file", "recipe"):
            files[block.note[1]] = block.body
    return files


def make_scratch(folder: Path, files: Mapping[str, str]) -> None:
    """The shipped recipes/ and its support folders, plus the page's declared files."""
    shutil.copytree(ROOT / "recipes", folder / "recipes")
    for name in SUPPORT_FOLDERS:
        shutil.copytree(ROOT / "recipes" / name, folder / name)
    write_files(folder, files)


@pytest.mark.parametrize("recipe", RECIPE_EXAMPLES, ids=[b.id for b in RECIPE_EXAMPLES])
def test_whole_recipe_validates(
    recipe: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert recipe.note is not None
    make_scratch(tmp_path, declared_files(recipe))
    monkeypatch.chdir(tmp_path)
    result = validate_file(Path(recipe.note[1]))
    problems = [d.format() for d in result.diagnostics if d.is_error]
    assert problems == [], f"{recipe.id}: the recipe example is not valid"


@pytest.mark.parametrize("quote", QUOTES, ids=[b.id for b in QUOTES])
def test_quotes_of_project_files_are_verbatim(quote: Block) -> None:
    check_quote(quote)


def reply_examples() -> list[tuple[Block, Block]]:
    """(reply, expected) pairs: a reply note's block and the block after it."""
    pairs = []
    blocks = BLOCKS[RECIPES_DOC]
    for position, block in enumerate(blocks):
        if block.note and block.note[0] == "reply":
            assert position + 1 < len(blocks), f"{block.id}: a reply needs a block after it"
            pairs.append((block, blocks[position + 1]))
    return pairs


REPLIES = reply_examples()


@pytest.mark.parametrize(("reply", "expected"), REPLIES, ids=[r.id for r, _ in REPLIES])
def test_reply_is_post_processed_as_shown(reply: Block, expected: Block) -> None:
    assert reply.note is not None
    path, _, task_name = reply.note[1].partition("#")
    task = load_recipe(ROOT / path).tasks[task_name]
    if task.quotes is not None:
        view = TranscriptView.build(load_saved(QUOTES_TRANSCRIPT))
        assert expected.lang == "json"
        assert process_reply(task, reply.body, view).data == json.loads(expected.body)
        return
    if expected.lang == "error":
        with pytest.raises(PostProcessFailed) as failed:
            apply(reply.body, task.post_process, task.json_schema)
        assert str(failed.value) == expected.body
        return
    assert apply(reply.body, task.post_process, task.json_schema).text == expected.body


CONSOLE = [b for b in ALL_BLOCKS if b.lang == "console"]


def test_lines_match_understands_the_ellipsis() -> None:
    assert lines_match(["a", ANY_LINES], ["a", "b", "c"])
    assert lines_match(["a", ANY_LINES, "c"], ["a", "c"])
    assert lines_match(["ab[…]"], ["abc"])
    assert not lines_match(["a", "c"], ["a", "b", "c"])
    assert not lines_match(["ab[…]"], ["xb"])


@contextmanager
def fake_assemblyai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the runner at the test suite's AssemblyAI stand-in on 127.0.0.1."""
    from fakeapi import DEFAULT_API_KEY, FakeAssemblyAI, serve_in_thread

    with serve_in_thread(FakeAssemblyAI()) as base_url:
        monkeypatch.setenv("ASSEMBLYAI_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("ASSEMBLYAI_BASE_URL", base_url)
        monkeypatch.setenv("ASSEMBLYAI_LLM_GATEWAY_URL", base_url + "/v1")
        yield


@pytest.mark.parametrize("console", CONSOLE, ids=[b.id for b in CONSOLE])
def test_console_example(
    console: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, expected = console_command(console)
    make_scratch(tmp_path, declared_files(console))
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_ACTIONS", "ASSEMBLYAI_API_KEY", "ASSEMBLYAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ASSEMBLYAI_LLM_GATEWAY_URL", raising=False)
    monkeypatch.setenv("COLUMNS", str(HELP_WIDTH))
    sends = console.note == ("with", "fakeapi")
    with (
        fake_assemblyai(monkeypatch) if sends else nullcontext(),
        pytest.raises(SystemExit) as ended,
    ):
        main(args)
    captured = capsys.readouterr()
    code = int(console.note[1]) if console.note and console.note[0] == "exit" else 0
    assert ended.value.code == code, f"{console.id}: exit code (add <!-- exit: CODE --> if meant)"
    check_output(expected, captured.out + captured.err)

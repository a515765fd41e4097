"""The YAML loader: plain data plus a 1-based line and column for every key and value."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.diagnostics import Diagnostic
from runner.errors import DiagnosticError
from runner.recipe.document import (
    MAX_DEPTH,
    Document,
    Mark,
    ScalarInfo,
    format_path,
    iter_paths,
    load_file,
    load_text,
)

RECIPE = """\
version: 1
inputs:
  - url: https://assembly.ai/wildfires.mp3
    name: a
tasks:
  summary:
    prompt: |
      Hello
    output: 'x.md'
"""


def _error(text: str) -> Diagnostic:
    with pytest.raises(DiagnosticError) as raised:
        load_text(text, "r.yaml")
    return raised.value.diagnostic


# --- marks ------------------------------------------------------------------------------


def test_data_is_plain() -> None:
    doc = load_text(RECIPE, "r.yaml")
    assert doc.data == {
        "version": 1,
        "inputs": [{"url": "https://assembly.ai/wildfires.mp3", "name": "a"}],
        "tasks": {"summary": {"prompt": "Hello\n", "output": "x.md"}},
    }
    assert doc.file == "r.yaml"


def test_key_marks_are_one_based() -> None:
    doc = load_text(RECIPE, "r.yaml")
    assert doc.key_marks[("version",)] == Mark(1, 1)
    assert doc.key_marks[("inputs", 0, "url")] == Mark(3, 5)
    assert doc.key_marks[("inputs", 0, "name")] == Mark(4, 5)
    assert doc.key_marks[("tasks", "summary")] == Mark(6, 3)
    assert doc.key_marks[("tasks", "summary", "output")] == Mark(9, 5)


def test_value_marks_are_one_based() -> None:
    doc = load_text(RECIPE, "r.yaml")
    assert doc.value_marks[()] == Mark(1, 1)
    assert doc.value_marks[("version",)] == Mark(1, 10)
    assert doc.value_marks[("inputs", 0)] == Mark(3, 5)  # the item, after "- "
    assert doc.value_marks[("inputs", 0, "url")] == Mark(3, 10)
    assert doc.value_marks[("tasks", "summary", "prompt")] == Mark(7, 13)  # the "|"
    assert doc.value_marks[("tasks", "summary", "output")] == Mark(9, 13)  # the quote


def test_scalar_styles_and_raw_text() -> None:
    doc = load_text(RECIPE + "flag: no\n", "r.yaml")
    assert doc.scalars[("tasks", "summary", "prompt")] == ScalarInfo("|", "Hello\n")
    assert doc.scalars[("tasks", "summary", "output")] == ScalarInfo("'", "x.md")
    assert doc.scalars[("flag",)] == ScalarInfo(None, "no")
    assert doc.data["flag"] is False


def test_mark_falls_back_to_the_nearest_enclosing_key() -> None:
    doc = load_text(RECIPE, "r.yaml")
    assert doc.mark(("tasks", "summary", "model")) == Mark(6, 3)
    assert doc.mark(("nothing", "here")) == Mark(1, 1)
    assert doc.mark(("version",), key=False) == Mark(1, 10)


def test_diagnostic_is_located_with_its_path() -> None:
    doc = load_text(RECIPE, "r.yaml")
    found = doc.diagnostic(("tasks", "summary", "output"), "bad", key=False)
    assert found == Diagnostic("r.yaml", 9, 13, "$.tasks.summary.output", "bad")
    assert found.format() == "r.yaml:9:13: $.tasks.summary.output: bad"


def test_windows_line_endings_keep_line_numbers() -> None:
    doc = load_text("a: 1\r\nb:\r\n  c: 2\r\n", "r.yaml")
    assert doc.key_marks[("b", "c")] == Mark(3, 3)
    assert doc.lines[:3] == ["a: 1", "b:", "  c: 2"]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ((), "$"),
        (("tasks", "summary", "model"), "$.tasks.summary.model"),
        (("inputs", 0, "url"), "$.inputs[0].url"),
        (("tasks", "a b", 2), "$.tasks['a b'][2]"),
        (("tasks", "2nd"), "$.tasks['2nd']"),
        (("tasks", "my-task"), "$.tasks.my-task"),
    ],
)
def test_format_path(path: tuple[str | int, ...], shown: str) -> None:
    assert format_path(path) == shown


def test_iter_paths_is_depth_first() -> None:
    pairs = list(iter_paths({"a": [1, {"b": 2}]}))
    assert [p for p, _ in pairs] == [(), ("a",), ("a", 0), ("a", 1), ("a", 1, "b")]


# --- duplicate keys and merges ----------------------------------------------------------


def test_duplicate_top_level_key_names_the_first_line() -> None:
    found = _error("name: a\nversion: 1\nname: b\n")
    assert (found.line, found.column, found.path) == (3, 1, "$.name")
    assert "duplicate key 'name' (first defined at line 1)" in found.message
    assert "remove or rename one" in found.message


def test_duplicate_nested_key() -> None:
    found = _error("tasks:\n  a:\n    model: x\n    prompt: p\n    model: y\n")
    assert (found.line, found.column, found.path) == (5, 5, "$.tasks.a.model")
    assert "first defined at line 3" in found.message


def test_duplicate_key_in_a_flow_mapping() -> None:
    found = _error("a: {x: 1, x: 2}\n")
    assert (found.line, found.path) == (1, "$.a.x")


def test_merge_keys_are_overridden_without_a_duplicate_error() -> None:
    doc = load_text(
        "base: &base\n  model: m\n  max_tokens: 10\n"
        "task:\n  <<: *base\n  max_tokens: 20\n  prompt: p\n",
        "r.yaml",
    )
    assert doc.data["task"] == {"model": "m", "max_tokens": 20, "prompt": "p"}
    # the overriding key is where the person wrote it; a merged key points at the anchor
    assert doc.key_marks[("task", "max_tokens")] == Mark(6, 3)
    assert doc.key_marks[("task", "model")] == Mark(2, 3)


def test_merge_of_several_anchors() -> None:
    doc = load_text("a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n", "r.yaml")
    assert doc.data["c"] == {"x": 1, "y": 2, "z": 3}


def test_alias_of_a_merged_mapping_is_not_a_duplicate() -> None:
    # The aliased node was already flattened when the alias visits it again.
    doc = load_text("base: &base {a: 1}\nx: &x\n  <<: *base\n  a: 2\ny: *x\n", "r.yaml")
    assert doc.data["x"] == doc.data["y"] == {"a": 2}


def test_duplicate_key_beside_a_merge_is_still_an_error() -> None:
    found = _error("base: &base {a: 1}\nx:\n  <<: *base\n  b: 2\n  b: 3\n")
    assert (found.line, found.path) == (5, "$.x.b")


def test_merging_a_list_of_values_is_explained() -> None:
    found = _error("x:\n  <<: [1, 2]\n")
    assert found.message.startswith("cannot merge with '<<'")
    assert found.path == "$.x"


# --- YAML 1.1 surprises -----------------------------------------------------------------


def test_yes_no_on_and_number_keys_are_kept_as_text() -> None:
    doc = load_text("yes: 1\nno: 2\non: 3\n1: 4\nnull: 5\n", "r.yaml")
    assert doc.data == {"yes": 1, "no": 2, "on": 3, "1": 4, "null": 5}


def test_dates_are_kept_as_text() -> None:
    doc = load_text("day: 2024-05-01\nwhen: 2024-05-01 10:30:00\n", "r.yaml")
    assert doc.data == {"day": "2024-05-01", "when": "2024-05-01 10:30:00"}


def test_numbers_and_booleans_are_typed() -> None:
    doc = load_text("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\n", "r.yaml")
    assert doc.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1"}


def test_a_number_pattern_that_is_not_a_number_is_explained() -> None:
    # YAML 1.1's int pattern accepts `0b_`, which int() rejects.
    found = _error("a: 0b_\n")
    assert (found.line, found.column, found.path) == (1, 4, "$.a")
    assert "cannot read '0b_' as a whole number" in found.message


# --- tags -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object:os.system ls\n", "!!python/object:os.system"),
        ("a: !!python/object/new:os.system [ls]\n", "!!python/object/new:os.system"),
        ("a: !!python/object/apply:os.system {args: [ls]}\n", "!!python/object/apply:os.system"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !!set {x, y}\n", "!!set"),
        ("a: !Ref name\n", "!Ref"),
    ],
)
def test_tags_that_are_not_plain_json_are_refused(text: str, tag: str) -> None:
    found = _error(text)
    assert found.message.startswith(f"unsupported YAML tag {tag!r}; remove the tag")
    assert (found.line, found.column, found.path) == (1, 4, "$.a")


def test_standard_tags_are_allowed() -> None:
    doc = load_text("a: !!str 12\nb: !!int '7'\nc: !!map {x: 1}\nd: !!seq [1]\n", "r.yaml")
    assert doc.data == {"a": "12", "b": 7, "c": {"x": 1}, "d": [1]}


def test_a_tag_that_does_not_fit_its_value() -> None:
    found = _error("t: !!float low\n")
    assert found.message.startswith("cannot read 'low' as a number")


# --- the shape of the file --------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    found = _error(text)
    assert found.message == "the file is empty; a recipe starts with 'version: 1'"


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just text\n", "a single value ('just text')")],
)
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    found = _error(text)
    assert found.path == "$"
    assert found.message.endswith(f"not {kind}")


def test_two_documents() -> None:
    found = _error("a: 1\n---\nb: 2\n")
    assert (found.line, found.column) == (2, 1)
    assert "more than one YAML document" in found.message


def test_tab_indentation_points_at_the_tab() -> None:
    found = _error("a:\n  b: 1\n\tc: 2\n")
    assert (found.line, found.column) == (3, 1)
    assert "tab character" in found.message


def test_control_character_is_located() -> None:
    found = _error("a: 1\nb: x\x0by\n")
    assert (found.line, found.column) == (2, 5)
    assert "control character U+000B" in found.message


def test_unquoted_template_is_explained() -> None:
    found = _error("prompt: {{ transcript.text }}\n")
    assert (found.line, found.column) == (1, 9)
    assert "put the whole value in quotes" in found.message
    found = _error("prompt: {{ transcript.text }} and more\n")
    assert (found.line, found.column) == (1, 9)
    assert "put the whole value in quotes" in found.message


# --- hostile input: fail fast with a message, never hang or crash ----------------------


def _billion_laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A billion laughs (9**10 values) stops at the cap on values built, with our
    message, instead of expanding. The cap is lowered so the test builds 20,000 values,
    not 200,000: the same rule, a tenth of the work (tests assert outcomes, not time)."""
    import runner.recipe.document

    monkeypatch.setattr(runner.recipe.document, "MAX_NODES", 20_000)
    found = _error(_billion_laughs())
    assert "the file expands to more than 20000 values (too many aliases?)" in found.message


def test_recursive_alias() -> None:
    found = _error("a: &a [1, *a]\n")
    assert "recipes cannot be recursive" in found.message
    assert found.line == 1


# How deep a flow collection goes for each loader's own limit to stop it before ours:
# libyaml refuses more than 1,000 flow levels; PyYAML's pure-Python composer recurses
# two frames a level, so half the interpreter's recursion limit and a margin is past it
# (its scanner's work grows with the square of the depth: 0.1 s at 600 levels, 1.2 s at
# 5,000, the same RecursionError).
FLOW_LEVELS = {"CSafeLoader": 5000, "SafeLoader": sys.getrecursionlimit() // 2 + 100}


def _flow(loader: str) -> str:
    levels = FLOW_LEVELS[loader]
    return "a: " + "[" * levels + "]" * levels + "\n"


def _block(_loader: str) -> str:
    return "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, MAX_DEPTH + 20))


@pytest.mark.parametrize("nested", [_flow, _block], ids=["flow", "block"])
@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_absurd_nesting(
    nested: Callable[[str], str], loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both PyYAML loaders, whichever stops the nesting first, give our message."""
    import yaml

    import runner.recipe.document

    if not hasattr(yaml, loader):
        pytest.skip(f"this PyYAML was built without {loader}")
    monkeypatch.setattr(runner.recipe.document, "_Loader", getattr(yaml, loader))
    found = _error(nested(loader))
    assert f"nested more than {MAX_DEPTH} levels deep" in found.message


# --- files ------------------------------------------------------------------------------


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DiagnosticError) as raised:
        load_file(path, "r.yaml")
    assert raised.value.diagnostic == Diagnostic(
        "r.yaml", 0, 0, "", "file is not UTF-8 text (byte 9); save it as UTF-8"
    )


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\nname: x\n")
    doc = load_file(path, "r.yaml")
    assert doc.data == {"version": 1, "name": "x"}
    assert doc.key_marks[("version",)] == Mark(1, 1)
    assert doc.lines[0] == "version: 1"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as raised:
        load_file(tmp_path / "nope.yaml")
    found = raised.value.diagnostic
    assert found.file == str(tmp_path / "nope.yaml")
    assert found.message.startswith("cannot read file: ")


def test_document_defaults() -> None:
    doc = Document("f", {})
    assert doc.mark(("x",)) == Mark(1, 1)

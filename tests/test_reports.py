"""CI reports of a run (JUnit XML, the GitHub step summary, annotations) and `merge`.

Manifests are written by the runner's own ManifestWriter, or by a real run of the CLI
against the fake AssemblyAI, so the reports are tested on what run.json really holds.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI, status

from runner.errors import OverlappingShards
from runner.results import ci
from runner.results import manifest as run_manifest
from runner.results.manifest import ManifestWriter
from runner.results.records import ExpectationRecord, ItemRecord, TaskRecord

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"

Manifest = dict[str, Any]


def write_manifest(
    path: Path,
    records: Sequence[ItemRecord],
    *,
    outcome: str = "completed",
    recipes: Sequence[tuple[str, str]] = (("notes", "recipes/notes.yaml"),),
    shard: str | None = None,
) -> Manifest:
    """A run.json as the runner writes it, read back."""
    header = {"recipes": [{"name": name, "file": file} for name, file in recipes], "shard": shard}
    writer = ManifestWriter(path, header)
    for record in records:
        writer.add(record)
    data: Manifest = json.loads(writer.close(outcome, 12.5).read_text("utf-8"))
    return data


def ok_task(name: str = "summary", line: int = 8, **extra: Any) -> TaskRecord:
    fields: dict[str, Any] = {
        "model_used": "claude-sonnet-4-6",
        "input_tokens": 120,
        "output_tokens": 30,
        "latency_seconds": 1.25,
        "asked": True,
        **extra,
    }
    return TaskRecord(name, "ok", line=line, **fields)


def item(
    name: str, tasks: Sequence[TaskRecord], *, recipe: str = "notes", **extra: Any
) -> ItemRecord:
    status = extra.pop("status", "ok" if all(t.status == "ok" for t in tasks) else "failed")
    return ItemRecord(
        recipe,
        name,
        f"https://media.example.com/{name}.mp3",
        "url",
        status,
        recipe_file=extra.pop("recipe_file", f"recipes/{recipe}.yaml"),
        transcript_id=f"tr-{name}",
        tasks=list(tasks),
        **extra,
    )


GATEWAY_400 = "POST /v1/chat/completions failed (400): max_tokens is too large"


@pytest.fixture
def mixed(tmp_path: Path) -> Manifest:
    """Every kind of outcome: ok, failed task with a skipped dependent, failed
    expectations, an item whose transcript failed, an interrupted item."""
    expectations = [
        ExpectationRecord("contains 'Maine'", True, "", 12),
        ExpectationRecord("max_length 40", False, "the output is 52 characters; at most 40", 13),
        ExpectationRecord("regex '^#'", False, "the output does not match '^#'", 0),
    ]
    records = [
        item("b-call", [ok_task(), ok_task("headline", 11, cached=True, asked=False)]),
        item(
            "a-call",
            [
                TaskRecord("summary", "failed", error=GATEWAY_400, line=8, retries=2),
                TaskRecord("headline", "skipped", error="not run because summary failed", line=11),
            ],
        ),
        item("c-call", [ok_task("headline", 11, expectations=expectations)], status="failed"),
        item("d-call", [], status="failed", error="transcript tr-d failed: Download error"),
        item(
            "e-call",
            [ok_task()],
            status="interrupted",
            error="the run was interrupted before this item finished",
        ),
    ]
    # The failed expectations fail their task (its reply was fine).
    records[2].tasks[0].status = "failed"
    records[2].tasks[0].error = "expectation failed: max_length 40: … (and 1 more)"
    return write_manifest(tmp_path / "run.json", records, outcome="interrupted")


# --- JUnit -----------------------------------------------------------------------------


def cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(c.get("classname", ""), c.get("name", "")): c for c in root.iter("testcase")}


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_junit_counts_every_item_and_task(mixed: Manifest) -> None:
    root = ET.fromstring(ci.junit_xml(mixed))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "notes"
    expected = {"tests": "8", "failures": "2", "errors": "2", "skipped": "1"}
    assert {k: suite.get(k) for k in expected} == expected
    assert {k: root.get(k) for k in expected} == expected
    assert root.get("time") == "12.500"  # the run's wall time
    # Sorted by item name, tasks in plan order: the same work gives the same report.
    names = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert names[:3] == [("notes.a-call", "summary"), ("notes.a-call", "headline"),
                         ("notes.b-call", "summary")]  # fmt: skip


def test_junit_failure_carries_the_exact_error(mixed: Manifest) -> None:
    case = cases(ET.fromstring(ci.junit_xml(mixed)))[("notes.a-call", "summary")]
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("type") == "task"
    assert failure.get("message") == GATEWAY_400
    assert failure.text == GATEWAY_400
    assert case.get("file") == "recipes/notes.yaml"
    assert case.get("line") == "8"
    assert properties(case)["retries"] == "2"


def test_junit_skipped_and_expectations(mixed: Manifest) -> None:
    found = cases(ET.fromstring(ci.junit_xml(mixed)))
    skipped = found[("notes.a-call", "headline")].find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "not run because summary failed"
    failure = found[("notes.c-call", "headline")].find("failure")
    assert failure is not None
    assert failure.get("type") == "expectation"
    assert failure.get("message") == (
        "the output is 52 characters; at most 40; the output does not match '^#'"
    )
    assert failure.text == (
        "max_length 40 (recipe line 13): the output is 52 characters; at most 40\n"
        "regex '^#' (recipe line 0): the output does not match '^#'"
    )


def test_junit_item_failures_are_errors(mixed: Manifest) -> None:
    found = cases(ET.fromstring(ci.junit_xml(mixed)))
    transcript = found[("notes.d-call", "transcript")].find("error")
    assert transcript is not None
    assert transcript.get("type") == "transcript"
    assert transcript.get("message") == "transcript tr-d failed: Download error"
    interrupted = found[("notes.e-call", "item")].find("error")
    assert interrupted is not None
    assert interrupted.get("type") == "interrupted"
    assert ("notes.e-call", "summary") in found  # the task that finished is reported


def test_junit_properties_carry_tokens_and_models(mixed: Manifest) -> None:
    found = cases(ET.fromstring(ci.junit_xml(mixed)))
    props = properties(found[("notes.b-call", "summary")])
    assert props["input_tokens"] == "120"
    assert props["output_tokens"] == "30"
    assert props["model_used"] == "claude-sonnet-4-6"
    assert props["cached"] == "false"
    assert props["transcript_id"] == "tr-b-call"
    assert properties(found[("notes.b-call", "headline")])["cached"] == "true"
    assert found[("notes.b-call", "summary")].get("time") == "1.250"


def test_junit_survives_characters_xml_cannot_hold(tmp_path: Path) -> None:
    error = 'bad reply: <"&\x00\x1b> ]]>'
    records = [item("x", [TaskRecord("summary", "failed", error=error, line=3)])]
    manifest = write_manifest(tmp_path / "run.json", records, recipes=[("a&b", "a.yaml")])
    root = ET.fromstring(ci.junit_xml(manifest))
    failure = next(root.iter("failure"))
    assert failure.get("message") == 'bad reply: <"&\ufffd\ufffd> ]]>'
    assert root.findall("testsuite")[0].get("name") == "a&b"


def test_junit_lists_recipes_without_items(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "run.json", [], recipes=[("empty", "empty.yaml")])
    root = ET.fromstring(ci.junit_xml(manifest))
    assert [(s.get("name"), s.get("tests")) for s in root.iter("testsuite")] == [("empty", "0")]


# --- step summary ----------------------------------------------------------------------


def test_step_summary_has_the_table_and_the_failures(mixed: Manifest) -> None:
    text = ci.step_summary(mixed)
    lines = text.split("\n")
    assert lines[0] == "### ❌ transcript-runner: run interrupted"
    assert lines[2] == "5 items in 1 recipe · 12.5 s · 0.00 h of audio"
    assert (
        "| recipe | items ok / failed | tasks ok / failed / skipped | tokens in / out "
        "| transcriptions submitted / reused | LLM calls / cached | cost |"
    ) in lines
    # Three calls were paid for and nothing prices them: unknown, never $0.00.
    assert "| notes | 1 / 4 | 3 / 2 / 1 | 360 / 90 | 0 / 0 | 3 / 1 | unknown |" in lines
    assert f"- **notes** · a-call · summary: {GATEWAY_400}" in lines
    assert (
        "- **notes** · c-call · headline: expectation `max_length 40` failed: "
        "the output is 52 characters; at most 40 (recipes/notes.yaml:13)"
    ) in lines
    assert "- **notes** · d-call: failed: transcript tr-d failed: Download error" in lines
    assert text.endswith("\n")


def test_step_summary_escapes_table_cells_and_folds_lines(tmp_path: Path) -> None:
    records = [
        item("x", [TaskRecord("t", "failed", error="line one\nline <two>", line=2)], recipe="a|b")
    ]
    manifest = write_manifest(tmp_path / "run.json", records, recipes=[("a|b", "ab.yaml")])
    text = ci.step_summary(manifest)
    assert "| a\\|b | 0 / 1 | 0 / 1 / 0 | 0 / 0 | 0 / 0 | 0 / 0 | $0.00 |" in text
    assert "- **a|b** · x · t: line one line &lt;two&gt;" in text


def test_step_summary_of_a_clean_run_and_a_total_row(tmp_path: Path) -> None:
    records = [item("x", [ok_task()]), item("y", [ok_task()], recipe="other")]
    recipes = [("notes", "notes.yaml"), ("other", "other.yaml")]
    manifest = write_manifest(tmp_path / "run.json", records, recipes=recipes)
    text = ci.step_summary(manifest)
    assert text.startswith("### ✅ transcript-runner: run completed\n")
    assert "| **total** | 2 / 0 | 2 / 0 / 0 | 240 / 60 | 0 / 0 | 2 / 0 |" in text
    assert "Failures" not in text


def test_step_summary_lists_at_most_50_failures(tmp_path: Path) -> None:
    records = [
        item(f"call-{n:03}", [TaskRecord("summary", "failed", error=f"boom {n}", line=4)])
        for n in range(60)
    ]
    text = ci.step_summary(write_manifest(tmp_path / "run.json", records))
    bullets = [line for line in text.split("\n") if line.startswith("- ")]
    assert len(bullets) == 51
    assert bullets[-1] == "- …and 10 more (see run.json)"


# --- annotations -----------------------------------------------------------------------


def test_annotations_point_at_recipe_lines(mixed: Manifest) -> None:
    assert ci.annotations(mixed) == [
        "::error file=recipes/notes.yaml,line=8,title=task summary failed::"
        f"a-call · summary: {GATEWAY_400}",
        "::error file=recipes/notes.yaml,line=13,title=expectation failed in headline::"
        "c-call · headline: the output is 52 characters; at most 40",
        # An expectation without a line of its own points at its task.
        "::error file=recipes/notes.yaml,line=11,title=expectation failed in headline::"
        "c-call · headline: the output does not match '^#'",
        "::error file=recipes/notes.yaml,title=item failed::"
        "d-call: transcript tr-d failed: Download error",
        "::error file=recipes/notes.yaml,title=item interrupted::"
        "e-call: the run was interrupted before this item finished",
    ]


def test_annotations_merge_a_repeated_error(tmp_path: Path) -> None:
    records = [
        item(f"call-{n}", [TaskRecord("summary", "failed", error="model not found", line=9)])
        for n in range(5)
    ]
    records.append(item("odd", [TaskRecord("summary", "failed", error="other", line=9)]))
    lines = ci.annotations(write_manifest(tmp_path / "run.json", records))
    assert lines == [
        "::error file=recipes/notes.yaml,line=9,title=task summary failed::"
        "5 items (call-0, call-1, call-2 and 2 more) · summary: model not found",
        "::error file=recipes/notes.yaml,line=9,title=task summary failed::odd · summary: other",
    ]


def test_annotations_escape_and_stop_at_50(tmp_path: Path) -> None:
    records = [
        item(f"call-{n:03}", [TaskRecord("s", "failed", error=f"{n}% off\nnext", line=2)])
        for n in range(80)
    ]
    for record in records:
        record.recipe_file = "dir,x/r:1.yaml"
    lines = ci.annotations(write_manifest(tmp_path / "run.json", records))
    assert len(lines) == 50
    assert lines[0] == (
        "::error file=dir%2Cx/r%3A1.yaml,line=2,title=task s failed::call-000 · s: 0%25 off%0Anext"
    )
    assert lines[-1] == (
        "::notice title=transcript-runner::31 more failures are not annotated; "
        "the run manifest lists every one"
    )


def test_a_clean_run_has_no_annotations(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "run.json", [item("x", [ok_task()])])
    assert ci.annotations(manifest) == []
    assert not run_manifest.run_failed(manifest)


# --- merge -----------------------------------------------------------------------------


@pytest.fixture
def shards(tmp_path: Path) -> tuple[Path, Path]:
    first = tmp_path / "shard-1" / "run.json"
    second = tmp_path / "shard-2" / "run.json"
    write_manifest(first, [item("a", [ok_task()]), item("b", [ok_task(), ok_task("h", 9)])])
    write_manifest(
        second,
        [
            item("c", [TaskRecord("summary", "failed", error="boom", line=8)]),
            item("d", [ok_task()], recipe="other"),
        ],
        recipes=[("notes", "recipes/notes.yaml"), ("other", "recipes/other.yaml")],
    )
    return first, second


def load(path: Path) -> Manifest:
    data: Manifest = json.loads(path.read_text("utf-8"))
    return data


def test_merge_adds_up_the_shards(shards: tuple[Path, Path]) -> None:
    first, second = (load(p) for p in shards)
    merged = run_manifest.merge([first, second])
    assert merged["shards"] == 2
    assert [i["item"] for i in merged["items"]] == ["a", "b", "c", "d"]
    assert merged["recipes"] == [
        {"name": "notes", "file": "recipes/notes.yaml"},
        {"name": "other", "file": "recipes/other.yaml"},
    ]
    summary = merged["summary"]
    assert set(summary) == set(first["summary"])  # the same fields as a run's
    assert summary["outcome"] == "completed"
    assert summary["items"] == {"ok": 3, "failed": 1}
    assert summary["tasks"] == {"ok": 4, "failed": 1}
    for field in ("input_tokens", "output_tokens", "llm_calls"):
        assert summary[field] == first["summary"][field] + second["summary"][field]
    assert run_manifest.run_failed(merged)
    # A merged manifest is a manifest: it merges again and reports.
    again = run_manifest.merge([merged])
    assert again["shards"] == 2
    assert again["summary"] == {**summary, "finished": again["summary"]["finished"]}


def test_merge_keeps_an_incomplete_outcome(tmp_path: Path, shards: tuple[Path, Path]) -> None:
    late = write_manifest(tmp_path / "late.json", [item("z", [ok_task()])], outcome="timed out")
    merged = run_manifest.merge([load(shards[0]), late])
    assert merged["summary"]["outcome"] == "timed out"
    assert run_manifest.run_failed(merged)


def test_merge_of_a_split_with_a_shard_missing_is_incomplete(tmp_path: Path) -> None:
    one = write_manifest(tmp_path / "1.json", [item("a", [ok_task()])], shard="1/3")
    three = write_manifest(tmp_path / "3.json", [item("c", [ok_task()])], shard="3/3")
    merged = run_manifest.merge([one, three])
    assert run_manifest.missing_shards([one, three]) == ["2/3"]
    assert (merged["shard"], merged["shards"]) == (None, 2)
    assert merged["summary"]["outcome"] == "incomplete"
    assert run_manifest.run_failed(merged)
    assert ci.step_summary(merged).startswith("### ❌ transcript-runner: run incomplete\n")
    two = write_manifest(tmp_path / "2.json", [item("b", [ok_task()])], shard="2/3")
    assert run_manifest.merge([one, two, three])["summary"]["outcome"] == "completed"


def test_merge_refuses_shards_of_different_splits(tmp_path: Path) -> None:
    one = write_manifest(tmp_path / "1.json", [item("a", [ok_task()])], shard="1/3")
    other = write_manifest(tmp_path / "2.json", [item("b", [ok_task()])], shard="2/4")
    with pytest.raises(ValueError, match="different --shard splits") as raised:
        run_manifest.merge([one, other], names=["x.json", "y.json"])
    assert str(raised.value).endswith("x.json (1/3); y.json (2/4)")


def test_merge_rejects_overlapping_shards(shards: tuple[Path, Path]) -> None:
    first = load(shards[0])
    with pytest.raises(OverlappingShards) as raised:
        run_manifest.merge([first, load(shards[1]), first], names=["one", "two", "three"])
    assert str(raised.value) == (
        "the shards overlap: 2 items are in more than one manifest: notes/a (in one and "
        "three), notes/b (in one and three); merge the manifests of disjoint shards "
        "(--shard 1/N … N/N of one run)"
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "not a transcript-runner manifest (expected a JSON object)"),
        ({"summary": {}}, "not a transcript-runner manifest (no 'items' list)"),
        ({"items": []}, "no 'summary'"),
        ({"items": [{"recipe": "r"}], "summary": {}}, "item 1 lacks 'item', 'source'"),
    ],
)
def test_merge_rejects_what_is_not_a_manifest(data: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^input 1: ") as raised:
        run_manifest.merge([data])
    assert problem in str(raised.value)


# --- the merge command -----------------------------------------------------------------


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports depend on these variables; a test sets the ones it wants."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


@pytest.mark.usefixtures("no_ci")
def test_merge_command_writes_the_manifest_and_reports(
    shards: tuple[Path, Path], tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out, junit = tmp_path / "merged" / "run.json", tmp_path / "junit.xml"
    result = run_cli("merge", *map(str, shards), "--manifest", str(out), "--junit", str(junit))
    assert result.exit_code == 1, result.output  # item c failed
    assert load(out)["summary"]["items"] == {"ok": 3, "failed": 1}
    assert result.stdout.startswith(f"Merged 2 manifests (2 shards) into {out}.\nRun completed")
    assert "notes/c · summary: boom" in result.stdout
    assert ET.parse(junit).getroot().get("failures") == "1"
    assert summary.read_text().startswith("earlier step\n\n### ❌ transcript-runner: run completed")


@pytest.mark.usefixtures("no_ci")
def test_merge_command_exits_0_when_all_shards_succeeded(tmp_path: Path, run_cli: RunCli) -> None:
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    write_manifest(first, [item("a", [ok_task()])])
    write_manifest(second, [item("b", [ok_task()])])
    result = run_cli("merge", str(first), str(second), "--manifest", str(tmp_path / "run.json"))
    assert result.exit_code == 0, result.output
    assert load(tmp_path / "run.json")["shards"] == 2
    assert "Incomplete" not in result.stdout


@pytest.mark.usefixtures("no_ci")
def test_merge_command_says_which_shard_is_missing(tmp_path: Path, run_cli: RunCli) -> None:
    first, third = tmp_path / "1.json", tmp_path / "3.json"
    write_manifest(first, [item("a", [ok_task()])], shard="1/3")
    write_manifest(third, [item("c", [ok_task()])], shard="3/3")
    result = run_cli("merge", str(first), str(third), "--manifest", str(tmp_path / "run.json"))
    assert result.exit_code == 1
    assert "Incomplete: no manifest of shard 2/3 was given" in result.stdout
    assert "Run incomplete in 12.5 s." in result.stdout


@pytest.mark.usefixtures("no_ci")
def test_merge_command_usage_errors(
    shards: tuple[Path, Path], tmp_path: Path, run_cli: RunCli
) -> None:
    first, second = map(str, shards)
    out = str(tmp_path / "run.json")
    missing = run_cli("merge", first, str(tmp_path / "nope.json"), "--manifest", out)
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"error: {tmp_path}/nope.json: no such manifest\n",
    )
    (tmp_path / "bad.json").write_text('{"items": []}')
    bad = run_cli("merge", first, str(tmp_path / "bad.json"), "--manifest", out)
    assert bad.exit_code == 2
    assert "bad.json: not a finished transcript-runner manifest" in bad.stderr
    overlap = run_cli("merge", first, second, first, "--manifest", out)
    assert overlap.exit_code == 2
    assert f"notes/a (in {first} and {first})" in overlap.stderr
    itself = run_cli("merge", first, second, "--manifest", first)
    assert itself.exit_code == 2
    assert "is one of the manifests to merge" in itself.stderr
    assert not (tmp_path / "run.json").exists()
    assert run_cli("merge").exit_code == 2  # no manifest at all


# --- end to end: run --junit in GitHub Actions -------------------------------------------

KEY = "test-key-reports"

RECIPE = """\
version: 1
name: notes
inputs:
  - url: https://media.example.com/call-1.mp3
  - url: https://media.example.com/call-2.mp3
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
"""
SUMMARY_LINE = RECIPE.split("\n").index("  summary:") + 1


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.fixture
def served(served: Path, fake: FakeAssemblyAI, no_ci: None) -> FakeAssemblyAI:
    """The conftest's served fake, with this module's recipe and transcript in recipes/."""
    (served / "recipes").mkdir()
    (served / "recipes" / "notes.yaml").write_text(RECIPE)
    shutil.copy(WILDFIRES, served / "recipes" / "wildfires.json")
    return fake


def test_run_writes_junit_summary_and_annotations(
    served: FakeAssemblyAI, tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.faults.add("POST /v1/chat/completions", status(400), times=1)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_cli("run", "recipes/notes.yaml", "--progress", "plain", "--junit", "out/junit.xml")
    assert result.exit_code == 1, result.output
    root = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    failure = next(root.iter("failure"))
    (failed,) = [i for i in load(tmp_path / "out" / "run.json")["items"] if i["status"] != "ok"]
    assert failure.get("message") == failed["tasks"][0]["error"]
    text = summary.read_text()
    assert text.startswith("### ❌ transcript-runner: run completed with failures\n")
    assert "| notes | 1 / 1 | 1 / 1 / 0 |" in text
    annotation = (
        f"::error file=recipes/notes.yaml,line={SUMMARY_LINE},title=task summary failed::"
        f"{failed['item']} · summary: POST /v1/chat/completions failed (400)"
    )
    (line,) = [x for x in result.stdout.split("\n") if x.startswith("::")]
    assert line.startswith(annotation)


EXPECTING = """\
version: 1
name: checked
inputs:
  - transcript_file: wildfires.json
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
    expect:
      - max_length: 100000
      - contains: Atlantis
"""


def test_a_failed_expectation_is_a_junit_failure_and_an_annotation(
    served: FakeAssemblyAI, tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "recipes" / "checked.yaml").write_text(EXPECTING)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_cli("run", "recipes/checked.yaml", "--progress", "plain", "--junit", "j.xml")
    assert result.exit_code == 1, result.output
    line = EXPECTING.split("\n").index("      - contains: Atlantis") + 1
    failure = next(ET.parse(tmp_path / "j.xml").getroot().iter("failure"))
    assert failure.get("type") == "expectation"
    assert failure.text == (
        f"contains 'Atlantis' (recipe line {line}): the result does not contain 'Atlantis'"
    )
    (annotation,) = [x for x in result.stdout.split("\n") if x.startswith("::")]
    assert annotation.startswith(
        f"::error file=recipes/checked.yaml,line={line},title=expectation failed in summary::"
        "wildfires · summary: "
    )


def test_a_plain_run_writes_no_reports(
    served: FakeAssemblyAI, tmp_path: Path, run_cli: RunCli
) -> None:
    result = run_cli("run", "recipes/notes.yaml", "--progress", "plain")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert not list((tmp_path / "out").glob("*.xml"))


def test_a_report_that_cannot_be_written_fails_the_run(
    served: FakeAssemblyAI, tmp_path: Path, run_cli: RunCli
) -> None:
    """After the run: a --junit path that cannot work is refused before it
    (tests/test_user_paths.py), so here the run itself puts a file in the way."""
    junit = "out/run.json/j.xml"  # out/run.json is not there yet: the run writes it
    result = run_cli("run", "recipes/notes.yaml", "--progress", "plain", "--junit", junit)
    assert result.exit_code == 1
    assert f"error: cannot write the JUnit report {junit}" in result.stderr


def test_the_items_of_a_run_json_stream_one_at_a_time_as_loading_it_reads_them(
    tmp_path: Path,
) -> None:
    """What a line cannot break: line breaks of every kind inside the text."""
    from runner.results.manifest import item_records, stream_item_records

    awkward = "a\nb\rc\r\nd\u2028e\u2029f\x85g, }\n    {"
    records = [
        item("one", [ok_task()]),
        item("two", [TaskRecord("summary", "failed", error=awkward)], error=awkward),
        item("three", []),
    ]
    data = write_manifest(tmp_path / "run.json", records)
    assert list(stream_item_records(tmp_path / "run.json")) == item_records(data)
    assert [r.item for r in stream_item_records(tmp_path / "run.json")] == ["one", "two", "three"]


@pytest.mark.usefixtures("no_ci")
def test_merge_and_report_still_take_out_under_its_former_name(
    shards: tuple[Path, Path], tmp_path: Path, run_cli: RunCli
) -> None:
    """`--out` was renamed (`merge --manifest`, `report --html`): a workflow written
    for it keeps working, and is told the new name."""
    out = tmp_path / "merged" / "run.json"
    merged = run_cli("merge", *map(str, shards), "--out", str(out))
    assert merged.exit_code == 1, merged.output  # item c failed, as before
    assert load(out)["summary"]["items"] == {"ok": 3, "failed": 1}
    assert "note: --out is now --manifest (it names what it writes); --out still works" in (
        merged.stderr
    )
    page = tmp_path / "page.html"
    reported = run_cli("report", str(out), "--out", str(page))
    assert reported.exit_code == 0, reported.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "note: --out is now --html" in reported.stderr


@pytest.mark.usefixtures("no_ci")
def test_the_former_and_the_new_name_together_are_refused(
    shards: tuple[Path, Path], tmp_path: Path, run_cli: RunCli
) -> None:
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    merged = run_cli("merge", *map(str, shards), "--manifest", a, "--out", b)
    assert (merged.exit_code, merged.stderr.splitlines()[-1]) == (
        2,
        "error: give --manifest only (--out is its former name)",
    )
    reported = run_cli("report", str(shards[0]), "--html", a, "--out", b)
    assert (reported.exit_code, reported.stderr.splitlines()[-1]) == (
        2,
        "error: give --html only (--out is its former name)",
    )
    assert not (tmp_path / "a.json").exists()
    assert not (tmp_path / "b.json").exists()


def test_annotations_carry_the_list_row_of_a_failed_item(tmp_path: Path) -> None:
    records = [
        item("Northwind", [TaskRecord("brief", "failed", error="model not found", line=9)]),
        item("Acme", [], status="failed", error="transcript tr-a failed: Download error"),
    ]
    records[0].row = "lists/calls.csv:2"
    records[1].row = "lists/calls.csv:3"
    assert ci.annotations(write_manifest(tmp_path / "run.json", records)) == [
        # Failed before its tasks: its source is on its row, so the row is annotated.
        "::error file=lists/calls.csv,line=3,title=item failed::"
        "Acme (lists/calls.csv:3): transcript tr-a failed: Download error",
        "::error file=recipes/notes.yaml,line=9,title=task brief failed::"
        "Northwind (lists/calls.csv:2) · brief: model not found",
    ]


def test_junit_time_is_the_time_a_failed_task_took(tmp_path: Path) -> None:
    failed = TaskRecord("summary", "failed", error="503 after 4 retries", line=8, seconds=33.2)
    manifest = write_manifest(tmp_path / "run.json", [item("slow", [failed])])
    root = ET.fromstring(ci.junit_xml(manifest))
    (case,) = cases(root).values()
    assert case.get("time") == "33.200"


LISTED = """\
version: 1
name: listed
inputs:
  - list: calls.csv
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
"""


def test_a_run_records_each_rows_line_and_each_tasks_real_time(
    served: FakeAssemblyAI, tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.faults.add("POST /v1/chat/completions", status(503), times=2)
    (tmp_path / "recipes" / "calls.csv").write_text("transcript_file\nwildfires.json\n")
    (tmp_path / "recipes" / "listed.yaml").write_text(LISTED)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_cli("run", "recipes/listed.yaml", "--progress", "plain", "--junit", "j.xml")
    assert result.exit_code == 0, result.output
    (record,) = load(tmp_path / "out" / "run.json")["items"]
    assert record["row"] == "recipes/calls.csv:2"
    (task,) = record["tasks"]
    assert task["retries"] == 2
    assert task["seconds"] >= task["latency_seconds"] > 0
    (case,) = cases(ET.parse(tmp_path / "j.xml").getroot()).values()
    assert float(case.get("time", "0")) == task["seconds"]
    assert properties(case)["row"] == "recipes/calls.csv:2"

"""``output.table``: one row per item, each task's text or JSON fields as columns."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

REPO = Path(__file__).resolve().parent.parent
WILDFIRES = REPO / "recipes" / "transcripts" / "wildfires.json"

RECIPE = """\
version: 1
name: calls
inputs:
  - url: https://media.example.com/board-meeting.mp3
  - url: https://media.example.com/broken.mp3
  - transcript_file: saved.json
output:
  table: results.{ext}
tasks:
  summary:
    prompt: "Summarize: {{{{ transcript.text }}}}"
  facts:
    prompt: "Facts as JSON: {{{{ transcript.text | truncate_tokens(100) }}}}"
    json_schema:
      type: object
      properties:
        title: {{type: string}}
        tags: {{type: array, items: {{type: string}}}}
        people: {{type: array, items: {{type: object}}}}
  subtitles: {{export: srt}}
"""


def reply_for(request: dict[str, Any]) -> str:
    if "response_format" in request:
        return json.dumps(
            {"title": "Smoke, and why", "tags": ["air", "fire"], "people": [{"name": "Peter"}]}
        )
    return "Two lines,\nwith a comma"


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = reply_for
    api.fail_audio("broken", "Transcoding failed: the file holds no audio")
    return api


def run_with_table(served: Path, run_cli: RunCli, ext: str) -> Path:
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(RECIPE.format(ext=ext))
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 1, err  # the broken recording fails its item
    table = served / "out" / "calls" / f"results.{ext}"
    assert f"table: out/calls/results.{ext}" in err
    assert not list(table.parent.glob(".*"))  # no spool or temporary file left
    return table


def test_a_csv_table_has_a_row_per_item_and_a_column_per_field(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    table = run_with_table(served, run_cli, "csv")
    rows = {row["item"]: row for row in csv.DictReader(io.StringIO(table.read_text()))}
    assert set(rows) == {"board-meeting", "broken", "saved"}
    header = table.read_text().splitlines()[0].split(",")
    assert header == [
        "item",
        "status",
        "source",
        "transcript_id",
        "audio_duration",
        "error",
        "summary",
        "facts.title",
        "facts.tags",
        "facts.people",
        "subtitles",
    ]
    board = rows["board-meeting"]
    assert board["status"] == "ok"
    assert board["summary"] == "Two lines,\nwith a comma"  # quoted, and read back whole
    assert board["facts.title"] == "Smoke, and why"
    assert board["facts.tags"] == "air; fire"
    assert board["facts.people"] == "1"  # how many: the people are in lists.csv
    people = list(csv.DictReader(io.StringIO((table.parent / "lists.csv").read_text())))
    assert sorted(people, key=lambda row: row["item"]) == [
        {"item": item, "task": "facts", "field": "people", "rank": "1", "name": "Peter"}
        for item in ("board-meeting", "saved")
    ]
    assert board["subtitles"] == "out/calls/board-meeting/subtitles.srt"
    assert board["audio_duration"] == "282.0"
    broken = rows["broken"]
    assert broken["status"] == "failed"
    assert "Transcoding failed" in broken["error"]
    assert broken["summary"] == broken["facts.title"] == broken["subtitles"] == ""
    assert rows["saved"]["transcript_id"] == "e5a56f4f-b658-44b0-925a-f7d761ec0d96"
    assert rows["saved"]["source"] == "saved.json"  # relative to the recipe, not this machine


def test_a_jsonl_table_keeps_values_typed(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    table = run_with_table(served, run_cli, "jsonl")
    rows = {row["item"]: row for row in map(json.loads, table.read_text().splitlines())}
    assert rows["board-meeting"]["audio_duration"] == 282.0
    assert rows["board-meeting"]["facts.tags"] == "air; fire"
    assert rows["broken"]["summary"] is None


@pytest.mark.parametrize("name", ["../results.csv", "results.xlsx", "tables/results.csv"])
def test_validate_refuses_a_table_that_is_no_csv_or_jsonl_file_name(
    tmp_path: Path, run_cli: RunCli, name: str
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "version: 1\nname: x\ninputs: [{transcript_file: t.json}]\n"
        f"output:\n  table: {name}\ntasks:\n  s: {{export: txt}}\n"
    )
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert "recipe.yaml:5:10" in out + err
    assert "output.table is a file name ending in .csv or .jsonl" in out + err


def test_validate_refuses_a_task_named_like_a_table_column(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "version: 1\nname: x\ninputs: [{transcript_file: t.json}]\n"
        "output:\n  table: results.csv\ntasks:\n  status: {export: txt}\n"
    )
    code, out, err = run_cli("validate", str(recipe))
    assert code == 3, out + err
    assert "recipe.yaml:7:3" in out + err
    assert "task 'status' has the name of a column output.table keeps" in out + err


def test_a_failed_task_leaves_its_cells_empty_and_names_itself() -> None:
    from runner.checks import load_recipe
    from runner.prompt.views import TaskResultView
    from runner.results.records import ItemRecord, TaskRecord
    from runner.results.table import row_of

    recipe = load_recipe(REPO / "recipes" / "exports.yaml")
    record = ItemRecord("exports", "call", "call.json", "transcript_file", "failed")
    record.tasks = [
        TaskRecord("subtitles", "failed", error="no words with times", output=None),
        TaskRecord("readable", "ok", output="out/exports/call/readable.md"),
    ]
    results = {"subtitles": TaskResultView("subtitles", "1\n..."), "readable": None}
    row = row_of(record, results, recipe)
    assert row["subtitles"] is None
    assert row["error"] == "subtitles: no words with times"


def test_quotes_go_to_their_own_long_table(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    baltimore = "The levels outside right now in Baltimore are considered unhealthy."
    fake.gateway.responder = lambda request: f'"{baltimore}"'
    shutil.copy(WILDFIRES, served / "saved.json")
    (served / "recipe.yaml").write_text(
        "version: 1\nname: calls\ninputs: [{transcript_file: saved.json}]\n"
        "output: {table: results.csv}\ntasks:\n  best_quotes: {quotes: {count: 1}}\n"
    )
    code, _, err = run_cli("run", "recipe.yaml", "--progress", "plain")
    assert code == 0, err
    folder = served / "out" / "calls"
    (row,) = csv.DictReader(io.StringIO((folder / "results.csv").read_text()))
    assert row["best_quotes"] == "1"
    assert not [column for column in row if column.startswith("best_quotes.")]
    text = (folder / "quotes.csv").read_text()
    assert text.splitlines()[0] == "item,task,rank,quote,start,end,verdict"
    (quote,) = csv.DictReader(io.StringIO(text))
    assert quote["item"] == "saved"
    assert quote["task"] == "best_quotes"
    assert quote["rank"] == "1"
    assert quote["quote"] == baltimore
    assert quote["start"] == "0:01:03" or quote["start"].startswith("00:01:03")
    assert quote["verdict"]

"""``merge`` combines the shards' results tables (``output.table``) into one.

The shards are real ``run --shard K/3`` runs of the command line against the fake
AssemblyAI, each in its own folder, as the jobs of a CI matrix write them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

# Which shard of 3 takes each item is a hash of its source (runner.items.Shard):
# shard 1 takes call-3 and call-5, shard 2 call-1, call-2 and call-4, shard 3 call-6,
# call-7 and call-8 (test_the_split_is_the_one_these_tests_assume checks it).
SPLIT = {
    1: ["call-3", "call-5"],
    2: ["call-1", "call-2", "call-4"],
    3: ["call-6", "call-7", "call-8"],
}
ITEMS = [f"call-{n}" for n in range(1, 9)]

RECIPE = """\
version: 1
name: calls
inputs:
{inputs}
output:
  table: results.{ext}
tasks:
  summary:
    prompt: "Summarize {{{{ item.name }}}}: {{{{ transcript.text | truncate_tokens(20) }}}}"
  facts:
    prompt: "Facts as JSON about {{{{ item.name }}}}"
    json_schema:
      type: object
      properties:
        title: {{type: string}}
        tags: {{type: array, items: {{type: string}}}}
        people: {{type: array, items: {{type: object}}}}
  subtitles: {{export: srt}}
"""
ITEM_COLUMNS = ["item", "status", "source", "transcript_id", "audio_duration", "error"]


def reply_for(request: dict[str, Any]) -> str:
    """The facts of shard 1's items are no JSON (their task fails, so shard 1's table has
    no facts columns); call-7's have one field more than the others'."""
    prompt = json.dumps(request["messages"])
    name = re.search(r"call-\d", prompt)
    if "response_format" not in request:
        return f"Summary of {name[0] if name else '?'}, in two lines,\nwith a comma"
    if name and name[0] in SPLIT[1]:
        return "no facts today"
    facts: dict[str, Any] = {"title": f"About {name[0] if name else '?'}", "tags": ["a", "b"]}
    facts["people"] = [{"name": "Peter"}]
    if name and name[0] == "call-7":
        facts["mood"] = "calm"
    return json.dumps(facts)


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    api = FakeAssemblyAI(api_key=api_key)
    api.gateway.responder = reply_for
    return api


@pytest.fixture(scope="module")
def shards_made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The folders of the first ``run_shards`` of each format in this module, copied by
    the later ones: the runs are the same each time, and each test changes its own copy."""
    return {"": tmp_path_factory.mktemp("shards")}


def run_shards(served: Path, run_cli: RunCli, ext: str, made: dict[str, Path]) -> list[Path]:
    """``run --shard K/3`` for K = 1, 2, 3, each into shard-K/; their manifests."""
    manifests = [served / f"shard-{shard}" / "run.json" for shard in (1, 2, 3)]
    if ext in made:  # run once in this module already: the same folders, copied
        shutil.copytree(made[ext], served, dirs_exist_ok=True)
        return manifests
    inputs = "\n".join(f"  - url: https://media.example.com/{name}.mp3" for name in ITEMS)
    (served / "recipe.yaml").write_text(RECIPE.format(inputs=inputs, ext=ext))
    for shard, manifest in zip((1, 2, 3), manifests, strict=True):
        out = manifest.parent
        code, _, err = run_cli(
            "run", "recipe.yaml", "--shard", f"{shard}/3", "--out", str(out), "--progress", "plain"
        )
        assert code == (1 if shard == 1 else 0), err  # shard 1's facts fail
        assert (out / "calls" / f"results.{ext}").is_file()
    made[ext] = made[""] / ext
    shutil.copytree(served, made[ext])
    return manifests


def merge(run_cli: RunCli, *manifests: Path, out: str = "merged/run.json") -> tuple[int, str, str]:
    code, stdout, stderr = run_cli("merge", *map(str, manifests), "--manifest", out)
    assert "Traceback" not in stdout + stderr
    return code, stdout, stderr


def csv_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or ()), rows


def test_the_split_is_the_one_these_tests_assume() -> None:
    from runner.items import Shard

    for index, names in SPLIT.items():
        shard = Shard(index, 3)
        taken = [n for n in ITEMS if shard.takes("calls", f"https://media.example.com/{n}.mp3")]
        assert taken == names


def test_merge_writes_one_csv_table_with_every_shards_columns(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, "csv", shards_made)
    # Each shard's header has only the columns its rows had.
    first, _ = csv_table(served / "shard-1" / "calls" / "results.csv")
    assert first == [*ITEM_COLUMNS, "summary", "subtitles"]
    third, _ = csv_table(served / "shard-3" / "calls" / "results.csv")
    assert "facts.mood" in third

    code, stdout, stderr = merge(run_cli, *manifests)
    assert code == 1, stdout + stderr  # shard 1's facts failed, as the run said
    table = served / "merged" / "calls" / "results.csv"
    assert "  table: merged/calls/results.csv\n" in stdout
    assert "warning" not in stderr
    header, rows = csv_table(table)
    # The items' columns, then the tasks in recipe order (facts before subtitles, though
    # the first shard has no facts column), a JSON task's fields in first-seen order.
    assert header == [
        *ITEM_COLUMNS,
        "summary",
        "facts.title",
        "facts.tags",
        "facts.people",
        "facts.mood",
        "subtitles",
    ]
    # The rows of each shard's table in turn, as the merged manifest lists the items.
    merged_manifest = json.loads((served / "merged" / "run.json").read_text())
    assert [r["item"] for r in rows] == [i["item"] for i in merged_manifest["items"]]
    assert sorted(r["item"] for r in rows[:2]) == SPLIT[1]
    assert sorted(r["item"] for r in rows) == ITEMS
    by_item = {row["item"]: row for row in rows}
    assert by_item["call-7"]["facts.mood"] == "calm"
    assert by_item["call-6"]["facts.mood"] == ""  # missing in its shard: empty
    assert by_item["call-3"]["facts.title"] == ""  # a shard without the column
    assert "facts: " in by_item["call-3"]["error"]
    assert by_item["call-1"]["facts.title"] == "About call-1"
    assert by_item["call-1"]["summary"] == "Summary of call-1, in two lines,\nwith a comma"
    assert by_item["call-1"]["subtitles"] == "shard-2/calls/call-1/subtitles.srt"
    # Every cell of every shard's table made it, unchanged.
    for manifest in manifests:
        _, shard_rows = csv_table(manifest.parent / "calls" / "results.csv")
        for row in shard_rows:
            assert {k: v for k, v in by_item[row["item"]].items() if k in row} == row
    assert not list(table.parent.glob(".*"))  # no temporary file left
    # The long table of the shards' lists is merged beside it, every shard's rows.
    _, lists = csv_table(served / "merged" / "calls" / "lists.csv")
    shard_lists = [
        row
        for manifest in manifests
        if (manifest.parent / "calls" / "lists.csv").is_file()
        for row in csv_table(manifest.parent / "calls" / "lists.csv")[1]
    ]
    assert sorted(map(str, lists)) == sorted(map(str, shard_lists))
    assert merged_manifest["recipes"] == [
        {"name": "calls", "file": "recipe.yaml", "table": "results.csv"}
    ]


def test_merge_writes_one_jsonl_table_in_shard_order(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, "jsonl", shards_made)
    code, stdout, stderr = merge(run_cli, manifests[2], manifests[0], manifests[1])
    assert code == 1, stdout + stderr
    assert "  table: merged/calls/results.jsonl\n" in stdout
    lines = (served / "merged" / "calls" / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["item"] for r in rows] == [
        *(r["item"] for m in (manifests[2], manifests[0], manifests[1]) for r in shard_rows(m))
    ]
    assert sorted(r["item"] for r in rows[:3]) == SPLIT[3]
    by_item = {row["item"]: row for row in rows}
    assert by_item["call-7"]["facts.mood"] == "calm"
    assert "facts.mood" not in by_item["call-6"]  # a row keeps its own fields
    assert by_item["call-1"]["audio_duration"] == 282.0  # numbers stay numbers
    assert by_item["call-3"]["summary"].startswith("Summary of call-3")


def shard_rows(manifest: Path) -> list[dict[str, Any]]:
    lines = (manifest.parent / "calls" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_a_shard_without_its_table_is_a_warning_and_the_others_merge(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, ext: str, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, ext, shards_made)
    missing = served / "shard-2" / "calls" / f"results.{ext}"
    missing.unlink()  # as if its job failed after its manifest, before its table
    code, _, stderr = merge(run_cli, *manifests)
    assert code == 1
    assert stderr.splitlines() == [
        f"warning: {missing}: no such table; the merged table merged/calls/results.{ext} "
        f"lacks the 3 rows of {manifests[1]}"
    ]
    table = served / "merged" / "calls" / f"results.{ext}"
    if ext == "csv":
        _, rows = csv_table(table)
    else:
        rows = [json.loads(line) for line in table.read_text().splitlines()]
    assert sorted(r["item"] for r in rows) == sorted(SPLIT[1] + SPLIT[3])


def test_shards_whose_rows_cannot_be_had_are_named(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    first, second, third = run_shards(served, run_cli, "csv", shards_made)
    # A manifest that names no table for the recipe (a run of another recipe version).
    data = json.loads(second.read_text())
    del data["recipes"][0]["table"]
    second.write_text(json.dumps(data))
    # Two manifests in one folder: one table path, which holds one run's rows.
    beside = first.with_name("third.json")
    beside.write_text(third.read_text())
    code, _, stderr = merge(run_cli, first, second, beside)
    assert code == 1
    table = "merged/calls/results.csv"
    assert stderr.splitlines() == [
        f"warning: {second} names no table for calls; the merged table {table} lacks the 3 "
        f"rows of {second}",
        f"warning: {first.parent}/calls/results.csv is also the table of {first} (their "
        f"manifests share a folder), so it is merged once; the merged table {table} lacks "
        f"the 3 rows of {beside}",
    ]
    _, rows = csv_table(served / table)
    assert sorted(r["item"] for r in rows) == SPLIT[1]


def test_merged_tables_merge_again(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    first, second, third = run_shards(served, run_cli, "csv", shards_made)
    assert merge(run_cli, first, second, out="half/run.json")[0] == 1
    assert merge(run_cli, Path("half/run.json"), third, out="all/run.json")[0] == 1
    assert merge(run_cli, first, second, third, out="direct/run.json")[0] == 1
    again = (served / "all" / "calls" / "results.csv").read_text()
    assert again == (served / "direct" / "calls" / "results.csv").read_text()


def test_a_table_that_is_not_one_stops_the_merge_with_its_path(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, "jsonl", shards_made)
    broken = served / "shard-3" / "calls" / "results.jsonl"
    broken.write_text(broken.read_text() + "{half a row\n")
    code, _, stderr = merge(run_cli, *manifests)
    assert code == 2
    assert stderr.startswith(f"error: {broken}:4: not a results table (")
    assert not (served / "merged" / "run.json").exists()
    assert not (served / "merged" / "calls" / "results.jsonl").exists()

    broken.write_bytes(b"\xff\xfe not text\n")
    code, _, stderr = merge(run_cli, *manifests)
    assert (code, stderr) == (2, f"error: {broken}: not a results table (not UTF-8 text)\n")

    broken.unlink()
    broken.mkdir()  # unreadable as a file: in its place, a folder
    (broken / "x").write_text("")
    code, _, stderr = merge(run_cli, *manifests)
    assert code == 1  # a folder is no table: that shard's rows are missing, as for no file
    assert f"warning: {broken}: no such table" in stderr


def test_a_csv_row_with_more_cells_than_its_header_is_refused(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, "csv", shards_made)
    broken = served / "shard-1" / "calls" / "results.csv"
    broken.write_text(broken.read_text() + "x," * 40 + "\n")  # 2 rows of 2 lines each above
    code, _, stderr = merge(run_cli, *manifests)
    assert (code, stderr) == (
        2,
        f"error: {broken}:6: not a results table (a row has more cells than the header "
        "has columns)\n",
    )
    broken.write_text("")
    code, _, stderr = merge(run_cli, *manifests)
    assert (code, stderr) == (2, f"error: {broken}: not a results table (no header line)\n")


def test_table_paths_from_a_manifest_stay_in_their_folder(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, "csv", shards_made)
    original = manifests[1].read_text()
    for name, table in (("calls", "../../escaped.csv"), ("..", "results.csv")):
        data = json.loads(original)
        data["recipes"][0].update(name=name, table=table)
        manifests[1].write_text(json.dumps(data))
        code, _, stderr = merge(run_cli, *manifests)
        assert code == 2, stderr
        assert f"error: {manifests[1]}: recipe '{name}' names the table '{table}'" in stderr
    assert not (served / "escaped.csv").exists()
    assert not (served / "merged").exists()


def test_shards_naming_different_tables_or_a_merge_onto_a_shards_table_are_refused(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli, shards_made: dict[str, Path]
) -> None:
    manifests = run_shards(served, run_cli, "csv", shards_made)
    code, _, stderr = merge(run_cli, *manifests, out=str(served / "shard-1" / "merged.json"))
    assert code == 2
    assert stderr == (
        f"error: the merged table {served}/shard-1/calls/results.csv would replace "
        f"{manifests[0]}'s own table; write the merged manifest to another folder with "
        "--out FILE\n"
    )
    data = json.loads(manifests[2].read_text())
    data["recipes"][0]["table"] = "other.csv"
    manifests[2].write_text(json.dumps(data))
    code, _, stderr = merge(run_cli, *manifests)
    assert code == 2
    assert "the manifests name different tables for recipe calls: results.csv (in " in stderr
    assert f"other.csv (in {manifests[2]})" in stderr

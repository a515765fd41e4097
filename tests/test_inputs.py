"""Expanding inputs into items: names are safe, unique and stable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.checks import load_recipe, validate_file
from runner.errors import OutputError, SourceUnreadable
from runner.items import expand, safe_name
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TranscriptView
from runner.recipe.build import build
from runner.recipe.document import load_file
from runner.results.outputs import item_dir
from runner.transcript.model import load_saved

SAVED = '{"id": "t", "status": "completed", "text": "hi", "words": []}'


def test_names_never_collide_after_deduplication(tmp_path: Path) -> None:
    for name in ("A.json", "a-2.json", "a.json"):
        (tmp_path / name).write_text(SAVED)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{transcript_file: '*.json'}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
    )
    recipe = load_recipe(tmp_path / "r.yaml")
    names = [item.name for item in expand(recipe, TemplateEngine(tmp_path))]
    assert names == ["A", "a-2", "a-3"]
    assert len({n.lower() for n in names}) == 3


def test_safe_name_keeps_items_inside_their_folder() -> None:
    assert safe_name("../../etc/passwd", "x") == "etc-passwd"
    assert safe_name("Acme Corp / Q3", "x") == "Acme-Corp-Q3"
    assert safe_name("...", "item-1") == "item-1"


def test_item_source_is_the_same_in_output_dir_and_in_a_prompt(tmp_path: Path) -> None:
    """One ``{{ item.source }}`` everywhere: relative to the recipe, never absolute."""
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "monday.json").write_text(SAVED)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{transcript_file: 'calls/*.json'}]\n"
        "tasks: {s: {prompt: 'Source: {{ item.source }}'}}\n"
        "output: {dir: 'out/{{ item.source }}'}\n"
    )
    recipe = load_recipe(tmp_path / "r.yaml")
    engine = TemplateEngine(tmp_path)
    [item] = expand(recipe, engine)
    transcript = load_saved(Path(item.source))
    view = TranscriptView.build(transcript, (), ())
    task = recipe.tasks["s"]
    context = task_context(recipe, item.view(recipe), task, view, {})
    prompt = build_payload(engine, task, context, transcript_id="t", transcript_text="hi")
    assert prompt.messages[-1]["content"] == "Source: calls/monday.json"
    assert item_dir(recipe, item, engine, None) == Path("out/calls/monday.json")


def test_output_dir_confines_each_item_at_run_time(tmp_path: Path) -> None:
    """Even when a value only arrives at run time (a transcript_file's name is safe, but
    vars are not), the folder stays under output.dir's own."""
    (tmp_path / "a.json").write_text(SAVED)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{transcript_file: 'a.json', vars: {where: '../up'}}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
        "output: {dir: 'out/x/{{ vars.where }}'}\n"
    )
    path = tmp_path / "r.yaml"
    recipe, _ = build(load_file(path), path.resolve())  # as a run sees it, unvalidated
    engine = TemplateEngine(tmp_path)
    [item] = expand(recipe, engine)
    with pytest.raises(OutputError, match=r"outside out/x/"):
        item_dir(recipe, item, engine, None)


def _recipe_with(tmp_path: Path, inputs: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(
        f"version: 1\nname: r\ninputs: [{inputs}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
    )
    return path


def test_a_long_csv_cell_is_read(tmp_path: Path) -> None:
    """csv's default 128 KiB field limit is far below a pasted document."""
    notes = "a" * 200_000
    (tmp_path / "calls.csv").write_text(f'url,notes\nhttps://x.example/a.mp3,"{notes}"\n')
    recipe = load_recipe(_recipe_with(tmp_path, "{list: calls.csv}"))
    [item] = expand(recipe, TemplateEngine(tmp_path))
    assert item.vars["notes"] == notes


@pytest.mark.parametrize(
    ("inputs", "files", "expected"),
    [
        (
            "{list: calls.csv}",
            {"calls.csv": 'url,notes\nhttps://x.example/a.mp3,"open\nhttps://x.example/b.mp3,ok\n'},
            "calls.csv: after line 1: unexpected end of data",
        ),
        ('{list: "a\\0b.csv"}', {}, "holds an invisible character; retype the path"),
    ],
)
def test_broken_input_files_are_located_problems(
    tmp_path: Path, inputs: str, files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = validate_file(_recipe_with(tmp_path, inputs))
    (problem,) = result.diagnostics
    assert problem.line == 3
    assert expected in problem.message


def test_a_saved_transcript_nested_absurdly_deep_is_a_message(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"text": "x", "words": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SourceUnreadable, match="nests its JSON thousands of levels deep"):
        load_saved(path)


_PEAK = """
import sys, tracemalloc
from pathlib import Path
from runner.checks import validate_file
tracemalloc.start()
result = validate_file(Path(sys.argv[1]))
_, peak = tracemalloc.get_traced_memory()
assert result.diagnostics == [], result.diagnostics
print(peak)
"""


def _validate_peak(folder: Path, count: int) -> int:
    """Peak traced bytes of validating a list of ``count`` rows, each with a name
    template and its own folder, in a process of its own (a test process's caches and
    collector would blur a difference of megabytes)."""
    rows = "".join(f"https://x.example/c{n}.mp3,Customer {n % 500}\n" for n in range(count))
    # {{ index }} makes each name its own: a repeated name keeps its item until every
    # name is known (a repeat's -N must pass over all of them).
    (folder / "calls.csv").write_text("url,customer\n" + rows)
    path = folder / "r.yaml"
    path.write_text(
        "version: 1\nname: r\ninputs: [{list: calls.csv, name: '{{ row.customer }}-{{ index }}'}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
        "output: {dir: 'out/{{ item.name }}'}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.slow  # 3,000 templates rendered under tracemalloc: seconds
def test_validate_streams_a_long_list_in_flat_memory(tmp_path: Path) -> None:
    """Validate keeps 16-byte digests of names and folders, not the items: 1,500 more
    rows add about 0.3 MiB of traced peak (as 3,000 more do), where expanding them all
    added 1.0 MiB (2.0 MiB for 3,000; at a million rows: 138 MB of RSS instead of
    1.1 GB). The smaller list has 750 rows: its 500 customers' names are all seen."""
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _validate_peak(tmp_path / "small", 750)
    large = _validate_peak(tmp_path / "large", 2_250)
    assert large - small < 0.6 * 2**20, f"{(large - small) / 2**20:.2f} MiB more for 1,500 rows"


@pytest.mark.parametrize(
    ("rows", "output_dir", "expected"),
    [
        # Repeats are renamed as a run names them, past every name (a later a-2 too).
        ("a\na\na-2\nA\n", "out/{{ item.name }}", []),
        ("a\na\na-2\n", "out/{{ item.name[:1] }}", ["items 'a' and 'a-3' would write"]),
        ("a\nb\n", "out/x", ["items 'a' and 'b' would write into the same folder"]),
        ("a\n..\n", "out/{{ vars.where }}", ["calls.csv:3: item 'item-2': output.dir renders"]),
    ],
)
def test_streamed_validation_reports_as_the_items_a_run_makes(
    tmp_path: Path, rows: str, output_dir: str, expected: list[str]
) -> None:
    (tmp_path / "calls.csv").write_text(
        "transcript_id,name,where\n"
        + "".join(f"id{n},{name},{name}\n" for n, name in enumerate(rows.split()))
    )
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nname: r\ninputs: [{list: calls.csv}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
        f"output: {{dir: '{output_dir}'}}\n"
    )
    found = [f"{d.file}:{d.line}: {d.message}" for d in validate_file(path).diagnostics]
    assert len(found) == len(expected)
    for message, part in zip(found, expected, strict=True):
        assert part.split(": ", 1)[-1] in message

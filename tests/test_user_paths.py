"""A path given on the command line that cannot be used is a usage error naming it, said
in one line before anything runs: never a traceback, never a failure after the run.

A folder cannot be made unwritable for root, so "unwritable" is a path that goes through
a file (``afile/sub``), which no one can create.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import RunCli

from runner.errors import EXIT_USAGE

WILDFIRES = Path(__file__).resolve().parent / "fixtures/assemblyai/transcript-wildfires.json"

# Exports of a saved transcript: a run that needs no key and no server.
RECIPE = """\
version: 1
name: notes
inputs:
  - transcript_file: saved.json
tasks:
  readable:
    export: markdown
"""

IN_A_FILE = "afile is a file, so nothing can be made inside it; name a path under a folder"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the recipe, its transcript, a file ``afile`` and a folder
    ``adir``."""
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(RECIPE)
    shutil.copy(WILDFIRES, tmp_path / "saved.json")
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "afile"], "--out afile: it is a file, not a folder; name a folder"),
        (["--out", "afile/sub"], f"--out afile/sub: {IN_A_FILE}"),
        (["--out", "afile", "--dry-run"], "--out afile: it is a file, not a folder; name a folder"),
        (["--state-dir", "afile/sub"], f"--state-dir afile/sub: {IN_A_FILE}"),
        (["--manifest", "afile/sub"], f"--manifest afile/sub: {IN_A_FILE}"),
        (["--manifest", "adir"], "--manifest adir: it is a folder; name a file"),
        (["--report", "afile/sub"], f"--report afile/sub: {IN_A_FILE}"),
        (["--junit", "afile/sub/junit.xml"], f"--junit afile/sub/junit.xml: {IN_A_FILE}"),
    ],
)
def test_run_refuses_a_path_it_cannot_use_before_anything_runs(
    folder: Path, run_cli: RunCli, args: list[str], message: str
) -> None:
    code, out, err = run_cli("run", "r.yaml", *args)
    assert (code, err) == (EXIT_USAGE, f"error: {message}\n")
    assert out == ""
    assert not (folder / "out").exists()  # nothing ran
    assert not (folder / ".transcript-runner").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["merge", "out/run.json", "--manifest", "afile/sub"],
            f"--manifest afile/sub: {IN_A_FILE}",
        ),
        (
            ["merge", "out/run.json", "--manifest", "m/run.json", "--junit", "afile/j.xml"],
            f"--junit afile/j.xml: {IN_A_FILE}",
        ),
        (["merge", "afile/sub"], "afile/sub: Not a directory"),
        (["merge", "adir"], "adir: Is a directory"),
        (["report", "out/run.json", "--html", "afile/r.html"], f"--html afile/r.html: {IN_A_FILE}"),
        (["report", "afile/sub"], "afile/sub: Not a directory"),
        (["report", "missing.json"], "missing.json: no such manifest"),
    ],
)
def test_merge_and_report_refuse_a_path_they_cannot_use(
    folder: Path, run_cli: RunCli, args: list[str], message: str
) -> None:
    assert run_cli("run", "r.yaml", "--out", "out").exit_code == 0
    code, out, err = run_cli(*args)
    assert (code, err) == (EXIT_USAGE, f"error: {message}\n")
    assert out == ""
    assert not (folder / "m").exists()


def test_a_path_that_can_be_made_is_made(folder: Path, run_cli: RunCli) -> None:
    """The checks refuse only what cannot work: new folders on the way are fine."""
    code, _, err = run_cli(
        "run", "r.yaml", "--out", "new/out", "--state-dir", "new/state", "--junit", "new/j/j.xml"
    )
    assert code == 0, err
    assert (folder / "new" / "out" / "run.json").is_file()
    assert (folder / "new" / "j" / "j.xml").is_file()


def test_a_default_state_folder_that_is_a_file_says_so(folder: Path, run_cli: RunCli) -> None:
    (folder / ".transcript-runner").write_text("")
    code, _, err = run_cli("run", "r.yaml")
    assert code == EXIT_USAGE  # the state folder is configuration: as for every command
    assert err.count("\n") == 1
    assert err.startswith("state store .transcript-runner/state.db: ")
    assert err.endswith("a file is in the way of the folder; pass --state-dir a folder\n")


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "r.yaml", "--state-dir", "afile/sub"],
        ["render", "r.yaml", "--out", "afile/sub"],
        ["render", "r.yaml", "--state-dir", "afile/sub"],
    ],
)
def test_plan_and_render_refuse_a_path_through_a_file(
    folder: Path, run_cli: RunCli, args: list[str]
) -> None:
    """They only read there, but a path through a file is a mistake, not an empty store."""
    code, out, err = run_cli(*args)
    assert code == EXIT_USAGE
    assert f"{args[-2]} afile/sub: {IN_A_FILE}" in out + err


# -- symbolic links under the output folder ---------------------------------------------


def test_an_item_folder_linked_elsewhere_receives_nothing(folder: Path, run_cli: RunCli) -> None:
    elsewhere = folder / "adir"
    (folder / "out" / "notes").mkdir(parents=True)
    (folder / "out" / "notes" / "saved").symlink_to(elsewhere)
    code, out, err = run_cli("run", "r.yaml", "--out", "out", "--progress", "plain")
    assert code == 3, out + err  # refused at its item before anything runs
    assert "r.yaml:4: item 'saved'" in out + err
    assert "symbolic link leading out" in out + err
    assert list(elsewhere.iterdir()) == []


def test_runs_linked_elsewhere_gets_no_link_to_the_manifest(folder: Path, run_cli: RunCli) -> None:
    elsewhere = folder / "adir"
    (folder / "out").mkdir()
    (folder / "out" / "runs").symlink_to(elsewhere)
    code, out, err = run_cli("run", "r.yaml", "--out", "out", "--progress", "plain")
    assert code == 0, out + err
    assert (folder / "out" / "run.json").is_file()
    assert list(elsewhere.iterdir()) == []


# -- names longer than file systems allow -----------------------------------------------

LONG = "a" * 300


@pytest.mark.parametrize("command", ["validate", "plan", "render", "run"])
def test_a_list_path_with_an_over_long_name_is_a_located_error(
    folder: Path, run_cli: RunCli, command: str
) -> None:
    (folder / "r.yaml").write_text(
        RECIPE.replace("transcript_file: saved.json", f"list: {LONG}.csv")
    )
    code, out, err = run_cli(command, "r.yaml")
    assert code == 3, out + err
    assert "r.yaml:4:" in out + err
    assert "is 304 bytes long; file systems allow at most 255" in out + err
    assert "Traceback" not in out + err
    assert "a bug in" not in out + err


@pytest.mark.parametrize("command", ["validate", "plan", "render", "run"])
def test_a_list_row_with_an_over_long_file_name_is_a_located_error(
    folder: Path, run_cli: RunCli, command: str
) -> None:
    (folder / "rows.csv").write_text(f"transcript_file,customer\nsaved.json,a\n{LONG}.json,b\n")
    (folder / "r.yaml").write_text(RECIPE.replace("transcript_file: saved.json", "list: rows.csv"))
    code, out, err = run_cli(command, "r.yaml")
    assert code == 3, out + err
    assert "rows.csv:3: " in out + err
    assert "is 305 bytes long; file systems allow at most 255" in out + err
    assert "a bug in" not in out + err

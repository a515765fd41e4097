"""`--var NAME=VALUE` and `--vars FILE`: the command line's vars over a recipe's `vars:`,
in what `render` shows, what `run` sends, and what run.json records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli
from fakeapi import FakeAssemblyAI

from runner.errors import EXIT_INVALID_RECIPE, EXIT_OK, EXIT_USAGE, UsageError
from runner.recipe.variables import command_line_vars, parse_assignment

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"
KEY = "test-key-do-not-leak-7f3a"

RECIPE = """\
version: 1
name: brief
inputs:
  - transcript_file: saved/wildfires.json
vars:
  audience: the project team
  tone: plain
tasks:
  brief:
    prompt: >-
      Brief {{ vars.audience }} in a {{ vars.tone }} tone:
      {{ transcript.text | truncate_tokens(20) }}
"""


@pytest.fixture
def api_key() -> str:
    return KEY


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    return FakeAssemblyAI(api_key=api_key)


@pytest.fixture
def recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "saved").mkdir()
    shutil.copy(WILDFIRES, tmp_path / "saved" / "wildfires.json")
    (tmp_path / "brief.yaml").write_text(RECIPE)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "brief.yaml"


def test_a_var_changes_the_rendered_prompt_and_is_shown(recipe: Path, run_cli: RunCli) -> None:
    code, before, _ = run_cli("render", str(recipe))
    assert code == EXIT_OK
    assert "Brief the project team in a plain tone" in before
    code, after, _ = run_cli("render", str(recipe), "--var", "audience=board")
    assert code == EXIT_OK
    assert "Brief board in a plain tone" in after
    assert after.startswith('vars from the command line: audience="board"')
    code, shown, _ = run_cli("render", str(recipe), "--var", "audience=board", "--format", "json")
    data = json.loads(shown)
    assert data["vars"] == {"audience": "board"}
    assert "Brief board" in data["items"][0]["tasks"][0]["body"]["messages"][0]["content"]


def test_a_var_is_sent_and_recorded_in_run_json(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved").mkdir()
    shutil.copy(WILDFIRES, served / "saved" / "wildfires.json")
    (served / "brief.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "brief.yaml", "--var", "audience=board", "--no-report")
    assert code == EXIT_OK, err
    (call,) = fake.gateway.calls
    assert call.messages[0]["content"].startswith("Brief board in a plain tone")
    manifest = json.loads((served / "out" / "run.json").read_text())
    assert manifest["recipes"][0]["vars"] == {"audience": "board"}


def test_a_var_holding_a_key_the_run_sends_is_redacted_in_run_json(
    served: Path, fake: FakeAssemblyAI, run_cli: RunCli
) -> None:
    (served / "saved").mkdir()
    shutil.copy(WILDFIRES, served / "saved" / "wildfires.json")
    (served / "brief.yaml").write_text(RECIPE)
    code, _, err = run_cli("run", "brief.yaml", "--var", f"tone={KEY}", "--no-report")
    assert code == EXIT_OK, err
    text = (served / "out" / "run.json").read_text()
    assert KEY not in text
    assert json.loads(text)["recipes"][0]["vars"] == {"tone": "[REDACTED]"}


def test_a_vars_file_sets_many_and_a_var_wins_over_it(recipe: Path, run_cli: RunCli) -> None:
    (recipe.parent / "board.yaml").write_text("audience: the board\ntone: formal\n")
    code, out, _ = run_cli(
        "render", str(recipe), "--vars", "board.yaml", "--var", "tone=brisk", "--format", "json"
    )
    assert code == EXIT_OK
    content = json.loads(out)["items"][0]["tasks"][0]["body"]["messages"][0]["content"]
    assert content.startswith("Brief the board in a brisk tone")


def test_render_shows_a_nested_value_from_a_vars_file(recipe: Path, run_cli: RunCli) -> None:
    (recipe.parent / "more.yaml").write_text("extra: {people: [Ann, Bo], n: 2}\n")
    code, out, err = run_cli("render", str(recipe), "--vars", "more.yaml", "--format", "json")
    assert code == EXIT_OK, err
    assert json.loads(out)["vars"]["extra"] == {"people": ["Ann", "Bo"], "n": 2}
    code, out, err = run_cli("render", str(recipe), "--vars", "more.yaml")
    assert code == EXIT_OK, err
    assert 'extra={"people": ["Ann", "Bo"], "n": 2}' in out


def test_validate_and_plan_take_vars(recipe: Path, run_cli: RunCli) -> None:
    # A var the output folder needs: missing, validate says so; given, it passes.
    text = RECIPE.replace("vars:\n", 'output:\n  dir: "out/{{ vars.team }}"\nvars:\n')
    recipe.write_text(text)
    code, out, _ = run_cli("validate", str(recipe))
    assert code == EXIT_INVALID_RECIPE
    assert "team" in out
    code, out, _ = run_cli("validate", str(recipe), "--var", "team=red")
    assert code == EXIT_OK, out
    code, out, _ = run_cli("plan", str(recipe), "--var", "team=red")
    assert code == EXIT_OK, out


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("audience", "write NAME=VALUE"),
        ("9lives=cat", "is not a variable name"),
        ("vars.audience=x", "is not a variable name"),
    ],
)
def test_a_bad_assignment_is_a_usage_error(given: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        parse_assignment(given)


def test_an_assignment_keeps_everything_after_the_first_equals() -> None:
    assert parse_assignment("query=a=b") == ("query", "a=b")
    assert parse_assignment("empty=") == ("empty", "")


def test_a_vars_file_keeps_yaml_types_and_refuses_what_is_not_a_mapping(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("count: 3\nday: 2026-01-02\nnames: [a, b]\n")
    assert command_line_vars([good]) == {"count": 3, "day": "2026-01-02", "names": ["a", "b"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="holds a list"):
        command_line_vars([bad])
    with pytest.raises(UsageError, match="cannot read it"):
        command_line_vars([tmp_path / "missing.yaml"])


def test_a_bad_var_on_the_command_line_exits_2(recipe: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli("render", str(recipe), "--var", "audience")
    assert code == EXIT_USAGE
    assert "NAME=VALUE" in err

"""Golden tests of ``transcript-runner validate``: the exact report for each way to break a recipe.

Every folder under ``validation_cases/invalid/`` is one mistake: ``recipe.yaml`` (plus
any prompt file or list it needs) and ``expected.txt``, the exact text that
``transcript-runner validate recipe.yaml`` prints when run inside that folder. The
command must exit 3 and never print a traceback. Folders under
``validation_cases/valid/`` must validate with exit 0 and print their ``expected.txt``.

To add a case, create its folder with a ``recipe.yaml`` and run::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_validate_cases.py

which (re)writes every ``expected.txt``. Read each new message before committing: it
must say where (file:line:column), which key, what is wrong and what to do. If it
does not, fix the code, not the golden file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import CliResult, RunCli

CASES = Path(__file__).parent / "validation_cases"
REPO = Path(__file__).parent.parent
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# file:line: or file:line:column: at the start of every diagnostic line
LOCATED = re.compile(r"^[^\s:]+:\d+(:\d+)?: ")


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in (CASES / kind).iterdir() if (p / "recipe.yaml").is_file())


INVALID = _cases("invalid")
VALID = _cases("valid")


def _validate_in(case: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> CliResult:
    monkeypatch.chdir(case)
    return run_cli("validate", "recipe.yaml")


def _compare_golden(case: Path, result: CliResult) -> None:
    golden = case / "expected.txt"
    if UPDATE:
        golden.write_text(result.stdout, encoding="utf-8")
    assert golden.is_file(), f"{golden} is missing; run with UPDATE_GOLDEN=1 to create it"
    assert result.stdout == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_invalid_recipe_report(
    case: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _validate_in(case, run_cli, monkeypatch)
    assert "Traceback" not in result.output
    assert result.stderr == ""
    assert result.exit_code == 3, result.stdout
    _compare_golden(case, result)


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_every_problem_is_located(
    case: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    *problems, summary = _validate_in(case, run_cli, monkeypatch).stdout.splitlines()
    assert problems, "an invalid recipe must report at least one problem"
    for line in problems:
        assert LOCATED.match(line), f"no file:line in {line!r}"
    assert re.fullmatch(r"\d+ errors?, \d+ warnings? in 1 recipe", summary)


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.name)
def test_valid_recipe(case: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _validate_in(case, run_cli, monkeypatch)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith("1 recipe valid")
    _compare_golden(case, result)


SHIPPED = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipe_is_valid(
    recipe: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = run_cli("validate", str(recipe.relative_to(REPO)))
    assert result.exit_code == 0, result.stdout
    assert "Traceback" not in result.output


def test_recipes_folder_is_shipped() -> None:
    assert len(SHIPPED) >= 5


# --- the line numbers that matter most, asserted directly -------------------------


def _line_of(path: Path, needle: str) -> int:
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_block_prompt_error_names_the_recipe_line(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The error is on the 3rd line of the `prompt: |` block; the report must name the
    # recipe line a person opens in an editor, not "line 3 of the template".
    case = CASES / "invalid" / "jinja-syntax-block-prompt"
    line = _line_of(case / "recipe.yaml", "Transcript: {{ transcript.text }")
    assert line == _line_of(case / "recipe.yaml", "prompt: |") + 3
    result = _validate_in(case, run_cli, monkeypatch)
    assert result.stdout.startswith(f"recipe.yaml:{line}")


def test_prompt_file_error_names_the_prompt_file_line(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES / "invalid" / "jinja-syntax-prompt-file"
    prompt = case / "prompts" / "summary.md.j2"
    line = _line_of(prompt, "| }}")
    result = _validate_in(case, run_cli, monkeypatch)
    assert result.stdout.startswith(f"prompts/summary.md.j2:{line}")


def test_quoted_prompt_error_names_the_recipe_line(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES / "invalid" / "jinja-syntax-quoted-prompt"
    line = _line_of(case / "recipe.yaml", "prompt:")
    result = _validate_in(case, run_cli, monkeypatch)
    assert result.stdout.startswith(f"recipe.yaml:{line}:")


def test_there_are_enough_cases() -> None:
    # The issue asks for every common way a new user breaks a recipe.
    assert len(INVALID) >= 50
    assert {"minimal", "every-option", "merge-keys", "jsonl-list"} <= {p.name for p in VALID}

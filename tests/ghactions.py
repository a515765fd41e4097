"""GitHub Actions steps, played offline: the shared part of the workflow's and the action's tests.

A `run:` script is played line by line: each `transcript-runner ...` command runs with
bash, `${{ ... }}` expressions filled in by the test; a line that installs
transcript-runner counts as done, since the test's environment has it installed and
cannot reach GitHub; ``echo`` lines and ``python -m runner...`` (on this interpreter) run
too; any other line fails the test until it is taught what it does.
action.yml's composite steps are played the same way (:func:`play_action`), their
``if:`` conditions evaluated by :func:`condition_holds` (the forms action.yml uses).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from docblocks import ROOT

import runner

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMMAND = "transcript-runner "
ACTION_FILE = "action.yml"
# The one place the repository is named: pyproject.toml's [project.urls].
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "urls"
]["Repository"]
# What a workflow's `uses:` names to run action.yml.
ACTION = REPOSITORY.removeprefix("https://github.com/")
# The released version's tag: what the workflow pins, in its install lines and its `uses:`.
TAG = f"v{runner.__version__}"
INSTALLS = (
    # The workflow's jobs: the tagged version, from this repository.
    f'pip install "transcript-runner @ git+{REPOSITORY}@{TAG}"',
    # action.yml: the action's own checkout, which is the version its ref names.
    'python -m pip install --disable-pip-version-check "$GITHUB_ACTION_PATH"',
)


# The github context of a push: what the action sees outside a pull request.
PUSH = {
    "github.event_name": "push",
    "github.event.pull_request.base.sha": "",
    "github.token": "",
}
PYTHON_MODULE = "python -m runner."  # a module of the package, run on the runner's Python


@dataclass
class Command:
    line: str
    code: int
    stdout: str
    stderr: str


def substitute(text: str, values: Mapping[str, str], where: str) -> str:
    """``${{ expr }}`` replaced by ``values[expr]``; an expression the test does not know fails."""

    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression not in values:
            pytest.fail(f"{where}: give the test a value for ${{{{ {expression} }}}}")
        return values[expression]

    return EXPRESSION.sub(value, text)


def script_lines(script: str) -> list[str]:
    """The lines of a ``run:`` script, continuation lines joined, blanks and comments left out."""
    joined = script.replace("\\\n", " ")
    lines = (" ".join(line.split()) for line in joined.split("\n"))
    return [line for line in lines if line and not line.startswith("#")]


def commands_of(script: str) -> list[str]:
    """The ``transcript-runner ...`` commands of a ``run:`` script."""
    return [line for line in script_lines(script) if line.startswith(COMMAND)]


def run_script(
    script: str,
    where: str,
    cwd: Path,
    env: Mapping[str, str],
    commands: list[Command],
    python: str = sys.executable,
) -> bool:
    """Play one ``run:`` script (its expressions already filled in); False when it failed.

    Each command run is appended to ``commands``; ``python -m runner...`` runs on
    ``python`` (the warm one of tests/warmstart.py, in the tests that have it).
    """
    for line in script_lines(script):
        if line in INSTALLS:
            continue  # installed already: the test runs in an environment that has it
        if line.startswith(PYTHON_MODULE):
            line = f'"{python}" {line.removeprefix("python ")}'
        elif not line.startswith((COMMAND, "echo ")):
            pytest.fail(f"{where}: teach the test what `{line}` does")
        done = subprocess.run(
            ["bash", "-e", "-c", line],
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        commands.append(Command(line, done.returncode, done.stdout, done.stderr))
        if done.returncode != 0:
            return False
    return True


def load_action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / ACTION_FILE).read_text(encoding="utf-8"))
    return data


TERM = re.compile(r"^([\w.-]+) (==|!=) '([^']*)'$")


def condition_holds(condition: str, values: Mapping[str, str], where: str) -> bool:
    """An ``if:`` of terms joined by ``&&``: ``!cancelled()`` (a played job is never
    cancelled) or ``name == 'text'`` / ``name != 'text'``; any other form fails the test."""
    held = True
    for term in (t.strip() for t in condition.split("&&")):
        if term == "!cancelled()":
            continue
        match = TERM.match(term)
        if match is None:
            pytest.fail(f"{where}: teach the test the condition {term!r}")
        name, operator, text = match.groups()
        if name not in values:
            pytest.fail(f"{where}: give the test a value for {name}")
        held = held and (values[name] == text) == (operator == "==")
    return held


def play_action(
    given: Mapping[str, str],
    cwd: Path,
    env: Mapping[str, str],
    commands: list[Command],
    github: Mapping[str, str] = PUSH,
    python: str = sys.executable,
) -> bool:
    """Play action.yml's composite steps, as a workflow's ``uses:`` step with ``with: given``,
    in the ``github`` context (a push, unless told); False when a step failed.

    As on GitHub, a step with no ``!cancelled()`` in its condition is skipped once one
    has failed.
    """
    action = load_action()
    declared = action.get("inputs", {})
    unknown = set(given) - set(declared)
    assert not unknown, f"{ACTION_FILE} has no input {sorted(unknown)}"
    values = dict(github)
    for name, spec in declared.items():
        default = substitute(str(spec.get("default", "")), github, f"{ACTION_FILE} {name}")
        values[f"inputs.{name}"] = str(given.get(name, default))
    step_env = {**env, "GITHUB_ACTION_PATH": str(ROOT)}
    failed = False
    for number, step in enumerate(action["runs"]["steps"], 1):
        where = f"{ACTION_FILE} step {number}"
        assert step.get("shell") == "bash", f"{where}: the test plays bash steps"
        condition = str(step.get("if", ""))
        runs_after_failure = "!cancelled()" in condition
        if (failed and not runs_after_failure) or (
            condition and not condition_holds(condition, values, where)
        ):
            outcome = "skipped"
        else:
            own = {k: substitute(str(v), values, where) for k, v in step.get("env", {}).items()}
            script = substitute(step["run"], values, where)
            ran = run_script(script, where, cwd, {**step_env, **own}, commands, python)
            outcome = "success" if ran else "failure"
            failed = failed or not ran
        if "id" in step:
            values[f"steps.{step['id']}.outcome"] = outcome
    return not failed

"""GitHub Actions steps, played offline: the shared part of the workflow's and the action's tests.

A `run:` script is played line by line: each `transcript-runner ...` command runs with
bash, `${{ ... }}` expressions filled in by the test; a line that installs
transcript-runner counts as done, since the test's environment has it installed and
cannot reach GitHub; any other line fails the test until it is taught what it does.
action.yml's composite steps are played the same way (:func:`play_action`).
"""

from __future__ import annotations

import re
import subprocess
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
    script: str, where: str, cwd: Path, env: Mapping[str, str], commands: list[Command]
) -> bool:
    """Play one ``run:`` script (its expressions already filled in); False when it failed.

    Each command run is appended to ``commands``.
    """
    for line in script_lines(script):
        if line in INSTALLS:
            continue  # installed already: the test runs in an environment that has it
        if not line.startswith(COMMAND):
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


def play_action(
    given: Mapping[str, str], cwd: Path, env: Mapping[str, str], commands: list[Command]
) -> bool:
    """Play action.yml's composite steps, as a workflow's ``uses:`` step with ``with: given``."""
    action = load_action()
    declared = action.get("inputs", {})
    unknown = set(given) - set(declared)
    assert not unknown, f"{ACTION_FILE} has no input {sorted(unknown)}"
    values = {
        f"inputs.{name}": str(given.get(name, spec.get("default", "")))
        for name, spec in declared.items()
    }
    step_env = {**env, "GITHUB_ACTION_PATH": str(ROOT)}
    for number, step in enumerate(action["runs"]["steps"], 1):
        where = f"{ACTION_FILE} step {number}"
        assert step.get("shell") == "bash", f"{where}: the test plays bash steps"
        assert "if" not in step, f"{where}: teach the test the step condition"
        own = {k: substitute(str(v), values, where) for k, v in step.get("env", {}).items()}
        script = substitute(step["run"], values, where)
        if not run_script(script, where, cwd, {**step_env, **own}, commands):
            return False
    return True

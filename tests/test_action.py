"""action.yml and .pre-commit-hooks.yaml: the two ways other repositories run `validate`.

* action.yml is a valid composite action for GitHub (its metadata schema, vendored by
  check-jsonschema, so no network), and its steps, played as written (tests/ghactions.py:
  the install line counts as done, the rest runs with bash), annotate a broken recipe and
  fail, pass good ones, and read the `recipes` input.
* .pre-commit-hooks.yaml is a pre-commit manifest (its fields checked here by hand, as
  pre-commit's own schema would; no package we depend on ships it), its entry is a
  command of this CLI, its files pattern matches exactly the shipped recipes, and the
  entry run on them, as pre-commit runs it, passes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from docblocks import ROOT
from ghactions import ACTION_FILE, COMMAND, Command, load_action, play_action

from runner.checks import discover
from runner.cli import cli

HOOKS_FILE = ".pre-commit-hooks.yaml"
# One error, on line 6: `transcript` has no field `txt`.
BROKEN = """version: 1
name: broken
inputs: [{url: "https://example.com/call.mp3"}]
tasks:
  summary:
    prompt: "Summarize: {{ transcript.txt }}"
"""


def runner_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a GitHub runner, with this interpreter's transcript-runner first."""
    here = Path(sys.executable).parent
    if (here / "transcript-runner").is_file():
        folder = here
    else:  # not installed as a script: a stand-in
        folder = tmp_path / "bin"
        folder.mkdir()
        shim = folder / "transcript-runner"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runner "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env["PATH"] = str(folder) + os.pathsep + env.get("PATH", "")
    env["GITHUB_ACTIONS"] = "true"
    return env


# --- action.yml ------------------------------------------------------------------------


@pytest.mark.slow  # check-jsonschema, a subprocess
def test_the_action_is_valid_for_github() -> None:
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-actions",
            str(ROOT / ACTION_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_action_installs_itself_and_validates() -> None:
    action = load_action()
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {"recipes"}
    assert action["inputs"]["recipes"]["default"] == "recipes/"
    assert all(spec["description"] for spec in action["inputs"].values())
    install, check = action["runs"]["steps"]
    assert "$GITHUB_ACTION_PATH" in install["run"]  # the action's own checkout
    # Every command it runs is one the CLI has.
    commands = [line for s in action["runs"]["steps"] for line in s["run"].split("\n")]
    for line in (c for c in commands if c.startswith(COMMAND)):
        assert line.split()[1] in cli.commands, line
    # The input reaches the script through the environment, never pasted into it.
    assert "${{" not in check["run"]
    assert check["env"] == {"RECIPES": "${{ inputs.recipes }}"}


@pytest.mark.slow  # the action's commands, real subprocesses
def test_the_action_passes_good_recipes_and_annotates_a_broken_one(tmp_path: Path) -> None:
    env = runner_env(tmp_path)
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "recipes", workspace / "recipes")

    ran: list[Command] = []
    assert play_action({}, workspace, env, ran)  # the default: recipes/
    (validated,) = ran
    assert validated.code == 0, validated.stdout + validated.stderr
    assert validated.stdout.startswith("::warning file=recipes/lemur-locations.yaml,line=15,")

    (workspace / "more").mkdir()
    (workspace / "more" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    ran = []
    given = {"recipes": "recipes/first-run.yaml\nmore/"}  # a file and a folder, two lines
    assert not play_action(given, workspace, env, ran)
    (validated,) = ran
    assert validated.code == 3
    errors = [line for line in validated.stdout.split("\n") if line.startswith("::error ")]
    assert errors
    assert all(e.startswith("::error file=more/broken.yaml,line=") for e in errors)
    assert "recipes/first-run.yaml" not in validated.stdout  # checked, and valid
    assert "lemur-locations" not in validated.stdout  # not named: not checked


# --- .pre-commit-hooks.yaml ----------------------------------------------------------------

# pre-commit's manifest fields (pre_commit/clientlib.py, MANIFEST_HOOK_DICT): their types.
REQUIRED = {"id": str, "name": str, "entry": str, "language": str}
OPTIONAL = {
    "alias": str,
    "files": str,
    "exclude": str,
    "types": list,
    "types_or": list,
    "exclude_types": list,
    "additional_dependencies": list,
    "args": list,
    "always_run": bool,
    "fail_fast": bool,
    "pass_filenames": bool,
    "description": str,
    "language_version": str,
    "log_file": str,
    "minimum_pre_commit_version": str,
    "require_serial": bool,
    "stages": list,
    "verbose": bool,
}


def load_hooks() -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = yaml.safe_load((ROOT / HOOKS_FILE).read_text(encoding="utf-8"))
    return hooks


def test_the_hooks_file_is_a_pre_commit_manifest() -> None:
    hooks = load_hooks()
    assert isinstance(hooks, list)
    assert hooks
    for hook in hooks:
        for key, kind in REQUIRED.items():
            assert isinstance(hook.get(key), kind), f"{HOOKS_FILE}: {key} is required"
        for key, value in hook.items():
            kind = REQUIRED.get(key) or OPTIONAL.get(key)
            assert kind is not None, f"{HOOKS_FILE}: pre-commit has no field {key}"
            assert isinstance(value, kind), f"{HOOKS_FILE}: {key} is a {kind.__name__}"
        re.compile(hook.get("files", ""))
        re.compile(hook.get("exclude", "^$"))
    assert [h["id"] for h in hooks] == ["transcript-runner-validate"]


def test_the_hook_runs_validate_on_the_changed_recipes() -> None:
    (hook,) = load_hooks()
    assert hook["language"] == "python"  # pre-commit pip-installs this repository
    assert hook.get("pass_filenames", True)
    program, command, *rest = shlex.split(hook["entry"])
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert program in pyproject["project"]["scripts"]
    assert (command, rest) == ("validate", [])
    assert command in cli.commands

    # Its files are the recipes validate finds in recipes/, and nothing else of ours.
    files = re.compile(hook["files"])
    tracked = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()]
    tracked = [p for p in tracked if not p.startswith((".git/", ".venv/")) and "/." not in p]
    matched = sorted(p for p in tracked if files.search(p))
    recipes = sorted(p.relative_to(ROOT).as_posix() for p in discover([str(ROOT / "recipes")]))
    assert matched == recipes
    for other in (HOOKS_FILE, ACTION_FILE, "docs/examples/github-workflow.yml"):
        assert not files.search(other)


@pytest.mark.slow  # the hook's entry, a real subprocess
def test_the_hooks_entry_passes_the_shipped_recipes_and_fails_a_broken_one(
    tmp_path: Path,
) -> None:
    (hook,) = load_hooks()
    env = {**runner_env(tmp_path), "GITHUB_ACTIONS": "false"}  # on a developer's machine
    repository = tmp_path / "repository"
    shutil.copytree(ROOT / "recipes", repository / "recipes")
    recipes = sorted(p.relative_to(repository).as_posix() for p in discover([str(repository)]))

    def hook_on(paths: list[str]) -> subprocess.CompletedProcess[str]:
        # As pre-commit runs it: the entry, then the matching files, from the root.
        files = [p for p in paths if re.search(hook["files"], p)]
        return subprocess.run(
            [*shlex.split(hook["entry"]), *files],
            cwd=repository,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    passed = hook_on(recipes)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    (repository / "recipes" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    failed = hook_on(["recipes/broken.yaml", "README.md"])
    assert failed.returncode == 3
    assert "recipes/broken.yaml:6:" in failed.stdout, failed.stdout

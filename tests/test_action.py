"""action.yml and .pre-commit-hooks.yaml: the two ways other repositories run `validate`.

* action.yml is a valid composite action for GitHub (its metadata schema, vendored by
  check-jsonschema, so no network), and its steps, played as written (tests/ghactions.py:
  the install line counts as done, the rest runs with bash), annotate a broken recipe and
  fail, pass good ones, and read the `recipes` input. On a pull request (a git repository
  with a base and a head commit, the fake AssemblyAI, the fake GitHub of
  tests/fakegithub.py) they review the change and post it as one comment, updated on the
  next push; with no api-key the review sends nothing and says what it skipped.
* .pre-commit-hooks.yaml is a pre-commit manifest (its fields checked here by hand, as
  pre-commit's own schema would; no package we depend on ships it), its entry is a
  command of this CLI, its files pattern matches exactly the shipped recipes, and the
  entry run on them, as pre-commit runs it, passes.
"""

from __future__ import annotations

import json
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
from fakeapi import CHAT_PATH, FakeAssemblyAI, serve_in_thread
from fakegithub import FakeGitHub, serve_github
from ghactions import ACTION_FILE, COMMAND, Command, load_action, play_action
from gitrepo import commit_all, git, saved_transcripts
from warmstart import Warm

from runner.checks import discover
from runner.cli import cli
from runner.results.ci.comment import MARKER

HOOKS_FILE = ".pre-commit-hooks.yaml"
# One error, on line 6: `transcript` has no field `txt`.
BROKEN = """version: 1
name: broken
inputs: [{url: "https://example.com/call.mp3"}]
tasks:
  summary:
    prompt: "Summarize: {{ transcript.txt }}"
"""


def runner_env(warm: Warm) -> dict[str, str]:
    """The environment of a GitHub runner, with a `transcript-runner` of this checkout
    first on its PATH: the warm one (tests/warmstart.py), a process per command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env["PATH"] = str(warm.bin) + os.pathsep + env.get("PATH", "")
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
    assert set(action["inputs"]) == {"recipes", "review", "base", "api-key", "github-token"}
    assert action["inputs"]["recipes"]["default"] == "recipes/"
    assert action["inputs"]["review"]["default"] == "true"
    assert action["inputs"]["api-key"]["default"] == ""  # a fork's pull request: no secrets
    assert all(spec["description"] for spec in action["inputs"].values())
    install, check, *reviews = action["runs"]["steps"]
    assert "$GITHUB_ACTION_PATH" in install["run"]  # the action's own checkout
    # Inputs reach every script through the environment, never pasted into it.
    assert all("${{" not in step["run"] for step in reviews)
    # Every command it runs is one the CLI has.
    commands = [line for s in action["runs"]["steps"] for line in s["run"].split("\n")]
    for line in (c for c in commands if c.startswith(COMMAND)):
        assert line.split()[1] in cli.commands, line
    # The input reaches the script through the environment, never pasted into it.
    assert "${{" not in check["run"]
    assert check["env"] == {"RECIPES": "${{ inputs.recipes }}"}


@pytest.mark.slow  # the action's commands, real subprocesses
def test_the_action_passes_good_recipes_and_annotates_a_broken_one(
    tmp_path: Path, warm: Warm
) -> None:
    env = runner_env(warm)
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "recipes", workspace / "recipes")

    ran: list[Command] = []
    assert play_action({}, workspace, env, ran, python=str(warm.python))  # the default: recipes/
    (validated,) = ran
    assert validated.code == 0, validated.stdout + validated.stderr
    assert validated.stdout.startswith("::warning file=recipes/lemur-locations.yaml,line=15,")

    (workspace / "more").mkdir()
    (workspace / "more" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    ran = []
    given = {"recipes": "recipes/first-run.yaml\nmore/"}  # a file and a folder, two lines
    assert not play_action(given, workspace, env, ran, python=str(warm.python))
    (validated,) = ran
    assert validated.code == 3
    errors = [line for line in validated.stdout.split("\n") if line.startswith("::error ")]
    assert errors
    assert all(e.startswith("::error file=more/broken.yaml,line=") for e in errors)
    assert "recipes/first-run.yaml" not in validated.stdout  # checked, and valid
    assert "lemur-locations" not in validated.stdout  # not named: not checked


# --- the review, on a pull request --------------------------------------------------------

RECIPE = """\
version: 1
name: calls
inputs:
  - transcript_file: transcripts/*.json
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text[:60] }}"
  topics:
    prompt: "Topics of: {{ transcript.text[:60] }}"
"""
TOKEN = "ghs_actionTestToken"
NUMBER = 12


def _push(workspace: Path, recipe: str) -> None:
    (workspace / "calls.yaml").write_text(recipe, encoding="utf-8")
    commit_all(workspace, "a change")


def _pull_request(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repository with the recipe at its base commit, and the pull request's context."""
    workspace = tmp_path / "workspace"
    saved_transcripts(workspace, ("alpha", "bravo"))
    (workspace / ".gitignore").write_text(".transcript-runner/\nreview/\nout/\nrun.json\n")
    git(workspace, "init", "-q")
    _push(workspace, RECIPE)
    base = git(workspace, "rev-parse", "HEAD")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": NUMBER, "base": {"sha": base}}}))
    github = {
        "github.event_name": "pull_request",
        "github.event.pull_request.base.sha": base,
        "github.token": TOKEN,
    }
    return workspace, github | {"event": str(event)}


def _pr_env(tmp_path: Path, warm: Warm, api: str, github_url: str, event: str) -> dict[str, str]:
    env = runner_env(warm)
    env.pop("ASSEMBLYAI_API_KEY", None)
    return env | {
        "ASSEMBLYAI_BASE_URL": api,
        "ASSEMBLYAI_LLM_GATEWAY_URL": f"{api}/v1",
        "GITHUB_API_URL": github_url,
        "GITHUB_REPOSITORY": "owner/recipes",
        "GITHUB_EVENT_PATH": event,
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }


@pytest.mark.slow  # git and the action's commands, real subprocesses
def test_on_a_pull_request_the_review_is_posted_then_updated(
    tmp_path: Path, fake: FakeAssemblyAI, api_key: str, warm: Warm
) -> None:
    workspace, github = _pull_request(tmp_path)
    event = github.pop("event")
    _push(workspace, RECIPE.replace("Summarize:", "Summarize briefly:"))
    hub = FakeGitHub()
    with serve_in_thread(fake) as api, serve_github(hub) as github_url:
        env = _pr_env(tmp_path, warm, api, github_url, event)
        given = {"recipes": "calls.yaml", "api-key": api_key}
        ran: list[Command] = []
        assert play_action(given, workspace, env, ran, github, python=str(warm.python)), [
            c.stderr for c in ran
        ]
        _, reviewed, posted = ran
        assert reviewed.line.startswith("transcript-runner review --base")
        assert len(fake.requests_to(f"POST {CHAT_PATH}")) == 4  # summary: 2 items, 2 sides
        assert "review comment posted on pull request #12" in posted.stderr
        (comment,) = hub.on(NUMBER)
        assert str(comment["body"]).startswith(MARKER + "\n")
        assert "Summarize briefly" in str(comment["body"])
        assert {s.authorization for s in hub.history} == {f"Bearer {TOKEN}"}

        _push(workspace, RECIPE.replace("Topics of:", "Main topics of:"))  # a second push
        ran = []
        assert play_action(given, workspace, env, ran, github, python=str(warm.python)), [
            c.stderr for c in ran
        ]
        assert "review comment updated on pull request #12" in ran[-1].stderr
        (comment,) = hub.on(NUMBER)  # still one comment: the same one, updated
        assert "Main topics of" in str(comment["body"])
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary.count("## transcript-runner review") == 2  # each push's, appended
    assert all(TOKEN not in c.stdout + c.stderr for c in ran)


@pytest.mark.slow  # git and the action's commands, real subprocesses
def test_without_a_key_the_review_is_offline_and_a_forks_token_only_warns(
    tmp_path: Path, fake: FakeAssemblyAI, warm: Warm
) -> None:
    workspace, github = _pull_request(tmp_path)
    event = github.pop("event")
    _push(workspace, RECIPE.replace("Summarize:", "Summarize briefly:"))
    hub = FakeGitHub(refuse=True)  # a fork's read-only token
    with serve_in_thread(fake) as api, serve_github(hub) as github_url:
        env = _pr_env(tmp_path, warm, api, github_url, event)
        ran: list[Command] = []
        assert play_action(
            {"recipes": "calls.yaml"}, workspace, env, ran, github, python=str(warm.python)
        )
    _, notice, reviewed, posted = ran
    assert notice.stdout.startswith("::notice title=transcript-runner review::no api-key")
    assert reviewed.line.startswith("transcript-runner review --offline --base")
    assert reviewed.code == 0, reviewed.stderr
    assert fake.history == []  # nothing sent
    assert reviewed.stderr.count("not compared: calls/summary/") == 2
    assert posted.stdout.startswith("::warning title=transcript-runner review::")
    assert hub.comments == {}
    assert "only the cache was compared" in (tmp_path / "summary.md").read_text()


def test_outside_a_pull_request_the_review_is_skipped(tmp_path: Path, warm: Warm) -> None:
    ran: list[Command] = []
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    env = runner_env(warm)
    assert play_action(
        {"api-key": "k"}, tmp_path, env, ran, python=str(warm.python)
    )  # a push: no pull request
    assert [c.line.split()[1] for c in ran] == ["validate"]


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
    tmp_path: Path, warm: Warm
) -> None:
    (hook,) = load_hooks()
    env = {**runner_env(warm), "GITHUB_ACTIONS": "false"}  # on a developer's machine
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

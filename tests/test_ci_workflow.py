"""The GitHub Actions workflow of docs/ci.md works, as far as it can be shown offline.

* It is a valid workflow: GitHub's workflow schema (vendored by check-jsonschema, so no
  network) accepts it, and it has the shape docs/ci.md describes: the triggers, the
  matrix of shards, a cached state folder that is the one the runs use, the merge job.
* Its commands do what docs/ci.md says. The test plays the workflow's jobs step by step,
  each job (and each shard of a matrix, at the same time) in a fresh folder standing in
  for a fresh runner: `actions/checkout` copies the shipped recipes/, the `actions/cache`
  and `*-artifact` steps are emulated with copies (with GitHub's key and prefix rules), and
  every `transcript-runner` command of a `run:` step (and of action.yml's steps, where the
  workflow uses this repository's action) is run by bash (each a process of its own,
  forked from a warm server that imported the runner once: tests/warmstart.py), with the workflow's
  `${{ ... }}` expressions filled in, against the test suite's AssemblyAI stand-in
  (tests/fakeapi.py). Install lines count as done (tests/ghactions.py): the test's
  environment has the tool and no way to GitHub. It plays a scheduled run, a second
  scheduled run that starts from
  the state the first one saved and so pays for nothing again, and a pull request whose
  offline replay sends nothing at all.
* docs/ci.md quotes the workflow verbatim, and its links lead somewhere.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ghactions
import pytest
import yaml
from docblocks import (
    ROOT,
    check_conventions_comment,
    check_notes,
    check_quote,
    parse_blocks,
    read,
)
from fakeapi import FakeAssemblyAI, serve_in_thread
from ghactions import (
    ACTION,
    COMMAND,
    EXPRESSION,
    INSTALLS,
    TAG,
    Command,
    commands_of,
    play_action,
)
from warmstart import Warm

pytestmark = pytest.mark.slow  # the workflow's steps, each a real subprocess

WORKFLOW_FILE = "docs/examples/github-workflow.yml"
WORKFLOW_PATH = ROOT / WORKFLOW_FILE
CI_DOC = "docs/ci.md"
KEY = "sk-ci-3f9d2a61-do-not-leak"  # shaped like a real key, so a leak of it is noticed
Workflow = dict[str, Any]


def load_workflow() -> Workflow:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW_PATH.read_text(encoding="utf-8"))
    # PyYAML reads YAML 1.1, where a bare `on` is the boolean true; GitHub reads a key.
    return {"on" if key is True else str(key): value for key, value in data.items()}


def substitute(text: str, values: Mapping[str, str]) -> str:
    return ghactions.substitute(text, values, WORKFLOW_FILE)


def compact(text: str) -> str:
    """``${{ expr }}`` written ``${{expr}}``, so a command splits into its words."""
    return EXPRESSION.sub(lambda m: "${{" + m.group(1) + "}}", text)


def option(command: str, name: str) -> str:
    """The value of ``--name VALUE`` in a command line (expressions compacted)."""
    words = compact(command).split()
    assert name in words, f"{command!r} has no {name}"
    return words[words.index(name) + 1]


def steps_using(job: Mapping[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).partition("@")[0] == action]


def run_commands(job: Mapping[str, Any]) -> list[str]:
    return [c for step in job["steps"] if "run" in step for c in commands_of(step["run"])]


# --- (1) a valid workflow, of the documented shape ---------------------------------------


def test_the_workflow_is_valid_for_github() -> None:
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW_PATH),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_workflow_has_the_documented_shape() -> None:
    workflow = load_workflow()
    triggers = workflow["on"]
    assert set(triggers) == {"pull_request", "schedule", "workflow_dispatch"}
    assert "recipes/**" in triggers["pull_request"]["paths"]
    assert triggers["schedule"][0]["cron"]
    assert workflow["permissions"] == {"contents": "read"}
    assert "github.ref" in workflow["concurrency"]["group"]
    jobs = workflow["jobs"]
    assert set(jobs) == {"validate", "run", "merge", "replay"}

    run = jobs["run"]
    shards = run["strategy"]["matrix"]["shard"]
    assert shards == [1, 2, 3, 4]
    assert run["strategy"]["fail-fast"] is False
    assert run["needs"] == "validate"
    (command,) = [c for c in run_commands(run) if c.startswith(COMMAND + "run ")]
    assert option(command, "--shard") == f"${{{{matrix.shard}}}}/{len(shards)}"
    state_dir = option(command, "--state-dir")
    assert "${{matrix.shard}}" in state_dir  # each shard keeps its own state
    (restore,) = steps_using(run, "actions/cache/restore")
    (save,) = steps_using(run, "actions/cache/save")
    assert compact(restore["with"]["path"]) == compact(save["with"]["path"]) == state_dir
    key = restore["with"]["key"]
    assert save["with"]["key"] == key
    assert "${{ matrix.shard }}" in key
    assert "${{ github.run_id }}" in key
    (prefix,) = restore["with"]["restore-keys"].strip().split("\n")
    assert key.startswith(prefix)
    assert "${{ matrix.shard }}" in prefix
    assert save["if"] == "always()"  # the state of a failed or timed-out run is kept too
    # --timeout ends the run, with its reports, well before GitHub would kill the job.
    assert float(option(command, "--timeout")) <= run["timeout-minutes"] * 60 - 300
    assert int(option(command, "--max-llm-calls")) > 0
    assert float(option(command, "--max-audio-hours")) > 0
    (upload,) = steps_using(run, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert compact(upload["with"]["path"]).rstrip("/") == option(command, "--out")

    merge = jobs["merge"]
    assert merge["needs"] == "run"
    assert merge["if"].startswith("always()")
    (download,) = steps_using(merge, "actions/download-artifact")
    # Each shard's artifact lands at <path>/<artifact name>, where the run job wrote it.
    name = upload["with"]["name"]
    assert compact(f"{download['with']['path']}/{name}") == option(command, "--out")
    assert fnmatch.fnmatch(name, download["with"]["pattern"])
    (merge_command,) = run_commands(merge)
    assert merge_command.startswith(COMMAND + "merge ")

    replay = jobs["replay"]
    assert replay["if"] == "github.event_name == 'pull_request'"
    assert replay["strategy"]["matrix"]["shard"] == shards
    (replay_command,) = run_commands(replay)
    assert "--offline" in replay_command.split()
    assert option(replay_command, "--state-dir") == state_dir

    # validate: this repository's action, at the released version's tag; every other job
    # installs that same version, from the same repository.
    (action,) = steps_using(jobs["validate"], ACTION)
    assert action["uses"] == f"{ACTION}@{TAG}"
    assert action["with"] == {
        "recipes": "recipes/",
        "api-key": "${{ secrets.ASSEMBLYAI_API_KEY }}",  # the review's, on pull requests
    }
    assert jobs["validate"]["permissions"]["pull-requests"] == "write"  # its comment
    (validate_plan,) = run_commands(jobs["validate"])
    assert validate_plan.startswith(COMMAND + "plan ")
    for name in ("run", "merge", "replay"):
        installs = [s["run"] for s in jobs[name]["steps"] if "pip install" in s.get("run", "")]
        assert installs == [INSTALLS[0]], name

    # Every action pinned to a major version (this repository's, to its release); the API
    # key read from secrets, only by the steps that send requests (the run, the action's
    # review), and no other secret.
    text = WORKFLOW_PATH.read_text(encoding="utf-8")
    for uses in re.findall(r"uses: (\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", uses) or uses == f"{ACTION}@{TAG}", uses
    assert set(re.findall(r"secrets\.\w+", text)) == {"secrets.ASSEMBLYAI_API_KEY"}
    secret_steps = [s for j in jobs.values() for s in j["steps"] if "secrets." in str(s)]
    secret_steps.remove(action)  # the review's key: it sends only changed tasks' calls
    assert len(secret_steps) == 1
    assert secret_steps[0]["env"] == {"ASSEMBLYAI_API_KEY": "${{ secrets.ASSEMBLYAI_API_KEY }}"}
    assert commands_of(secret_steps[0]["run"]) == [command]


# --- (2) docs/ci.md ---------------------------------------------------------------------


def test_the_page_quotes_the_workflow_verbatim() -> None:
    text = read(CI_DOC)
    check_conventions_comment(CI_DOC, text)
    check_notes(CI_DOC, text, ("from",))
    quotes = [b for b in parse_blocks(CI_DOC, text) if b.note and b.note[0] == "from"]
    assert [q.note for q in quotes if q.note == ("from", WORKFLOW_FILE)], "quote the workflow"
    for quote in quotes:
        check_quote(quote)
    whole = [q for q in quotes if q.note == ("from", WORKFLOW_FILE)]
    assert whole[0].body + "\n" == WORKFLOW_PATH.read_text(encoding="utf-8"), "all of it"


def test_the_page_links_lead_somewhere() -> None:
    def slug(heading: str) -> str:
        text = heading.lstrip("#").strip().lower()
        return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")

    def anchors(page: Path) -> set[str]:
        lines = page.read_text(encoding="utf-8").split("\n")
        inside, found = False, set()
        for line in lines:
            if line.startswith("```"):
                inside = not inside
            elif not inside and re.match(r"#{1,6} ", line):
                found.add(slug(line))
        return found

    doc = ROOT / CI_DOC
    broken = []
    for target, anchor in re.findall(r"\]\(([\w./-]*?)(?:#([\w-]+))?\)", read(CI_DOC)):
        if target.startswith("http"):
            continue
        page = (doc.parent / target).resolve() if target else doc
        if not page.exists() or (anchor and anchor not in anchors(page)):
            broken.append(f"{target}#{anchor}")
    assert broken == []


# --- (3) the workflow, played against the fake AssemblyAI -----------------------------------


@dataclass
class JobRun:
    """One job of one workflow run (one shard of a matrix job), in its own folder."""

    job: str
    shard: int | None
    workspace: Path
    result: str = "success"
    commands: list[Command] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)
    restored: str | None = None  # the cache key the restore step found

    def command(self, subcommand: str) -> Command:
        (found,) = [c for c in self.commands if c.line.startswith(COMMAND + subcommand + " ")]
        return found

    def manifest(self, path: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.workspace / path).read_text(encoding="utf-8"))
        return data


class ActionsCache:
    """actions/cache/restore and save: a key is saved once; restore takes the exact key,
    else the newest entry whose key starts with one of the restore-keys, in order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keys: list[str] = []  # oldest first
        self._lock = threading.Lock()

    def save(self, key: str, source: Path) -> None:
        with self._lock:
            assert key not in self.keys, f"cache key {key} saved twice: GitHub keeps the first"
            if source.is_dir():  # else the action warns that there is nothing to save
                shutil.copytree(source, self.folder / key)
                self.keys.append(key)

    def restore(self, key: str, prefixes: Sequence[str], target: Path) -> str | None:
        with self._lock:
            found = key if key in self.keys else None
            for prefix in prefixes:
                newest = (k for k in reversed(self.keys) if k.startswith(prefix))
                found = found or next(newest, None)
            if found is not None:
                shutil.copytree(self.folder / found, target)
            return found


# The conditions the workflow uses, as Python: (event name, results of the needed jobs).
CONDITIONS: dict[str, Callable[[str, Mapping[str, str]], bool]] = {
    "github.event_name != 'pull_request'": lambda event, needs: event != "pull_request",
    "github.event_name == 'pull_request'": lambda event, needs: event == "pull_request",
    "always() && needs.run.result != 'skipped'": lambda event, needs: needs["run"] != "skipped",
}


class WorkflowPlayer:
    """Plays the workflow's jobs as GitHub would, for one event, in fresh folders."""

    def __init__(self, workflow: Workflow, root: Path, env: Mapping[str, str], python: str) -> None:
        self.workflow = workflow
        self.root = root
        self.env = env
        self.python = python  # what `python -m runner...` lines run on
        self.cache = ActionsCache(root / "cache")

    def play(self, event: str, run_id: int) -> dict[str, list[JobRun]]:
        runs: dict[str, list[JobRun]] = {}
        for name, job in self.workflow["jobs"].items():  # written in the order of `needs`
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            results = {n: overall(runs[n]) for n in needs}
            if not self.starts(job, event, results):
                runs[name] = []
                continue
            shards: list[int | None] = job.get("strategy", {}).get("matrix", {}).get("shard")
            shards = shards or [None]
            jobs = [(event, run_id, name, shard) for shard in shards]
            with ThreadPoolExecutor(len(shards)) as pool:  # a matrix's jobs run at once
                runs[name] = list(pool.map(lambda args: self.job(*args), jobs))
        return runs

    @staticmethod
    def starts(job: Mapping[str, Any], event: str, needs: Mapping[str, str]) -> bool:
        condition = job.get("if")
        ready = all(result == "success" for result in needs.values())
        if condition is None:
            return ready
        if condition not in CONDITIONS:
            pytest.fail(f"{WORKFLOW_FILE}: teach the test the condition {condition!r}")
        return (ready or condition.startswith("always()")) and CONDITIONS[condition](event, needs)

    def job(self, event: str, run_id: int, name: str, shard: int | None) -> JobRun:
        label = name if shard is None else f"{name}-{shard}"
        run = JobRun(name, shard, self.root / f"{event}-{run_id}" / label)
        run.workspace.mkdir(parents=True)
        values = {
            "matrix.shard": str(shard),
            "github.run_id": str(run_id),
            "github.run_attempt": "1",
            "secrets.ASSEMBLYAI_API_KEY": KEY,
        }
        artifacts = self.root / f"artifacts-{run_id}"
        failed = False
        for number, step in enumerate(self.workflow["jobs"][name]["steps"], 1):
            condition = step.get("if")
            assert condition in (None, "always()"), f"teach the test the step condition {condition}"
            if failed and condition is None:
                continue
            summary = self.root / "summaries" / f"{event}-{run_id}-{label}-{number}.md"
            if not self.step(step, run, values, artifacts, summary):
                failed = True
        run.result = "failure" if failed else "success"
        return run

    def step(
        self,
        step: Mapping[str, Any],
        run: JobRun,
        values: Mapping[str, str],
        artifacts: Path,
        summary: Path,
    ) -> bool:
        """Play one step; False when it failed."""
        workspace = run.workspace
        if "run" in step:
            summary.parent.mkdir(parents=True, exist_ok=True)
            summary.touch()
            run.summaries.append(summary)
            own = {k: substitute(str(v), values) for k, v in step.get("env", {}).items()}
            env = {**self.env, **own, "GITHUB_STEP_SUMMARY": str(summary)}
            script = substitute(step["run"], values)
            return ghactions.run_script(
                script, WORKFLOW_FILE, workspace, env, run.commands, self.python
            )
        action = str(step["uses"]).partition("@")[0]
        given = {k: substitute(str(v), values) for k, v in step.get("with", {}).items()}
        if action == ACTION:  # this repository's action.yml, played step by step
            env = {**self.env, "GITHUB_STEP_SUMMARY": str(summary)}
            return play_action(given, workspace, env, run.commands, python=self.python)
        if action == "actions/checkout":
            shutil.copytree(ROOT / "recipes", workspace / "recipes")
        elif action == "actions/setup-python":
            assert given["python-version"] == "3.11"
        elif action == "actions/cache/restore":
            prefixes = [k.strip() for k in given.get("restore-keys", "").split("\n") if k.strip()]
            run.restored = self.cache.restore(given["key"], prefixes, workspace / given["path"])
        elif action == "actions/cache/save":
            self.cache.save(given["key"], workspace / given["path"])
        elif action == "actions/upload-artifact":
            upload(workspace, given["path"], artifacts / given["name"])
        elif action == "actions/download-artifact":
            for artifact in sorted(artifacts.glob("*")):
                if fnmatch.fnmatch(artifact.name, given["pattern"]):
                    target = workspace / given["path"] / artifact.name
                    shutil.copytree(artifact, target, dirs_exist_ok=True)
        elif action == "mikepenz/action-junit-report":
            report = workspace / given["report_paths"]
            if report.exists():  # else the action warns that it found no report
                ET.parse(report)
        else:
            pytest.fail(f"teach the test what {action} does")
        return True


def upload(workspace: Path, paths: str, artifact: Path) -> None:
    """upload-artifact: one folder's contents, or files below their common folder."""
    shutil.rmtree(artifact, ignore_errors=True)  # overwrite: true
    found = [workspace / p.strip() for p in paths.split("\n") if p.strip()]
    found = [p for p in found if p.exists()]  # if-no-files-found: warn
    if not found:
        return
    if len(found) == 1 and found[0].is_dir():
        shutil.copytree(found[0], artifact)
        return
    common = Path(os.path.commonpath([p.parent for p in found]))
    for path in found:
        (artifact / path.relative_to(common)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, artifact / path.relative_to(common))


def overall(runs: Sequence[JobRun]) -> str:
    if not runs:
        return "skipped"
    return "failure" if any(r.result == "failure" for r in runs) else "success"


@pytest.fixture
def player(tmp_path: Path, warm: Warm) -> Iterator[tuple[WorkflowPlayer, FakeAssemblyAI]]:
    fake = FakeAssemblyAI(api_key=KEY)
    with serve_in_thread(fake) as url:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "ASSEMBLYAI_", "RUNNER_"))
        }
        # `transcript-runner` is the warm one (tests/warmstart.py): a process per line, as
        # on GitHub, without an interpreter's start-up each time.
        env["PATH"] = str(warm.bin) + os.pathsep + env.get("PATH", "")
        env["GITHUB_ACTIONS"] = "true"  # as on a GitHub runner
        # What the test adds to the workflow: AssemblyAI is the stand-in. The key comes
        # only from the steps' own `env:` (from secrets), as on GitHub.
        env["ASSEMBLYAI_BASE_URL"] = url
        env["ASSEMBLYAI_LLM_GATEWAY_URL"] = f"{url}/v1"
        yield WorkflowPlayer(load_workflow(), tmp_path, env, str(warm.python)), fake


def items_of(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(i["recipe"], i["item"]) for i in manifest["items"]]


def failures_of(manifest: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(recipe, item, task, error) of every failed or skipped task and failed item."""
    found = []
    for item in manifest["items"]:
        if item["status"] != "ok" and not item["tasks"]:
            found.append((item["recipe"], item["item"], "", item["error"] or ""))
        for task in item["tasks"]:
            if task["status"] != "ok":
                found.append((item["recipe"], item["item"], task["task"], task["error"] or ""))
    return found


def unsharded_plan(folder: Path, env: Mapping[str, str]) -> list[tuple[str, str]]:
    shutil.copytree(ROOT / "recipes", folder / "recipes")
    done = subprocess.run(
        ["bash", "-c", "transcript-runner plan recipes/ --format json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [(i["recipe"], i["item"]) for i in json.loads(done.stdout)["items"]]


# The shipped lemur-locations recipe asks LeMUR about its saved transcript's id, which the
# stand-in never transcribed: LeMUR answers 400, so that task fails, and nothing else.
LEMUR_TASK = ("lemur-locations", "wildfires", "locations")
LEMUR_RECIPE = ROOT / "recipes" / "lemur-locations.yaml"
LEMUR_LINE = LEMUR_RECIPE.read_text(encoding="utf-8").split("\n").index("  locations:") + 1


def test_the_workflow_runs_against_the_fake_assemblyai(
    player: tuple[WorkflowPlayer, FakeAssemblyAI], tmp_path: Path
) -> None:
    workflow, fake = player
    everything = unsharded_plan(tmp_path / "plan", workflow.env)
    shard_paths = [f"out/shard-{k}/run.json" for k in (1, 2, 3, 4)]

    # --- a scheduled run, from nothing ------------------------------------------------
    first = workflow.play("schedule", run_id=1)
    assert first["replay"] == []
    (validate,) = first["validate"]
    assert validate.result == "success"
    checked = validate.command("validate")
    assert checked.code == 0
    # GITHUB_ACTIONS=true: annotations, with no --format in the workflow.
    assert checked.stdout.startswith("::warning file=recipes/lemur-locations.yaml,line=15,")
    assert validate.command("plan").code == 0

    shards = first["run"]
    assert [s.shard for s in shards] == [1, 2, 3, 4]
    for shard in shards:
        assert shard.command("run").code in (0, 1), shard.command("run").stderr
    manifests = [s.manifest(path) for s, path in zip(shards, shard_paths, strict=True)]
    shard_items = [items_of(m) for m in manifests]
    assert sorted(i for items in shard_items for i in items) == sorted(everything)  # no overlap
    failures = [f for m in manifests for f in failures_of(m)]
    assert [f[:3] for f in failures] == [LEMUR_TASK], failures
    assert "POST /lemur/v3/generate/task failed (400)" in failures[0][3]
    for shard, manifest in zip(shards, manifests, strict=True):
        ran = shard.command("run")
        assert ran.code == (1 if failures_of(manifest) else 0), ran.stderr
        assert manifest["shard"] == f"{shard.shard}/4"
        assert f"{len(manifest['items'])} item(s)" in shard.command("plan").stdout
        assert (shard.workspace / f"out/shard-{shard.shard}/junit.xml").is_file()
        assert shard.restored is None  # nothing was saved yet
        assert shard.summaries[-1].read_text(encoding="utf-8").startswith("### ")
        # Annotations: exactly the failed task, at its line of the recipe.
        annotations = [line for line in ran.stdout.split("\n") if line.startswith("::")]
        at_the_task = f"::error file=recipes/lemur-locations.yaml,line={LEMUR_LINE},"
        expected = [at_the_task] * len(failures_of(manifest))
        assert [a[: len(at_the_task)] for a in annotations] == expected
    assert len(fake.submissions) == 1  # meeting-notes' URL; every other item is saved
    lemur = "POST /lemur/v3/generate/*"
    sent = (len(fake.submissions), len(fake.gateway.calls), len(fake.requests_to(lemur)))

    (merge,) = first["merge"]
    merged_run = merge.command("merge")
    assert merged_run.code == 1, merged_run.stderr  # the LeMUR task failed, as in the run
    merged = merge.manifest("out/run.json")
    assert sorted(items_of(merged)) == sorted(everything)
    assert (merged["shards"], merged["shard"]) == (4, None)
    assert merged["summary"]["outcome"] == "completed"
    assert [f[:3] for f in failures_of(merged)] == [LEMUR_TASK]
    junit = ET.parse(merge.workspace / "out" / "junit.xml").getroot()
    failed_cases = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is not None]
    assert failed_cases == ["locations"]
    assert "run completed with failures" in merge.summaries[-1].read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "artifacts-1" / "run").iterdir()) == [
        "junit.xml",
        "run.json",
    ]

    # A shard that never wrote its run.json: the merged run is incomplete, exit 1.
    shutil.rmtree(merge.workspace / "out" / "shard-2")
    incomplete = subprocess.run(
        ["bash", "-c", merged_run.line],
        cwd=merge.workspace,
        env=workflow.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert incomplete.returncode == 1
    assert "no manifest of shard 2/4" in incomplete.stdout
    assert merge.manifest("out/run.json")["summary"]["outcome"] == "incomplete"

    # --- the next scheduled run: fresh runners, the state restored from the cache ----------
    second = workflow.play("schedule", run_id=2)
    assert overall(second["validate"]) == "success"
    for shard in second["run"]:
        assert shard.restored == f"transcript-runner-state-shard-{shard.shard}-1-1"
        summary = shard.manifest(f"out/shard-{shard.shard}/run.json")["summary"]
        assert summary["transcriptions_submitted"] == 0
        retried = len(failures_of(shard.manifest(f"out/shard-{shard.shard}/run.json")))
        assert summary["llm_calls"] == retried  # failures are never cached: asked again
    # Nothing paid twice: no transcription, no Gateway call; LeMUR again only for the task
    # that failed (and failed again).
    assert len(fake.submissions) == sent[0]
    assert len(fake.gateway.calls) == sent[1]
    assert len(fake.requests_to(lemur)) == sent[2] + 1
    assert second["merge"][0].command("merge").code == 1

    # --- a pull request: validate, then replay offline from the saved state ---------------
    requests = len(fake.history)
    pull = workflow.play("pull_request", run_id=3)
    assert (pull["run"], pull["merge"]) == ([], [])
    assert overall(pull["validate"]) == "success"
    assert len(fake.history) == requests  # offline: not one request
    replayed = [s.manifest(f"out/replay-{s.shard}/run.json") for s in pull["replay"]]
    assert sorted(i for m in replayed for i in items_of(m)) == sorted(everything)
    missing = [f for m in replayed for f in failures_of(m)]
    assert [f[:3] for f in missing] == [LEMUR_TASK]
    assert missing[0][3].startswith("--offline: no cached reply for lemur-locations/wildfires/")
    for shard, manifest in zip(pull["replay"], replayed, strict=True):
        assert shard.restored == f"transcript-runner-state-shard-{shard.shard}-2-1"
        assert shard.command("run").code == (1 if failures_of(manifest) else 0)

    # The key never shows: not in any output, report, summary or artifact.
    every_job = [j for run in (first, second, pull) for jobs in run.values() for j in jobs]
    for job in every_job:
        for command in job.commands:
            assert KEY not in command.stdout + command.stderr, command.line
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".xml", ".md", ".txt"):
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path

"""`plan`: what a run would do, matched against what the run then does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from runner.checks import load_recipe
from runner.errors import UsageError
from runner.execute.plan_text import plan_text
from runner.execute.planning import make_plan
from runner.items import Shard
from runner.store import Store

ROOT = Path(__file__).resolve().parent.parent


def test_shards_split_items_deterministically_and_completely() -> None:
    names = [f"https://media.example.com/call-{n}.mp3" for n in range(200)]
    shards = [Shard(k, 4) for k in range(1, 5)]
    buckets = [[n for n in names if shard.takes("r", n)] for shard in shards]
    assert sorted(n for bucket in buckets for n in bucket) == sorted(names)  # each once
    assert all(20 < len(bucket) < 80 for bucket in buckets)
    assert buckets[0] == [n for n in names if Shard(1, 4).takes("r", n)]  # stable


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "2", "1/0"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="give K/N with 1 <= K <= N"):
        Shard.parse(text)


def test_plan_of_saved_transcripts_counts_calls_and_tokens(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    recipe = load_recipe(tmp_path / "recipes" / "summaries.yaml")
    store = Store(tmp_path / "state")
    plan = make_plan([recipe], store, None)
    (item,) = plan.items
    assert (item.transcription, item.calls, item.cached) == ("local", 5, 0)
    assert item.audio_seconds == 282
    assert item.input_tokens > 5 * 1000  # five prompts, each with the whole transcript
    text = plan_text(plan, None)
    assert "Transcriptions: 0 to submit, 0 already in the ledger." in text
    assert "LLM calls: 5 to send, 0 cached" in text
    assert "pass --prices FILE" in text
    assert "add `prices:` to the recipe" in text


def load_recipe_text(folder: Path, head: str) -> Any:
    (folder / "r.yaml").write_text(head + "tasks: {s: {prompt: '{{ transcript.text }}'}}\n")
    return load_recipe(folder / "r.yaml")


def test_adding_a_namesake_input_moves_no_item_to_another_shard(tmp_path: Path) -> None:
    from runner.items import Item
    from runner.recipe.model import InputKind

    def item(name: str, source: str) -> Item:
        return Item(name, InputKind.URL, source, {}, 0, "r.yaml:1")

    recipe = load_recipe_text(
        tmp_path, "version: 1\nname: r\ninputs: [{url: 'https://x.test/a.mp3'}]\n"
    )
    old = item("meeting", "https://x.test/2024/meeting.mp3")
    before = {k: [i.source for i in Shard(k, 4).select(recipe, [old])] for k in range(1, 5)}
    # A new recording with the same file name takes "meeting"; the old one becomes "meeting-2".
    new, renamed = item("meeting", "https://x.test/2025/meeting.mp3"), item("meeting-2", old.source)
    after = {k: [i.source for i in Shard(k, 4).select(recipe, [new, renamed])] for k in range(1, 5)}
    shard_of_old = next(k for k, sources in before.items() if old.source in sources)
    assert old.source in after[shard_of_old]


@pytest.mark.parametrize(
    ("env", "text", "shard"),
    [
        # A Kubernetes Indexed Job: the index from 0; the count given or from a variable.
        ({"JOB_COMPLETION_INDEX": "0"}, "auto/4", Shard(1, 4)),
        ({"JOB_COMPLETION_INDEX": "3", "TRANSCRIPT_RUNNER_SHARD_COUNT": "4"}, "auto", Shard(4, 4)),
        # A Slurm array, numbered from 0 or from 1, or with a step.
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}, "auto", Shard(3, 4)),
        (
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_COUNT": "4",
            },
            "auto",
            Shard(4, 4),
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "20",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_STEP": "10",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            "auto",
            Shard(3, 3),
        ),
    ],
)
def test_shard_auto_reads_the_scheduler(env: dict[str, str], text: str, shard: Shard) -> None:
    assert Shard.parse(text, env) == shard


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no JOB_COMPLETION_INDEX"),
        ({"JOB_COMPLETION_INDEX": "1"}, "does not say how many shards"),
        ({"JOB_COMPLETION_INDEX": "x", "TRANSCRIPT_RUNNER_SHARD_COUNT": "2"}, "not a whole"),
        ({"JOB_COMPLETION_INDEX": "2", "TRANSCRIPT_RUNNER_SHARD_COUNT": "2"}, "not below 2"),
    ],
)
def test_shard_auto_without_a_scheduler_says_what_to_give(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        Shard.parse("auto", env)


@pytest.mark.parametrize("text", ["auto/x", "auto/0", "auto/-2"])
def test_shard_auto_with_a_bad_count_names_the_count(text: str) -> None:
    with pytest.raises(UsageError, match="give the count as a whole number"):
        Shard.parse(text, {"JOB_COMPLETION_INDEX": "0"})


def test_the_scale_out_examples_of_docs_ci_shard_with_auto() -> None:
    """docs/ci.md's Kubernetes Indexed Job and Slurm array run `--shard auto`, and the
    variables they set give each job its own shard of the same split."""
    import re

    import yaml

    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)
    (job,) = [yaml.safe_load(body) for kind, body in blocks if "kind: Job" in body]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    assert "--shard auto" in " ".join(container["args"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRANSCRIPT_RUNNER_SHARD_COUNT"] == str(spec["completions"])
    shards = [
        Shard.parse("auto", {"JOB_COMPLETION_INDEX": str(n), **env})
        for n in range(spec["completions"])
    ]
    assert shards == [Shard(k, 4) for k in range(1, 5)]
    (slurm,) = [body for kind, body in blocks if "#SBATCH --array" in body]
    assert "--shard auto" in slurm
    first, last = map(int, re.search(r"--array=(\d+)-(\d+)", slurm).groups())  # type: ignore[union-attr]
    count = str(last - first + 1)
    tasks = {"SLURM_ARRAY_TASK_MIN": str(first), "SLURM_ARRAY_TASK_COUNT": count}
    slurm_shards = [
        Shard.parse("auto", {"SLURM_ARRAY_TASK_ID": str(n), **tasks})
        for n in range(first, last + 1)
    ]
    assert slurm_shards == shards

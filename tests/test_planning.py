"""`plan`: what a run would do, matched against what the run then does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.planning import Shard, make_plan, plan_text
from runner.state import Store
from runner.validation import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_shards_split_items_deterministically_and_completely() -> None:
    names = [f"call-{n}" for n in range(200)]
    shards = [Shard(k, 4) for k in range(1, 5)]
    buckets = [[n for n in names if shard.takes("r", n)] for shard in shards]
    assert sorted(n for bucket in buckets for n in bucket) == sorted(names)  # each once
    assert all(20 < len(bucket) < 80 for bucket in buckets)
    assert buckets[0] == [n for n in names if Shard(1, 4).takes("r", n)]  # stable


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "2", "1/0"])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="give K/N with 1 <= K <= N"):
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
    text = plan_text(plan, None, [recipe])
    assert "Transcriptions: 0 to submit, 0 already in the ledger." in text
    assert "LLM calls: 5 to send, 0 cached" in text
    assert "pass --prices FILE" in text

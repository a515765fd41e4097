"""Where items are: each counted once, in its phase or the step it is in."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fakeservices import FakeServices
from test_execute import RECIPE, Quiet, echo, recipe_from

import runner.execute.task_work as task_work_module
from runner.execute.executor import Executor, RunOptions
from runner.execute.phases import ItemPhase, Phases, step
from runner.results.progress import phases_text


def shown(counts: Counter[str]) -> dict[str, int]:
    return {name: count for name, count in counts.items() if count}


def test_an_item_counts_once_in_its_phase() -> None:
    counts: Counter[str] = Counter()
    place = ItemPhase(counts)
    place.enter("transcribing")
    assert shown(counts) == {"transcribing": 1}
    place.enter("asking")
    assert shown(counts) == {"asking": 1}
    place.leave()
    assert shown(counts) == {}


def test_overlapping_steps_show_until_the_last_ends_then_the_phase() -> None:
    counts: Counter[str] = Counter()
    place = ItemPhase(counts)
    place.enter("asking")
    with place.step("writing"):
        with place.step("writing"):  # a second task of the item writes too
            assert shown(counts) == {"writing": 1}
        assert shown(counts) == {"writing": 1}
    assert shown(counts) == {"asking": 1}


def test_a_phase_entered_during_a_step_shows_once_the_step_ends() -> None:
    counts: Counter[str] = Counter()
    place = ItemPhase(counts)
    place.enter("transcribing")
    with place.step("uploading"):
        place.enter("ready")
        assert shown(counts) == {"uploading": 1}
    assert shown(counts) == {"ready": 1}


def test_an_item_ended_inside_a_step_counts_nowhere_after_it() -> None:
    counts: Counter[str] = Counter()
    place = ItemPhase(counts)
    place.enter("asking")
    with place.step("writing"):
        place.leave()  # interrupted while writing
    assert shown(counts) == {}


async def test_the_current_item_is_seen_by_the_tasks_it_starts_and_not_after_it() -> None:
    phases = Phases()

    async def write() -> None:
        with step("writing"):
            assert shown(phases.counts) == {"writing": 1}
            await asyncio.sleep(0)

    with phases.item("asking"):
        await asyncio.gather(write(), write())
        assert shown(phases.counts) == {"asking": 1}
    assert shown(phases.counts) == {}
    with step("writing"):  # outside an item: nothing to count
        assert shown(phases.counts) == {}


async def test_a_run_counts_an_item_uploading_then_none_when_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "calls").mkdir()
    (tmp_path / "calls" / "a.wav").write_bytes(b"RIFF a")
    recipe = recipe_from(
        tmp_path,
        RECIPE.replace(
            "  - url: https://media.example.com/a.mp3\n  - url: https://media.example.com/b.mp3\n",
            "  - file: calls/*.wav\n",
        ),
    )
    services = FakeServices(default_reply=echo)
    uploading, go_on = asyncio.Event(), asyncio.Event()
    upload = services.transcripts.upload

    async def slow_upload(path: Path) -> str:  # waits until the test has looked
        uploading.set()
        await go_on.wait()
        return await upload(path)

    monkeypatch.setattr(services.transcripts, "upload", slow_upload)
    executor = Executor(
        services, RunOptions(out=tmp_path / "out", manifest=tmp_path / "out/run.json"), Quiet()
    )
    running = asyncio.create_task(executor.run([recipe]))
    await asyncio.wait_for(uploading.wait(), 5)
    assert {k: v for k, v in executor.phases.items() if v} == {"uploading": 1}
    go_on.set()
    outcome = await asyncio.wait_for(running, 10)
    assert outcome.outcome == "completed"
    assert {k: v for k, v in executor.phases.items() if v} == {}


async def test_a_run_counts_an_item_writing_its_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real writes, held on the outputs' thread until the test has looked."""
    writing, go_on = threading.Event(), threading.Event()
    real_finish = task_work_module.finish

    def held_finish(*args: Any) -> Any:
        writing.set()
        go_on.wait(5)
        return real_finish(*args)

    monkeypatch.setattr(task_work_module, "finish", held_finish)
    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    executor = Executor(
        FakeServices(default_reply=echo),
        RunOptions(out=tmp_path / "out", manifest=tmp_path / "out/run.json"),
        Quiet(),
    )
    running = asyncio.create_task(executor.run([recipe]))
    while not writing.is_set():
        await asyncio.sleep(0.01)
    assert {k: v for k, v in executor.phases.items() if v} == {"writing": 1}
    go_on.set()
    outcome = await asyncio.wait_for(running, 10)
    assert outcome.outcome == "completed"
    assert (tmp_path / "out" / "notes" / "a" / "headline.md").exists()


def test_the_progress_line_names_the_steps_in_the_order_items_go_through_them() -> None:
    assert (
        phases_text({"writing": 2, "asking": 0, "uploading": 1, "queued": 3})
        == "queued 3 · uploading 1 · writing 2"
    )

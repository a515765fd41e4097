"""Each stage of the executor on FakeServices: in-memory, no server, milliseconds.

The end-to-end runs in test_run_cli.py go through HTTP; these pin the pipeline's
decisions (what is sent, once; what is reused; what one failure touches) directly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fakeservices import FakeServices, wildfires

from runner.api.types import Completion, Usage
from runner.checks import load_recipe
from runner.errors import (
    ApiError,
    MaybeSubmitted,
    NotStored,
    PostProcessFailed,
    SourceUnreadable,
    TranscriptFailed,
)
from runner.execute.ask import Asker
from runner.execute.executor import Executor, RunOptions, prepare_recipe
from runner.execute.finish import process_reply
from runner.execute.planning import make_plan
from runner.execute.transcribe import Transcriber
from runner.items import expand
from runner.prompt.payloads import build_payload, task_context
from runner.prompt.templating import TemplateEngine
from runner.prompt.views import TranscriptView
from runner.recipe.model import Recipe
from runner.results.records import ItemRecord, TaskRecord
from runner.store import Store, audio_identity, transcription_key
from runner.transcript.model import Transcript

RECIPE = """\
version: 1
name: notes
inputs:
  - url: https://media.example.com/a.mp3
  - url: https://media.example.com/b.mp3
tasks:
  summary:
    prompt: "Summarize {{ item.name }}: {{ transcript.text[:40] }}"
  headline:
    needs: [summary]
    prompt: "Headline for: {{ tasks.summary.text }}"
"""


class Quiet:
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.finished: list[ItemRecord] = []

    def start(self, total: int) -> None:
        self.total = total

    def item_started(self, recipe: str, item: str) -> None:
        pass

    def item_finished(self, record: ItemRecord) -> None:
        self.finished.append(record)

    def tick(self, phases: Mapping[str, int]) -> None:
        self.phases = dict(phases)

    def stop(self) -> None:
        pass


def recipe_from(tmp_path: Path, text: str = RECIPE) -> Recipe:
    (tmp_path / "r.yaml").write_text(text)
    return load_recipe(tmp_path / "r.yaml")


def echo(body: Any) -> str:
    """A default reply that says what it was asked, so chains can be followed."""
    return f"reply to [{body['messages'][-1]['content'][:30]}]"


async def run(
    tmp_path: Path,
    services: FakeServices,
    recipe: Recipe,
    store: Store | None = None,
    **options: Any,
) -> tuple[Quiet, dict[str, Any]]:
    reporter = Quiet()
    manifest = tmp_path / "out" / "run.json"
    run_options = RunOptions(out=tmp_path / "out", manifest=manifest, **options)
    await Executor(services, run_options, reporter, store).run([recipe])
    return reporter, json.loads(manifest.read_text())


# --- the whole executor -------------------------------------------------------------


async def test_each_task_sees_the_reply_it_needs_and_each_item_its_transcript(
    tmp_path: Path,
) -> None:
    services = FakeServices(default_reply=echo)
    reporter, manifest = await run(tmp_path, services, recipe_from(tmp_path))
    assert manifest["summary"]["outcome"] == "completed"
    assert [r.status for r in reporter.finished] == ["ok", "ok"]
    submitted = [url for url, _ in services.transcripts.sent("submit")]
    assert sorted(submitted) == [
        "https://media.example.com/a.mp3",
        "https://media.example.com/b.mp3",
    ]
    prompts = [body["messages"][-1]["content"] for body in services.gateway.history]
    text = wildfires()["text"]
    assert sorted(p for p in prompts if p.startswith("Summarize")) == [
        f"Summarize a: {text[:40]}",
        f"Summarize b: {text[:40]}",
    ]
    headlines = sorted(p for p in prompts if p.startswith("Headline"))
    summaries = [f"Summarize {n}: {text[:40]}" for n in "ab"]
    assert headlines == [f"Headline for: {echo({'messages': [{'content': p}]})}" for p in summaries]
    assert (tmp_path / "out" / "notes" / "a" / "headline.md").read_text().startswith("reply to")


async def test_the_same_audio_twice_is_submitted_once(tmp_path: Path) -> None:
    recipe = recipe_from(tmp_path, RECIPE.replace("/b.mp3", "/a.mp3"))
    services = FakeServices(default_reply=echo)
    with Store(tmp_path / "state") as store:  # as every real run has: the ledger
        _, manifest = await run(tmp_path, services, recipe, store)
    assert len(services.transcripts.sent("submit")) == 1
    assert sorted(i["reused"] for i in manifest["items"]) == [False, True]
    # Identical prompts are asked once too: the two items differ only in their name.
    assert len(services.gateway.history) == 4


async def test_a_failed_transcript_fails_its_item_only(tmp_path: Path) -> None:
    services = FakeServices(default_reply=echo)
    services.transcripts.enqueue(TranscriptFailed("t-1", "Download error"), wildfires())
    reporter, manifest = await run(tmp_path, services, recipe_from(tmp_path))
    statuses = sorted((r.status, r.error or "") for r in reporter.finished)
    assert statuses == [("failed", "transcript t-1 failed: Download error"), ("ok", "")]
    assert manifest["summary"]["outcome"] == "completed"
    assert len(services.gateway.history) == 2  # only the good item's two tasks


async def test_a_failed_task_skips_what_needs_it_and_keeps_the_item_going(tmp_path: Path) -> None:
    services = FakeServices(default_reply=echo)
    services.gateway.enqueue(ApiError("POST /v1/chat/completions failed (400): bad model"))
    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    reporter, _ = await run(tmp_path, services, recipe)
    (record,) = reporter.finished
    assert [(t.task, t.status) for t in record.tasks] == [
        ("summary", "failed"),
        ("headline", "skipped"),
    ]
    assert record.tasks[1].error == "not run because summary failed"


async def test_an_unreadable_audio_file_fails_its_item_only(tmp_path: Path) -> None:
    """A file gone between hashing and upload is that item's failure, not the run's."""
    (tmp_path / "calls").mkdir()
    for name in ("a", "b"):
        (tmp_path / "calls" / f"{name}.wav").write_bytes(f"RIFF {name}".encode())
    recipe = recipe_from(
        tmp_path,
        RECIPE.replace(
            "  - url: https://media.example.com/a.mp3\n  - url: https://media.example.com/b.mp3\n",
            "  - file: calls/*.wav\n",
        ),
    )
    services = FakeServices(default_reply=echo)
    services.transcripts.upload_errors["b.wav"] = SourceUnreadable("cannot upload b.wav: gone")
    reporter, manifest = await run(tmp_path, services, recipe)
    statuses = {r.item: (r.status, r.error) for r in reporter.finished}
    assert statuses == {"a": ("ok", None), "b": ("failed", "cannot upload b.wav: gone")}
    assert manifest["summary"]["outcome"] == "completed"


# --- transcribing: the ledger and the store -------------------------------------------


async def test_a_rerun_reattaches_to_the_ledger_instead_of_paying_again(tmp_path: Path) -> None:
    recipe = recipe_from(tmp_path)
    with Store(tmp_path / "state") as store:
        first = FakeServices(default_reply=echo)
        await run(tmp_path, first, recipe, store)
        second = FakeServices(default_reply=echo)
        _, manifest = await run(tmp_path, second, recipe, store)
    assert len(first.transcripts.sent("submit")) == 2
    assert second.transcripts.history == []  # transcripts and replies came from the store
    assert second.gateway.history == []
    assert all(item["reused"] for item in manifest["items"])


async def test_an_unclear_submission_is_looked_up_before_anything_is_sent_again(
    tmp_path: Path,
) -> None:
    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    services = FakeServices(default_reply=echo)
    services.transcripts.submit_errors.append(MaybeSubmitted("POST /v2/transcript: reset"))
    with Store(tmp_path / "state") as store:
        reporter, _ = await run(tmp_path, services, recipe, store)
        (entry,) = list(store.ledger())
    assert [r.status for r in reporter.finished] == ["ok"]
    assert len(services.transcripts.sent("submit")) == 1
    assert services.transcripts.sent("jobs_for") == ["https://media.example.com/a.mp3"]
    assert entry.transcript_id == "t-1"


async def test_a_rerun_reconciles_an_open_intent_before_it_submits(tmp_path: Path) -> None:
    """A run killed while its POST was on the wire leaves an intent; the rerun finds the
    job in the account (reattaches) or, when the account has none, submits."""
    recipe = recipe_from(tmp_path)
    items = prepare_recipe(recipe).items
    keys = {i.source: transcription_key(recipe, audio_identity(i)) for i in items}
    services = FakeServices(default_reply=echo)
    services.transcripts.listed["https://media.example.com/a.mp3"] = ["t-earlier"]
    with Store(tmp_path / "state") as store:
        for url, key in keys.items():
            store.intent_put(key, url, url, recipe.transcription_request())
        _, manifest = await run(tmp_path, services, recipe, store)
        ledger = {e.audio: e.transcript_id for e in store.ledger()}
        assert [store.intent_get(key) for key in keys.values()] == [None, None]
    submitted = [url for url, _ in services.transcripts.sent("submit")]
    assert submitted == ["https://media.example.com/b.mp3"]  # a: found, so never sent
    assert ledger["https://media.example.com/a.mp3"] == "t-earlier"
    assert {i["item"]: i["reused"] for i in manifest["items"]} == {"a": True, "b": False}


async def test_two_runs_sharing_a_state_folder_pay_for_each_thing_once(tmp_path: Path) -> None:
    """Two runs at once (two CI jobs, one cache): each recording is submitted once and
    each request asked once, whichever run gets there first; the other waits for it."""
    recipe = recipe_from(tmp_path)
    first, second = FakeServices(default_reply=echo), FakeServices(default_reply=echo)
    with Store(tmp_path / "state") as store:
        results = await asyncio.gather(
            Executor(first, RunOptions(out=tmp_path / "one", manifest=tmp_path / "one.json"),
                     Quiet(), store).run([recipe]),
            Executor(second, RunOptions(out=tmp_path / "two", manifest=tmp_path / "two.json"),
                     Quiet(), store).run([recipe]),
        )  # fmt: skip
        assert list(store.claims_held()) == []  # both let go at the end
    assert [r.failed for r in results] == [False, False]
    submitted = first.transcripts.sent("submit") + second.transcripts.sent("submit")
    assert sorted(url for url, _ in submitted) == [
        "https://media.example.com/a.mp3",
        "https://media.example.com/b.mp3",
    ]
    assert len(first.gateway.history) + len(second.gateway.history) == 4
    for out in ("one", "two"):
        assert (tmp_path / out / "notes" / "b" / "headline.md").read_text().startswith("reply")


async def test_reconciliation_attaches_only_a_job_made_with_these_options(
    tmp_path: Path,
) -> None:
    """A URL is not unique: another recipe's job of the same audio (other options), or a
    job the ledger already gives to another key, is never taken for the one in doubt."""
    recipe = recipe_from(
        tmp_path,
        RECIPE.replace("  - url: https://media.example.com/b.mp3\n", "").replace(
            "tasks:", "transcription: {speaker_labels: true}\ntasks:"
        ),
    )
    (item,) = prepare_recipe(recipe).items
    key = transcription_key(recipe, audio_identity(item))
    url = "https://media.example.com/a.mp3"
    services = FakeServices(default_reply=echo)
    services.transcripts.listed[url] = ["t-plain", "t-taken"]
    services.transcripts.stored["t-plain"] = {**wildfires(), "id": "t-plain"}  # no labels
    services.transcripts.stored["t-taken"] = {
        **wildfires(),
        "id": "t-taken",
        "speaker_labels": True,
    }
    with Store(tmp_path / "state") as store:
        store.ledger_put("another-key", url, {}, "t-taken", "submitted")
        store.intent_put(key, url, url, recipe.transcription_request())
        await run(tmp_path, services, recipe, store)
        mine = store.ledger_get(key)
    assert mine is not None
    assert mine.transcript_id not in ("t-plain", "t-taken")
    assert [u for u, _ in services.transcripts.sent("submit")] == [url]  # sent, once


async def test_offline_names_what_the_store_lacks(tmp_path: Path) -> None:
    recipe = recipe_from(tmp_path)
    (item, _) = expand(recipe, TemplateEngine(recipe.base_dir))
    transcriber = Transcriber(FakeServices().transcripts, None, offline=True)
    record = ItemRecord("notes", item.name, item.source, item.kind.value, "ok")
    with pytest.raises(NotStored, match="no stored transcript for url"):
        await transcriber.settle(recipe, item, record)


async def test_the_ledger_key_is_the_same_for_run_and_plan(tmp_path: Path) -> None:
    """``plan`` must count exactly what ``run`` would skip: both use the store's keys."""
    recipe = recipe_from(tmp_path)
    with Store(tmp_path / "state") as store:
        await run(tmp_path, FakeServices(default_reply=echo), recipe, store)
        for item in prepare_recipe(recipe).items:
            assert store.ledger_get(transcription_key(recipe, audio_identity(item))) is not None
        plan = make_plan([recipe], store, None)
    assert (plan.submissions, plan.reused) == (0, 2)
    assert (plan.calls, plan.cached) == (0, 4)


# --- asking: the reply cache ------------------------------------------------------------


async def test_a_cached_reply_is_not_asked_again_unless_the_cache_is_off(tmp_path: Path) -> None:
    recipe = recipe_from(tmp_path)
    task = recipe.tasks["summary"]
    prepared = prepare_recipe(recipe)
    item = prepared.items[0]
    transcript = Transcript.from_api(wildfires())
    view = TranscriptView.build(transcript, (), ())
    context = task_context(recipe, item.view(recipe), task, view, {})
    payload = build_payload(
        prepared.engine, task, context, transcript_id=transcript.id, transcript_text=""
    )
    services = FakeServices(default_reply=echo)
    with Store(tmp_path / "state") as store:
        for use_cache, asked in ((True, 1), (True, 1), (False, 2)):
            asker = Asker(services, store, use_cache=use_cache)
            record = TaskRecord("summary", "ok")
            reply = await asker.reply(task, payload, "notes/x/summary", record)
            if record.asked:
                await asker.remember(record.cache_key or "", "notes/x/summary", payload, reply)
            assert len(services.gateway.history) == asked


async def test_a_replys_claim_goes_with_the_commit_that_caches_it(tmp_path: Path) -> None:
    """The claim on a request is let go in the transaction that caches its reply: no
    claim outlives the reply's commit, the item's later release costs no trip to the
    store's thread, and another run sharing the folder takes the reply unasked."""
    recipe = recipe_from(tmp_path)
    task = recipe.tasks["summary"]
    prepared = prepare_recipe(recipe)
    transcript = Transcript.from_api(wildfires())
    view = TranscriptView.build(transcript, (), ())
    context = task_context(recipe, prepared.items[0].view(recipe), task, view, {})
    payload = build_payload(
        prepared.engine, task, context, transcript_id=transcript.id, transcript_text=""
    )
    services = FakeServices(default_reply=echo)
    with Store(tmp_path / "state") as store:
        asker = Asker(services, store)
        record = TaskRecord("summary", "ok")
        await asker.reply(task, payload, "notes/x/summary", record)
        key = record.cache_key or ""
        assert record.asked
        assert store.reply_get(key) is not None
        assert list(store.claims_held()) == []  # gone with the reply's commit
        calls = store._thread.calls
        await asker.release(key)
        assert store._thread.calls == calls  # nothing left to let go of
        other_run = Asker(services, store)
        again = TaskRecord("summary", "ok")
        await other_run.reply(task, payload, "notes/x/summary", again)
        assert again.cached
        assert len(services.gateway.history) == 1


# --- finishing: what a reply becomes ----------------------------------------------------


def test_best_quotes_are_found_in_the_transcripts_words(tmp_path: Path) -> None:
    transcript = Transcript.from_api(wildfires())
    text = "version: 1\nname: q\ninputs: [{url: 'https://x/a.mp3'}]\n"
    recipe = recipe_from(tmp_path, text + "tasks:\n  best: {quotes: {count: 1}}\n")
    quoted = "the levels outside right now in Baltimore are considered unhealthy"
    view = TranscriptView.build(transcript)
    processed = process_reply(recipe.tasks["best"], f'1. "{quoted}"', view)
    (quote,) = processed.data
    assert quote["verdict"] == "verbatim"
    assert processed.steps == ("find quotes in the transcript's words",)
    # Its own first and last words' times, not those of a window of sentences.
    words = transcript.words
    first = next(i for i, w in enumerate(words) if w.text == "levels") - 1
    assert [w.text for w in words[first : first + 10]][-1] == "unhealthy."
    assert (quote["start"], quote["end"]) == (words[first].start, words[first + 9].end)
    assert quote["text"] == " ".join(w.text for w in words[first : first + 10])


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Completion("", "m", Usage(), "r", "stop"), "the model returned an empty reply"),
        (
            Completion('{"items": ["a", "b', "m", Usage(), "r", "length"),
            "the reply was cut off at max_tokens",
        ),
    ],
)
async def test_a_reply_that_cannot_stand_fails_its_task_and_is_not_kept(
    tmp_path: Path, reply: Completion, reason: str
) -> None:
    recipe = recipe_from(
        tmp_path,
        RECIPE.replace("  - url: https://media.example.com/b.mp3\n", "").replace(
            '    prompt: "Summarize {{ item.name }}: {{ transcript.text[:40] }}"\n',
            '    prompt: "Summarize {{ item.name }}: {{ transcript.text[:40] }}"\n'
            "    post_process: [json-repair]\n",
        ),
    )
    services = FakeServices(default_reply=echo)
    services.gateway.enqueue(reply)
    with Store(tmp_path / "state") as store:
        reporter, _ = await run(tmp_path, services, recipe, store)
        assert list(store.replies()) == []  # asked again on the next run
    (record,) = reporter.finished
    summary = record.tasks[0]
    assert summary.status == "failed"
    assert summary.error is not None
    assert summary.error.startswith(reason)
    assert not (tmp_path / "out" / "notes" / "a" / "summary.json").exists()


async def test_a_reply_with_text_and_tool_calls_keeps_both(tmp_path: Path) -> None:
    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    services = FakeServices(default_reply=echo)
    services.gateway.enqueue(Completion("Minutes.", "m", Usage(), "r", "tool_calls", (call,)))
    reporter, _ = await run(tmp_path, services, recipe)
    summary = reporter.finished[0].tasks[0]
    assert summary.tool_calls == [call]
    assert (tmp_path / "out" / "notes" / "a" / "summary.md").read_text() == "Minutes.\n"


def test_a_quotes_reply_with_no_quote_fails_with_the_reason(tmp_path: Path) -> None:
    transcript = Transcript.from_api(wildfires())
    text = "version: 1\nname: q\ninputs: [{url: 'https://x/a.mp3'}]\n"
    recipe = recipe_from(tmp_path, text + "tasks:\n  best: {quotes: {count: 3}}\n")
    with pytest.raises(PostProcessFailed, match="the reply holds no quotes"):
        process_reply(recipe.tasks["best"], "None.\n\n-", TranscriptView.build(transcript))


def test_completions_round_trip_through_the_cache_format() -> None:
    from runner.execute.ask import completion_from_json, completion_to_json

    completion = Completion("hi", "m", Usage(3, 4, 7), "req-1", "stop")
    back = completion_from_json(completion_to_json(completion))
    assert (back.content, back.model, back.usage, back.request_id) == (
        "hi",
        "m",
        Usage(3, 4, 7),
        "req-1",
    )


async def test_the_claim_of_a_run_that_died_on_this_machine_is_taken_over_at_once(
    tmp_path: Path,
) -> None:
    """kill -9 leaves claims behind; their process is gone, so a rerun does not wait
    out the expiry."""
    from dataclasses import replace

    from runner.execute.claims import this_run

    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    (item,) = prepare_recipe(recipe).items
    key = transcription_key(recipe, audio_identity(item))
    with Store(tmp_path / "state") as store:
        dead = replace(this_run("gone"), pid=2**22 + 12345, process_start="1")  # no such process
        assert store.claim(key, dead, lambda holder: False) is None
        started = asyncio.get_running_loop().time()
        reporter, _ = await run(tmp_path, FakeServices(default_reply=echo), recipe, store)
    assert [r.status for r in reporter.finished] == ["ok"]
    assert asyncio.get_running_loop().time() - started < 5


async def test_a_full_output_disk_stops_the_run_after_caching_what_was_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on an output: the run stops (no more spending) with the cause, and the
    reply it could not write is in the cache, so the rerun writes it without asking."""
    import errno
    import os

    from runner.errors import DiskFull

    real_replace = os.replace

    def full_disk(source: object, target: object) -> None:
        if str(target).endswith(".md"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", full_disk)
    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    services = FakeServices(default_reply=echo)
    with Store(tmp_path / "state") as store:
        with pytest.raises(DiskFull, match=r"No space left on device\. The run stopped"):
            await run(tmp_path, services, recipe, store)
        assert len(list(store.replies())) == 1  # the summary's reply, paid for and kept
        monkeypatch.setattr(os, "replace", real_replace)
        again = FakeServices(default_reply=echo)
        reporter, _ = await run(tmp_path, again, recipe, store)
    assert [r.status for r in reporter.finished] == ["ok"]
    assert len(again.gateway.history) == 1  # only the headline, which was never asked


async def test_an_llm_reply_on_the_wire_when_the_run_stops_is_kept(tmp_path: Path) -> None:
    """Ctrl-C while a request is being answered: the reply (paid for) arrives within the
    grace period and is cached, so the rerun does not ask again."""
    recipe = recipe_from(tmp_path, RECIPE.replace("  - url: https://media.example.com/b.mp3\n", ""))
    services = FakeServices(default_reply=echo)
    on_the_wire = asyncio.Event()
    answer = services.gateway.complete

    async def slow_complete(body: Any) -> Completion:
        on_the_wire.set()
        await asyncio.sleep(0.3)
        return await answer(body)

    services.gateway.complete = slow_complete  # type: ignore[method-assign]
    with Store(tmp_path / "state") as store:
        running = asyncio.create_task(run(tmp_path, services, recipe, store))
        await on_the_wire.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        kept = list(store.replies())
    assert len(kept) == 1
    assert kept[0].label == "notes/a/summary"


# --- speech servers -----------------------------------------------------------------

SPEECH = """\
version: 1
name: heard
inputs: [{file: "calls/*.wav"}]
transcription: {engine: openai-compatible, base_url: "http://speech.example/v1/"}
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
"""


def speech_recipe(tmp_path: Path, *audio: bytes) -> Recipe:
    calls = tmp_path / "calls"
    calls.mkdir()
    for n, sound in enumerate(audio):
        (calls / f"call-{n}.wav").write_bytes(sound)
    return recipe_from(tmp_path, SPEECH)


async def test_files_go_to_the_recipes_speech_server_once_each(tmp_path: Path) -> None:
    from fakeservices import FakeSpeech

    recipe = speech_recipe(tmp_path, b"one", b"two", b"one")  # call-2 is call-0's audio
    assert recipe.local_engine is not None
    server = FakeSpeech()
    services = FakeServices(default_reply=echo, speech={recipe.local_engine.server: server})
    with Store(tmp_path / "state") as store:
        reporter, _ = await run(tmp_path, services, recipe, store)
        assert len(server.history) == 2
        assert [r.status for r in reporter.finished] == ["ok"] * 3
        prompts = {body["messages"][-1]["content"] for body in services.gateway.history}
        assert prompts == {f"Summarize: words of {path.name}" for path, _ in server.history}
        await run(tmp_path, services, recipe, store)  # the ledger has them all
    assert len(server.history) == 2


async def test_a_speech_servers_refusal_fails_its_item_only(tmp_path: Path) -> None:
    from fakeservices import FakeSpeech

    recipe = speech_recipe(tmp_path, b"one", b"two")
    assert recipe.local_engine is not None
    server = FakeSpeech()
    server.enqueue(ApiError("POST /v1/audio/transcriptions failed (400): no such model"))
    services = FakeServices(default_reply=echo, speech={recipe.local_engine.server: server})
    reporter, _ = await run(tmp_path, services, recipe)
    statuses = sorted((r.status, r.error or "") for r in reporter.finished)
    assert statuses == [
        ("failed", "POST /v1/audio/transcriptions failed (400): no such model"),
        ("ok", ""),
    ]

"""The state store: keys, the ledger, the cache, and concurrent use."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from runner.errors import DamagedEntry
from runner.store import Holder, Store, file_identity, ledger_key, reply_key


def test_keys_are_stable_and_sensitive_to_every_field() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    key = reply_key("gateway", "/chat/completions", body, {})
    assert key == reply_key("gateway", "/chat/completions", dict(reversed(body.items())), {})
    assert key != reply_key("gateway", "/chat/completions", {**body, "max_tokens": 6}, {})
    assert ledger_key("https://x/a.mp3", {"speaker_labels": True}) != ledger_key(
        "https://x/a.mp3", {"speaker_labels": False}
    )


def test_file_identity_is_the_content_hash(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF....")
    (tmp_path / "b.wav").write_bytes(b"RIFF....")
    assert file_identity(tmp_path / "a.wav") == file_identity(tmp_path / "b.wav")
    assert file_identity(tmp_path / "a.wav").startswith("sha256:")


def test_ledger_and_cache_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ledger_put("k1", "https://x/a.mp3", {"speaker_labels": True}, "t-1", "submitted")
    entry = store.ledger_get("k1")
    assert entry is not None
    assert (entry.transcript_id, entry.status) == ("t-1", "submitted")
    store.reply_put("r1", "notes/a/summary", "m", {"model": "m"}, {"content": "hello"})
    cached = store.reply_get("r1")
    assert cached is not None
    assert cached.reply == {"content": "hello"}
    assert [type(e).__name__ for e in store.find("r")] == ["CachedReply"]
    assert store.clear() == (1, 1)
    assert store.reply_get("r1") is None
    store.close()


@pytest.mark.parametrize(
    ("column", "damage", "said"),
    [
        ("reply", '{"content": "cut sh', "its reply is not JSON: Unterminated string"),
        ("request", "[1, 2]", "its request is not a JSON object"),
        # Not UTF-8 (a damaged page): SQLite's driver cannot even read it as text.
        ("reply", b"\xff\xfe{}", "its reply is not JSON"),
    ],
)
def test_a_damaged_reply_row_is_named_and_listed_not_a_crash(
    tmp_path: Path, column: str, damage: str | bytes, said: str
) -> None:
    with Store(tmp_path) as store:
        store.reply_put("ab12" * 16, "notes/a/summary", "m", {"model": "m"}, {"content": "x"})
        store.reply_put("cd34" * 16, "notes/b/summary", "m", {"model": "m"}, {"content": "y"})
    # Damaged behind the store's back, as an edit of the file or a disk fault would.
    with sqlite3.connect(tmp_path / "state.db") as db:
        value = "CAST(? AS TEXT)" if isinstance(damage, bytes) else "?"
        db.execute(f"UPDATE replies SET {column}={value} WHERE key=?", (damage, "ab12" * 16))
    with Store(tmp_path) as store:
        with pytest.raises(DamagedEntry) as raised:
            store.reply_get("ab12" * 16)
        assert raised.value.message.startswith(
            f"state store {tmp_path / 'state.db'}: the cached reply ab12ab12ab12 "
            "(notes/a/summary) is damaged ("
        )
        assert said in raised.value.message
        assert raised.value.message.endswith(
            f"so it is neither replayed nor asked for again; remove it with "
            f"`transcript-runner cache clear ab12ab12ab12 --state-dir {tmp_path}` and the "
            "next run asks anew"
        )
        listed = {r.key[:4]: r for r in store.replies()}
        assert listed["ab12"].damage is not None
        assert said in listed["ab12"].damage
        assert (listed["ab12"].request, listed["ab12"].reply) == ({}, {})
        assert listed["cd34"].damage is None
        assert listed["cd34"].reply == {"content": "y"}
        (found,) = store.find("ab12")
        assert isinstance(found, type(listed["ab12"]))
        assert found.damage is not None
        store.reply_forget("ab12" * 16)
        assert store.reply_get("ab12" * 16) is None


def _writer(folder: str, worker: int, count: int) -> None:
    store = Store(Path(folder))
    for n in range(count):
        store.reply_put(f"{worker}-{n}", "label", "m", {"n": n}, {"content": str(n)})
        store.ledger_put(f"L{worker}-{n}", "audio", {}, f"t{n}", "submitted")
        assert store.reply_get(f"{worker}-{n}") is not None
    store.close()


def test_a_store_half_built_by_a_killed_run_is_removed_once_old(tmp_path: Path) -> None:
    """A run killed (kill -9) between building its new store and moving it into place
    leaves `.state.db.PID.X.new`; the next run to open the folder removes such files
    once they are older than any build takes, and leaves a fresh one (another run may be
    building it right now) and every other file alone."""
    import os
    import time

    from runner.store import LEFTOVER_SECONDS

    old = [tmp_path / ".state.db.4242.0badf00d.new", tmp_path / ".state.db.4242.0badf00d.new-wal"]
    fresh = tmp_path / ".state.db.4343.12345678.new"
    kept = [fresh, tmp_path / "notes.new", tmp_path / ".state.db.new"]
    for path in old + kept:
        path.write_bytes(b"x")
    long_ago = time.time() - LEFTOVER_SECONDS - 60
    for path in [*old, kept[1], kept[2]]:
        os.utime(path, (long_ago, long_ago))
    Store(tmp_path).close()
    assert not any(path.exists() for path in old)
    assert all(path.exists() for path in kept)
    assert (tmp_path / "state.db").exists()


def test_concurrent_runs_share_one_store_safely(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w, 300)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    store = Store(tmp_path)
    assert len(list(store.replies())) == 900
    assert len(list(store.ledger())) == 900
    store.close()


def _holder(owner: str) -> Holder:
    return Holder(owner, "host", "boot", "pid:[1]", 1, "1", 0.0, 0)


def test_a_live_claim_is_respected_and_a_dead_one_taken_over(tmp_path: Path) -> None:
    a, b = _holder("run-a"), _holder("run-b")
    with Store(tmp_path) as store:
        assert store.claim("k", a, lambda holder: False) is None  # a holds it
        held = store.claim("k", b, lambda holder: False)  # b waits
        assert held is not None
        assert held.owner == "run-a"
        assert store.claim("k", a, lambda holder: False) is None  # a again: still a's
        assert store.claim("k", b, lambda holder: True) is None  # a is gone: b takes it
        assert list(store.claims_held()) == [("k", "run-b")]
        store.release_claims("run-b", "k")
        assert list(store.claims_held()) == []


def test_two_runs_cannot_write_one_manifest_at_once(tmp_path: Path) -> None:
    from runner.errors import UsageError
    from runner.results.manifest import ManifestWriter

    first = ManifestWriter(tmp_path / "run.json", {"recipes": []})
    with pytest.raises(UsageError, match=r"another run is writing .*run\.json right now"):
        ManifestWriter(tmp_path / "run.json", {"recipes": []})
    first.close("completed", 1.0)
    assert json.loads((tmp_path / "run.json").read_text())["summary"]["outcome"] == "completed"


def test_transcripts_are_kept_compressed_and_old_stores_still_read(tmp_path: Path) -> None:
    wildfires = json.loads(
        (
            Path(__file__).parent / "fixtures" / "assemblyai" / "transcript-wildfires.json"
        ).read_text()
    )
    with Store(tmp_path) as store:
        store.transcript_put("t1", "transcript", wildfires)
        assert store.transcript_get("t1", "transcript") == wildfires
        (size,) = store._execute("SELECT length(body) FROM transcripts WHERE transcript_id='t1'")[0]
        assert size < len(json.dumps(wildfires)) / 3
        # A store from before compression holds the JSON text: it still reads.
        store._execute(
            "INSERT INTO transcripts (transcript_id, part, body, created) VALUES (?, ?, ?, 0)",
            ("t0", "transcript", json.dumps({"id": "t0", "text": "hi"})),
        )
        assert store.transcript_get("t0", "transcript") == {"id": "t0", "text": "hi"}

"""The state store: keys, the ledger, the cache, and concurrent use."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from runner.store import Store, file_identity, ledger_key, reply_key


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


def _writer(folder: str, worker: int, count: int) -> None:
    store = Store(Path(folder))
    for n in range(count):
        store.reply_put(f"{worker}-{n}", "label", "m", {"n": n}, {"content": str(n)})
        store.ledger_put(f"L{worker}-{n}", "audio", {}, f"t{n}", "submitted")
        assert store.reply_get(f"{worker}-{n}") is not None
    store.close()


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

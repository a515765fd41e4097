"""The state store: a transcription ledger and an LLM response cache, in SQLite.

Reruns must never pay twice. The **ledger** maps an audio's identity (the URL, or
the sha256 of a local file's bytes) plus the normalized transcription options to
the transcript id, and is written the moment AssemblyAI accepts a submission, so
a cancelled, crashed or retried run reattaches to the job instead of submitting
(and paying for) it again. Completed transcripts, and their sentences and
paragraphs, are kept too, so ``--offline`` can replay a run with no network.

The **cache** maps the exact request a task sends (API, path, body) plus its local
post-processing to the reply. Keys are sha256 hex strings a person can print with
``transcript-runner cache show KEY``. Failures are never cached.

SQLite in WAL mode with a busy timeout lets concurrent runs share one state folder
without corrupting it. Every commit is durable before the call that made it returns
(``synchronous=FULL``): a reply or a job recorded is on disk before the run does
anything else with it, so neither ``kill -9`` nor a power cut makes a rerun pay again.
Secrets never reach it: request bodies hold no API key.

A ``state.db`` that exists is a store: one created by a run is never empty, since it is
built under another name and moved into place whole. An empty file or one without the
store's tables (a failed copy, a cache restored wrong) is refused, never silently
started afresh: that would pay again for everything it held.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from runner.errors import DamagedEntry, SourceUnreadable, StoreError, StoreUnusable
from runner.items import Item
from runner.prompt.payloads import Payload
from runner.recipe.model import InputKind, Recipe, Task
from runner.serial_thread import SerialThread

T = TypeVar("T")

DB_FILE = "state.db"
OPEN_ATTEMPTS = 50  # switching a new database to WAL can meet SQLITE_BUSY without waiting
# A store being built (Store._create), by a run's pid, with its journal files: one
# older than this was left by a run killed while building it (that takes milliseconds;
# an hour leaves room for the clocks of hosts that share a state folder to disagree).
_BUILDING = re.compile(rf"\.{re.escape(DB_FILE)}\.\d+\.[0-9a-f]{{8}}\.new(-wal|-shm)?")
LEFTOVER_SECONDS = 3600.0


DEFAULT_STATE_DIR = Path(".transcript-runner")
# The tables every store has had: a state.db without them is not a store (an emptied
# file, another program's database). Tables added later are created when missing.
_CORE_TABLES = ("transcriptions", "replies")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcriptions (
    key TEXT PRIMARY KEY,
    audio TEXT NOT NULL,
    options TEXT NOT NULL,
    transcript_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS transcripts (
    transcript_id TEXT NOT NULL,
    part TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (transcript_id, part)
);
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    model TEXT,
    request TEXT NOT NULL,
    reply TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    heartbeat REAL NOT NULL  -- time.time() of the owner's last beat: for people only
);
CREATE TABLE IF NOT EXISTS runs (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    pid_namespace TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT NOT NULL,
    started REAL NOT NULL,
    beats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS catalogs (
    url TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    fetched REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rates (
    gate TEXT PRIMARY KEY,  -- "llm:MODEL": what a server's x-ratelimit-* headers said
    requests INTEGER NOT NULL,
    window REAL NOT NULL,  -- seconds
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS intents (
    key TEXT PRIMARY KEY,
    audio TEXT NOT NULL,
    audio_url TEXT NOT NULL,
    options TEXT NOT NULL,
    started REAL NOT NULL
);
"""
_TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", _SCHEMA))


def canonical(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, so equal requests give equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_identity(path: Path, chunk: int = 1 << 20) -> str:
    """``sha256:<hex>`` of a file's bytes, read in chunks (audio can be gigabytes)."""
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(chunk):
                hasher.update(block)
    except OSError as exc:
        raise SourceUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    return f"sha256:{hasher.hexdigest()}"


def ledger_key(audio: str, options: Mapping[str, Any]) -> str:
    """The ledger key of one audio transcribed with one set of options."""
    return digest(f"{audio}\n{canonical(options)}")


def reply_key(api: str, path: str, body: Mapping[str, Any], local: Mapping[str, Any]) -> str:
    """The cache key of one request and the local processing of its reply."""
    return digest(canonical({"api": api, "path": path, "body": body, "local": local}))


# --- the keys of a recipe's work: `run` and `plan` both call these ----------------------


def audio_identity(item: Item) -> str:
    """What a transcription is *of*: the URL, or a local file's content hash, so a file
    moved or renamed between runs is still the same (already paid for) audio.

    Reads the whole file for a local one: call it off the event loop.
    """
    if item.kind is InputKind.FILE:
        return file_identity(Path(item.source))
    return item.source


def transcription_key(recipe: Recipe, audio: str) -> str:
    """The ledger key of ``audio`` transcribed with ``recipe``'s options (its local
    engine's, when it transcribes on this machine)."""
    engine = recipe.local_engine
    return ledger_key(audio, engine.options() if engine else recipe.transcription_request())


def request_key(task: Task, payload: Payload) -> str:
    """The reply-cache key of the request ``task`` sends for one item."""
    return reply_key(task.api.value, payload.path, payload.body, {})


def judge_key(payload: Payload) -> str:
    """The reply-cache key of a judge's request (``judge:`` checks): the request alone,
    so a rerun with the same rubric, result and model asks nothing."""
    return reply_key(payload.api.value, payload.path, payload.body, {"judge": True})


@dataclass(frozen=True, slots=True)
class Intent:
    """A submission about to be sent, or sent without a clear answer: the job may exist.

    Written before every ``POST /v2/transcript``; the job id replaces it in the ledger
    when the answer arrives. An intent that is still open (a 5xx, a reset, a crash or a
    ``kill -9`` mid-request) is reconciled against the account's transcript list, never
    guessed: the job is reattached if it exists, and only submitted if it does not.
    """

    key: str
    audio: str
    audio_url: str
    started: float  # time.time() just before the request was sent


@dataclass(frozen=True, slots=True)
class Holder:
    """A run that holds claims: who it is, and what tells whether it still lives.

    On the machine it ran on, its process does (``pid``, with ``process_start`` against
    a reused pid, on the boot ``boot_id`` in the pid namespace ``pid_namespace``);
    elsewhere its ``beats``, a counter it increments while it lives. ``started`` is its
    wall-clock start, for people only: clocks of two machines are never compared.
    """

    owner: str
    host: str
    boot_id: str  # "" when unknown (not Linux; a claim written by an older version)
    pid_namespace: str
    pid: int
    process_start: str
    started: float
    beats: float  # the counter; an older version's claim: its heartbeat time, as read

    def describe(self) -> str:
        """The run, as a person finds it: its process, machine and start."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        pid = f"pid {self.pid}" if self.pid else f"run {self.owner}"
        return f"{pid} on {self.host or 'an unknown host'}, started {when}"


_HOLDER_COLUMNS = (
    "c.owner, r.host, r.boot_id, r.pid_namespace, r.pid, r.process_start, r.started,"
    " coalesce(r.beats, c.heartbeat)"
)


def _holder(row: tuple[Any, ...]) -> Holder:
    owner, host, boot, namespace, pid, start, started, beats = row
    if host is None:  # an older version's claim (no row in `runs`): its owner is host:pid:…
        name, _, rest = str(owner).partition(":")
        pid_text = rest.partition(":")[0]
        return Holder(str(owner), name, "", "", int(pid_text or 0) if pid_text.isdigit()
                      else 0, "", float(beats), float(beats))  # fmt: skip
    return Holder(str(owner), host, boot, namespace, int(pid), start, float(started), beats)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    key: str
    audio: str
    transcript_id: str
    status: str
    created: float


@dataclass(frozen=True, slots=True)
class CachedReply:
    key: str
    label: str
    model: str | None
    request: Mapping[str, Any]
    reply: Mapping[str, Any]
    created: float
    # Why the row's request or reply cannot be read (both are then empty): listed and
    # shown as damaged by `cache`; :meth:`Store.reply_get` raises it as DamagedEntry.
    damage: str | None = None


def _remove_leftovers(folder: Path) -> None:
    """Remove the stores that runs killed while building them left behind (a kill -9
    between building one and moving it into place), once older than any build takes."""
    cutoff = time.time() - LEFTOVER_SECONDS
    try:
        entries = [entry for entry in os.scandir(folder) if _BUILDING.fullmatch(entry.name)]
    except OSError:
        return  # a leftover is a few kilobytes: never a reason to fail a run
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
        except OSError:
            continue  # another run removed it first, or it is not ours to remove


class Store:
    """One SQLite database; safe to share between threads of one run and between runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / DB_FILE
        # Re-entrant: a batch (serial_thread.py) holds it around the calls it runs.
        self._lock = threading.RLock()
        self._thread = SerialThread("store", batching=self)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(self.path):
                self._create()
            self._refuse_what_is_no_store()
            self._db = sqlite3.connect(
                self.path, timeout=30, check_same_thread=False, isolation_level=None
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnusable(self._describe(exc)) from None
        try:
            self._prepare()
        except (sqlite3.Error, OSError) as exc:
            self._db.close()
            raise StoreUnusable(self._describe(exc)) from None
        except StoreUnusable:
            self._db.close()
            raise
        _remove_leftovers(folder)

    def _create(self) -> None:
        """A new store, built under another name and moved into place whole, so a
        ``state.db`` is never seen half made (an empty one is refused: see the module)."""
        building = self.folder / f".{DB_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new"
        try:
            db = sqlite3.connect(building, isolation_level=None)
            try:
                # No journal while it is built: the file is private until linked into
                # place, and a crash leaves only a leftover to remove. Its tables in one
                # transaction: one synced commit, not one per table. Opening it switches
                # it to WAL (_prepare), as every run's opening does.
                db.execute("PRAGMA journal_mode=OFF")
                db.executescript(f"BEGIN;{_SCHEMA}COMMIT;")
            finally:
                db.close()
            try:
                os.link(building, self.path)  # fails if another run put its store first
            except FileExistsError:
                pass  # that run's store is the one: use it
            except OSError:  # a file system without hard links
                if not os.path.lexists(self.path):
                    os.replace(building, self.path)
        finally:
            for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
                leftover.unlink(missing_ok=True)

    def _refuse_what_is_no_store(self) -> None:
        """A folder, or an emptied file, where the store's file was."""
        if self.path.is_dir():
            raise StoreUnusable(
                f"state store {self.path} is a folder, not the store's file; move it away, "
                "or pass --state-dir a folder whose state.db is the store"
            )
        if self.path.stat().st_size == 0:
            raise StoreUnusable(self._lost("is empty (0 bytes)"))

    def _lost(self, what: str) -> str:
        return (
            f"state store {self.path} {what}: the store that was there lost its contents "
            "(a failed copy or restore, a full disk), and starting afresh would pay again "
            "for every transcription and reply it held. Restore it from a backup or your "
            "CI cache; or, to start afresh knowingly (everything is paid again), move it "
            "away or pass another --state-dir"
        )

    def _prepare(self) -> None:
        # Several runs may open the same new store at once; the switch to WAL then
        # answers "database is locked" at once instead of waiting, so retry it.
        for attempt in range(OPEN_ATTEMPTS):
            try:
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: each commit syncs the log, so a commit survives a power cut or an
                # OS crash too (NORMAL with WAL survives kill -9, but may lose the last
                # commits to a power cut). Batched commits make it one sync per batch.
                self._db.execute("PRAGMA synchronous=FULL")
                tables = {
                    str(row[0])
                    for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                missing = [name for name in _CORE_TABLES if name not in tables]
                if missing:
                    raise StoreUnusable(
                        self._lost(f"has no {' and no '.join(missing)} table, so it is no store")
                    )
                if not _TABLES.issubset(tables):  # tables newer than the store
                    self._db.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))

    def _read_only(self) -> bool:
        """Whether the store's file, or the folder its log files go in, cannot be written."""
        place = self.path if os.path.lexists(self.path) else self.folder
        while not os.path.lexists(place) and place != place.parent:
            place = place.parent
        folder = place if place.is_dir() else place.parent
        return not os.access(place, os.W_OK) or not os.access(folder, os.W_OK)

    def _describe(self, exc: BaseException) -> str:
        """The store's error with its likely cause, named (never a guess for all)."""
        said = str(exc)
        if "full" in said or "No space" in said:
            cause = "the disk holding it is full; make room, or pass --state-dir elsewhere"
        elif (
            "readonly" in said
            or "read-only" in said
            or "Read-only" in said
            or isinstance(exc, PermissionError)
            or self._read_only()
        ):
            cause = (
                "it is read-only (the file, its folder or the disk cannot be written; a run "
                "records there what it pays for, and SQLite writes its log beside it): make "
                "it writable, or pass --state-dir a writable folder"
            )
        elif isinstance(exc, (NotADirectoryError, FileExistsError)):
            cause = "a file is in the way of the folder; pass --state-dir a folder"
        elif "locked" in said or "busy" in said:
            cause = "another run holds it; wait for it, or pass another --state-dir"
        elif "I/O" in said or isinstance(exc, OSError):
            cause = "the disk failed to read or write it; check the disk, or pass --state-dir"
        else:
            cause = (
                "the file may be damaged (move the folder away to start afresh, or pass "
                "--state-dir)"
            )
        return f"state store {self.path}: {said}; {cause}"

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` (synchronous, using this store's methods, never
        :meth:`call` itself) on the store's own thread, with the calls waiting alongside
        it in one commit (:mod:`runner.serial_thread`)."""
        return await self._thread.call(function, *args)

    def close(self) -> None:
        self._thread.close()
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def existing(cls, folder: Path) -> Store | None:
        """The store in ``folder`` if a run created one; None, creating nothing, if not.
        Something else in its place (a folder, an emptied file) is refused, never taken
        for "no store": that would count, or pay, everything again."""
        return cls(folder) if os.path.lexists(folder / DB_FILE) else None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many calls (see :mod:`runner.serial_thread`): they
        share one commit. Each call inside is its own savepoint (:meth:`unit`), so one
        call's failure undoes only that call. A failed commit is a :class:`StoreError`."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(self._describe(exc)) from None
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            try:
                self._db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise StoreError(self._describe(exc)) from None

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (a batch's, unless SQLite rolled it back)."""
        return self._db.in_transaction

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One atomic unit of work: its own transaction (taking the write lock at once,
        so a check and the write after it see the same data), or a savepoint when a
        batch's transaction is open."""
        with self._lock:
            try:
                if self._db.in_transaction:
                    self._db.execute("SAVEPOINT unit")
                    try:
                        yield
                    except BaseException:
                        self._db.execute("ROLLBACK TO unit")
                        self._db.execute("RELEASE unit")
                        raise
                    self._db.execute("RELEASE unit")
                    return
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.commit()
                except BaseException:
                    if self.in_transaction:  # a failed commit leaves it open
                        self._db.rollback()
                    raise
            except sqlite3.Error as exc:
                raise StoreError(self._describe(exc)) from None

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(self._describe(exc)) from None

    # ledger ------------------------------------------------------------------------

    def ledger_get(self, key: str) -> LedgerEntry | None:
        rows = self._execute(
            "SELECT key, audio, transcript_id, status, created FROM transcriptions WHERE key=?",
            (key,),
        )
        return LedgerEntry(*rows[0]) if rows else None

    def ledger_put(
        self, key: str, audio: str, options: Mapping[str, Any], transcript_id: str, status: str
    ) -> None:
        """Record the job for ``key``, closing its intent in the same transaction."""
        now = time.time()
        with self.unit():  # one transaction: the job replaces its intent atomically
            self._db.execute(
                "INSERT INTO transcriptions (key, audio, options, transcript_id,"
                " status, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET transcript_id=excluded.transcript_id,"
                " status=excluded.status, updated=excluded.updated",
                (key, audio, canonical(options), transcript_id, status, now, now),
            )
            self._db.execute("DELETE FROM intents WHERE key=?", (key,))

    # claims: runs sharing this folder split the work instead of paying for it twice

    def claim(self, key: str, me: Holder, is_dead: Callable[[Holder], bool]) -> Holder | None:
        """Take ``key`` for the run ``me`` unless another run holds it and ``is_dead``
        says it lives; None when ``me`` holds it now, else the live holder."""
        with self.unit():
            self._db.execute(
                "INSERT OR IGNORE INTO runs (owner, host, boot_id, pid_namespace, pid,"
                " process_start, started, beats) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (me.owner, me.host, me.boot_id, me.pid_namespace, me.pid, me.process_start,
                 me.started, int(me.beats)),
            )  # fmt: skip
            row = self._db.execute(
                f"SELECT {_HOLDER_COLUMNS} FROM claims c LEFT JOIN runs r ON r.owner = c.owner"
                " WHERE c.key=?",
                (key,),
            ).fetchone()
            if row is not None:
                holder = _holder(row)
                if holder.owner != me.owner and not is_dead(holder):
                    return holder
            self._db.execute(
                "INSERT OR REPLACE INTO claims (key, owner, heartbeat) VALUES (?, ?, ?)",
                (key, me.owner, time.time()),
            )
            return None

    def keep_claims(self, owner: str) -> None:
        """``owner`` is alive: its counter moves on (what runs elsewhere watch; the time
        beside it is for people)."""
        with self.unit():
            self._db.execute("UPDATE runs SET beats = beats + 1 WHERE owner=?", (owner,))
            self._db.execute("UPDATE claims SET heartbeat=? WHERE owner=?", (time.time(), owner))

    def claims_held(self) -> Iterator[tuple[str, str]]:
        """``(key, owner)`` of every claim in the store."""
        for key, owner in self._execute("SELECT key, owner FROM claims ORDER BY key"):
            yield str(key), str(owner)

    def claim_holders(self) -> dict[str, Holder]:
        """Every claimed key and the run that holds it."""
        rows = self._execute(
            f"SELECT c.key, {_HOLDER_COLUMNS} FROM claims c"
            " LEFT JOIN runs r ON r.owner = c.owner ORDER BY c.key"
        )
        return {str(row[0]): _holder(row[1:]) for row in rows}

    def release_claims(self, owner: str, key: str | None = None) -> None:
        """Drop ``owner``'s claim on ``key``, or all of them (the run is over)."""
        if key is not None:
            self._execute("DELETE FROM claims WHERE owner=? AND key=?", (owner, key))
            return
        with self.unit():
            self._db.execute("DELETE FROM claims WHERE owner=?", (owner,))
            self._db.execute("DELETE FROM runs WHERE owner=?", (owner,))

    def intent_put(
        self, key: str, audio: str, audio_url: str, options: Mapping[str, Any]
    ) -> Intent:
        """Say, before sending it, that a submission for ``key`` is about to go out."""
        intent = Intent(key, audio, audio_url, time.time())
        self._execute(
            "INSERT OR REPLACE INTO intents (key, audio, audio_url, options, started)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, audio, audio_url, canonical(options), intent.started),
        )
        return intent

    def intent_get(self, key: str) -> Intent | None:
        rows = self._execute(
            "SELECT key, audio, audio_url, started FROM intents WHERE key=?", (key,)
        )
        return Intent(*rows[0]) if rows else None

    def intent_forget(self, key: str) -> None:
        """The submission certainly created no job (a 4xx, or the listing lacks it)."""
        self._execute("DELETE FROM intents WHERE key=?", (key,))

    def ledger_holds(self, transcript_id: str) -> bool:
        """Whether some ledger entry already owns ``transcript_id``."""
        rows = self._execute(
            "SELECT 1 FROM transcriptions WHERE transcript_id=? LIMIT 1", (transcript_id,)
        )
        return bool(rows)

    def ledger_forget(self, key: str) -> None:
        self._execute("DELETE FROM transcriptions WHERE key=?", (key,))

    def transcript_put(self, transcript_id: str, part: str, body: Mapping[str, Any]) -> None:
        """Keep a completed transcript (``part`` "transcript") or its sentences/paragraphs."""
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        self.transcript_put_bytes(transcript_id, part, text.encode())

    def transcript_put_bytes(self, transcript_id: str, part: str, body: bytes) -> None:
        """Keep the JSON as received, compressed: nothing is looked up inside it, and
        word lists shrink about 6 times (a store of 10,000 transcripts is a few hundred
        MB, not gigabytes). Not re-encoded, not sorted: what identifies it is its id."""
        self._execute(
            "INSERT OR REPLACE INTO transcripts (transcript_id, part, body, created)"
            " VALUES (?, ?, ?, ?)",
            (transcript_id, part, zlib.compress(body, 1), time.time()),
        )

    def transcript_has(self, transcript_id: str, part: str) -> bool:
        rows = self._execute(
            "SELECT 1 FROM transcripts WHERE transcript_id=? AND part=?", (transcript_id, part)
        )
        return bool(rows)

    def transcript_get(self, transcript_id: str, part: str) -> Mapping[str, Any] | None:
        body = self.transcript_bytes(transcript_id, part)
        if body is None:
            return None
        try:
            loaded: Mapping[str, Any] = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise self._damaged(transcript_id, part, exc) from None
        return loaded

    def transcript_bytes(self, transcript_id: str, part: str) -> bytes | None:
        """The kept JSON, decompressed; None when it is not kept."""
        rows = self._execute(
            "SELECT body FROM transcripts WHERE transcript_id=? AND part=?", (transcript_id, part)
        )
        if not rows:
            return None
        body = rows[0][0]
        if isinstance(body, str):  # stores written before compression hold the JSON text
            return body.encode()
        try:
            return zlib.decompress(body)
        except zlib.error as exc:
            raise self._damaged(transcript_id, part, exc) from None

    def _damaged(self, transcript_id: str, part: str, exc: Exception) -> DamagedEntry:
        # One item's trouble, not the store's: the other items go on.
        return DamagedEntry(
            f"state store {self.path}: the stored {part} of transcript {transcript_id} "
            f"is damaged ({exc}); remove it with `transcript-runner cache clear`"
        )

    # replies -------------------------------------------------------------------------

    def catalog_put(self, url: str, body: str) -> None:
        """Keep a model catalog (``GET {gateway}/models``) as received, with when."""
        self._execute(
            "INSERT OR REPLACE INTO catalogs (url, body, fetched) VALUES (?, ?, ?)",
            (url, body, time.time()),
        )

    def rate_put(self, gate: str, requests: int, window: float) -> None:
        """Keep the rate a server said it allows a gate (``plan`` forecasts with it)."""
        self._execute(
            "INSERT OR REPLACE INTO rates (gate, requests, window, seen) VALUES (?, ?, ?, ?)",
            (gate, requests, window, time.time()),
        )

    def rates(self) -> dict[str, tuple[int, float]]:
        """Every kept rate: gate → (requests, window in seconds)."""
        rows = self._execute("SELECT gate, requests, window FROM rates")
        return {str(gate): (int(requests), float(window)) for gate, requests, window in rows}

    def catalog_get(self, url: str) -> tuple[str, float] | None:
        """The kept catalog of ``url`` and when it was fetched (``time.time()``)."""
        rows = self._execute("SELECT body, fetched FROM catalogs WHERE url=?", (url,))
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    def reply_get(self, key: str) -> CachedReply | None:
        """The cached reply of ``key``; a damaged one is a :class:`DamagedEntry` (never
        None: that would send, and pay for, the request again without a word)."""
        rows = self._execute(f"SELECT {_REPLY_COLUMNS} FROM replies WHERE key=?", (key,))
        if not rows:
            return None
        cached = _reply(rows[0])
        if cached.damage is not None:
            raise DamagedEntry(self.damaged_reply(cached))
        return cached

    def damaged_reply(self, cached: CachedReply) -> str:
        """What is wrong with a damaged cached reply, and how to remove it."""
        short = cached.key[:12]
        folder = "" if self.folder == DEFAULT_STATE_DIR else f" --state-dir {_quoted(self.folder)}"
        return (
            f"state store {self.path}: the cached reply {short} ({cached.label}) is damaged "
            f"({cached.damage}), so it is neither replayed nor asked for again; remove it "
            f"with `transcript-runner cache clear {short}{folder}` and the next run asks anew"
        )

    def reply_put(
        self,
        key: str,
        label: str,
        model: str | None,
        request: Mapping[str, Any],
        reply: Mapping[str, Any],
    ) -> None:
        self._execute(
            "INSERT OR REPLACE INTO replies (key, label, model, request, reply, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, label, model, canonical(request), canonical(reply), time.time()),
        )

    def reply_forget(self, key: str) -> None:
        self._execute("DELETE FROM replies WHERE key=?", (key,))

    def replies(self) -> Iterator[CachedReply]:
        """Every cached reply, oldest first; damaged ones too, with their ``damage``."""
        for row in self._execute(f"SELECT {_REPLY_COLUMNS} FROM replies ORDER BY created"):
            yield _reply(row)

    def ledger(self) -> Iterator[LedgerEntry]:
        for row in self._execute(
            "SELECT key, audio, transcript_id, status, created FROM transcriptions ORDER BY created"
        ):
            yield LedgerEntry(*row)

    def find(self, prefix: str) -> list[CachedReply | LedgerEntry]:
        """Entries whose key starts with ``prefix`` (people type the first few characters)."""
        pattern = prefix.lower() + "%"
        found: list[CachedReply | LedgerEntry] = [
            _reply(row)
            for row in self._execute(
                f"SELECT {_REPLY_COLUMNS} FROM replies WHERE key LIKE ?", (pattern,)
            )
        ]
        found += [
            LedgerEntry(*row)
            for row in self._execute(
                "SELECT key, audio, transcript_id, status, created FROM transcriptions"
                " WHERE key LIKE ?",
                (pattern,),
            )
        ]
        return found

    def clear(self, older_than: float | None = None, keep: Collection[str] = ()) -> tuple[int, int]:
        """Delete cached replies and ledger entries (older than ``older_than`` seconds),
        but those whose key is in ``keep`` (work a live run holds), nor their transcripts."""
        cutoff = time.time() - older_than if older_than is not None else float("inf")
        with self.unit():
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS kept (key TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM kept")
            self._db.executemany("INSERT OR IGNORE INTO kept VALUES (?)", [(k,) for k in keep])
            replies = self._db.execute(
                "DELETE FROM replies WHERE created < ? AND key NOT IN (SELECT key FROM kept)",
                (cutoff,),
            ).rowcount
            ledger = self._db.execute(
                "DELETE FROM transcriptions WHERE created < ?"
                " AND key NOT IN (SELECT key FROM kept)",
                (cutoff,),
            ).rowcount
            # Kept transcripts age on their own clock: those of transcript_id inputs
            # have no ledger row and must not vanish with a partial clear.
            transcripts = "DELETE FROM transcripts WHERE created < ?"
            if keep:  # nor the transcripts of the jobs kept
                transcripts += (
                    " AND transcript_id NOT IN (SELECT transcript_id FROM transcriptions)"
                )
            self._db.execute(transcripts, (cutoff,))
        return replies, ledger


# The request and reply as bytes: text that is not UTF-8 (a damaged page) would make
# SQLite's driver fail the whole query; read as bytes, it is one damaged entry.
_REPLY_COLUMNS = "key, label, model, CAST(request AS BLOB), CAST(reply AS BLOB), created"


def _reply(row: tuple[Any, ...]) -> CachedReply:
    """A row of ``replies``; one whose request or reply is not a JSON object (an edited
    file, a disk fault) comes back empty, with its ``damage`` said."""
    key, label, model, request, reply, created = row
    try:
        parsed_request = _json_object("request", request)
        parsed_reply = _json_object("reply", reply)
    except ValueError as exc:
        return CachedReply(key, label, model, {}, {}, created, damage=str(exc))
    return CachedReply(key, label, model, parsed_request, parsed_reply, created)


def _json_object(name: str, data: bytes | str | None) -> Mapping[str, Any]:
    try:
        loaded = json.loads(data if data is not None else b"")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"its {name} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"its {name} is not a JSON object")
    return loaded


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))

"""``transcript-runner cache ls|show|clear``: the state store, for people."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from runner.errors import EXIT_OK, UsageError
from runner.execute.claims import live_holders
from runner.store import DEFAULT_STATE_DIR, CachedReply, Holder, LedgerEntry, Store

_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class CacheRequest:
    state_dir: Path = DEFAULT_STATE_DIR
    key: str | None = None  # `show`, `clear`: the first characters of an entry's key
    older_than: str | None = None  # `clear`: only entries older than this (30m, 12h, 7d)
    yes: bool = False  # `clear`: do it without asking (needed when no one can answer)


def _open_store(state_dir: Path) -> Store:
    store = Store.existing(state_dir)
    if store is None:
        raise UsageError(f"no state store in {state_dir}/ (a run creates it; see --state-dir)")
    return store


def ls(request: CacheRequest) -> int:
    """List ledger entries and cached replies, oldest first."""
    with _open_store(request.state_dir) as store:
        _list(store)
    return EXIT_OK


def _list(store: Store) -> None:
    for entry in store.ledger():
        click.echo(
            f"{entry.key[:12]}  transcript  {_when(entry.created)}  {entry.transcript_id}  "
            f"{entry.audio}"
        )
    for reply in store.replies():
        damaged = f"  DAMAGED: {reply.damage}" if reply.damage is not None else ""
        click.echo(
            f"{reply.key[:12]}  reply       {_when(reply.created)}  {reply.model}  {reply.label}"
            f"{damaged}"
        )


def show(request: CacheRequest) -> int:
    """Print one entry, found by the first characters of its key."""
    with _open_store(request.state_dir) as store:
        entry = _one_entry(store, request.key or "")
        damaged = store.damaged_reply(entry) if isinstance(entry, CachedReply) else None
    shown: dict[str, Any]
    if isinstance(entry, CachedReply) and entry.damage is not None:
        shown = {"key": entry.key, "label": entry.label, "model": entry.model,
                 "damaged": damaged}  # fmt: skip
    elif isinstance(entry, CachedReply):
        shown = {"key": entry.key, "label": entry.label, "model": entry.model,
                 "request": entry.request, "reply": entry.reply}  # fmt: skip
    else:
        shown = {"key": entry.key, "audio": entry.audio, "transcript_id": entry.transcript_id,
                 "status": entry.status}  # fmt: skip
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
    return EXIT_OK


def _one_entry(store: Store, key: str) -> CachedReply | LedgerEntry:
    """The one entry whose key starts with ``key``; a usage error for none or several."""
    found = store.find(key)
    if not found:
        raise UsageError(
            f"no entry whose key starts with {key!r}; see `transcript-runner cache ls`"
        )
    if len(found) > 1:
        raise UsageError(f"{len(found)} entries start with {key!r}; give more characters")
    return found[0]


def clear(request: CacheRequest) -> int:
    """Delete cached replies and ledger entries (only older ones with ``older_than``, only
    the one whose key starts with ``key``)."""
    if request.key is not None:
        return _clear_one(request, request.key)
    seconds = _age(request.older_than) if request.older_than else None
    what = f"entries older than {request.older_than}" if request.older_than else "every entry"
    if not _confirmed(request, what):
        click.echo("Nothing was deleted.")
        return EXIT_OK
    with _open_store(request.state_dir) as store:
        # A live run waits on these (a job it polls, a reply it is asking for): deleted,
        # they would be paid for again by the next run.
        held = live_holders(store)
        kept = {key: holder for key, holder in held.items() if store.find(key)}
        replies, ledger = store.clear(seconds, keep=held.keys())
    click.echo(f"Removed {replies} cached replies and {ledger} ledger entries.")
    if kept:
        click.echo(_kept_text(kept))
    return EXIT_OK


def _kept_text(kept: dict[str, Holder]) -> str:
    """What was kept because live runs hold it, run by run."""
    runs: dict[str, list[str]] = {}
    for key, holder in kept.items():
        runs.setdefault(holder.describe(), []).append(key[:12])
    lines = [f"Kept {len(kept)} entries that a live run is working on (clear them once it ends):"]
    lines += [f"  {run}: {', '.join(keys)}" for run, keys in runs.items()]
    return "\n".join(lines)


def _clear_one(request: CacheRequest, key: str) -> int:
    """Delete the one entry whose key starts with ``key`` (a damaged reply, say)."""
    if request.older_than is not None:
        raise UsageError("cache clear takes a KEY or --older-than, not both")
    with _open_store(request.state_dir) as store:
        entry = _one_entry(store, key)
        kind = "cached reply" if isinstance(entry, CachedReply) else "ledger entry"
        holder = live_holders(store).get(entry.key)
        if holder is not None:
            raise UsageError(
                f"the {kind} {entry.key[:12]} is the work of a live run ({holder.describe()}), "
                "which waits on it; deleted, it would be paid for again. Clear it once "
                "that run ends"
            )
        if not _confirmed(request, f"the {kind} {entry.key[:12]}"):
            click.echo("Nothing was deleted.")
            return EXIT_OK
        if isinstance(entry, CachedReply):
            store.reply_forget(entry.key)
        else:
            store.ledger_forget(entry.key)
    replies, ledger = (1, 0) if isinstance(entry, CachedReply) else (0, 1)
    click.echo(f"Removed {replies} cached replies and {ledger} ledger entries.")
    return EXIT_OK


def _confirmed(request: CacheRequest, what: str) -> bool:
    """Whether to delete ``what``: --yes, or the person at the terminal says so."""
    if request.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            f"cache clear deletes {what} of {request.state_dir}/ (anything deleted is "
            "paid for again when a run needs it); pass --yes to do it without a terminal"
        )
    return click.confirm(
        f"Delete {what} of {request.state_dir}/? Anything deleted is paid for again "
        "when a run needs it",
        default=False,
    )


def _age(text: str) -> float:
    number, unit = text[:-1], text[-1:]
    if unit not in _AGE_UNITS or not number.isdigit():
        raise UsageError(f"--older-than {text}: give a number and a unit s, m, h or d, e.g. 7d")
    return int(number) * _AGE_UNITS[unit]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")

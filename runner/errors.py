"""The exception tree: every error a user can cause, each with its exit code.

The command line catches :class:`RunnerError` and prints its message, never a
traceback; anything else escaping is a bug in transcript-runner itself, said in one
line with the details in a crash log (:mod:`runner.crash`, exit code 4). Inside a
run, :class:`ItemError` is the one thing the executor catches around an item or a
task: it is recorded in the manifest with its message and the run goes on.

Every class a user can meet is defined here, so this drawing is the whole tree::

    RunnerError                  1  base of everything a user can cause
    ├── UsageError               2  the command line was wrong (an option, a path)
    │   └── OverlappingShards    2  `merge` was given manifests that share items
    ├── ConfigurationError       2  the environment lacks something (API key, region)
    │   └── KeyRefused           2  AssemblyAI answered 401/403: the run stops at once
    ├── RecipeInvalid            3  recipes failed validation; holds every diagnostic
    │   └── DiagnosticError      3  one located problem that stops a loader early
    ├── InputsInvalid            3  the inputs do not expand into items (a diagnostic each)
    ├── RunFailed                1  the run finished, but some item or task failed
    ├── StoreError               1  the state store failed: the run stops, nothing more is paid
    │   └── StoreUnusable        2  it cannot be opened as a store (damaged, emptied, read-only)
    ├── DiskFull                 1  the output disk is full or read-only: the run stops
    └── ItemError                1  one item's or task's failure; the run goes on
        ├── ApiError                a request failed for good, after any retries
        │   ├── MaybeSubmitted      …after the job may have been created: never resent
        │   └── NotStored           --offline needed what the state store lacks
        ├── TranscriptFailed        a transcript ended in `status: error`
        ├── DeadlineExceeded        a transcript did not finish in time
        ├── SourceUnreadable        a local input (audio, saved transcript) cannot be read
        ├── DamagedEntry            one entry of the state store cannot be read (never resent)
        ├── OutputError             an output file cannot be written
        ├── TemplateProblem         a prompt failed to render (strict undefined, sandbox)
        └── PostProcessFailed       a reply failed post-processing (JSON, schema, extract)

Exit codes are part of the contract (README, ``docs/cli.md``):

====  ==========================================================
0     everything succeeded
1     some item, task or expectation failed (:class:`RunFailed`)
2     usage error: bad options, missing paths (:class:`UsageError`)
3     invalid recipe (:class:`RecipeInvalid`, :class:`InputsInvalid`)
4     a bug in transcript-runner: an unexpected exception (:mod:`runner.crash`)
130   interrupted (Ctrl-C)
====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from runner.diagnostics import Diagnostic

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID_RECIPE = 3
EXIT_INTERNAL = 4  # a bug in transcript-runner, not the user's doing (runner.crash)
EXIT_INTERRUPTED = 130


class RunnerError(Exception):
    """Base of every error transcript-runner reports to a user."""

    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- the command line and the environment ---------------------------------------------


class UsageError(RunnerError):
    """The command line was wrong: an unknown option value, a path that does not exist."""

    exit_code = EXIT_USAGE


class ConfigurationError(RunnerError):
    """The environment is missing something the run needs (an API key, a writable directory).

    Exit code 2 like a usage error, but printed without "error:": the message is advice.
    """

    exit_code = EXIT_USAGE


class OverlappingShards(UsageError):
    """Manifests given to ``merge`` share items: the shards were not disjoint, so merging
    would count (and report) those items twice."""

    def __init__(self, overlaps: Sequence[tuple[str, str, str]]) -> None:
        self.overlaps = tuple(overlaps)  # (recipe/item, first input, second input)
        shown = [f"{what} (in {first} and {second})" for what, first, second in overlaps[:5]]
        more = f" and {len(overlaps) - 5} more" if len(overlaps) > 5 else ""
        count = len(overlaps)
        super().__init__(
            f"the shards overlap: {count} {'item is' if count == 1 else 'items are'} in more "
            f"than one manifest: {', '.join(shown)}{more}; merge the manifests of disjoint "
            "shards (--shard 1/N … N/N of one run)"
        )


class KeyRefused(ConfigurationError):
    """AssemblyAI refused the API key (401), or its project's access to ``/v2`` (403).

    Not an item's failure: every other request would be refused the same way, so the
    first one stops the run, and nothing more is sent.
    """

    def __init__(self, route: str, status: int, reason: str) -> None:
        super().__init__(
            f"AssemblyAI refused the API key: {route} answered {status} ({reason}). Check "
            "ASSEMBLYAI_API_KEY (copy the key from the AssemblyAI dashboard; in CI, the "
            "secret exposed to the job) and, for the EU region, --region eu. The run "
            "stopped; nothing more was sent, and finished outputs are kept."
        )
        self.status = status


# --- recipes ------------------------------------------------------------------------------


class RecipeInvalid(RunnerError):
    """One or more recipes failed validation; ``diagnostics`` holds every problem found."""

    exit_code = EXIT_INVALID_RECIPE

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class DiagnosticError(RecipeInvalid):
    """Raised inside loaders to stop at a problem that makes further checks meaningless."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__([diagnostic])
        self.diagnostic = diagnostic


@dataclass(frozen=True, slots=True)
class InputProblem:
    """One input that does not expand: where in the recipe (or list file), and why."""

    key_path: tuple[str | int, ...]
    message: str
    file: str | None = None  # set for problems inside a list file
    line: int = 0


class InputsInvalid(RunnerError):
    """A recipe's inputs do not expand into items (a glob matching nothing, a bad list row).

    ``validate`` turns each problem into a located diagnostic.
    """

    exit_code = EXIT_INVALID_RECIPE

    def __init__(self, problems: Sequence[InputProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in self.problems))


# --- a run ----------------------------------------------------------------------------------


class RunFailed(RunnerError):
    """The run finished but some item, task or expectation failed."""

    exit_code = EXIT_FAILED


class StoreError(RunnerError):
    """The state store (transcription ledger, reply cache) cannot be read or written.

    Not one item's failure: a run that cannot record what it pays for must not spend
    more, so the first one stops the run (the manifest closes as ``stopped``).
    """


class StoreUnusable(StoreError):
    """The state store cannot be opened as one: a damaged, emptied or read-only file, a
    folder in its place. Said before anything runs, by every command alike: the state
    folder (``--state-dir``) is the configuration to fix."""

    exit_code = EXIT_USAGE


class DiskFull(RunnerError):
    """The output disk is full or read-only: every later write would fail too, so the run
    stops instead of paying for replies it cannot write."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(
            f"cannot write {path}: {reason}. The run stopped so that nothing more is paid "
            "for; replies already received are in the state store, so a rerun after making "
            "room writes them without asking again"
        )


class ItemError(RunnerError):
    """One item's or one task's failure: recorded in the manifest, and the run goes on."""


class ApiError(ItemError):
    """A request failed for good (after any retries): the API's own message, made readable."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        endpoint: str = "",
        retries: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.endpoint = endpoint
        self.retries = retries


class MaybeSubmitted(ApiError):
    """A non-idempotent request (``POST /v2/transcript``) may have been processed, unanswered.

    Raised when the connection failed *after* the request was sent (a read timeout, a
    server disconnect mid-response, a 2xx body cut short): AssemblyAI may have created the
    job, so the request is not resent, since a second job would be billed a second time.
    """


class NotStored(ApiError):
    """``--offline`` needed something the state store does not hold."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}; run once without --offline to store it (the same --state-dir)")


class TranscriptFailed(ItemError):
    """A transcript ended in ``status: error``; ``reason`` is the API's message."""

    def __init__(self, transcript_id: str, message: str) -> None:
        super().__init__(f"transcript {transcript_id} failed: {message}")
        self.transcript_id = transcript_id
        self.reason = message


class DeadlineExceeded(ItemError):
    """A transcript did not finish within its deadline (the job may still run server-side)."""

    def __init__(
        self,
        message: str,
        *,
        transcript_id: str | None = None,
        last_status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.transcript_id = transcript_id
        self.last_status = last_status


class SourceUnreadable(ItemError):
    """A local input cannot be read: an audio file, or a saved transcript that is not one."""


class DamagedEntry(ItemError):
    """One entry of the state store cannot be read (the file was edited, a disk fault):
    the task that needs it fails, naming the entry and how to remove it. The work it
    records is not paid for again behind the user's back; the store itself still works,
    so the other items go on."""


class OutputError(ItemError):
    """An output file or folder cannot be written; ``reason`` is the system's word for why."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


class TemplateProblem(ItemError):
    """A template could not be compiled or rendered; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Diagnostic]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


class PostProcessFailed(ItemError):
    """A reply could not be post-processed (not JSON, fails its schema, no such field)."""

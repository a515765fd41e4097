"""An in-process fake of AssemblyAI's REST API, LeMUR and LLM Gateway for integration tests.

Why it exists: the runner's HTTP layer (aiohttp sessions, polling, retries, Retry-After,
connection drops, SSE) can only be trusted if it is exercised over real sockets against
something that behaves like AssemblyAI. Mocks at the function level would hide exactly the
bugs we care about. This module serves the documented contract
(AssemblyAI's API reference and OpenAPI specs, and the real responses in
tests/fixtures/assemblyai/) from one aiohttp application on 127.0.0.1, deterministically:
transcripts advance per GET poll rather than per second (or, opt-in for benchmarks, complete
a fixed time after submission: ``complete_after``), LLM replies come from a FIFO queue or a
pure function of the request, and faults fire on the N-th matching request.

Use ``async with serve(fake) as base_url`` inside async tests, or
``with serve_in_thread(fake) as base_url`` when the code under test calls ``asyncio.run``
itself (the CLI). Point the REST client at ``base_url`` and the Gateway at ``base_url + "/v1"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web

JSONDict = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Responder = Callable[[JSONDict], "str | JSONDict"]

SPEC_PATH = Path(__file__).resolve().parents[1] / "vendor" / "assemblyai" / "openapi.yml"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "assemblyai"
DEFAULT_API_KEY = "test-key"
TRANSCRIPT_TAG = "{{ transcript }}"

V2_AUTH_ERROR = "Authentication error, API token missing/invalid"
LOOKUP_ERROR = "Transcript lookup error, transcript id not found"
SPEAKER_CONFLICT_ERROR = (
    "Both speaker_options and speakers_expected can not be used in the same request."
)
UNREDACTED_ERROR = "`redact_pii_return_unredacted` can only be set to True if `redact_pii` is True"
GATEWAY_RATE_LIMIT_MESSAGE = "too many requests for this action"


def _names(text: str) -> frozenset[str]:
    """A set of parameter names from one whitespace-separated string (compact tables)."""
    return frozenset(text.split())


# Canned /v2 error bodies from the spec's components.responses (notes §6).
V2_ERROR_MESSAGES: dict[int, str] = {
    400: "This is a sample error message",
    401: V2_AUTH_ERROR,
    403: "Cannot access uploaded file",
    404: "Not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
# 502–504 come from proxies in front of the API: the spec gives them no body schema, so the
# fake sends text, which is what a client must survive (notes §6).
TEXT_ERROR_BODIES: dict[int, tuple[str, str]] = {
    502: ("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    503: ("upstream connect error or disconnect/reset before headers", "text/plain"),
    504: ("<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html"),
}
GATEWAY_ERROR_MESSAGES: dict[int, str] = {
    400: "invalid request body",
    401: V2_AUTH_ERROR,
    403: "Your account does not have access to this LLM Gateway model",
    404: "not found",
    429: GATEWAY_RATE_LIMIT_MESSAGE,
    500: "internal server error",
}

# Accepted by the live API though missing from the spec (notes §3: [PY], [MCP], [SMOKE]).
EXTRA_TRANSCRIPT_PARAMS = frozenset({"redact_pii_return_unredacted", "domain"})
# Always accepted, and the boolean ones type-checked, even when the spec file is absent.
COMMON_TRANSCRIPT_PARAMS = _names(
    "audio_url speech_models speech_model language_code language_codes language_detection "
    "language_detection_options punctuate format_text disfluencies filter_profanity "
    "multichannel speaker_labels speakers_expected speaker_options keyterms_prompt prompt "
    "temperature webhook_url webhook_auth_header_name webhook_auth_header_value redact_pii "
    "redact_pii_policies redact_pii_sub entity_detection sentiment_analysis auto_highlights "
    "speech_understanding"
)
COMMON_BOOLEAN_PARAMS = _names(
    "language_detection punctuate format_text disfluencies filter_profanity multichannel "
    "speaker_labels redact_pii entity_detection sentiment_analysis auto_highlights"
)
GATEWAY_ROLES = frozenset({"user", "assistant", "system", "tool"})
LEMUR_KINDS = frozenset({"task", "summary", "question-answer", "action-items"})

FaultKind = Literal[
    "status",
    "reset",
    "delay",
    "hold",
    "malformed",
    "after_processing_reset",
    "after_processing_status",
    "raw",
    "reshape",
]
Envelope = Literal["observed", "spec", "auth"]
Scope = Literal["path", "route", "api"]


def new_id() -> str:
    """A fresh UUID4 string: every id the real API hands out is a UUID."""
    return str(uuid.uuid4())


def download_error(url: str) -> str:
    """The documented failure text for an unreachable audio URL (cookbook, notes §4)."""
    return (
        f"Download error, unable to download {url}. "
        "Please make sure the file exists and is accessible from the internet."
    )


def _now_iso(offset: float = 0.0) -> str:
    """Timestamps in the list endpoint's format (naive UTC, microseconds); ``offset``
    seconds added: a server whose clock differs from the client's."""
    return datetime.fromtimestamp(time.time() + offset, UTC).replace(tzinfo=None).isoformat()


@functools.cache
def _fixture_text(name: str) -> str:
    """A real AssemblyAI fixture's text, read once."""
    return (FIXTURES_DIR / name).read_text(encoding="utf-8")


@functools.cache
def _fixture(name: str) -> Any:
    """Load a real AssemblyAI fixture once; callers copy before mutating."""
    return json.loads(_fixture_text(name))


def fixture(name: str) -> Any:
    """A private copy of a fixture, so fakes never share mutable state: decoded afresh
    from its text, which is a deep copy at C speed (``copy.deepcopy`` calls ``id()``
    for every object, each an audit event the hermetic guard's hook sees)."""
    return json.loads(_fixture_text(name))


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (what a request body is), without ``copy.deepcopy``."""
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------------------------
# The transcript parameter schema (loaded lazily from the OpenAPI spec).
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptParamSchema:
    """Names accepted by POST /v2/transcript; ``names is None`` means "accept any key"."""

    names: frozenset[str] | None
    booleans: frozenset[str]


@functools.cache
def load_param_schema(spec_path: Path | None) -> TranscriptParamSchema:
    """Read TranscriptOptionalParams from the spec, so the fake rejects what the API rejects.

    The spec says ``additionalProperties: false``; without the file we cannot know the full
    list, so every key is accepted rather than failing tests on a guess.
    """
    if spec_path is None or not spec_path.is_file():
        return TranscriptParamSchema(names=None, booleans=COMMON_BOOLEAN_PARAMS)
    import yaml  # deferred: only needed when the spec is present

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(spec_path.read_text(encoding="utf-8"), Loader=loader)
    props: JSONDict = spec["components"]["schemas"]["TranscriptOptionalParams"]["properties"]
    booleans = {name for name, prop in props.items() if prop.get("type") == "boolean"}
    names = set(props) | COMMON_TRANSCRIPT_PARAMS | EXTRA_TRANSCRIPT_PARAMS | {"audio_url"}
    return TranscriptParamSchema(
        names=frozenset(names), booleans=frozenset(booleans | COMMON_BOOLEAN_PARAMS)
    )


# ---------------------------------------------------------------------------------------
# Deterministic transcript content derived from the wildfires fixture.
# ---------------------------------------------------------------------------------------


def split_sentences(words: list[JSONDict]) -> list[list[JSONDict]]:
    """Group words into sentences after each word ending in . ? or ! (notes §5)."""
    groups: list[list[JSONDict]] = []
    current: list[JSONDict] = []
    for word in words:
        current.append(word)
        if word["text"].endswith((".", "?", "!")):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _mean_confidence(words: list[JSONDict]) -> float:
    """Average word confidence, rounded like the API's 5-8 digit floats."""
    return round(sum(w["confidence"] for w in words) / len(words), 5) if words else 0.0


def span_of(words: list[JSONDict]) -> JSONDict:
    """The common text/start/end/confidence/words shape of sentences, paragraphs, utterances."""
    return {
        "text": " ".join(w["text"] for w in words),
        "start": words[0]["start"],
        "end": words[-1]["end"],
        "confidence": _mean_confidence(words),
        "words": words,
    }


def label_speakers(words: list[JSONDict], labels: list[str], *, channels: bool) -> None:
    """Assign speakers round-robin by sentence, in place, so diarization is reproducible."""
    for index, sentence in enumerate(split_sentences(words)):
        label = labels[index % len(labels)]
        for word in sentence:
            word["speaker"] = label
            if channels:
                word["channel"] = label


def utterances_of(words: list[JSONDict]) -> list[JSONDict]:
    """Utterances are maximal runs of consecutive words by the same speaker."""
    runs: list[list[JSONDict]] = []
    for word in words:
        if runs and runs[-1][-1]["speaker"] == word["speaker"]:
            runs[-1].append(word)
        else:
            runs.append([word])
    return [
        {**span_of(run), "speaker": run[0]["speaker"], "channel": run[0].get("channel")}
        for run in runs
    ]


def sentences_of(words: list[JSONDict]) -> list[JSONDict]:
    """Sentence objects carry ``speaker`` and ``channel`` (spec TranscriptSentence)."""
    return [
        {**span_of(group), "speaker": group[0]["speaker"], "channel": group[0].get("channel")}
        for group in split_sentences(words)
    ]


def paragraphs_of(words: list[JSONDict], per_paragraph: int = 4) -> list[JSONDict]:
    """Paragraphs group sentences and have no ``speaker`` key (spec TranscriptParagraph)."""
    groups = split_sentences(words)
    chunks = [groups[i : i + per_paragraph] for i in range(0, len(groups), per_paragraph)]
    return [span_of([w for group in chunk for w in group]) for chunk in chunks]


# The caption length when a request gives none: AssemblyAI does not document its own.
FAKE_CHARS_PER_CAPTION = 32


def subtitles_of(words: list[JSONDict], fmt: str, chars_per_caption: int) -> str:
    """``/srt`` and ``/vtt`` as the spec's examples show them (SrtSubtitlesResponse,
    VttSubtitlesResponse): SRT numbered with ``HH:MM:SS,mmm`` times and a blank line
    after each caption; VTT ``WEBVTT`` then ``MM:SS.mmm`` times, its example without
    blank lines. Captions: words in order, as many as fit in ``chars_per_caption``."""
    groups: list[list[JSONDict]] = []
    for word in words:
        if groups and len(" ".join(w["text"] for w in [*groups[-1], word])) <= chars_per_caption:
            groups[-1].append(word)
        else:
            groups.append([word])

    def clock(ms: int, sep: str, hours: bool) -> str:
        h, rest = divmod(ms, 3_600_000)
        m, rest = divmod(rest, 60_000)
        sec, milli = divmod(rest, 1000)
        head = f"{h:02d}:" if hours or h else ""
        return f"{head}{m:02d}:{sec:02d}{sep}{milli:03d}"

    if fmt == "srt":
        return "".join(
            f"{n}\n{clock(g[0]['start'], ',', True)} --> {clock(g[-1]['end'], ',', True)}\n"
            + " ".join(w["text"] for w in g)
            + "\n\n"
            for n, g in enumerate(groups, start=1)
        )
    cues = "".join(
        f"{clock(g[0]['start'], '.', False)} --> {clock(g[-1]['end'], '.', False)}\n"
        + " ".join(w["text"] for w in g)
        + "\n"
        for g in groups
    )
    return "WEBVTT\n" + cues


def _speaker_labels_for(options: JSONDict) -> list[str] | None:
    """Which labels a request implies: letters for diarization, "1","2" for multichannel."""
    if options.get("multichannel"):
        return ["1", "2"]
    if not options.get("speaker_labels"):
        return None
    count = options.get("speakers_expected") or 2
    return [chr(ord("A") + i) for i in range(max(1, min(int(count), 26)))]


# ---------------------------------------------------------------------------------------
# Transcript jobs.
# ---------------------------------------------------------------------------------------


def _queued_template() -> JSONDict:
    """Every key of the real queued and completed objects, results nulled (notes §4)."""
    body: JSONDict = dict.fromkeys(_fixture("transcript-wildfires.json"))
    body.update(fixture("transcript-queued.json"))
    return body


def _echo_options(body: JSONDict, options: JSONDict) -> None:
    """Echo the request like the API does, without reflecting the webhook secret."""
    for key, value in options.items():
        body[key] = value
    if body.get("language_code") == "en":
        body["language_code"] = "en_us"  # [SMOKE]: "en" echoes as "en_us"
    body["webhook_auth"] = bool(options.get("webhook_auth_header_name"))
    body["webhook_auth_header_value"] = None


@dataclass
class AudioRule:
    """Maps audio URLs (substring match) to an outcome: an error message and/or pacing."""

    substring: str
    error: str | Callable[[str], str] | None = None
    polls_to_processing: int | None = None
    polls_to_completed: int | None = None

    def error_for(self, audio_url: str) -> str | None:
        """The failure message for this URL, if the rule makes it fail."""
        return self.error(audio_url) if callable(self.error) else self.error


TERMINAL = frozenset({"completed", "error"})
DELETED_AUDIO_URL = "http://deleted_by_user"  # transcript-deleted.json's audio_url


@dataclass(frozen=True)
class JobFetch:
    """One served ``GET /v2/transcript/{id}``: when (monotonic clock) and the status sent."""

    at: float
    status: str
    listed: bool = False  # seen in GET /v2/transcript (a status sweep), not fetched


@dataclass
class TranscriptJob:
    """One submitted transcript; its status is a pure function of how often it was polled
    (or, when ``complete_after`` is set, of the time since it was submitted)."""

    id: str
    audio_url: str
    options: JSONDict
    polls_to_processing: int
    polls_to_completed: int
    error: str | None = None
    created: str = field(default_factory=_now_iso)
    completed_at: str | None = None
    polls: int = 0
    deleted: bool = False
    complete_after: float | None = None
    gate: Path | None = None  # unfinished while this file does not exist
    submitted_at: float = field(default_factory=time.monotonic)
    fetches: list[JobFetch] = field(default_factory=list, repr=False, compare=False)
    _completed: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def status(self) -> str:
        """queued → processing → completed|error, advanced by GET polls, never by the clock,
        unless ``complete_after`` is set: then the job is done exactly that many seconds
        after ``submitted_at``, however often it was polled (polls still move it from
        queued to processing)."""
        if self.deleted:
            return "completed"
        if self._done():
            return "error" if self.error else "completed"
        if self.polls >= self.polls_to_processing:
            return "processing"
        return "queued"

    def _done(self) -> bool:
        """Whether the job has reached its terminal status."""
        if self.gate is not None and not self.gate.exists():
            return False
        if self.complete_after is None:
            return self.polls >= self.polls_to_completed
        return time.monotonic() >= self.submitted_at + self.complete_after

    @property
    def done_at(self) -> float | None:
        """When (monotonic clock) the job became completed or failed: exactly
        ``submitted_at + complete_after`` in clock mode; otherwise the GET that advanced it
        there (its first terminal fetch). None while it is not done."""
        if self.complete_after is not None:
            done = self.submitted_at + self.complete_after
            return done if time.monotonic() >= done else None
        return self.noticed_at

    @property
    def noticed_at(self) -> float | None:
        """When a client could first know the job was done: the first GET, or list page,
        that answered ``completed`` or ``error``."""
        return next((f.at for f in self.fetches if f.status in ("completed", "error")), None)

    @property
    def status_requests(self) -> int:
        """GETs of this job that found it still queued or processing (its own polls)."""
        return sum(1 for f in self.fetches if not f.listed and f.status not in TERMINAL)

    @property
    def notice_lateness(self) -> float | None:
        """Seconds between the job being done and a client first seeing it (0 in poll mode)."""
        done, noticed = self.done_at, self.noticed_at
        return None if done is None or noticed is None else noticed - done

    @property
    def text(self) -> str | None:
        """The transcript text once completed (what the Gateway injects): the wildfires
        text, or the deleted shape's, read without decoding the whole body."""
        if self.deleted:
            text: str | None = _fixture("transcript-deleted.json")["text"]
            return text
        return completed_text() if self.status == "completed" else None

    def body(self) -> JSONDict:
        """The full Transcript object for the current state."""
        if self.deleted:
            return {**fixture("transcript-deleted.json"), "id": self.id}
        status = self.status
        if status == "completed":
            return self._completed_body()
        body = self._base_body()
        body["status"] = status
        body["error"] = self.error if status == "error" else None
        return body

    def _base_body(self) -> JSONDict:
        """The queued shape with this job's id, URL and echoed options."""
        body = _queued_template()
        _echo_options(body, self.options)
        body.update(id=self.id, audio_url=self.audio_url, status="queued", error=None)
        return body

    def _completed_body(self) -> JSONDict:
        """Wildfires content under this job's id; diarized when requested: a fresh copy,
        decoded from :meth:`completed_json`."""
        decoded: JSONDict = json.loads(self.completed_json())
        return decoded

    def completed_json(self) -> bytes:
        """The completed body as served, encoded once. Only the bytes are kept: 10,000
        jobs of decoded words would be millions of objects for the garbage collector
        to walk, and the fake's own CPU would decide a benchmark's wall time."""
        if self._completed is None:
            self.completed_at = self.completed_at or _now_iso()
            self._completed = encode_completed_body(self._base_body(), self.options)
        return self._completed


def completed_text() -> str:
    """The text of every completed transcript (the wildfires recording's)."""
    text: str = _fixture("transcript-wildfires.json")["text"]
    return text


# Stand-ins for the words and utterances in a completed body while it is encoded: the
# job's own fields are encoded per job, the ~140 KB of words once per way of labelling
# them (most of the fake's CPU in a run was encoding the same words for every job).
_WORDS_SLOT = f"words-{uuid.uuid4()}"
_UTTERANCES_SLOT = f"utterances-{uuid.uuid4()}"


@functools.cache
def _encoded_words(labels: tuple[str, ...], channels: bool) -> tuple[bytes, bytes]:
    """The JSON of the words and of the utterances, labelled by ``labels`` (none: no
    speakers, ``null`` utterances); what ``json.dumps`` writes for them in a body."""
    words = labelled_words(list(labels) or None, channels=channels)
    utterances = utterances_of(words) if labels else None
    return json.dumps(words).encode(), json.dumps(utterances).encode()


def encode_completed_body(body: JSONDict, options: JSONDict) -> bytes:
    """``json.dumps(build_completed_body(body, options))``, byte for byte, with the
    words' and utterances' encodings reused from :func:`_encoded_words`."""
    labels = _speaker_labels_for(options)
    filled = build_completed_body(body, options, words=[])
    filled.update(words=_WORDS_SLOT, utterances=_UTTERANCES_SLOT)
    words, utterances = _encoded_words(tuple(labels or ()), bool(options.get("multichannel")))
    encoded = json.dumps(filled).encode()
    for slot, value in ((_WORDS_SLOT, words), (_UTTERANCES_SLOT, utterances)):
        quoted = json.dumps(slot).encode()
        assert encoded.count(quoted) == 1, slot  # a fresh UUID: in no request's echo
        encoded = encoded.replace(quoted, value)
    return encoded


def labelled_words(labels: list[str] | None, *, channels: bool) -> list[JSONDict]:
    """A private copy of the wildfires words, speakers labelled when ``labels`` are given."""
    source = _fixture("transcript-wildfires.json")
    # Each word's own dict (speakers are labelled in place); its values are numbers,
    # strings and None, so a shallow copy per word is a whole copy, at a fiftieth of
    # deepcopy's CPU.
    words = [dict(word) for word in source["words"]]
    if labels:
        label_speakers(words, labels, channels=channels)
    return words


def build_completed_body(
    body: JSONDict, options: JSONDict, *, words: list[JSONDict] | None = None
) -> JSONDict:
    """Fill a queued body with the wildfires result (text, words, confidence, duration);
    ``words`` given are used as they are (utterances are then left to the caller)."""
    source = _fixture("transcript-wildfires.json")
    labels = _speaker_labels_for(options)
    if words is None:
        words = labelled_words(labels, channels=bool(options.get("multichannel")))
        utterances = utterances_of(words) if labels else None
    else:
        utterances = None
    models = options.get("speech_models") or [source["speech_model_used"]]
    body.update(
        status="completed",
        text=source["text"],
        words=words,
        utterances=utterances,
        confidence=source["confidence"],
        audio_duration=source["audio_duration"],
        speech_model_used=models[0],
        metadata={"domain_used": None, "warning": None, "warnings": []},
    )
    if options.get("multichannel"):
        body["audio_channels"] = 2
    if options.get("language_detection"):
        body.update(language_code="en", language_confidence=0.9876)
    return body


# ---------------------------------------------------------------------------------------
# Recorded traffic.
# ---------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as it arrived; the Authorization value is never stored, only ``authorized``."""

    method: str
    path: str
    route: str
    api: str
    query: dict[str, str]
    headers: dict[str, str]
    authorized: bool
    at: float
    json: Any = None
    body_size: int = 0
    status: int | None = None
    fault: str | None = None

    @property
    def model(self) -> str | None:
        """The Gateway/LeMUR model named in the body, if any (limits are per model)."""
        body = self.json if isinstance(self.json, dict) else {}
        model = body.get("model", body.get("final_model"))
        return model if isinstance(model, str) else None


@dataclass(frozen=True)
class Upload:
    """A stored upload: only its digest and size are kept, never the bytes."""

    id: str
    url: str
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class Submission:
    """An accepted POST /v2/transcript (the job was created)."""

    transcript_id: str
    audio_url: str
    options: JSONDict
    at: float


@dataclass(frozen=True)
class RetryAfterWindow:
    """A response that told the client to wait; ``expires_at`` is on the monotonic clock."""

    method: str
    path: str
    route: str
    api: str
    status: int
    retry_after: float
    sent_at: float
    expires_at: float
    model: str | None = None

    def key(self, scope: Scope) -> tuple[str | None, ...]:
        """What "the same endpoint" means for a scope."""
        return _scope_key(scope, self.method, self.path, self.route, self.api, self.model)


@dataclass(frozen=True)
class RetryAfterViolation:
    """A request that arrived while a Retry-After window for its endpoint was still open."""

    window: RetryAfterWindow
    request: RecordedRequest

    @property
    def early_by(self) -> float:
        """How many seconds too early the request came."""
        return self.window.expires_at - self.request.at


def _scope_key(
    scope: Scope, method: str, path: str, route: str, api: str, model: str | None
) -> tuple[str | None, ...]:
    """Key requests by exact path, by route template, or by API family.

    Gateway limits are per model (notes §8), so the model is part of the path/route key.
    """
    if scope == "path":
        return (method, path, model)
    if scope == "route":
        return (method, route, model)
    return (api,)


def api_of(path: str) -> str:
    """The API family a path belongs to: its error bodies and auth rules differ."""
    if path.startswith("/v2/"):
        return "v2"
    if path.startswith("/v1/"):
        return "gateway"
    if path.startswith("/lemur/"):
        return "lemur"
    return "other"


# ---------------------------------------------------------------------------------------
# Fault injection.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """What to do to a request instead of (or around) serving it normally."""

    kind: FaultKind
    code: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    body: str | JSONDict | None = None
    envelope: Envelope | None = None
    hard: bool = False
    # "reshape": what the served JSON answer becomes (the request is served first).
    transform: Callable[[Any], Any] | None = field(default=None, compare=False)
    gate: Path | None = None  # "hold": served once this file exists

    def describe(self) -> str:
        """A short label stored in the request history."""
        if self.kind in ("status", "after_processing_status"):
            return f"{self.kind}({self.code})"
        return self.kind


def status(
    code: int,
    *,
    retry_after: float | None = None,
    body: str | JSONDict | None = None,
    envelope: Envelope | None = None,
) -> Fault:
    """Answer with an HTTP error and the documented body for that API.

    ``retry_after`` adds a Retry-After header (floats are allowed to keep tests fast; the
    real API sends integers). ``envelope`` picks the Gateway error shape (default "observed").
    """
    return Fault("status", code=code, retry_after=retry_after, body=body, envelope=envelope)


def reset(*, hard: bool = False) -> Fault:
    """Drop the connection without answering (``hard`` sends a TCP RST instead of a FIN)."""
    return Fault("reset", hard=hard)


def delay(seconds: float) -> Fault:
    """Sleep before serving normally, to exercise client timeouts."""
    return Fault("delay", seconds=seconds)


def hold(gate: Path) -> Fault:
    """Serve normally once the file ``gate`` exists: a request kept on the wire until the
    test opens the gate (from any process), however fast or slow the machine."""
    return Fault("hold", gate=gate)


def malformed(body: str | None = None) -> Fault:
    """Answer 200 with a truncated JSON body, without touching any state."""
    return Fault("malformed", body=body)


def raw_bytes(data: bytes, *, after_processing: bool = False) -> Fault:
    """Write ``data`` to the socket as the whole answer, then close it: a broken status
    line, an oversized header, garbage. ``after_processing`` serves the request first."""
    return Fault("raw", body=data.decode("latin-1"), hard=after_processing)


def deep_json(depth: int = 100_000) -> Fault:
    """A 200 whose JSON body nests ``depth`` levels: valid JSON no parser should recurse on."""
    return Fault("malformed", body="[" * depth + "]" * depth)


def after_processing(code: int) -> Fault:
    """Serve the request (a job is created), then answer ``code`` instead of the result:
    a 5xx from a proxy after the API acted. The client cannot know the job exists."""
    return Fault("after_processing_status", code=code)


def after_processing_reset(*, hard: bool = False) -> Fault:
    """Serve the request (side effects happen, e.g. a job is created), then drop the line.

    The client cannot tell whether the POST succeeded: a runner must not resubmit blindly.
    """
    return Fault("after_processing_reset", hard=hard)


def reshaped(transform: Callable[[Any], Any]) -> Fault:
    """Serve the request (a job is created), then answer ``transform(answer)`` instead: a
    listing that is not one, an id that is not one."""
    return Fault("reshape", transform=transform)


def listing_with(**changes: Any) -> Fault:
    """A list page with ``transcripts`` or ``prev_url`` (in its page details) replaced,
    e.g. ``listing_with(transcripts={"0": None})`` or ``listing_with(prev_url="@evil")``."""

    def change(page: Any) -> Any:
        page = dict(page)
        if "transcripts" in changes:
            page["transcripts"] = changes["transcripts"]
        if "prev_url" in changes:
            page["page_details"] = {**page["page_details"], "prev_url": changes["prev_url"]}
        return page

    return reshaped(change)


def listing_with_entry(entry: Any) -> Fault:
    """A list page with ``entry`` (``None``, an object without an id…) among its jobs."""
    return reshaped(lambda page: {**page, "transcripts": [entry, *page["transcripts"]]})


def answered_id(value: Any) -> Fault:
    """Create the job, then answer with ``value`` as its id (``""``, ``".."``, …)."""
    return reshaped(lambda body: {**body, "id": value})


def _compile_path_pattern(pattern: str) -> re.Pattern[str]:
    """``*`` matches one path segment, ``**`` any number of characters."""
    parts = [
        "[^/]*".join(re.escape(piece) for piece in chunk.split("*"))
        for chunk in pattern.split("**")
    ]
    return re.compile(".*".join(parts))


class RoutePattern:
    """``"METHOD /path"`` with ``*`` for one segment and ``**`` for anything; no method = any."""

    def __init__(self, route: str) -> None:
        method, _, path = route.partition(" ") if " " in route else ("*", "", route)
        self.method = method.upper()
        self.path = _compile_path_pattern(path)

    def matches(self, method: str, path: str) -> bool:
        """Whether a request's method and path fall under this pattern."""
        return self.method in ("*", method.upper()) and self.path.fullmatch(path) is not None


@dataclass
class FaultRule:
    """A fault bound to requests matching ``"METHOD /path/pattern"`` (and optionally a model).

    It fires on the next ``times`` matches (None = forever), optionally only on every
    ``every``-th match, or with ``probability`` drawn from an RNG seeded with ``seed``.
    """

    route: str
    fault: Fault
    times: int | None = 1
    every: int | None = None
    probability: float | None = None
    model: str | None = None
    seed: int = 0
    matched: int = 0
    applied: int = 0

    def __post_init__(self) -> None:
        self._pattern = RoutePattern(self.route)
        self._rng = random.Random(self.seed)

    def matches(self, method: str, path: str, model: str | None) -> bool:
        """Whether this rule concerns the request at all."""
        if self.model is not None and self.model != model:
            return False
        return self._pattern.matches(method, path)

    def fires(self) -> bool:
        """Count a match and decide, deterministically, whether the fault applies to it."""
        if self.times is not None and self.applied >= self.times:
            return False
        self.matched += 1
        if self.every is not None and self.matched % self.every:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.applied += 1
        return True


class Faults:
    """The switchable fault table; the first matching rule that fires wins."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(
        self,
        route: str,
        fault: Fault,
        *,
        times: int | None = 1,
        every: int | None = None,
        probability: float | None = None,
        model: str | None = None,
        seed: int = 0,
    ) -> FaultRule:
        """Register a rule, e.g. ``add("GET /v2/transcript/*", status(503), times=3)``."""
        rule = FaultRule(route, fault, times, every, probability, model, seed)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (between phases of one test)."""
        self.rules.clear()

    def take(self, method: str, path: str, model: str | None = None) -> Fault | None:
        """The fault to apply to this request, consuming one use of its rule."""
        for rule in self.rules:
            if rule.matches(method, path, model) and rule.fires():
                return rule.fault
        return None


# ---------------------------------------------------------------------------------------
# Error responses for the three API families.
# ---------------------------------------------------------------------------------------


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response (``application/json``), as every documented success and error is."""
    return web.json_response(body, status=status_code, headers=headers)


def v2_error(code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The /v2 and LeMUR error body: ``{"error": "<message>"}`` (spec Error)."""
    return json_response({"error": message}, code, headers)


def gateway_error(
    code: int,
    message: str,
    *,
    envelope: Envelope = "observed",
    errors: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """One of the Gateway's three documented error envelopes (notes §8)."""
    request_id = new_id()
    body: JSONDict
    if envelope == "spec":
        body = {"error": {"code": code, "message": message, "metadata": {}}}
    elif envelope == "auth":
        body = {"error": message, "status": "error", "request_id": request_id}
    else:
        body = {"request_id": request_id, "message": message, "code": code}
        if errors:
            body["metadata"] = {"errors": errors}
    return json_response(body, code, headers)


def gateway_auth_error() -> web.Response:
    """401 in the Gateway's auth envelope."""
    return gateway_error(401, V2_AUTH_ERROR, envelope="auth")


def _retry_after_value(seconds: float) -> str:
    """Integers as integers (like the real API), fractions kept for fast tests."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def fault_response(fault: Fault, api: str) -> web.Response:
    """Render a status fault in the body the affected API documents for that code."""
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = _retry_after_value(fault.retry_after)
    if isinstance(fault.body, dict):
        return json_response(fault.body, fault.code, headers)
    if isinstance(fault.body, str):
        return web.Response(text=fault.body, status=fault.code, headers=headers)
    if fault.code in TEXT_ERROR_BODIES and fault.envelope is None:
        text, content_type = TEXT_ERROR_BODIES[fault.code]
        return web.Response(
            text=text, status=fault.code, content_type=content_type, headers=headers
        )
    if api == "gateway":
        message = GATEWAY_ERROR_MESSAGES.get(fault.code, "error")
        errors = [message] if fault.code == 400 else None
        default: Envelope = "auth" if fault.code == 401 else "observed"
        return gateway_error(
            fault.code,
            message,
            envelope=fault.envelope or default,
            errors=errors,
            headers=headers,
        )
    return v2_error(fault.code, V2_ERROR_MESSAGES.get(fault.code, "Error"), headers)


def not_found_response(api: str) -> web.Response:
    """Unknown endpoints answer 404 in the family's error shape rather than aiohttp's text."""
    if api == "gateway":
        return gateway_error(404, "Not found", envelope="spec")
    return v2_error(404, "Not found")


def write_raw(request: web.Request, data: str) -> web.Response:
    """Send ``data`` (latin-1) as the whole answer, bypassing HTTP framing, and close."""
    transport = request.transport
    if transport is not None:
        transport.write(data.encode("latin-1"))
        transport.close()
    return web.Response(status=200)


def drop_connection(request: web.Request, *, hard: bool) -> web.Response:
    """Close the socket so the client sees ServerDisconnectedError (or ClientOSError on RST).

    The returned response is never delivered: aiohttp silently skips writing to a closed
    transport.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if hard and sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
    return web.Response(status=200)


# ---------------------------------------------------------------------------------------
# LLM Gateway.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedReply:
    """A reply the test decided in advance (or a responder computed)."""

    content: str | None = ""
    model: str | None = None
    tool_calls: list[JSONDict] | None = None
    finish_reason: str = "stop"


@dataclass
class GatewayCall:
    """One served completion: what was asked, what the model saw, what it answered."""

    request: JSONDict
    messages: list[JSONDict]
    model: str
    content: str | None
    stream: bool
    fallback_used: bool


def _message_text(message: JSONDict) -> str:
    """Plain text of a message whose content is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def effective_messages(body: JSONDict) -> list[JSONDict]:
    """``prompt`` becomes one user message (spec LLMGatewayRequest.prompt)."""
    if isinstance(body.get("messages"), list):
        messages: list[JSONDict] = json_copy(body["messages"])
        return messages
    return [{"role": "user", "content": body.get("prompt", "")}]


def has_transcript_tag(messages: list[JSONDict]) -> bool:
    """Whether any message carries the exact ``{{ transcript }}`` tag."""
    return any(TRANSCRIPT_TAG in _message_text(m) for m in messages)


def inject_transcript(messages: list[JSONDict], text: str) -> None:
    """Replace only the first tag, in the first message containing it (notes §8), in place."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and TRANSCRIPT_TAG in content:
            message["content"] = content.replace(TRANSCRIPT_TAG, text, 1)
            return
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and TRANSCRIPT_TAG in str(part.get("text", "")):
                part["text"] = part["text"].replace(TRANSCRIPT_TAG, text, 1)
                return


def minimal_instance(schema: Any, root: Any = None) -> Any:
    """The smallest JSON value satisfying a schema's types and required keys.

    Used for default structured replies so json_schema requests parse without scripting.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return minimal_instance(_resolve_ref(root, schema["$ref"]), root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return minimal_instance(schema[key][0], root)
    return _minimal_for_type(schema, root)


def _minimal_for_type(schema: JSONDict, root: Any) -> Any:
    """The per-type part of :func:`minimal_instance`."""
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            key: minimal_instance(props.get(key, {}), root) for key in schema.get("required", [])
        }
    if kind == "array":
        return [minimal_instance(schema.get("items", {}), root)] * int(schema.get("minItems", 0))
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    return {"boolean": False}.get(str(kind))


def _resolve_ref(root: Any, ref: str) -> Any:
    """Follow a local ``#/...`` JSON pointer."""
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node


def strip_code_fences(text: str) -> str:
    """What json-repair must at least do: LLMs wrap JSON in ```json fences."""
    match = re.fullmatch(r"\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*", text, flags=re.DOTALL)
    return match.group(1) if match else text


def repair_json(text: str) -> str:
    """Server-side json-repair: strip fences; use json_repair if installed and still broken."""
    stripped = strip_code_fences(text)
    try:
        json.loads(stripped)
    except ValueError:
        try:
            from json_repair import repair_json as _repair
        except ImportError:
            return stripped
        repaired = _repair(stripped)
        return repaired if isinstance(repaired, str) and repaired.strip() else stripped
    return stripped


def _tokens(text: str) -> int:
    """A deterministic token estimate (4 characters per token)."""
    return math.ceil(len(text) / 4)


# The model table of the Gateway spec's overview (notes §8), for GET /v1/models.
CATALOG_MODELS = [
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-20250514",
    "claude-sonnet-4-20250514",
    "gpt-5.2",
    "gpt-5.1",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1",
    "gpt-oss-120b",
    "gpt-oss-20b",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
]


def validate_chat_request(body: JSONDict, models: set[str] | None) -> list[str]:
    """The Gateway's request checks (notes §8); each problem is one ``metadata.errors`` entry."""
    errors: list[str] = []
    model = body.get("model")
    if not isinstance(model, str) or not model:
        errors.append("model is required")
    elif models is not None and model not in models:
        errors.append(f"model {model} is not supported")
    if "messages" not in body and "prompt" not in body:
        errors.append("one of messages or prompt required")
    errors += _validate_messages(body)
    errors += _validate_numbers(body)
    errors += _validate_options(body)
    return errors


def _validate_messages(body: JSONDict) -> list[str]:
    """messages: non-empty list of role/content objects; prompt: a string."""
    errors: list[str] = []
    if "prompt" in body and not isinstance(body["prompt"], str):
        errors.append("prompt must be a string")
    if "messages" not in body:
        return errors
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return [*errors, "messages must be a non-empty array"]
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in GATEWAY_ROLES:
            errors.append(f"messages[{index}].role must be one of user, assistant, system, tool")
        elif not isinstance(message.get("content"), str | list):
            errors.append(f"messages[{index}].content is required")
        elif message["role"] == "tool" and "tool_call_id" not in message:
            errors.append(f"messages[{index}].tool_call_id is required")
    return errors


def _validate_numbers(body: JSONDict) -> list[str]:
    """max_tokens >= 1 (integer) and 0 <= temperature <= 2."""
    errors: list[str] = []
    max_tokens = body.get("max_tokens")
    if "max_tokens" in body and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        errors.append("max_tokens must be an integer greater than or equal to 1")
    temperature = body.get("temperature")
    if "temperature" in body and (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        errors.append("temperature must be between 0 and 2")
    return errors


def _validate_options(body: JSONDict) -> list[str]:
    """model_region, response_format, post_processing_steps, fallbacks, stream."""
    errors: list[str] = []
    if "model_region" in body and body["model_region"] != "global":
        errors.append("model_region can only be set to global")
    if "stream" in body and not isinstance(body["stream"], bool):
        errors.append("stream must be a boolean")
    fmt = body.get("response_format")
    if fmt is not None and not (
        isinstance(fmt, dict)
        and fmt.get("type") == "json_schema"
        and isinstance(fmt.get("json_schema"), dict)
        and isinstance(fmt["json_schema"].get("name"), str)
        and isinstance(fmt["json_schema"].get("schema"), dict)
    ):
        errors.append("response_format must be {type: json_schema, json_schema: {name, schema}}")
    steps = body.get("post_processing_steps")
    if steps is not None and not (
        isinstance(steps, list) and all(s == {"type": "json-repair"} for s in steps)
    ):
        errors.append('post_processing_steps only supports [{"type": "json-repair"}]')
    fallbacks = body.get("fallbacks")
    if fallbacks is not None and not (
        isinstance(fallbacks, list)
        and all(isinstance(f, dict) and isinstance(f.get("model"), str) for f in fallbacks)
    ):
        errors.append("fallbacks must be a list of objects with a model")
    config = body.get("fallback_config")
    if config is not None and not (
        isinstance(config, dict)
        and isinstance(config.get("depth", 1), int)
        and 0 <= config.get("depth", 1) <= 2
        and isinstance(config.get("retry", True), bool)
    ):
        errors.append("fallback_config must be {depth: 0..2, retry: boolean}")
    return errors


@dataclass
class _RateWindow:
    """A fixed per-model window: start time and requests counted in it."""

    start: float
    count: int = 0


class FakeGateway:
    """The LLM Gateway's /v1/chat/completions: validation, injection, scripted replies."""

    def __init__(self, owner: FakeAssemblyAI) -> None:
        self._owner = owner
        self.queue: list[ScriptedReply] = []
        self.responder: Responder | None = None
        self.calls: list[GatewayCall] = []
        self.models: set[str] | None = None
        # GET /v1/models (notes §8): the ids of the spec's model table, OpenAI's in the
        # US only; `models`, when set, is the catalog instead.
        self.catalog_requests = 0
        # `context_length` of the catalog's entries, by model (none said when absent).
        self.context_lengths: dict[str, int] = {}
        # Each model's `pricing` in the catalog, when a test gives one (the list's
        # fields are OpenRouter's: dollars per token as strings).
        self.pricing: dict[str, JSONDict] = {}
        self.rate_limit_per_minute: int | dict[str, int] | None = None
        self.rate_window_seconds: float = 60.0
        self.stream_chunks: int = 4
        self._windows: dict[str, _RateWindow] = {}

    def enqueue(
        self,
        content: str | None = "",
        model: str | None = None,
        tool_calls: list[JSONDict] | None = None,
        finish_reason: str = "stop",
    ) -> None:
        """Queue the next reply (FIFO); ``model`` overrides the model reported as answering."""
        self.queue.append(ScriptedReply(content, model, tool_calls, finish_reason))

    def catalog(self) -> list[JSONDict]:
        """The models the catalog lists, each with its regions."""
        ids = sorted(self.models) if self.models is not None else CATALOG_MODELS
        return [
            {
                "id": model,
                "name": model,
                "creator": "openai" if model.startswith("gpt-") else "other",
                "available_regions": ["us"] if model.startswith("gpt-") else ["us", "eu"],
                "supported_parameters": ["max_tokens", "temperature", "response_format"],
                **(
                    {"context_length": self.context_lengths[model]}
                    if model in self.context_lengths
                    else {}
                ),
                **({"pricing": self.pricing[model]} if model in self.pricing else {}),
            }
            for model in ids
        ]

    async def catalog_handler(self, request: web.Request) -> web.Response:
        """GET /v1/models: public, no key needed."""
        self.catalog_requests += 1
        return json_response({"data": self.catalog()})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions."""
        started = time.perf_counter_ns()
        body = request[BODY_KEY].json
        if not isinstance(body, dict):
            return gateway_error(400, "invalid request body", errors=["body must be a JSON object"])
        limited, headers = self._rate_limit(body.get("model"))
        if limited is not None:
            return limited
        errors = validate_chat_request(body, self.models)
        if errors:
            return gateway_error(400, "invalid request body", errors=errors, headers=headers)
        served, fallback_used = self._serving_request(request, body)
        if isinstance(served, web.Response):
            return served
        messages = effective_messages(served)
        problem = self._inject(served, messages)
        if problem is not None:
            return problem
        reply = self._reply({**served, "messages": messages})
        call = self._record_call(body, served, messages, reply, fallback_used)
        if served.get("stream"):
            return await self._stream(request, call, reply, headers)
        completion = self._completion(served, messages, reply, call, started)
        return json_response(completion, headers=headers)

    def _serving_request(
        self, request: web.Request, body: JSONDict
    ) -> tuple[JSONDict | web.Response, bool]:
        """The request actually served: the primary, or a fallback when the primary failed."""
        failure = request.get(PRIMARY_FAILURE_KEY)
        if failure is None:
            return body, False
        depth = int((body.get("fallback_config") or {}).get("depth", 1))
        for fallback in body.get("fallbacks", [])[: max(depth, 1)]:
            merged = {k: v for k, v in {**body, **fallback}.items() if k != "fallbacks"}
            fault = self._owner.faults.take(request.method, request.path, merged["model"])
            if fault is None or not (fault.kind == "status" and fault.code >= 500):
                return merged, True
            failure = fault
        return fault_response(failure, "gateway"), False

    def _inject(self, body: JSONDict, messages: list[JSONDict]) -> web.Response | None:
        """Substitute the transcript text for the first tag; 404 for an unknown id."""
        transcript_id = body.get("transcript_id")
        if transcript_id is None or not has_transcript_tag(messages):
            return None
        job = self._owner.transcripts.get(str(transcript_id))
        if job is None:
            return json_response(
                {"request_id": new_id(), "message": "transcript not found", "code": 404}, 404
            )
        text = job.text
        if text is None:
            return gateway_error(
                400, "invalid request body", errors=["transcript is not completed"]
            )
        inject_transcript(messages, text)
        return None

    def _reply(self, request: JSONDict) -> ScriptedReply:
        """Queue first, then the responder hook, then a deterministic default."""
        if self.queue:
            return self.queue.pop(0)
        if self.responder is not None:
            produced = self.responder(request)
            return (
                ScriptedReply(produced) if isinstance(produced, str) else ScriptedReply(**produced)
            )
        return ScriptedReply(default_reply(request))

    def _record_call(
        self,
        original: JSONDict,
        served: JSONDict,
        messages: list[JSONDict],
        reply: ScriptedReply,
        fallback_used: bool,
    ) -> GatewayCall:
        """Keep what the model saw and said, for assertions."""
        content = reply.content
        if content is not None and served.get("post_processing_steps"):
            content = repair_json(content)
        call = GatewayCall(
            request=original,
            messages=messages,
            model=reply.model or served["model"],
            content=content,
            stream=bool(served.get("stream")),
            fallback_used=fallback_used,
        )
        self.calls.append(call)
        return call

    def _completion(
        self,
        served: JSONDict,
        messages: list[JSONDict],
        reply: ScriptedReply,
        call: GatewayCall,
        started: int,
    ) -> JSONDict:
        """The response shape of llm-gateway-completion.json and the notes §8 example."""
        body: JSONDict = fixture("llm-gateway-completion.json")
        choice = body["choices"][0]
        choice["finish_reason"] = reply.finish_reason
        choice["message"].update(content=call.content, tool_calls=reply.tool_calls)
        if reply.tool_calls is not None:
            choice["tool_calls"] = reply.tool_calls
        input_tokens = sum(_tokens(_message_text(m)) for m in messages)
        output_tokens = _tokens(call.content or "")
        body["usage"].update(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        echo = {
            k: v
            for k, v in served.items()
            if k not in ("messages", "prompt", "post_processing_steps")
        }
        body.update(
            model=call.model,
            request=echo,
            request_id=new_id(),
            http_status_code=200,
            response_time=max(1, time.perf_counter_ns() - started),
            llm_status_code=200,
        )
        return body

    async def _stream(
        self,
        request: web.Request,
        call: GatewayCall,
        reply: ScriptedReply,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """OpenAI-style SSE: ``data: {chat.completion.chunk}`` lines, then ``data: [DONE]``."""
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        rewrite = self._owner.rewrite or (lambda data: data)
        for chunk in stream_chunks(call, reply, self.stream_chunks):
            await response.write(rewrite(f"data: {json.dumps(chunk)}\n\n".encode()))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _rate_limit(self, model: Any) -> tuple[web.Response | None, dict[str, str]]:
        """Per-model fixed-window limit with x-ratelimit-* headers; 429 once exceeded."""
        limit = self._limit_for(model)
        if limit is None or not isinstance(model, str):
            return None, {}
        now = time.monotonic()
        window = self._windows.get(model)
        if window is None or now >= window.start + self.rate_window_seconds:
            window = self._windows[model] = _RateWindow(start=now)
        window.count += 1
        reset_in = max(1, math.ceil(window.start + self.rate_window_seconds - now))
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(limit - window.count),
            "x-ratelimit-reset": str(reset_in),
            "x-ratelimit-model": model,
            "x-ratelimit-service": "llmgw",
        }
        if window.count <= limit:
            return None, headers
        body = {"request_id": new_id(), "message": GATEWAY_RATE_LIMIT_MESSAGE, "code": 429}
        return json_response(body, 429, {**headers, "retry-after": str(reset_in)}), headers

    def _limit_for(self, model: Any) -> int | None:
        """The configured per-minute limit for a model, if any."""
        limit = self.rate_limit_per_minute
        if isinstance(limit, dict):
            return limit.get(model) if isinstance(model, str) else None
        return limit


def default_reply(request: JSONDict) -> str:
    """Deterministic content when nothing was scripted.

    Structured requests get the minimal instance of their schema, so parsing code runs (a
    judge's, a passing verdict made from its schema: :func:`judge_responder`); others
    echo the start of the last user message, so tests can tell calls apart.
    """
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if fmt["json_schema"].get("name") == "judge":  # a `judge:` check: it passes
            return str(judge_responder(lambda output: (True, 1.0))(request))
        return json.dumps(minimal_instance(fmt["json_schema"]["schema"]))
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    last = _message_text(users[-1]) if users else ""
    asked = re.search(r"exactly (\d+) quotes, copied word for word", last)
    if asked and "\nTranscript: " in last:
        return _quotes_from(last.split("\nTranscript: ", 1)[1], int(asked.group(1)))
    return f"Reply to: {last[:40]}"


def judge_responder(
    rule: Callable[[str], tuple[bool, float]], otherwise: Responder | None = None
) -> Responder:
    """A Gateway ``responder`` that grades like a judge: a structured request's answer is
    built from its own schema (its boolean property the verdict, its number the score,
    its string the reason), with ``rule(output)`` deciding on the ``<output>`` the judge
    was shown; other requests go to ``otherwise`` (the default reply when None)."""

    def respond(request: JSONDict) -> str | JSONDict:
        fmt = request.get("response_format")
        if not (isinstance(fmt, dict) and fmt.get("type") == "json_schema"):
            return otherwise(request) if otherwise is not None else default_reply(request)
        schema = fmt["json_schema"]["schema"]
        text = "".join(_message_text(m) for m in request.get("messages", []))
        shown = re.search(r"<output>\n(.*?)\n</output>", text, re.DOTALL)
        passed, score = rule(shown.group(1) if shown else "")
        answer = minimal_instance(schema)
        for name, spec in schema.get("properties", {}).items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind == "boolean":
                answer[name] = passed
            elif kind in ("number", "integer"):
                answer[name] = score
            elif kind == "string":
                answer[name] = "the output says so" if passed else "the output does not say so"
        return json.dumps(answer)

    return respond


def _quotes_from(transcript: str, count: int) -> str:
    """What a model asked for best quotes says: a preamble, then the longest sentences
    of the transcript, each in double quotes on its own line."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", transcript) if s.strip()]
    longest = sorted(sentences, key=len, reverse=True)[:count]
    lines = [f'{n}. "{sentence}"' for n, sentence in enumerate(longest, start=1)]
    return f"Here are the {count} best quotes:\n" + "\n".join(lines)


def stream_chunks(call: GatewayCall, reply: ScriptedReply, pieces: int) -> list[JSONDict]:
    """Split the content into ``pieces`` deltas, then a final chunk with finish_reason + usage."""
    content = call.content or ""
    size = max(1, math.ceil(len(content) / max(pieces, 1)))
    parts = [content[i : i + size] for i in range(0, len(content), size)] or [""]
    request_id, created = new_id(), int(time.time())

    def chunk(delta: JSONDict, finish: str | None) -> JSONDict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": call.model,
            "choices": [choice],
        }

    chunks = [chunk({"role": "assistant", "content": part}, None) for part in parts]
    final = chunk({}, reply.finish_reason)
    out_tokens = _tokens(content)
    in_tokens = sum(_tokens(_message_text(m)) for m in call.messages)
    final["usage"] = {
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "total_tokens": in_tokens + out_tokens,
    }
    return [*chunks, final]


# ---------------------------------------------------------------------------------------
# LeMUR (deprecated, but the seed documents it).
# ---------------------------------------------------------------------------------------


@dataclass
class LemurCall:
    """One served LeMUR request."""

    kind: str
    request: JSONDict
    response: Any


class FakeLemur:
    """POST /lemur/v3/generate/{task,summary,question-answer,action-items} (seed 000)."""

    def __init__(self, owner: FakeAssemblyAI) -> None:
        self._owner = owner
        self.queue: list[Any] = []
        self.calls: list[LemurCall] = []

    def enqueue(self, response: Any) -> None:
        """Queue the next ``response`` value (a string; a list for question-answer)."""
        self.queue.append(response)

    async def handle(self, request: web.Request) -> web.Response:
        """Validate like LemurBaseParams and answer ``{request_id, response, usage}``."""
        kind = request.match_info["kind"]
        body = request[BODY_KEY].json
        if kind not in LEMUR_KINDS:
            return v2_error(404, "Not found")
        if not isinstance(body, dict):
            return v2_error(400, "Request body must be a JSON object")
        problem = self._validate(kind, body)
        if problem is not None:
            return v2_error(400, problem)
        response = self.queue.pop(0) if self.queue else self._default(kind, body)
        self.calls.append(LemurCall(kind, body, response))
        input_text = str(body.get("prompt", "")) + self._input_text(body)
        output = response if isinstance(response, str) else json.dumps(response)
        usage = {"input_tokens": _tokens(input_text), "output_tokens": _tokens(output)}
        return json_response({"request_id": new_id(), "response": response, "usage": usage})

    def _validate(self, kind: str, body: JSONDict) -> str | None:
        """Required fields, and transcript_ids that exist and are completed."""
        if not body.get("final_model"):
            return "final_model is required"
        if kind == "task" and not isinstance(body.get("prompt"), str):
            return "prompt is required"
        if kind == "question-answer" and not isinstance(body.get("questions"), list):
            return "questions is required"
        ids = body.get("transcript_ids")
        if not ids and not body.get("input_text"):
            return "Either transcript_ids or input_text must be provided"
        for transcript_id in ids or []:
            job = self._owner.transcripts.get(str(transcript_id))
            if job is None or job.text is None:
                return f"Transcript {transcript_id} not found or not completed"
        return None

    def _input_text(self, body: JSONDict) -> str:
        """What LeMUR would read: input_text or the transcripts' text."""
        if body.get("input_text"):
            return str(body["input_text"])
        jobs = (self._owner.transcripts[str(i)] for i in body.get("transcript_ids", []))
        return " ".join(job.text or "" for job in jobs)

    def _default(self, kind: str, body: JSONDict) -> Any:
        """Deterministic output per endpoint when nothing was queued."""
        if kind == "question-answer":
            return [
                {
                    "question": q.get("question", ""),
                    "answer": f"Answer to: {q.get('question', '')[:40]}",
                }
                for q in body["questions"]
                if isinstance(q, dict)
            ]
        if kind == "task":
            return f"LeMUR response to: {body['prompt'][:40]}"
        return f"LeMUR {kind} of {len(body.get('transcript_ids') or [])} transcript(s)"


# ---------------------------------------------------------------------------------------
# The fake service.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Body:
    """A request body read once by the middleware and shared with handlers."""

    raw: bytes
    json: Any
    is_json: bool


BODY_KEY = web.RequestKey("fakeapi_body", _Body)
RECORD_KEY = web.RequestKey("fakeapi_record", RecordedRequest)
PRIMARY_FAILURE_KEY = web.RequestKey("fakeapi_primary_failure", Fault)
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
UPLOAD_PATH = "/v2/upload"


class FakeAssemblyAI:
    """The whole fake: REST /v2, LeMUR and the LLM Gateway, plus faults and recordings.

    Construct one per test, configure it (``on_audio``, ``faults.add``, ``gateway.enqueue``),
    serve it with :func:`serve` or :func:`serve_in_thread`, then assert on ``history``,
    ``submissions``, ``uploads``, ``polls``, ``gateway.calls`` and ``retry_after_violations()``.

    ``complete_after=S`` (benchmarks) completes every new job S seconds after it was
    submitted instead of after ``polls_to_completed`` polls; each job's ``fetches``,
    ``done_at`` and ``notice_lateness`` say when clients looked and how late they saw it.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        polls_to_processing: int = 1,
        polls_to_completed: int = 2,
        complete_after: float | None = None,
        require_speech_models: bool = True,
        spec_path: Path | None = SPEC_PATH,
        clock_offset: float = 0.0,
    ) -> None:
        self._api_key = api_key
        # Seconds the server's clock is ahead of the client's (negative: behind): the
        # ``created`` of every new job says so.
        self.clock_offset = clock_offset
        self.polls_to_processing = polls_to_processing
        self.polls_to_completed = polls_to_completed
        # Clock mode (benchmarks): each new job is done this many seconds after it was
        # submitted, whatever the polls; None keeps the poll-driven lifecycle.
        self.complete_after = complete_after
        # A gate the test opens, across processes (serve_in_process): while this file does
        # not exist, no new job finishes, however often it is polled or however long ago.
        self.gate: Path | None = None
        self.require_speech_models = require_speech_models
        self.spec_path = spec_path
        self.base_url: str | None = None
        self.faults = Faults()
        self.gateway = FakeGateway(self)
        self.lemur = FakeLemur(self)
        self.history: list[RecordedRequest] = []
        self.uploads: list[Upload] = []
        self.submissions: list[Submission] = []
        self.subtitle_requests: list[tuple[str, str, str | None]] = []  # id, format, chars
        self.transcripts: dict[str, TranscriptJob] = {}
        self.polls: Counter[str] = Counter()
        self.list_requests = 0  # GET /v2/transcript pages served (status sweeps included)
        self.deleted_uploads: set[str] = set()
        self.audio_rules: list[AudioRule] = []
        self.retry_after_windows: list[RetryAfterWindow] = []
        # Each answer's body as sent, rewritten: a server that writes its JSON its own
        # way (`\u002B` for `+`, say), or echoes what it should not.
        self.rewrite: Callable[[bytes], bytes] | None = None

    # -- configuration ------------------------------------------------------------------

    def on_audio(
        self,
        substring: str,
        *,
        error: str | Callable[[str], str] | None = None,
        polls_to_processing: int | None = None,
        polls_to_completed: int | None = None,
    ) -> AudioRule:
        """Give audio URLs containing ``substring`` a specific outcome (first rule wins)."""
        rule = AudioRule(substring, error, polls_to_processing, polls_to_completed)
        self.audio_rules.append(rule)
        return rule

    def fail_audio(self, substring: str, error: str | None = None) -> AudioRule:
        """Make matching audio end in ``status: "error"`` (default: the download error)."""
        return self.on_audio(substring, error=error or download_error)

    def create_transcript(
        self,
        audio_url: str = "https://assembly.ai/wildfires.mp3",
        *,
        completed: bool = True,
        **options: Any,
    ) -> str:
        """Seed a transcript without HTTP (e.g. for Gateway tests); returns its id."""
        job = self._new_job(audio_url, options)
        if completed:
            job.polls_to_processing = job.polls_to_completed = 0
            job.complete_after = None
        return job.id

    # -- recordings -----------------------------------------------------------------------

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Recorded requests matching ``"METHOD /path/pattern"`` (same syntax as faults)."""
        pattern = RoutePattern(route)
        return [r for r in self.history if pattern.matches(r.method, r.path)]

    def duplicate_submissions(self) -> dict[str, int]:
        """audio_url → count, for URLs submitted more than once."""
        counts = Counter(s.audio_url for s in self.submissions)
        return {url: n for url, n in counts.items() if n > 1}

    def retry_after_violations(
        self, scope: Scope = "path", *, tolerance: float = 0.0, grace: float = 0.0
    ) -> list[RetryAfterViolation]:
        """Requests that arrived for an endpoint while its Retry-After had not expired.

        ``scope`` says what counts as the same endpoint: "path" (method + exact path),
        "route" (method + route template, e.g. any transcript poll) or "api" (any /v2,
        any Gateway or any LeMUR request). ``grace`` excuses requests arriving within
        that many seconds of the 429: with many requests in flight, some were already
        on the wire before the client could have read it.
        """
        violations = []
        for window in self.retry_after_windows:
            key = window.key(scope)
            for req in self.history:
                same = _scope_key(scope, req.method, req.path, req.route, req.api, req.model) == key
                opened = window.sent_at + grace
                if same and opened < req.at < window.expires_at - tolerance:
                    violations.append(RetryAfterViolation(window, req))
        return violations

    # -- the application ------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """One application serving /v2, /lemur/v3 and /v1 (the Gateway) on the same host."""
        app = web.Application(middlewares=[self._middleware], client_max_size=1024**3)
        app.router.add_post(UPLOAD_PATH, self._upload)
        app.router.add_post("/v2/transcript", self._submit)
        app.router.add_get("/v2/transcript", self._list)
        app.router.add_get("/v2/transcript/{transcript_id}", self._get)
        app.router.add_delete("/v2/transcript/{transcript_id}", self._delete)
        app.router.add_get("/v2/transcript/{transcript_id}/sentences", self._sentences)
        app.router.add_get("/v2/transcript/{transcript_id}/paragraphs", self._paragraphs)
        app.router.add_get(
            "/v2/transcript/{transcript_id}/{subtitle_format:srt|vtt}", self._subtitles
        )
        app.router.add_post("/lemur/v3/generate/{kind}", self.lemur.handle)
        app.router.add_post(CHAT_PATH, self.gateway.handle)
        app.router.add_get(MODELS_PATH, self.gateway.catalog_handler)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record, apply faults, authenticate, serve, then note any Retry-After sent."""
        record = await self._record(request)
        try:
            response = await self._dispatch(request, handler, record)
        except web.HTTPNotFound:
            response = not_found_response(record.api)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        if record.fault not in ("reset", "after_processing_reset", "raw"):
            record.status = response.status
        rewrite = self.rewrite
        if rewrite and isinstance(response, web.Response) and isinstance(response.body, bytes):
            response.body = rewrite(response.body)
        self._note_retry_after(record, response)
        return response

    async def _record(self, request: web.Request) -> RecordedRequest:
        """Append the request to history on arrival, reading (non-upload) bodies once."""
        arrived = time.monotonic()
        raw = b"" if request.path == UPLOAD_PATH else await request.read()
        parsed, is_json = _parse_json(raw)
        request[BODY_KEY] = _Body(raw, parsed, is_json)
        resource = request.match_info.route.resource
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            route=resource.canonical if resource is not None else request.path,
            api=api_of(request.path),
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
            authorized=self._authorized(request),
            at=arrived,
            json=parsed,
            body_size=len(raw),
        )
        request[RECORD_KEY] = record
        self.history.append(record)
        return record

    async def _dispatch(
        self, request: web.Request, handler: Handler, record: RecordedRequest
    ) -> web.StreamResponse:
        """Faults first (they model infrastructure in front of the API), then auth, then serve."""
        fault = self.faults.take(request.method, request.path, record.model)
        if fault is not None:
            record.fault = fault.describe()
            early = await self._apply_fault(request, record, fault)
            if early is not None:
                return early
        if not record.authorized and request.path != MODELS_PATH:  # the catalog is public
            return gateway_auth_error() if record.api == "gateway" else v2_error(401, V2_AUTH_ERROR)
        response = await handler(request)
        if fault is not None and fault.kind == "after_processing_reset":
            return drop_connection(request, hard=fault.hard)
        if fault is not None and fault.kind == "after_processing_status":
            return fault_response(Fault("status", code=fault.code), record.api)
        if fault is not None and fault.kind == "raw" and fault.hard:
            return write_raw(request, str(fault.body))
        if fault is not None and fault.kind == "reshape" and fault.transform is not None:
            assert isinstance(response, web.Response)
            assert response.body is not None
            return json_response(fault.transform(json.loads(bytes(response.body))))
        return response

    async def _apply_fault(
        self, request: web.Request, record: RecordedRequest, fault: Fault
    ) -> web.StreamResponse | None:
        """Return the faulty response, or None to continue serving (delay, fallback, late reset)."""
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None
        if fault.kind == "hold":
            assert fault.gate is not None
            while not fault.gate.exists():
                await asyncio.sleep(0.01)
            return None
        if fault.kind == "reset":
            return drop_connection(request, hard=fault.hard)
        if fault.kind == "raw" and not fault.hard:
            return write_raw(request, str(fault.body))
        if fault.kind == "malformed":
            text = (
                fault.body
                if isinstance(fault.body, str)
                else '{"id": "5551722-f677", "status": "compl'
            )
            return web.Response(text=text, content_type="application/json")
        if fault.kind == "status":
            if self._fallback_may_rescue(request, record, fault):
                request[PRIMARY_FAILURE_KEY] = fault
                record.fault = f"{fault.describe()} -> fallback"
                return None
            return fault_response(fault, record.api)
        return None

    @staticmethod
    def _fallback_may_rescue(request: web.Request, record: RecordedRequest, fault: Fault) -> bool:
        """Gateway 5xx with ``fallbacks`` are served by a fallback model (notes §8)."""
        body = record.json
        return (
            request.path == CHAT_PATH
            and fault.code >= 500
            and isinstance(body, dict)
            and bool(body.get("fallbacks"))
        )

    def _authorized(self, request: web.Request) -> bool:
        """Raw key everywhere; the Gateway also takes ``Bearer <key>`` ([SMOKE])."""
        value = request.headers.get("Authorization")
        if value == self._api_key:
            return True
        return api_of(request.path) == "gateway" and value == f"Bearer {self._api_key}"

    def _note_retry_after(self, record: RecordedRequest, response: web.StreamResponse) -> None:
        """Remember each Retry-After sent, so early retries can be detected later."""
        value = response.headers.get("Retry-After")
        if value is None or record.status is None:
            return
        seconds = float(value)
        sent_at = time.monotonic()
        self.retry_after_windows.append(
            RetryAfterWindow(
                record.method,
                record.path,
                record.route,
                record.api,
                record.status,
                seconds,
                sent_at,
                sent_at + seconds,
                record.model,
            )
        )

    # -- /v2 handlers ----------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        """POST /v2/upload: stream the raw body, keep sha256 and size, hand out an opaque URL."""
        digest, size = sha256(), 0
        async for chunk in request.content.iter_chunked(1 << 16):
            digest.update(chunk)
            size += len(chunk)
        request[RECORD_KEY].body_size = size
        if size == 0:
            return v2_error(400, "Upload failed: the request body is empty")
        upload_id = new_id()
        url = f"{request.url.origin()}/cdn/upload/{upload_id}"
        self.uploads.append(Upload(upload_id, url, digest.hexdigest(), size, request.content_type))
        return json_response({"upload_url": url})

    async def _submit(self, request: web.Request) -> web.Response:
        """POST /v2/transcript: validate like the API, create a queued job, echo it."""
        body = request[BODY_KEY].json
        if not isinstance(body, dict):
            return v2_error(400, "Request body must be a JSON object")
        problem = self._validate_submission(body)
        if problem is not None:
            return v2_error(400, problem)
        options = {k: v for k, v in body.items() if k != "audio_url"}
        job = self._new_job(body["audio_url"], options)
        self.submissions.append(Submission(job.id, job.audio_url, options, time.monotonic()))
        return json_response(job.body())

    def _validate_submission(self, body: JSONDict) -> str | None:
        """Unknown keys, types of booleans, and the documented cross-field rules."""
        schema = load_param_schema(self.spec_path)
        if schema.names is not None:
            unknown = sorted(set(body) - schema.names)
            if unknown:
                return f"Invalid request: unknown parameter(s): {', '.join(unknown)}"
        if not isinstance(body.get("audio_url"), str) or not body["audio_url"]:
            return "audio_url is required"
        for name in sorted(schema.booleans & set(body)):
            if not isinstance(body[name], bool):
                return f"{name} must be a Boolean"
        if self.require_speech_models and not body.get("speech_models"):
            return "speech_models is required"
        if body.get("speakers_expected") is not None and body.get("speaker_options") is not None:
            return SPEAKER_CONFLICT_ERROR
        if body.get("redact_pii_return_unredacted") and not body.get("redact_pii"):
            return UNREDACTED_ERROR
        return None

    def _new_job(self, audio_url: str, options: JSONDict) -> TranscriptJob:
        """Create a job, applying the first matching audio rule and unknown-upload failures."""
        rule = next((r for r in self.audio_rules if r.substring in audio_url), AudioRule(""))
        error = rule.error_for(audio_url)
        if error is None and self._is_missing_upload(audio_url):
            error = download_error(audio_url)
        job = TranscriptJob(
            id=new_id(),
            audio_url=audio_url,
            options=options,
            polls_to_processing=_or_default(rule.polls_to_processing, self.polls_to_processing),
            polls_to_completed=_or_default(rule.polls_to_completed, self.polls_to_completed),
            error=error,
            created=_now_iso(self.clock_offset),
            complete_after=self.complete_after,
            gate=self.gate,
        )
        self.transcripts[job.id] = job
        return job

    def _is_missing_upload(self, audio_url: str) -> bool:
        """Our own CDN URLs must name a live upload, else the download fails."""
        if "/cdn/upload/" not in audio_url:
            return False
        upload_id = audio_url.rsplit("/", 1)[-1]
        known = {u.id for u in self.uploads}
        return upload_id not in known or upload_id in self.deleted_uploads

    def _job(self, request: web.Request) -> TranscriptJob | None:
        """The job named in the path, if it exists."""
        return self.transcripts.get(request.match_info["transcript_id"])

    async def _get(self, request: web.Request) -> web.Response:
        """GET /v2/transcript/{id}: each served poll advances the lifecycle by one step,
        and is recorded in ``job.fetches`` with the status it answered."""
        job = self._job(request)
        if job is None:
            return v2_error(404, LOOKUP_ERROR)
        job.polls += 1
        self.polls[job.id] += 1
        if not job.deleted and job.status == "completed":
            job.fetches.append(JobFetch(time.monotonic(), "completed"))
            return web.Response(body=job.completed_json(), content_type="application/json")
        body = job.body()
        job.fetches.append(JobFetch(time.monotonic(), str(body["status"])))
        return json_response(body)

    async def _list(self, request: web.Request) -> web.Response:
        """GET /v2/transcript: newest first, ``prev_url`` pages to older ones (notes §4)."""
        try:
            limit = min(max(int(request.query.get("limit", "10")), 1), 200)
        except ValueError:
            return v2_error(400, "limit must be an integer")
        self.list_requests += 1
        jobs = list(reversed(self.transcripts.values()))
        wanted = request.query.get("status")
        if wanted:
            jobs = [j for j in jobs if j.status == wanted]
        jobs = _page_bounds(jobs, request.query.get("before_id"), request.query.get("after_id"))
        page = jobs[:limit]
        now = time.monotonic()
        for job in page:
            if job.complete_after is None and job.status not in TERMINAL:
                # In poll mode a job moves on when it is looked at, as a real one moves
                # on with time whoever looks: a page showing it counts as a look.
                job.polls += 1
            # The first time a page shows a job done is when a client could notice it.
            status = job.status
            if status in TERMINAL and job.noticed_at is None:
                job.fetches.append(JobFetch(now, status, listed=True))
        origin = str(request.url.origin())
        return json_response(
            {
                "page_details": _page_details(
                    origin, request, limit, page, older=len(jobs) > limit
                ),
                "transcripts": [_list_item(origin, job) for job in page],
            }
        )

    async def _delete(self, request: web.Request) -> web.Response:
        """DELETE /v2/transcript/{id}: the deleted shape, and the upload goes too (notes §4)."""
        job = self._job(request)
        if job is None:
            return v2_error(404, LOOKUP_ERROR)
        job.deleted = True
        if "/cdn/upload/" in job.audio_url:
            self.deleted_uploads.add(job.audio_url.rsplit("/", 1)[-1])
        return json_response(job.body())

    async def _sentences(self, request: web.Request) -> web.Response:
        """GET /v2/transcript/{id}/sentences (notes §5)."""
        return self._derived(request, "sentences", sentences_of)

    async def _paragraphs(self, request: web.Request) -> web.Response:
        """GET /v2/transcript/{id}/paragraphs (notes §5)."""
        return self._derived(request, "paragraphs", paragraphs_of)

    def _completed(self, request: web.Request) -> tuple[TranscriptJob, JSONDict] | web.Response:
        """The job of the path and its body, or the API's answer when it has no words yet."""
        job = self._job(request)
        if job is None:
            return v2_error(404, LOOKUP_ERROR)
        body = job.body()
        if body["status"] != "completed" or not body.get("words"):
            return v2_error(400, f"Transcript is not completed (status: {body['status']})")
        return job, body

    async def _subtitles(self, request: web.Request) -> web.Response:
        """GET /v2/transcript/{id}/srt or /vtt (notes §5): text/plain captions."""
        found = self._completed(request)
        if isinstance(found, web.Response):
            return found
        job, body = found
        given = request.query.get("chars_per_caption")
        if given is not None and not given.isdigit():
            return v2_error(400, "chars_per_caption must be an integer")
        chars = int(given) if given else FAKE_CHARS_PER_CAPTION
        fmt = request.match_info["subtitle_format"]
        self.subtitle_requests.append((job.id, fmt, given))
        return web.Response(text=subtitles_of(body["words"], fmt, chars), content_type="text/plain")

    def _derived(
        self,
        request: web.Request,
        key: str,
        build: Callable[[list[JSONDict]], list[JSONDict]],
    ) -> web.Response:
        """The shared envelope; only completed, undeleted transcripts have words to split."""
        found = self._completed(request)
        if isinstance(found, web.Response):
            return found
        job, body = found
        return json_response(
            {
                "id": job.id,
                "confidence": body["confidence"],
                "audio_duration": float(body["audio_duration"]),
                "speech_model_used": body["speech_model_used"],
                key: build(body["words"]),
            }
        )


def _or_default(value: int | None, default: int) -> int:
    """``value`` unless it is None (0 is a valid poll count, so ``or`` would be wrong)."""
    return default if value is None else value


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    """Parse a body as JSON if it is JSON; anything else is kept as raw bytes only."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except (ValueError, UnicodeDecodeError):
        return None, False


def _page_bounds(
    jobs: list[TranscriptJob], before_id: str | None, after_id: str | None
) -> list[TranscriptJob]:
    """Keep jobs older than ``before_id`` / newer than ``after_id`` (list is newest first)."""
    ids = [j.id for j in jobs]
    if before_id in ids:
        jobs = jobs[ids.index(before_id) + 1 :]
    if after_id in ids:
        jobs = jobs[: ids.index(after_id)]
    return jobs


def _page_details(
    origin: str, request: web.Request, limit: int, page: list[TranscriptJob], *, older: bool
) -> JSONDict:
    """current/prev/next URLs like transcript-list.json; prev is null on the oldest page."""
    base = f"{origin}/v2/transcript?limit={limit}"
    if request.query.get("status"):
        base += f"&status={request.query['status']}"
    return {
        "limit": limit,
        "result_count": len(page),
        "current_url": str(request.url),
        "prev_url": f"{base}&before_id={page[-1].id}" if page and older else None,
        "next_url": f"{base}&after_id={page[0].id}" if page else None,
    }


def _list_item(origin: str, job: TranscriptJob) -> JSONDict:
    """One TranscriptListItem, without building the job's body (a page of 200
    completed transcripts would copy 20 MB)."""
    status = job.status
    if status == "completed":
        job.completed_at = job.completed_at or _now_iso()
    return {
        "id": job.id,
        "resource_url": f"{origin}/v2/transcript/{job.id}",
        "status": status,
        "created": job.created,
        "completed": job.completed_at if status == "completed" else None,
        "audio_url": DELETED_AUDIO_URL if job.deleted else job.audio_url,
        "error": job.error if status == "error" else None,
    }


# ---------------------------------------------------------------------------------------
# Serving.
# ---------------------------------------------------------------------------------------


@asynccontextmanager
async def serve(
    fake: FakeAssemblyAI, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``fake`` on a free loopback port; yields ``http://127.0.0.1:PORT``.

    ``shutdown_timeout`` is short so a test that leaves a delayed request behind does not
    wait a minute at teardown.
    """
    runner = web.AppRunner(fake.make_app(), access_log=None, shutdown_timeout=0.05)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        fake.base_url = f"http://{host}:{bound}"
        yield fake.base_url
    finally:
        await runner.cleanup()


class _ThreadedServer:
    """Runs :func:`serve` on its own event loop in a daemon thread."""

    def __init__(self, fake: FakeAssemblyAI) -> None:
        self._fake = fake
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.base_url = ""
        self._thread = threading.Thread(target=self._run, name="fakeapi-server", daemon=True)

    def start(self, timeout: float) -> str:
        """Start the thread and wait until the socket is bound (or startup failed)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("fake AssemblyAI server did not start in time")
        if self._error is not None:
            raise RuntimeError("fake AssemblyAI server failed to start") from self._error
        return self.base_url

    def stop(self, timeout: float) -> None:
        """Ask the loop to leave ``serve`` and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the test thread by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._fake) as base_url:
            self.base_url = base_url
            self._ready.set()
            await self._stop.wait()


@contextmanager
def serve_in_thread(fake: FakeAssemblyAI, *, timeout: float = 5.0) -> Iterator[str]:
    """Serve ``fake`` from a background thread, for code that runs its own ``asyncio.run``."""
    server = _ThreadedServer(fake)
    try:
        yield server.start(timeout)
    finally:
        server.stop(timeout)


class ProcessServer:
    """The fake served from a forked process: its own interpreter, its own GIL.

    Timing checks (Retry-After windows, wall time) need the server's clock to be
    independent of the client's CPU load; a thread in the test process shares the
    GIL and delays the server's replies by whatever the client is computing.
    ``report`` runs in the child when the server stops and its picklable result is
    handed back as :attr:`result`.
    """

    def __init__(self, fake: FakeAssemblyAI, report: Callable[[FakeAssemblyAI], Any]) -> None:
        import multiprocessing

        # Read the spec here, once per test process: every forked server inherits it.
        load_param_schema(fake.spec_path)
        self._context = multiprocessing.get_context("fork")
        self._parent, self._child = self._context.Pipe()
        self._process = self._context.Process(
            target=_process_main, args=(fake, report, self._child), daemon=True
        )
        self.result: Any = None

    def start(self, timeout: float) -> str:
        self._process.start()
        if not self._parent.poll(timeout):
            self._process.kill()
            raise RuntimeError("the fake AssemblyAI process did not start")
        url: str = self._parent.recv()
        return url

    def stop(self, timeout: float) -> None:
        self._parent.send("stop")
        if self._parent.poll(timeout):
            self.result = self._parent.recv()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()


def _process_main(fake: FakeAssemblyAI, report: Callable[[FakeAssemblyAI], Any], conn: Any) -> None:
    async def main() -> None:
        async with serve(fake) as base_url:
            conn.send(base_url)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send(report(fake))

    asyncio.run(main())


@contextmanager
def serve_in_process(
    fake: FakeAssemblyAI, report: Callable[[FakeAssemblyAI], Any], *, timeout: float = 10.0
) -> Iterator[ProcessServer]:
    """Serve ``fake`` from a forked process; ``server.result`` holds ``report(fake)`` after."""
    server = ProcessServer(fake, report)
    server.base_url = server.start(timeout)  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop(timeout)


# ---------------------------------------------------------------------------------------
# Pytest fixtures: tests/conftest.py loads this module as a plugin (``pytest_plugins``), so
# every test module has them. The ``api_key`` fixture they need comes from conftest.py; a
# module overrides it to serve a fake that accepts another key.
# ---------------------------------------------------------------------------------------


@pytest.fixture
def fake(api_key: str) -> FakeAssemblyAI:
    """A fresh fake per test, accepting ``api_key``."""
    return FakeAssemblyAI(api_key=api_key)


@pytest.fixture
async def base_url(fake: FakeAssemblyAI) -> AsyncIterator[str]:
    """``fake`` served on the test's event loop; the REST base URL."""
    async with serve(fake) as url:
        yield url


@pytest.fixture
def thread_url(fake: FakeAssemblyAI) -> Iterator[str]:
    """``fake`` served from a thread, for synchronous CLI tests; the REST base URL."""
    with serve_in_thread(fake) as url:
        yield url

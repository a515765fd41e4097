"""The account's transcript list (``GET /v2/transcript``): its pages, read strictly.

Two things read the list: status sweeps (:mod:`runner.api.sweeps`) and the search for
a job whose submission was answered ambiguously
(:meth:`runner.api.transcripts.TranscriptsClient.jobs_for`). Both must tell "the list
says no" from "the list cannot be read": a page that is not a list of jobs (not an
object, ``transcripts`` not a list, an entry that is not an object or has no id in
AssemblyAI's shape, an ``audio_url`` that is not a string) or whose ``prev_url`` leads
anywhere but the next page on the configured origin is :class:`Misshapen`, which the
HTTP client retries like a transport fault (listing is safe to repeat) before the
request fails. Nothing in a page is guessed at or skipped.

``prev_url`` is followed only as a path and query on the configured base URL, and the
joined URL is checked after joining (scheme, host and port equal to the base URL's,
the path exactly the list's): a ``prev_url`` such as ``@other-host/…`` or ``2:80/…``
would otherwise move the key to another host when glued to the base.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard
from urllib.parse import urlsplit

from yarl import URL

from runner.api.transport import Misshapen

LIST_PAGE: Final = 200  # the most the list endpoint gives at once (notes §4)
LIST_PATH: Final = "/v2/transcript"

# AssemblyAI's transcript ids are UUIDs ("9ea68fd3-f953-42c1-9742-976c447fb463"), some
# with a longer first group ("62nfw3mlar-01ad-4631-92f6-629929496eed", the spec's
# examples): letters and digits in groups joined by single dashes. An id is also a path
# segment and a ledger key, so nothing else is taken for one: not "", "..", "a/b".
_ID: Final = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
ID_LENGTHS: Final = range(8, 65)


def is_transcript_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` has the shape of an AssemblyAI transcript id."""
    return isinstance(value, str) and len(value) in ID_LENGTHS and _ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ListedJob:
    """One entry of a page: what the list says of a job."""

    id: str
    audio_url: str
    status: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page, newest job first; ``older`` is the checked URL of the next older page
    (None on the oldest)."""

    jobs: tuple[ListedJob, ...]
    older: str | None


def first_page(base_url: str) -> str:
    """The URL of the newest page."""
    return f"{base_url}{LIST_PATH}?limit={LIST_PAGE}"


def read_page(body: Any, base_url: str) -> Page:
    """A page of the list, or :class:`Misshapen` saying what makes it none."""
    if not isinstance(body, Mapping):
        raise Misshapen("the transcript list is not a JSON object")
    entries = body.get("transcripts")
    if not isinstance(entries, list):
        raise Misshapen(f"`transcripts` is {_kind(entries)}, not a list of jobs")
    jobs = tuple(_job(n, entry) for n, entry in enumerate(entries))
    details = body.get("page_details")
    if not isinstance(details, Mapping):
        raise Misshapen(f"`page_details` is {_kind(details)}, not an object")
    return Page(jobs, older_page(details.get("prev_url"), base_url))


def _job(n: int, entry: Any) -> ListedJob:
    if not isinstance(entry, Mapping):
        raise Misshapen(f"job {n} of the page is {_kind(entry)}, not an object")
    transcript_id, audio_url = entry.get("id"), entry.get("audio_url")
    if not is_transcript_id(transcript_id):
        raise Misshapen(f"job {n} of the page has no transcript id ({_shown(transcript_id)})")
    if not isinstance(audio_url, str):
        raise Misshapen(f"job {transcript_id} has no audio_url ({_kind(audio_url)})")
    status, error = entry.get("status"), entry.get("error")
    return ListedJob(
        transcript_id,
        audio_url,
        status if isinstance(status, str) else None,
        str(error) if error else None,
    )


def older_page(prev_url: Any, base_url: str) -> str | None:
    """The URL of the next older page: ``prev_url``'s path and query on ``base_url``,
    checked after joining. None when ``prev_url`` is null (the oldest page);
    :class:`Misshapen` when it is anything but a URL of the list on this origin."""
    if prev_url is None:
        return None
    if not isinstance(prev_url, str) or not prev_url or len(prev_url) > 8192:
        raise Misshapen(f"`prev_url` is {_shown(prev_url)}, not a URL of the list")
    try:
        parts = urlsplit(prev_url)
        joined = f"{base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        url, base = URL(joined), URL(base_url)
    except ValueError:
        raise Misshapen(f"`prev_url` is not a URL: {_shown(prev_url)}") from None
    same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    if not same_origin or url.user is not None or url.path != f"{base.path.rstrip('/')}{LIST_PATH}":
        raise Misshapen(f"`prev_url` leads away from the transcript list: {_shown(prev_url)}")
    return joined


def _kind(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def _shown(value: Any) -> str:
    """A value as a message may quote it: short, whatever a server sent."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."

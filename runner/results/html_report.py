"""``report.html``: a run at a glance, in one self-contained file.

Built from ``run.json`` (or a merged manifest) and the files the run wrote: the
overview (items, tasks, failures with their recipe lines, tokens, cost, time), then
the transcriptions compared (each engine's word error rate, time and cost) and the
checks matrix (items × checks, worst first: :mod:`checks_matrix`), then
each item: its outputs (Markdown as HTML, JSON as tables), its transcript with
speakers and times, its quotes marked in the transcript with a player that seeks to
each (for URL and file inputs), and its expectations. A filter shows only failed items.

No CDN, no server: styles and the few lines of script are inline, so the file works
offline and as a CI artifact. Everything from transcripts, models and recipes is
untrusted: it is escaped, Markdown is rendered with raw HTML off, and links keep only
http(s) and mailto targets. Items are written one at a time, so a report of 10,000
items never holds them all; past ``MAX_DETAILED_BYTES`` of items in full, the rest are
shown in short (status, errors, a link to the folder), so the file stays one a browser
opens.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.request import pathname2url

from runner.recipe.prices import format_usd
from runner.results import checks_matrix, engines_html
from runner.results.manifest import Manifest, item_record
from runner.results.rates import percent
from runner.results.records import (
    NOT_RUN,
    ExpectationRecord,
    ItemRecord,
    TaskRecord,
    TranscriptionRecord,
)
from runner.results.transcript_html import TranscriptShown, read_shown, transcript_html

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

REPORT_FILE = "report.html"
MAX_OUTPUT_BYTES = 200_000  # an output larger than this is linked, not inlined
# Past this many bytes of items in full, each further item is a short entry (status,
# errors, a link to its folder): a browser opens a report of 10,000 hour-long
# recordings in full (gigabytes) slowly or not at all.
MAX_DETAILED_BYTES = 40_000_000

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:0}h3{font-size:1rem;margin:.8rem 0 .3rem}
.overview{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;padding:.6rem 0}
.item{border:1px solid #ccc;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.item.failed,.item.interrupted{border-color:#c33}
.status{font-weight:600}.status.ok{color:#1a7f37}
.status.failed,.status.interrupted{color:#c33}
.status.not-run,.status.skipped{color:#666;font-weight:400;font-style:italic}
.task{margin:.6rem 0;padding-left:.6rem;border-left:3px solid #ddd}
.task.ok{border-left-color:#8c8}.task.failed{border-left-color:#c33}
.task.not-run,.task.skipped{border-left-style:dashed;border-left-color:#bbb}
.error{color:#a11;white-space:pre-wrap}.note{color:#555;font-size:.9em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;white-space:pre-wrap}
.transcript p{margin:.3rem 0}.time{color:#777;font-size:.85em;margin-right:.3rem}
mark{background:#ffe58a}.quote button{margin-right:.4rem}
body.only-failed .item.ok{display:none}
"""

_FILTER_SCRIPT = """
document.getElementById('only-failed').addEventListener('change', function (e) {
  document.body.classList.toggle('only-failed', e.target.checked);
});
"""
# A quote's ▶ seeks its item's player; review.html runs it too (its only script).
SEEK_SCRIPT = """
document.querySelectorAll('button.seek').forEach(function (button) {
  button.addEventListener('click', function () {
    var player = document.getElementById(button.dataset.player);
    if (!player) { return; }
    player.currentTime = Number(button.dataset.start) / 1000;
    var playing = player.play();
    if (playing && playing.catch) { playing.catch(function () {}); }
  });
});
"""
_SCRIPT = _FILTER_SCRIPT + SEEK_SCRIPT


def content_security_policy(script: str) -> str:
    """The page's policy: inline styles, media from anywhere (the recordings), and
    ``script`` alone, by its hash: nothing a transcript or a model wrote can run."""
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; media-src * data: "
        f"blob:; script-src 'sha256-{digest}'"
    )


_CSP = content_security_policy(_SCRIPT)
_STYLES = _STYLE + checks_matrix.STYLE + engines_html.STYLE
_FILTER = '<label><input type="checkbox" id="only-failed"> only failed items</label>\n'


def write_report(manifest: Manifest, manifest_path: Path, out: Path) -> Path:
    """Write the report of ``manifest`` (read from ``manifest_path``) to ``out``,
    atomically: a half-written report never replaces a whole one. Raises OSError."""
    report = ReportWriter(out, manifest.get("recipes") or ())
    for index, entry in enumerate(manifest["items"], 1):
        report.add(item_record(entry, index))
    written = report.close(manifest.get("summary") or {})
    if written is None:
        raise OSError(report.problem)
    return written


class ReportWriter:
    """report.html, an item at a time: each item's section into a spool file beside the
    report (so 10,000 items are never held at once), then the page around them once
    the summary is known, replacing the report atomically. (`run` feeds it from its
    run.json after the run, not while items finish: on the outputs' thread its Python
    work fought the event loop for the interpreter, and cost 2 ms of system CPU an
    item.)

    A report must never cost a run its results: :meth:`add` and :meth:`close` do not
    raise; the first problem is kept in :attr:`problem`, and nothing more is written.
    """

    def __init__(self, out: Path, recipes: Sequence[Mapping[str, Any]]) -> None:
        self.out = out
        self.problem: str | None = None
        self._names = ", ".join(str(r.get("name")) for r in recipes)
        self._spool_path = out.with_name(f".{out.name}.{os.getpid()}.items.tmp")
        self._spool: IO[str] | None = None
        self._items = 0
        self._written = 0  # bytes of items in full
        self._shortened = 0
        self._failures: list[str] = []
        self._matrix = checks_matrix.ChecksMatrix()
        self._engines = engines_html.EnginesTable()
        self._not_run: dict[str, int] = {}  # why tasks were not run → how many
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._spool = self._spool_path.open("w", encoding="utf-8")
        except OSError as exc:
            self._fail(exc)

    def add(self, record: ItemRecord) -> None:
        """The item's section, in full until MAX_DETAILED_BYTES, then in short."""
        if self._spool is None:
            return
        index, self._items = self._items, self._items + 1
        try:
            if self._written < MAX_DETAILED_BYTES:
                part = _item(index, record, self.out.parent)
                self._written += len(part)
            else:
                part = _short_item(index, record, self.out.parent)
                self._shortened += 1
            self._spool.write(part)
            self._matrix.add(record, f"item-{index}")
            self._engines.add(record, f"item-{index}")
        except Exception as exc:  # a report must not end the run: kept, and said at its end
            self._fail(exc)
            return
        if record.status == "failed":  # interrupted items are counted, not listed
            self._failures.append(_failure(record))
        for task in record.tasks:
            if task.status == NOT_RUN:
                why = task.error or "no reason given"
                self._not_run[why] = self._not_run.get(why, 0) + 1

    def close(self, summary: Mapping[str, Any], keep: Path | None = None) -> Path | None:
        """The whole page (head, overview, the spooled items, the script); None when
        it could not be written (see :attr:`problem`). ``keep``: also this run's own
        copy there (``runs/<started>-<recipes>.html``, beside its kept manifest), so
        the next run's report does not replace this one; its links lead where the
        report's do."""
        if self._spool is None:
            return None
        spool, self._spool = self._spool, None
        try:
            spool.close()
            self._write_atomically(self.out, summary, base=None)
            if keep is not None:
                self._keep(keep, summary)
        except Exception as exc:  # (as in add)
            self._fail(exc)
            return None
        finally:
            with contextlib.suppress(OSError):
                self._spool_path.unlink(missing_ok=True)
        return self.out

    def _keep(self, keep: Path, summary: Mapping[str, Any]) -> None:
        """This run's copy beside its kept manifest; one that cannot be kept costs the
        run nothing (as the manifest's own copy)."""
        if keep.parent.is_symlink():  # followed, it would write wherever it leads
            return
        try:
            keep.parent.mkdir(exist_ok=True)
            back = os.path.relpath(self.out.parent.resolve(), keep.parent.resolve())
            self._write_atomically(keep, summary, base=pathname2url(back) + "/")
        except (OSError, ValueError):  # (ValueError: another drive, on Windows)
            return

    def _write_atomically(self, path: Path, summary: Mapping[str, Any], base: str | None) -> None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as page:
                self._write_page(page, summary, base)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)

    def _write_page(self, page: IO[str], summary: Mapping[str, Any], base: str | None) -> None:
        # A kept copy lives a folder below: its relative links (recordings, outputs)
        # resolve from the report's folder, as the latest report's do.
        base_tag = f'<base href="{_e(base)}">' if base else ""
        page.write(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'{base_tag}<meta name="viewport" content="width=device-width">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}"><title>'
            f"{_e(self._names)} · transcript-runner</title><style>{_STYLES}</style>"
            f"</head><body>\n<h1>Run of {_e(self._names)}</h1>\n"
        )
        page.write(_overview(summary, self._failures))
        page.write(_rates(summary))
        page.write(self._engines.html())
        page.write(self._matrix.html())
        page.write(_not_run_html(self._not_run))
        page.write(_FILTER)
        with self._spool_path.open(encoding="utf-8") as items:
            shutil.copyfileobj(items, page)
        if self._shortened:
            page.write(
                f'<p class="time">The last {self._shortened} of {self._items} items are '
                "shown in short, to keep this report small enough to open: each one's "
                "outputs and transcript are in its folder.</p>\n"
            )
        page.write(f"<script>{_SCRIPT}</script></body></html>\n")

    def discard(self) -> None:
        """Write nothing after all: the spool goes."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        with contextlib.suppress(OSError):
            self._spool_path.unlink(missing_ok=True)

    def _fail(self, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        self.problem = self.problem or f"{self.out}: {reason}"[:500]
        self.discard()


def _overview(summary: Mapping[str, Any], failures: Sequence[str]) -> str:
    items = summary.get("items") or {}
    tasks = summary.get("tasks") or {}
    cost = summary.get("cost_usd")
    unknown = summary.get("cost_unknown_for") or []
    cost_text = "unknown" if cost is None else format_usd(float(cost))
    if unknown and cost is not None:
        cost_text = f"at least {cost_text}"
    facts = [
        ("outcome", summary.get("outcome")),
        ("items", ", ".join(f"{n} {s}" for s, n in items.items())),
        *(
            [("groups", ", ".join(f"{n} {s}" for s, n in groups.items()))]
            if (groups := summary.get("groups"))
            else []
        ),
        ("tasks", ", ".join(f"{n} {s}" for s, n in tasks.items())),
        ("tokens", f"{summary.get('input_tokens', 0)} in, {summary.get('output_tokens', 0)} out"),
        ("audio", f"{float(summary.get('audio_hours') or 0):.2f} h"),
        ("cost", cost_text),
        ("time", f"{float(summary.get('wall_seconds') or 0):.1f} s"),
    ]
    shown = "".join(f"<div><b>{_e(k)}</b>: {_e(str(v))}</div>" for k, v in facts)
    listed = f"<h3>Failures</h3><ul>{''.join(failures)}</ul>" if failures else ""
    return f'<section class="overview">{shown}</section>{listed}\n'


def _not_run_html(reasons: Mapping[str, int]) -> str:
    """Why tasks were not run, each reason once for the whole run (not a failure)."""
    if not reasons:
        return ""
    said = "".join(
        f"<li>{n} task{'s' if n != 1 else ''}: {_e(why)}</li>" for why, n in reasons.items()
    )
    return f'<section class="not-run"><h3>Not run (not a failure)</h3><ul>{said}</ul></section>\n'


def _failure(record: ItemRecord) -> str:
    """A failed item's line in the overview: its first cause and its recipe line."""
    return (
        f"<li>{_e(record.recipe)}/{_e(record.item)}: {_e(_first_cause(record))} "
        f'<span class="time">({_e(record.recipe_file)}{_line_of(record)})</span></li>'
    )


def _first_cause(record: ItemRecord) -> str:
    if record.error:
        return record.error
    failed = [t for t in record.tasks if t.status in ("failed", "skipped")]
    return f"{failed[0].task}: {failed[0].error}" if failed else record.status


def _line_of(record: ItemRecord) -> str:
    failed = [t for t in record.tasks if t.status in ("failed", "skipped")]
    line = failed[0].line if failed else None
    return f":{line}" if isinstance(line, int) and not isinstance(line, bool) and line > 0 else ""


def status_class(status: str) -> str:
    """A status as a CSS class: each is coloured by its own value (``not run`` →
    ``not-run``), never by the item around it."""
    return "-".join(status.split()) or "unknown"


def _status(status: str) -> str:
    return f'<span class="status {_e(status_class(status))}">{_e(status)}</span>'


def _item(index: int, record: ItemRecord, report_dir: Path) -> str:
    state = "ok" if record.status == "ok" else record.status
    player_id = f"player-{index}"
    parts = [
        f'<section class="item {_e(state)}" id="item-{index}">',
        f"<h2>{_e(record.recipe)} / {_e(record.item)} {_status(record.status)}</h2>",
        f'<div class="time">{_e(record.kind)}: {_e(_shown_source(record, report_dir))}</div>',
    ]
    if record.error:
        parts.append(f'<div class="error">{_e(record.error)}</div>')
    parts += [
        _transcription_check(made, check)
        for made in record.transcriptions
        for check in made.expectations
    ]
    audio = _audio_source(record, report_dir)
    if audio is not None:
        parts.append(f'<audio controls preload="none" id="{player_id}" src="{_e(audio)}"></audio>')
    transcript = _transcript(record)
    quotes: list[Mapping[str, Any]] = []
    for task in record.tasks:
        parts.append(_task(task, player_id if audio else None, quotes))
    if transcript is not None:
        parts.append(transcript_html(transcript, quotes))
    parts.append("</section>\n")
    return "".join(parts)


def _short_item(index: int, record: ItemRecord, report_dir: Path) -> str:
    """An item without its outputs or transcript: its status, its errors and a link
    to its folder."""
    state = "ok" if record.status == "ok" else record.status
    parts = [
        f'<section class="item {_e(state)}" id="item-{index}">',
        f"<h2>{_e(record.recipe)} / {_e(record.item)} {_status(record.status)}</h2>",
    ]
    if record.folder and Path(record.folder).is_dir():  # (an item that failed early has none)
        link = _e(_relative_url(record.folder, report_dir))
        parts.append(f'<div><a href="{link}">outputs</a></div>')
    if record.error:
        parts.append(f'<div class="error">{_e(record.error)}</div>')
    for task in record.tasks:
        if task.error:
            parts.append(f'<div class="error">{_e(task.task)}: {_e(task.error)}</div>')
    parts.append("</section>\n")
    return "".join(parts)


def _task(task: TaskRecord, player: str | None, quotes: list[Mapping[str, Any]]) -> str:
    parts = [
        f'<div class="task {_e(status_class(task.status))}"><h3>{_e(task.task)} '
        f"{_status(task.status)}"
        + (f' <span class="time">{_e(task.model_used or "")}</span>' if task.model_used else "")
        + "</h3>"
    ]
    if task.error and task.status != NOT_RUN:  # why tasks were not run: once, above
        parts.append(f'<div class="error">{_e(task.error)}</div>')
    if task.note:
        parts.append(f'<div class="note">{_e(task.note)}</div>')
    body = _read_output(task.output)
    if body is not None:
        parts.append(_render_output(task.output or "", body, player, quotes))
    parts += [_check(check, player, quotes) for check in task.expectations]
    parts.append("</div>")
    return "".join(parts)


def _check(check: ExpectationRecord, player: str | None, quotes: list[Mapping[str, Any]]) -> str:
    """A check: ✓, ✗ or ⚠ (a `severity: warn` failure), its score and reason; a judge's
    verdicts; a grounded check's quotes or claims with their verdicts, each with its ▶
    and marked in the transcript."""
    mark = "✓" if check.passed else "⚠" if check.severity == "warn" else "✗"
    score = f' <span class="time">score {check.score:g}</span>' if check.score is not None else ""
    reason = check.reason or check.message
    said = f": {_e(reason)}" if reason else ""
    head = f'<div class="check">{mark} expect {_e(check.expect)}{score}{said}</div>'
    if check.kind == "grounded" and check.details:
        spans = [{**d, "quote": d.get("text")} for d in check.details if isinstance(d, Mapping)]
        quotes.extend(s for s in spans if s.get("verdict") != "not found")
        return head + quotes_html(spans, player)
    if check.kind == "judge" and len(check.details) > 1:
        verdicts = "".join(
            f"<li>{'pass' if d.get('pass') else 'fail'} {_e(str(d.get('score')))}: "
            f"{_e(str(d.get('reason')))}</li>"
            for d in check.details
        )
        return f"{head}<ul>{verdicts}</ul>"
    return head


def _rates(summary: Mapping[str, Any]) -> str:
    """Each check's pass rate over the items (run.json's ``summary.checks``)."""
    rows = [r for r in summary.get("checks") or () if isinstance(r, Mapping)]
    if not rows:
        return ""
    cells = "".join(
        f"<tr><td>{_e(str(r.get('recipe')))}/{_e(str(r.get('task')))}</td>"
        f"<td>{_e(str(r.get('check')))}</td><td>{r.get('passed')} of {r.get('total')}</td>"
        f"<td>{_percent(r.get('rate'))}</td><td>{_percent(r.get('pass_rate'))}</td></tr>"
        for r in rows
    )
    return (
        "<h3>Checks</h3><table><tr><th>task</th><th>check</th><th>passed</th><th>rate</th>"
        f"<th>pass_rate</th></tr>{cells}</table>\n"
    )


def _percent(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return percent(float(value))


def _transcription_check(made: TranscriptionRecord, check: ExpectationRecord) -> str:
    mark = "✓" if check.passed else "✗"
    measured = f" (WER {check.score:.3f})" if check.score is not None and check.passed else ""
    message = f": {check.message}" if check.message else measured
    return (
        f"<div>{mark} transcript by {_e(made.engine)}: expect {_e(check.expect)}{_e(message)}</div>"
    )


def _read_output(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read(MAX_OUTPUT_BYTES)
    except OSError:
        return None


def _render_output(
    path: str, body: str, player: str | None, quotes: list[Mapping[str, Any]]
) -> str:
    if path.endswith(".md"):
        return _markdown(body)
    if path.endswith(".json"):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return f"<pre>{_e(body)}</pre>"
        if is_quotes(data):
            quotes.extend(data)
            return quotes_html(data, player)
        return _json_html(data)
    # Subtitles, tables of words, plain text: folded, as they can be long.
    lines = body.count("\n")
    name = _e(Path(path).name)
    return f"<details><summary>{name} ({lines} lines)</summary><pre>{_e(body)}</pre></details>"


def is_quotes(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(q, Mapping) and "quote" in q and "verdict" in q for q in data)
    )


def quotes_html(quotes: Sequence[Mapping[str, Any]], player: str | None) -> str:
    rows = []
    for quote in quotes:
        start = quote.get("start")
        seek = (
            f'<button class="seek" data-player="{_e(player)}" data-start="{int(start)}">'
            f"▶ {_e(str(quote.get('start_timestamp')))}</button>"
            if player and isinstance(start, int)
            else ""
        )
        rows.append(
            f'<li class="quote">{seek}“{_e(str(quote.get("quote")))}” '
            f'<span class="time">{_e(str(quote.get("verdict")))}</span></li>'
        )
    return f"<ul>{''.join(rows)}</ul>"


MAX_JSON_DEPTH = 20  # deeper JSON is shown as text: a model can nest it without end


def _json_html(data: Any, depth: int = 0) -> str:
    if depth > MAX_JSON_DEPTH:
        return f"<pre>{_e(json.dumps(data)[:2000])}</pre>"
    if isinstance(data, Mapping):
        rows = "".join(
            f"<tr><th>{_e(str(k))}</th><td>{_json_html(v, depth + 1)}</td></tr>"
            for k, v in data.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(data, list):
        return "<ul>" + "".join(f"<li>{_json_html(v, depth + 1)}</li>" for v in data) + "</ul>"
    return _e("" if data is None else str(data))


def _markdown(text: str) -> str:
    """Markdown as HTML, for untrusted text: raw HTML off, links only to http(s) and
    mailto, and no images (a remote image would load, and could carry data away, the
    moment the report is opened)."""
    return str(_markdown_parser().render(text))


@functools.cache
def _markdown_parser() -> MarkdownIt:
    """One parser for the whole report: making one costs most of what rendering a
    short reply does (0.08 against 0.11 ms)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).disable("image")
    md.validateLink = _safe_link  # type: ignore[method-assign]
    return md


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://", "mailto:"))


def _transcript(record: ItemRecord) -> TranscriptShown | None:
    """The item's transcript: the one the run wrote, or the saved file it read."""
    candidates = []
    if record.folder:
        candidates.append(Path(record.folder) / "transcript.json")
    if record.kind == "transcript_file":
        candidates.append(Path(record.source))
    return read_shown(candidates)


def _shown_source(record: ItemRecord, report_dir: Path) -> str:
    """An input as the page names it: a file relative to the report (the same on every
    machine, and no home folder shown), a URL or transcript id as it is."""
    if record.kind not in ("file", "transcript_file") or not os.path.isabs(record.source):
        return record.source
    try:
        return os.path.relpath(record.source, report_dir)
    except ValueError:  # another drive on Windows
        return record.source


def _audio_source(record: ItemRecord, report_dir: Path) -> str | None:
    """What the player plays: the URL, or the file relative to the report."""
    return player_source(record.kind, record.source, report_dir)


def player_source(kind: str, source: str, report_dir: Path) -> str | None:
    """An input's recording as a page in ``report_dir`` plays it: the URL, or the file
    relative to the page; None for a saved transcript."""
    if kind == "url" and source.startswith(("http://", "https://")):
        return source
    if kind == "file":
        return _relative_url(source, report_dir)
    return None


def _relative_url(path: str, report_dir: Path) -> str:
    """``path`` as a link from the report, which keeps working when the report's
    folder is moved or downloaded as a whole (a CI artifact)."""
    try:
        return "./" + pathname2url(os.path.relpath(path, report_dir))
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_uri()


def escape(text: str) -> str:
    return html.escape(text, quote=True)


_e = escape


def write_manifest_report(manifest: Manifest, manifest_path: Path, out: Path | None) -> Path:
    """``out``, or report.html beside the manifest."""
    return write_report(manifest, manifest_path, out or manifest_path.with_name(REPORT_FILE))

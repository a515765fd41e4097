"""The report's checks matrix: items × checks, each cell passed, failed or warned,
its reason on hover (and on click, for a cell that did not pass), worst items first.

A check is whatever run.json records as one, on a task (``expect:``) or on a
transcription (``transcription: {expect: ...}``): its name, whether it passed, its
reason, and when there is one its score (a word error rate) and severity (``warn``: a
check that is shown but never fails its item). The matrix reads only that shape, so
any kind of check recorded there is a column, the day it is recorded.

Items are added one at a time as the report is written; each keeps only its cells, a
few short strings, and the page shows the worst ``MAX_ROWS``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass, field

from runner.results.records import ExpectationRecord, ItemRecord

MAX_ROWS = 500  # rows shown, worst first; the rest (the best) are counted
MAX_REASON = 500  # characters of a reason kept for its cell

PASS, WARN, FAIL = "pass", "warn", "fail"
_MARKS = {PASS: "✓", WARN: "!", FAIL: "✗"}
_RANK = {FAIL: 0, WARN: 1, PASS: 2}

STYLE = """
.matrix{overflow:auto;max-height:32rem;margin:.5rem 0}
.matrix th{position:sticky;top:0;background:#fff;font-weight:600;font-size:.85em}
.matrix td.pass{background:#e9f7ec}.matrix td.fail{background:#fde4e4}
.matrix td.warn{background:#fff4d6}.matrix td.none{color:#999}
.matrix td{text-align:center;white-space:nowrap}.matrix td.name{text-align:left}
.matrix details{display:inline}.matrix summary{cursor:pointer;list-style:none}
.matrix .reason{display:block;white-space:normal;max-width:24rem;text-align:left}
"""


@dataclass(frozen=True, slots=True)
class Cell:
    state: str  # pass, warn, fail
    reason: str  # "" for a plain pass
    score: float | None = None


@dataclass
class _Row:
    name: str
    anchor: str  # the item's section in the page
    cells: dict[str, Cell]

    def sort_key(self) -> tuple[int, int, str]:
        states = [cell.state for cell in self.cells.values()]
        return (-states.count(FAIL), -states.count(WARN), self.name)


@dataclass
class ChecksMatrix:
    """The matrix of a report, filled an item at a time."""

    rows: list[_Row] = field(default_factory=list)
    columns: dict[str, None] = field(default_factory=dict)  # in first-seen order

    def add(self, record: ItemRecord, anchor: str) -> None:
        cells = dict(_cells(record))
        if not cells:
            return
        for name in cells:
            self.columns.setdefault(name, None)
        self.rows.append(_Row(f"{record.recipe} / {record.item}", anchor, cells))

    def html(self) -> str:
        """The matrix as a section of the page; "" when no item has a check."""
        if not self.rows:
            return ""
        columns = list(self.columns)
        rows = sorted(self.rows, key=_Row.sort_key)
        head = "".join(f"<th>{_e(name)}</th>" for name in columns)
        body = "".join(_row_html(row, columns) for row in rows[:MAX_ROWS])
        failed = sum(1 for row in rows if any(c.state == FAIL for c in row.cells.values()))
        more = (
            f'<p class="time">The {len(rows) - MAX_ROWS} best items are not shown.</p>'
            if len(rows) > MAX_ROWS
            else ""
        )
        return (
            f'<h3>Checks</h3><p class="time">{_count(len(rows), "item")} × '
            f"{_count(len(columns), 'check')}; {failed} failing one or more, worst first. "
            "A cell's reason shows on hover; click ✗ or ! to read it.</p>"
            f'<div class="matrix"><table id="checks-matrix"><thead><tr><th>item</th>{head}'
            f"</tr></thead><tbody>{body}</tbody></table></div>{more}\n"
        )


def _cells(record: ItemRecord) -> Iterator[tuple[str, Cell]]:
    for made in record.transcriptions:
        where = "transcript" if made.primary else f"transcript {made.engine}"
        for check in made.expectations:
            yield f"{where} · {check.expect}", _cell(check)
    for task in record.tasks:
        for check in task.expectations:
            yield f"{task.task} · {check.expect}", _cell(check)


def _cell(check: ExpectationRecord) -> Cell:
    state = PASS if check.passed else (WARN if check.severity == "warn" else FAIL)
    score = check.score
    number = (
        float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None
    )
    # A judge says why in its own words (`reason`); other checks say why they failed.
    reason = check.reason or check.message
    return Cell(state, str(reason)[:MAX_REASON], None if number is None else float(number))


def _row_html(row: _Row, columns: list[str]) -> str:
    link = f'<a href="#{_e(row.anchor)}">{_e(row.name)}</a>'
    cells = "".join(_cell_html(row.cells.get(name), name) for name in columns)
    return f'<tr><td class="name">{link}</td>{cells}</tr>'


def _cell_html(cell: Cell | None, name: str) -> str:
    if cell is None:
        return '<td class="none" title="not checked for this item">–</td>'
    mark = _MARKS[cell.state]
    score = f" {cell.score:.3g}" if cell.score is not None else ""
    title = f"{name}: {cell.reason or 'passed'}"
    if cell.state == PASS or not cell.reason:
        return f'<td class="{cell.state}" title="{_e(title)}">{mark}{_e(score)}</td>'
    return (
        f'<td class="{cell.state}" title="{_e(title)}"><details><summary>{mark}{_e(score)}'
        f'</summary><span class="reason">{_e(cell.reason)}</span></details></td>'
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)

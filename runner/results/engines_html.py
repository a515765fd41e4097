"""The report's comparison of transcriptions: for each item, each engine of the
recipe's ``transcription:`` list (the primary first) with its word error rate, the
time it took and what it cost, so a team can see what a cheaper or local engine
would lose, item by item."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from runner.recipe.prices import format_usd
from runner.results.records import ItemRecord, TranscriptionRecord

MAX_ITEMS = 500  # items listed; the rest are counted

STYLE = """
.engines td.num{text-align:right}.engines tr.first td{border-top:2px solid #bbb}
.engines td.failed{color:#a11}
"""


@dataclass
class EnginesTable:
    """The comparison of a report, filled an item at a time."""

    rows: list[str] = field(default_factory=list)
    items: int = 0

    def add(self, record: ItemRecord, anchor: str) -> None:
        if not record.transcriptions:
            return
        self.items += 1
        if self.items > MAX_ITEMS:
            return
        name = f'<a href="#{_e(anchor)}">{_e(record.recipe)} / {_e(record.item)}</a>'
        for index, made in enumerate(record.transcriptions):
            first = ' class="first"' if index == 0 else ""
            self.rows.append(f"<tr{first}><td>{name if index == 0 else ''}</td>{_cells(made)}</tr>")

    def html(self) -> str:
        """The comparison as a section of the page; "" when no item was checked."""
        if not self.rows:
            return ""
        more = self.items - MAX_ITEMS
        rest = f'<p class="time">…and {more} more items (see run.json).</p>' if more > 0 else ""
        return (
            "<h3>Transcriptions</h3>"
            '<table class="engines" id="engines"><thead><tr><th>item</th><th>engine</th>'
            "<th>WER</th><th>time</th><th>cost</th><th>status</th></tr></thead>"
            f"<tbody>{''.join(self.rows)}</tbody></table>{rest}\n"
        )


def _cells(made: TranscriptionRecord) -> str:
    engine = made.engine + (" (primary)" if made.primary else "")
    wer = "–" if made.wer is None else f"{made.wer:.3f}"
    took = "reused" if made.reused else ("–" if made.seconds is None else f"{made.seconds:.1f} s")
    if made.cost_usd is None:
        cost = "unknown" if made.submitted else "–"
    else:
        cost = format_usd(made.cost_usd)
    state = "failed" if made.status == "failed" else "ok"
    status = made.error or next(
        (f"{e.expect}: {e.message}" for e in made.expectations if not e.passed), made.status
    )
    return (
        f'<td>{_e(engine)}</td><td class="num">{wer}</td><td class="num">{_e(took)}</td>'
        f'<td class="num">{_e(cost)}</td><td class="{state}">{_e(status)}</td>'
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)

"""Export tasks: the transcript itself written in a format, with no model.

Subtitles of a transcript that lives on AssemblyAI come from its ``/srt`` and ``/vtt``
endpoints, written as received; everything else, and subtitles of a transcript read
from a file or run ``--offline``, is built by :mod:`runner.transcript.exports`.
"""

from __future__ import annotations

from pathlib import Path

from runner.diagnostics import display_resolved
from runner.execute.expectations import expect
from runner.execute.services import TranscriptsApi
from runner.prompt.views import TaskResultView
from runner.recipe.model import ExportOptions, Task
from runner.results.outputs import contained, write_atomic
from runner.results.records import TaskRecord
from runner.transcript.captions import CaptionStyle
from runner.transcript.exports import SUBTITLE_FORMATS, ExportLayout, ExportProblem, export
from runner.transcript.model import Transcript


class Exporter:
    """Fetches subtitles from AssemblyAI where it has them; builds the rest."""

    def __init__(self, transcripts: TranscriptsApi, *, offline: bool = False) -> None:
        self.transcripts = transcripts
        self.offline = offline  # --offline sends nothing: subtitles are built here

    async def fetched(
        self, options: ExportOptions, transcript: Transcript, local: bool
    ) -> str | None:
        """AssemblyAI's own subtitles for a transcript it holds; None to build them here
        (also when the task asks for a layout its endpoints cannot give)."""
        if options.format not in SUBTITLE_FORMATS or local or self.offline or not transcript.id:
            return None
        if options.layout_only_built:
            return None
        return await self.transcripts.subtitles(
            transcript.id, options.format, options.chars_per_caption
        )


def caption_style(options: ExportOptions) -> CaptionStyle:
    """The recipe's caption layout, the broadcasters' defaults where it says nothing."""
    default = CaptionStyle()
    return CaptionStyle(
        chars_per_line=options.chars_per_line or default.chars_per_line,
        lines=options.lines_per_caption or default.lines,
        chars_per_caption=options.chars_per_caption,
        min_seconds=default.min_seconds if options.min_seconds is None else options.min_seconds,
        max_seconds=default.max_seconds if options.max_seconds is None else options.max_seconds,
        speakers=options.speakers,
    )


def write_export(
    task: Task,
    folder: Path,
    transcript: Transcript,
    fetched: str | None,
    title: str,
    record: TaskRecord,
) -> TaskResultView | None:
    """Write the export (``fetched`` as received, else built here) and fill ``record``;
    the result for dependents, or None when the transcript cannot be exported so. A
    failed download (``record.note`` says why) is built here too."""
    options = task.export
    assert options is not None, "write_export is for export tasks"
    if fetched is not None:
        text = fetched
        record.export_source = "assemblyai"
    else:
        layout = ExportLayout(options.speakers, options.paragraphs, options.timestamps)
        try:
            text = export(
                transcript,
                options.format,
                style=caption_style(options),
                layout=layout,
                title=title,
            )
        except ExportProblem as problem:
            record.fail(f"{record.note}; {problem}" if record.note else str(problem))
            return None
        record.export_source = "built"
    output = contained(folder, task.output)
    write_atomic(output, text)
    record.output = display_resolved(output)
    if task.expectations:
        expect(task, record, text, None, transcript.text)
    return TaskResultView.build(task.name, text, structured=False)

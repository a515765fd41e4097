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
from runner.results.manifest import TaskRecord
from runner.results.outputs import contained, write_atomic
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
        """AssemblyAI's own subtitles for a transcript it holds; None to build them here."""
        if options.format not in SUBTITLE_FORMATS or local or self.offline or not transcript.id:
            return None
        return await self.transcripts.subtitles(
            transcript.id, options.format, options.chars_per_caption
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
    the result for dependents, or None when the transcript cannot be exported so."""
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
                chars_per_caption=options.chars_per_caption,
                layout=layout,
                title=title,
            )
        except ExportProblem as problem:
            record.fail(str(problem))
            return None
        record.export_source = "built"
    output = contained(folder, task.output)
    write_atomic(output, text)
    record.output = display_resolved(output)
    if task.expectations:
        expect(task, record, text, None, transcript.text)
    return TaskResultView.build(task.name, text, structured=False)

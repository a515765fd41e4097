"""AssemblyAI's speech understanding results in templates: entities, sentiment, chapters,
key phrases, the summary, PII redaction and translations, under their documented names,
shown by `render` on a transcript that has them (tests/fixtures/README.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli

from runner.errors import EXIT_FAILED, EXIT_OK
from runner.prompt.views import TranscriptView
from runner.transcript.model import Transcript
from runner.transcript.understanding import understanding_of

ROOT = Path(__file__).resolve().parent.parent
UNDERSTOOD = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-understanding.json"
PLAIN = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"

PROMPT = (
    "Places: {{ transcript.entities | selectattr('entity_type', 'eq', 'location')"
    " | map(attribute='text') | join(', ') }}\n"
    "{% for s in transcript.sentiment_analysis %}"
    "{{ s.sentiment }} ({{ s.confidence | round(2) }}): {{ s.text }}\n"
    "{% endfor %}{% for c in transcript.chapters %}"
    "[{{ c.start | timestamp }}] {{ c.gist }}: {{ c.headline }}\n"
    "{% endfor %}Key phrases: {% for p in transcript.key_phrases[:3] %}"
    "{{ p.text }} x{{ p.count }} at {{ p.timestamps[0].start | timestamp }}"
    "{{ ', ' if not loop.last }}{% endfor %}.\n"
    "Redacted: {{ transcript.redacted }}. Spanish: {{ transcript.translations.es }}\n"
)
RECIPE = """\
version: 1
name: understood
inputs: [{transcript_file: saved.json}]
tasks:
  brief:
    prompt_file: brief.md.j2
"""


def write(folder: Path, recipe: str = RECIPE, prompt: str = PROMPT) -> None:
    (folder / "recipe.yaml").write_text(recipe)
    (folder / "brief.md.j2").write_text(prompt)


def test_render_shows_each_result_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    shutil.copy(UNDERSTOOD, tmp_path / "saved.json")
    write(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("render", "recipe.yaml", "--format", "json")
    assert code == EXIT_OK, err
    prompt = json.loads(out)["items"][0]["tasks"][0]["body"]["messages"][0]["content"]
    assert prompt.splitlines() == [
        "Places: Canada, the US, Maine, Maryland, Minnesota, the US",
        "NEGATIVE (0.82): Smoke from hundreds of wildfires in Canada is triggering air "
        "quality alerts throughout the US.",
        "[00:00:00] Smoggy air quality alerts across US: Smoke from hundreds of wildfires in "
        "Canada is triggering air quality alerts across US",
        "Key phrases: air quality alerts x1 at 00:00:03, wide ranging air quality "
        "consequences x1 at 00:03:55, more wildfires x1 at 00:03:50.",
        "Redacted: True. Spanish: El humo de cientos de incendios forestales en Canadá está "
        "provocando alertas de calidad del aire en todo Estados Unidos.",
    ]


def test_a_transcript_without_them_has_them_empty() -> None:
    found = understanding_of(json.loads(PLAIN.read_text()))
    assert (found.entities, found.chapters, found.key_phrases) == ((), (), ())
    assert (found.summary, found.redacted, dict(found.translations)) == (None, False, {})


def test_a_malformed_result_is_a_located_template_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    data = json.loads(UNDERSTOOD.read_text())
    data["entities"][0]["start"] = "soon"
    (tmp_path / "saved.json").write_text(json.dumps(data))
    write(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("render", "recipe.yaml")
    assert code == EXIT_FAILED
    assert "brief.md.j2:1:1: $.tasks.brief.prompt_file: template failed: ValueError: " in err
    assert "field 'entities[0].start' must be an integer (milliseconds), got str" in err
    assert "Traceback" not in err


def test_a_name_that_is_not_a_result_is_said_with_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    shutil.copy(UNDERSTOOD, tmp_path / "saved.json")
    wrong = PROMPT.replace("transcript.sentiment_analysis", "transcript.sentiment_analysis_results")
    write(tmp_path, prompt=wrong)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("validate", "recipe.yaml")
    assert code != EXIT_OK
    assert "sentiment_analysis" in out


def test_the_results_are_read_once() -> None:
    transcript = Transcript.from_body(UNDERSTOOD.read_bytes())
    view = TranscriptView.build(transcript)
    assert view.chapters is view.chapters
    assert view.entities[0].text == "Canada"

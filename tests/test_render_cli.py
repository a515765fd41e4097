"""`transcript-runner render`: the exact requests, offline, for local transcripts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RunCli

ROOT = Path(__file__).resolve().parent.parent
WILDFIRES = ROOT / "tests" / "fixtures" / "assemblyai" / "transcript-wildfires.json"


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "recipes"
    shutil.copytree(ROOT / "recipes", target)
    monkeypatch.chdir(tmp_path)
    return target


def test_render_prints_the_real_prompts_of_the_wildfires_fixture(
    recipes: Path, run_cli: RunCli
) -> None:
    code, out, err = run_cli("render", "recipes/summaries.yaml", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    (item,) = report["items"]
    assert item["item"] == "wildfires"
    bodies = {t["task"]: t["body"] for t in item["tasks"]}
    assert list(bodies) == ["bullets", "paragraph", "headline", "conversational", "custom_format"]
    text = json.loads(WILDFIRES.read_text())["text"]
    bullets = bodies["bullets"]
    assert bullets["model"] == "claude-sonnet-4-6"
    assert bullets["max_tokens"] == 1000
    assert bullets["temperature"] == 0
    assert bullets["messages"] == [
        {
            "role": "user",
            "content": "Provide a brief summary of the transcript in bullet point format.\n"
            "Focus on the key points and main takeaways.\n\n"
            f"Transcript: {text}\n",
        }
    ]
    assert bodies["headline"]["max_tokens"] == 100


def test_render_text_elides_the_middle_unless_full(recipes: Path, run_cli: RunCli) -> None:
    code, short, _ = run_cli("render", "recipes/summaries.yaml", "--task", "bullets")
    assert code == 0
    assert "━━ wildfires · bullets ━" in short
    assert "characters not shown; --full prints everything" in short
    code, full, _ = run_cli("render", "recipes/summaries.yaml", "--task", "bullets", "--full")
    assert code == 0
    assert json.loads(WILDFIRES.read_text())["text"] in full


def test_structured_task_sends_response_format(recipes: Path, run_cli: RunCli) -> None:
    code, out, _ = run_cli("render", "recipes/action-items.yaml", "--format", "json")
    assert code == 0
    body = json.loads(out)["items"][0]["tasks"][0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "action_items"
    assert body["fallbacks"] == [{"model": "claude-sonnet-4-6"}]
    assert "for the project team." in body["messages"][0]["content"]


def test_lemur_task_renders_the_lemur_body(recipes: Path, run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "render", "recipes/lemur-locations.yaml", "--task", "locations", "--format", "json"
    )
    assert code == 0
    task = json.loads(out)["items"][0]["tasks"][0]
    assert task["path"] == "/lemur/v3/generate/task"
    assert task["body"] == {
        "final_model": "anthropic/claude-3-7-sonnet-20250219",
        "prompt": "List all the locations affected by wildfires.",
        "transcript_ids": ["e5a56f4f-b658-44b0-925a-f7d761ec0d96"],
        "context": "This is an interview about wildfires.",
        "max_output_size": 3000,
        "temperature": 0,
    }


def test_url_inputs_need_a_transcript(recipes: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("render", "recipes/meeting-notes.yaml")
    assert code == 2
    assert out == ""
    assert err == (
        "error: nothing to render:\n"
        "  wildfires-interview: no local transcript for url 'https://assembly.ai/wildfires.mp3'; "
        "pass --transcript FILE, or run the recipe once so its transcript is stored\n"
    )


def test_transcript_option_renders_chains_with_placeholders(recipes: Path, run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "render",
        "recipes/meeting-notes.yaml",
        "--transcript",
        str(WILDFIRES),
        "--task",
        "headline",
        "--format",
        "json",
    )
    assert code == 0
    body = json.loads(out)["items"][0]["tasks"][0]["body"]
    assert body["messages"] == [
        {
            "role": "user",
            "content": "One headline for this summary: "
            "[the reply of task 'summary' appears here when the recipe runs]",
        },
    ]


def test_unknown_item_and_task_suggest(recipes: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli("render", "recipes/summaries.yaml", "--item", "wildfire")
    assert code == 2
    assert err == "error: no item named 'wildfire'; did you mean 'wildfires'?; items: wildfires\n"
    code, _, err = run_cli("render", "recipes/summaries.yaml", "--task", "headlines")
    assert code == 2
    assert err.startswith("error: no task named 'headlines'; did you mean 'headline'?")


def test_invalid_recipe_exits_3_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{url: 'https://x.test/a.mp3'}]\n"
        "tasks:\n  s:\n    prompt: '{{ vars.nope }}'\n"
    )
    code, _, err = run_cli("render", "r.yaml")
    assert code == 3
    assert "Traceback" not in err
    assert err == (
        "r.yaml:6:22: $.tasks.s.prompt: undefined variable 'vars.nope'; the recipe defines no "
        "vars (add a `vars:` block)\n"
    )

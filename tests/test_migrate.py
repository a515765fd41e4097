"""``transcript-runner migrate``: LeMUR tasks rewritten as Gateway tasks, in place,
keeping comments and layout; the result validates and sends the same content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import RunCli

from runner.recipe.migration import migrate_text

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "recipes" / "lemur-locations.yaml"


def copy_shipped(folder: Path) -> Path:
    shutil.copytree(REPO / "recipes" / "transcripts", folder / "transcripts")
    recipe = folder / "lemur-locations.yaml"
    shutil.copy(SHIPPED, recipe)
    return recipe


def test_the_shipped_lemur_recipe_migrates_to_one_that_validates(
    tmp_path: Path, run_cli: RunCli
) -> None:
    recipe = copy_shipped(tmp_path)
    before = recipe.read_text()
    code, out, err = run_cli("migrate", str(recipe))
    assert code == 0, out + err
    assert "moved 'locations' to the LLM Gateway" in out
    after = recipe.read_text()
    # Comments and the untouched task are as they were.
    assert after.startswith(before.split("tasks:")[0])
    assert after.split("  locations_gateway:")[1] == before.split("  locations_gateway:")[1]
    assert "api: lemur" not in after
    code, out, err = run_cli("validate", "--strict", str(recipe))
    assert code == 0, out + err  # no deprecation warning left either


def test_the_migrated_task_sends_what_lemur_was_sent(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = copy_shipped(tmp_path)
    assert run_cli("migrate", str(recipe)).exit_code == 0
    code, out, err = run_cli("render", str(recipe), "--task", "locations", "--format", "json")
    assert code == 0, err
    (item,) = json.loads(out)["items"]
    (task,) = item["tasks"]
    body = task["body"]
    transcript = json.loads((tmp_path / "transcripts" / "wildfires.json").read_text())["text"]
    assert body["model"] == "claude-sonnet-4-6"  # anthropic/claude-3-7-sonnet's successor
    assert body["max_tokens"] == 3000  # was max_output_size
    assert body["temperature"] == 0
    system, user = body["messages"]
    assert system == {"role": "system", "content": "Context: This is an interview about wildfires."}
    assert user["content"] == (
        f"List all the locations affected by wildfires.\n\nTranscript: {transcript}\n"
    )
    # The same content as the task already on the Gateway beside it.
    code, out, _ = run_cli("render", str(recipe), "--task", "locations_gateway", "--format", "json")
    gateway = json.loads(out)["items"][0]["tasks"][0]["body"]
    assert gateway["messages"] == body["messages"]


def test_check_prints_a_diff_and_changes_nothing(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = copy_shipped(tmp_path)
    before = recipe.read_text()
    code, out, _ = run_cli("migrate", "--check", str(recipe))
    assert code == 1
    assert "-    api: lemur\n" in out
    assert "+    model: claude-sonnet-4-6\n" in out
    assert recipe.read_text() == before
    assert run_cli("migrate", str(recipe)).exit_code == 0
    code, out, _ = run_cli("migrate", "--check", str(recipe))
    assert (code, out.strip()) == (0, "1 recipe(s): no LeMUR task to move")


def test_input_text_a_mapping_context_and_a_prompt_file() -> None:
    migrated = migrate_text(
        "version: 1\nname: x\ninputs: [{url: 'https://x/a.mp3'}]\ntasks:\n"
        "  turns:  # speakers\n"
        "    api: lemur\n"
        "    prompt: Who worries most?\n"
        "    input_text: '{{ transcript.utterances | join(\"\\n\") }}'\n"
        "    context: {topic: wildfires}\n"
        "    final_model: anthropic/claude-3-5-haiku-20241022\n"
        "  filed:\n"
        "    api: lemur\n"
        "    prompt_file: prompts/ask.md.j2\n"
    )
    assert migrated.changed == ["turns"]
    assert "turns:  # speakers\n    model: claude-haiku-4-5-20251001\n" in migrated.text
    assert 'system: \'Context: {"topic": "wildfires"}\'' in migrated.text
    assert '      Who worries most?\n\n      {{ transcript.utterances | join("\\n") }}\n' in (
        migrated.text
    )
    (left,) = migrated.left
    assert left.startswith("task 'filed': its prompt is in a prompt_file")


def test_a_task_left_for_a_person_fails_the_command(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "ask.md.j2").write_text("Where?")
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: x\ninputs: [{url: 'https://x/a.mp3'}]\ntasks:\n"
        "  filed: {api: lemur, prompt_file: prompts/ask.md.j2}\n"
    )
    code, _, err = run_cli("migrate", str(tmp_path / "r.yaml"))
    assert code == 1
    assert "left task 'filed'" in err
    assert "end that file with `Transcript: {{ transcript.text }}`" in err

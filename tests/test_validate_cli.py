"""The ``validate`` and ``schema`` commands as CI and people call them: formats, exits, paths."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RunCli

REPO = Path(__file__).parent.parent
CASES = Path(__file__).parent / "validation_cases"

VALID_RECIPE = """\
version: 1
name: ok
inputs:
  - transcript_id: 6c1b8a4e-1f4e-4c2e-9d2a-3f6f0e8b1a77
tasks:
  summary:
    prompt: "Summarize: {{ transcript.text }}"
"""

INVALID_RECIPE = VALID_RECIPE.replace("    prompt:", "    modle: gpt-4.1\n    prompt:")

DEPRECATED_OPTION = VALID_RECIPE.replace("tasks:", "transcription:\n  summarization: true\ntasks:")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def in_case(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work inside the case with one error and one warning (a LeMUR task with json_schema)."""
    case = CASES / "invalid" / "lemur-gateway-option"
    monkeypatch.chdir(case)
    return case


# --- report formats -------------------------------------------------------------------


def test_json_format(in_case: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", "--format", "json", "recipe.yaml")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["files_checked"] == 1
    assert report["errors"] == 1
    assert report["warnings"] == 1
    assert report["valid"] is False
    first, second = report["diagnostics"]
    assert set(first) == {"file", "line", "column", "path", "message", "severity"}
    assert (first["line"], first["column"], first["severity"]) == (7, 5, "warning")
    assert first["path"] == "$.tasks.locations.api"
    assert second == {
        "file": "recipe.yaml",
        "line": 9,
        "column": 5,
        "path": "$.tasks.locations.json_schema",
        "message": "'json_schema' is an LLM Gateway option; LeMUR tasks (api: lemur) "
        "do not support it",
        "severity": "error",
    }


def test_json_format_when_valid(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = _write(tmp_path, "ok.yaml", VALID_RECIPE)
    result = run_cli("validate", "--format", "json", str(recipe))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "files_checked": 1,
        "errors": 0,
        "warnings": 0,
        "valid": True,
        "diagnostics": [],
    }


def test_github_format(in_case: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", "--format", "github", "recipe.yaml")
    assert result.exit_code == 3
    warning, error, summary = result.stdout.splitlines()
    assert error == (
        "::error file=recipe.yaml,line=9,col=5,title=transcript-runner error::"
        "$.tasks.locations.json_schema: 'json_schema' is an LLM Gateway option; "
        "LeMUR tasks (api: lemur) do not support it"
    )
    assert warning.startswith(
        "::warning file=recipe.yaml,line=7,col=5,title=transcript-runner warning::"
        "$.tasks.locations.api: AssemblyAI deprecated LeMUR"
    )
    assert summary == "1 error, 1 warning in 1 recipe"


def test_github_format_chosen_on_github_actions(
    in_case: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_cli("validate", "recipe.yaml")
    assert result.stdout.startswith("::warning file=recipe.yaml,line=7,col=5,")
    assert "::error file=recipe.yaml,line=9,col=5," in result.stdout
    # an explicit format still wins
    assert run_cli("validate", "--format", "text", "recipe.yaml").stdout.startswith(
        "recipe.yaml:7:5: warning: "
    )


def test_github_format_escapes_line_breaks_and_percent() -> None:
    from runner.diagnostics import Diagnostic

    diagnostic = Diagnostic("a,b:c.yaml", 3, 0, "$.x", "100% wrong\nsecond line")
    assert diagnostic.to_github() == (
        "::error file=a%2Cb%3Ac.yaml,line=3,title=transcript-runner error::"
        "$.x: 100%25 wrong%0Asecond line"
    )


# --- warnings and --strict --------------------------------------------------------------


def test_deprecated_option_is_a_warning(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = _write(tmp_path, "old.yaml", DEPRECATED_OPTION)
    result = run_cli("validate", str(recipe))
    assert result.exit_code == 0
    assert ":6:3: warning: $.transcription.summarization: 'summarization' is deprecated" in (
        result.stdout
    )
    assert result.stdout.endswith("1 recipe valid (1 warning)\n")


def test_strict_turns_warnings_into_errors(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = _write(tmp_path, "old.yaml", DEPRECATED_OPTION)
    result = run_cli("validate", "--strict", str(recipe))
    assert result.exit_code == 3
    assert "warning:" not in result.stdout
    assert "$.transcription.summarization: 'summarization' is deprecated" in result.stdout
    assert result.stdout.endswith("1 error, 0 warnings in 1 recipe\n")


MIGRATE_HEAD = """\
version: 1
name: migrate
inputs: [{transcript_file: wildfires.json}]
tasks:
  locations:
"""

LEMUR_TASK = (
    MIGRATE_HEAD
    + """\
    api: lemur
    prompt: List all the locations affected by wildfires.
    context: This is an interview about wildfires.
    final_model: anthropic/claude-3-7-sonnet-20250219
    max_output_size: 3000
    temperature: 0
"""
)

# The same task after doing exactly what the warning says, step by step.
MIGRATED_TASK = (
    MIGRATE_HEAD
    + """\
    prompt: |
      List all the locations affected by wildfires.

      Transcript: {{ transcript.text }}
    system: "Context: This is an interview about wildfires."
    max_tokens: 3000
    model: claude-sonnet-4-6
    temperature: 0
"""
)


def test_following_the_lemur_warning_literally_gives_a_task_that_validates(
    tmp_path: Path, run_cli: RunCli
) -> None:
    # The shipped LeMUR task once got advice that, followed, failed validate: it left
    # max_output_size (LeMUR only) and threw the context away.
    (tmp_path / "wildfires.json").write_text(
        (Path(__file__).parent.parent / "recipes" / "transcripts" / "wildfires.json").read_text()
    )
    result = run_cli("validate", str(_write(tmp_path, "lemur.yaml", LEMUR_TASK)))
    assert result.exit_code == 0
    for step in (
        "remove `api: lemur` and `final_model`",
        'turn `context: ...` into `system: "Context: ..."`',
        "write `max_output_size` as `max_tokens: 3000`",
        "set `model: claude-sonnet-4-6`",
        "end the prompt with the transcript: `Transcript: {{ transcript.text }}`",
    ):
        assert step in result.stdout
    migrated = run_cli("validate", "--strict", str(_write(tmp_path, "gw.yaml", MIGRATED_TASK)))
    assert migrated.exit_code == 0, migrated.stdout
    assert migrated.stdout.endswith("1 recipe valid\n")


# --- which files --------------------------------------------------------------------------


def test_folder_is_searched_recursively(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "team/a.yaml", VALID_RECIPE)
    _write(tmp_path, "team/nested/deeper/b.yml", VALID_RECIPE)
    _write(tmp_path, "team/notes.txt", "not a recipe")
    # outputs and hidden folders are never recipes, even when they look like them
    _write(tmp_path, "team/out/ok/copy.yaml", INVALID_RECIPE)
    _write(tmp_path, "team/.cache/c.yaml", INVALID_RECIPE)
    _write(tmp_path, "team/nested/.git/d.yaml", INVALID_RECIPE)
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", "team")
    assert (result.exit_code, result.stdout) == (0, "2 recipes valid\n")


def test_several_files_are_reported_together(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "a.yaml", VALID_RECIPE)
    _write(tmp_path, "b.yaml", INVALID_RECIPE)
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", "a.yaml", "b.yaml")
    assert result.exit_code == 3
    assert result.stdout == (
        "b.yaml:7:5: $.tasks.summary.modle: unknown key 'modle'; did you mean 'model'?\n"
        "1 error, 0 warnings in 2 recipes\n"
    )


def test_default_is_the_recipes_folder(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "recipes/a.yaml", VALID_RECIPE)
    monkeypatch.chdir(tmp_path)
    assert run_cli("validate").stdout == "1 recipe valid\n"


def test_missing_path_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", "nope.yaml")
    assert result.exit_code == 2
    assert result.stderr == "error: nope.yaml: no such recipe file or folder\n"
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_no_recipes_folder_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate")
    assert result.exit_code == 2
    assert "no recipes/ folder here" in result.stderr
    assert "transcript-runner validate path/to/recipe.yaml" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_format_is_a_usage_error(in_case: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", "--format", "xml", "recipe.yaml")
    assert result.exit_code == 2
    assert "'xml' is not one of 'text', 'json', 'github'" in result.stderr


def test_unreadable_bytes_are_reported_not_raised(tmp_path: Path, run_cli: RunCli) -> None:
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes(VALID_RECIPE.replace("ok", "caf\xe9").encode("latin-1"))
    result = run_cli("validate", str(recipe))
    assert result.exit_code == 3
    assert "file is not UTF-8 text" in result.stdout
    assert "Traceback" not in result.output


# --- the other commands and options -----------------------------------------------------


def test_schema_command_prints_the_shipped_schema(run_cli: RunCli) -> None:
    result = run_cli("schema")
    assert result.exit_code == 0
    shipped = (REPO / "schemas" / "recipe.schema.json").read_text(encoding="utf-8")
    assert json.loads(result.stdout) == json.loads(shipped)
    assert result.stdout == shipped


def test_version(run_cli: RunCli) -> None:
    from runner import __version__

    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"transcript-runner, version {__version__}\n"


def test_help_shows_examples_and_exit_codes(run_cli: RunCli) -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "transcript-runner validate" in result.stdout
    assert "3 invalid recipe" in result.stdout
    for command in ("validate", "schema"):
        assert command in result.stdout


def test_validate_help_shows_examples(run_cli: RunCli) -> None:
    result = run_cli("validate", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout
    assert "--format [text|json|github]" in result.stdout
    assert "--strict" in result.stdout


def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_python_dash_m_runner(tmp_path: Path) -> None:
    result = _python(["-m", "runner", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "validate" in result.stdout


@pytest.mark.slow
def test_validate_does_not_import_the_http_stack() -> None:
    # `validate` runs on every pull request; it must stay offline and start fast.
    code = (
        "import sys\n"
        "from runner.cli import main\n"
        "try:\n"
        "    main(['validate', '--format', 'json', 'recipes'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp')\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    result = _python(["-c", code], REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("ok")


def test_a_template_bomb_is_an_invalid_recipe_in_a_moment(tmp_path: Path, run_cli: RunCli) -> None:
    """Untrusted pull requests: `validate` refuses the bomb (exit 3), it does not run it."""
    recipe = _write(
        tmp_path,
        "bomb.yaml",
        "version: 1\nname: bomb\ninputs: [{url: 'https://example.com/a.mp3'}]\n"
        "tasks:\n  s:\n    prompt: \"{{ 'x'|center(10**9) }} {{ transcript.text }}\"\n",
    )
    started = time.perf_counter()
    result = run_cli("validate", str(recipe))
    assert time.perf_counter() - started < 10
    assert result.exit_code == 3
    assert "center() with a size over 100,000 is too large for a template" in result.stdout
    assert "bomb.yaml:6:" in result.stdout


def test_unguarded_utterances_without_speaker_labels_warn(tmp_path: Path, run_cli: RunCli) -> None:
    """Audio this recipe transcribes gets no utterances without speaker_labels."""
    prompt = "    prompt: '{{ transcript.utterances | dialogue }}'\n"
    base = "version: 1\nname: d\ninputs: [{url: 'https://example.com/a.mp3'}]\ntasks:\n  s:\n"
    unguarded = _write(tmp_path, "d.yaml", base + prompt)
    result = run_cli("validate", str(unguarded))
    assert result.exit_code == 0
    assert "warning: $.tasks.s.prompt: this prompt reads transcript.utterances" in result.stdout
    guarded = "    prompt: '{% if transcript.utterances %}{{ transcript.utterances | dialogue }}" \
        "{% else %}{{ transcript.text }}{% endif %}'\n"  # fmt: skip
    assert (
        "warning" not in run_cli("validate", str(_write(tmp_path, "g.yaml", base + guarded))).stdout
    )
    labelled = base.replace("tasks:", "transcription: {speaker_labels: true}\ntasks:") + prompt
    assert "warning" not in run_cli("validate", str(_write(tmp_path, "l.yaml", labelled))).stdout


URL_RECIPE = "version: 1\nname: t\ninputs: [{url: 'https://example.com/a.mp3'}]\n"
PROMPT_TASK = "{prompt: '{{ transcript.text }}'}"


@pytest.mark.parametrize(
    ("options", "task", "expected"),
    [
        ("{word_boost: [Acme]}", PROMPT_TASK, "'word_boost' was removed from AssemblyAI's API"),
        ("{speech_model: best}", PROMPT_TASK, "AssemblyAI requires `speech_models`"),
        ("{webhook_url: 'mailto:ops@example.com'}", PROMPT_TASK, "is not an http(s) URL"),
        ("{}", "{api: lemur, prompt: p, temperature: 1.5}", "from 0 to 1, not 1.5"),
        ("{}", "{api: lemur, prompt: p, final_model: anthropic/claude-9}", "final_model"),
        ("{}", "{prompt: p, tools: [{type: function, function: {name: f}}]}", "parameters"),
    ],
)
def test_what_the_api_refuses_is_an_error(
    tmp_path: Path, run_cli: RunCli, options: str, task: str, expected: str
) -> None:
    """What AssemblyAI's own specs refuse fails validate (exit 3), before it is paid for."""
    text = URL_RECIPE + f"transcription: {options}\ntasks:\n  s: {task}\n"
    result = run_cli("validate", str(_write(tmp_path, "t.yaml", text)))
    assert result.exit_code == 3, result.output
    assert expected in result.stdout


def test_a_folder_without_recipes_is_a_usage_error(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli("validate", str(tmp_path / "empty"))
    assert code == 2
    assert "no recipes in" in err
    assert "0 recipes valid" not in out


def test_validate_refuses_a_doubling_template_with_a_located_message(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pull requests run validate on recipes nobody has read: a text doubled forty
    times is refused at its line, not after filling gigabytes (tracemalloc's count)."""
    import tracemalloc

    bomb = (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"
    )
    _write(tmp_path, "bomb.yaml", VALID_RECIPE.replace('"Summarize:', f'"{bomb} Summarize:'))
    monkeypatch.chdir(tmp_path)
    tracemalloc.start()
    try:
        code, out, err = run_cli("validate", "bomb.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 3, out + err
    assert "bomb.yaml:" in out + err
    assert "more than 5,000,000 characters" in out + err
    assert "Traceback" not in out + err
    assert peak < 200 * 2**20

"""The committed transcription schema: valid, useful to recipe editors, and up to date."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "schemas" / "transcription.schema.json"
SCRIPT = REPO_ROOT / "scripts" / "generate_transcription_schema.py"
SPEC_PATH = Path(__file__).resolve().parents[1] / "vendor" / "assemblyai" / "openapi.yml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema)


def failing_keywords(validator: Draft202012Validator, block: dict[str, Any]) -> set[str]:
    """The JSON Schema keywords (``type``, ``enum``, ...) that ``block`` violates."""
    keywords: set[str] = set()
    for error in validator.iter_errors(block):
        keywords.add(str(error.validator))
        keywords.update(str(sub.validator) for sub in error.context or ())
    return keywords


def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "Do not edit by hand" in schema["$comment"]


def test_realistic_block_validates(validator: Draft202012Validator) -> None:
    block = {
        "speech_models": ["universal-3-5-pro", "universal-2"],
        "speaker_labels": True,
        "language_code": "en_us",
        "redact_pii": True,
        "redact_pii_policies": ["person_name"],
        "custom_spelling": [{"from": ["dicarlo"], "to": "DiCarlo"}],
    }
    assert list(validator.iter_errors(block)) == []


def test_schema_examples_validate(schema: dict[str, Any], validator: Draft202012Validator) -> None:
    assert schema["examples"]
    for example in schema["examples"]:
        assert list(validator.iter_errors(example)) == []


def test_norwegian_language_code_survives_yaml(
    schema: dict[str, Any], validator: Draft202012Validator
) -> None:
    # YAML 1.1 reads a bare `no` as False; the generator must keep the language code.
    schema_enum = schema["$defs"]["TranscriptLanguageCode"]["enum"]
    assert "no" in schema_enum
    assert False not in schema_enum
    assert list(validator.iter_errors({"language_code": "no"})) == []


@pytest.mark.parametrize(
    ("block", "keyword"),
    [
        pytest.param({"speaker_label": True}, "additionalProperties", id="misspelled-option"),
        pytest.param({"speaker_labels": "yes"}, "type", id="wrong-type"),
        pytest.param({"redact_pii_policies": ["shoe_size"]}, "enum", id="unknown-pii-policy"),
        pytest.param({"content_safety_confidence": 10}, "minimum", id="below-minimum"),
        pytest.param({"audio_url": "https://example.com/a.mp3"}, "additionalProperties", id="url"),
    ],
)
def test_invalid_blocks_fail(
    validator: Draft202012Validator, block: dict[str, Any], keyword: str
) -> None:
    assert keyword in failing_keywords(validator, block)


def test_runner_supplied_options_are_not_required(schema: dict[str, Any]) -> None:
    assert "required" not in schema
    assert "speech_models" in schema["properties"]
    assert "audio_url" not in schema["properties"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "option",
    ["summarization", "word_boost", "boost_param", "speech_model", "auto_chapters", "topics"],
)
def test_deprecated_options_say_what_to_use_instead(schema: dict[str, Any], option: str) -> None:
    prop = schema["properties"][option]
    assert prop["deprecated"] is True
    assert prop["x-replacement"].strip()


def test_every_deprecated_option_has_a_replacement(schema: dict[str, Any]) -> None:
    for name, prop in schema["properties"].items():
        if prop.get("deprecated"):
            assert prop.get("x-replacement", "").strip(), name
        else:
            assert "x-replacement" not in prop, name


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def spec_path() -> Path:
    """The vendored spec: every clone has it, so these tests never skip."""
    assert SPEC_PATH.is_file(), f"the vendored spec is missing: {SPEC_PATH}"
    return SPEC_PATH


@pytest.mark.slow
def test_committed_schema_is_up_to_date(spec_path: Path) -> None:
    result = run_script("--check", "--spec", spec_path, "--out", SCHEMA_PATH)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_check_reports_a_stale_schema(spec_path: Path, tmp_path: Path) -> None:
    stale = tmp_path / "transcription.schema.json"
    stale.write_text(SCHEMA_PATH.read_text(encoding="utf-8").replace("Speaker labels", "Spkr"))
    result = run_script("--check", "--spec", spec_path, "--out", stale)
    assert result.returncode == 1
    assert "out of date" in result.stderr

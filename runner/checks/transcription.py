"""The ``transcription:`` options that a JSON Schema cannot judge: options AssemblyAI
removed, and what a local engine (on this machine) takes and cannot do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from runner.diagnostics import Diagnostic
from runner.recipe.document import Document, KeyPath
from runner.recipe.model import InputKind, Recipe, TaskApi
from runner.recipe.schema import transcription_options_schema
from runner.recipe.transcriptions import blocks


def check_transcription(doc: Document) -> list[Diagnostic]:
    """What AssemblyAI's spec refuses that the generated schema lets through: options
    removed from the API, ``speech_model`` without ``speech_models`` (the list is
    required now), a webhook that is no web URL; in each AssemblyAI block."""
    found: list[Diagnostic] = []
    for path, options in blocks(doc.data):
        if "engine" not in options:
            found += _assemblyai_options(doc, path, options)
    return found


def _assemblyai_options(
    doc: Document, path: KeyPath, options: Mapping[str, Any]
) -> list[Diagnostic]:
    found = [
        doc.diagnostic(
            (*path, key),
            f"{key!r} was removed from AssemblyAI's API, which refuses it now; "
            f"{_removed_hint(key)}",
        )
        for key in options
        if _removed_option(key)
    ]
    if "speech_model" in options and "speech_models" not in options:
        found.append(
            doc.diagnostic(
                (*path, "speech_model"),
                "AssemblyAI requires `speech_models` (a list in priority order) now; replace "
                "`speech_model` with e.g. `speech_models: [universal-3-5-pro, universal-2]`",
            )
        )
    webhook = options.get("webhook_url")
    if isinstance(webhook, str) and urlparse(webhook).scheme not in ("http", "https"):
        found.append(
            doc.diagnostic(
                (*path, "webhook_url"),
                f"webhook_url {webhook!r} is not an http(s) URL AssemblyAI can call",
                key=False,
            )
        )
    return found


def _removed_option(key: str) -> bool:
    prop = transcription_options_schema().get("properties", {}).get(key, {})
    return bool(prop.get("x-removed"))


def _removed_hint(key: str) -> str:
    prop = transcription_options_schema().get("properties", {}).get(key, {})
    return str(prop.get("x-replacement") or "remove it")


_ENGINE_KEYS = {
    "faster-whisper": ("beam_size", "compute_type", "vad_filter"),
    "openai-compatible": ("base_url", "api_key_env"),
}


def _engine_keys(doc: Document, path: KeyPath, options: Mapping[str, Any]) -> list[Diagnostic]:
    """Each engine's own keys, and `base_url` that a server engine needs."""
    engine = str(options["engine"])
    found = [
        doc.diagnostic(
            (*path, key),
            f"{key!r} applies to engine {other} only, not {engine}; remove it",
        )
        for other, keys in _ENGINE_KEYS.items()
        if other != engine
        for key in keys
        if key in options
    ]
    if engine == "openai-compatible" and "base_url" not in options:
        found.append(
            doc.diagnostic(
                (*path, "engine"),
                "engine openai-compatible needs `base_url`: the speech server's URL, up to "
                "and including /v1",
                key=False,
            )
        )
    return found


def check_local_engine(doc: Document, recipe: Recipe) -> list[Diagnostic]:
    """What a transcript made on this machine cannot do: AssemblyAI never saw it, so
    it has no URL or transcript id to transcribe or fetch, and no id to inject or to
    give LeMUR."""
    found: list[Diagnostic] = []
    for path, options in blocks(doc.data):
        if "engine" in options:
            found += _engine_keys(doc, path, options)
    engines = [t.local_engine for t in recipe.transcriptions if t.local_engine is not None]
    if engines:
        found += _audio_files_only(doc, recipe, engines[0].engine)
    engine = recipe.local_engine
    if engine is None:
        return found
    for task in recipe.tasks.values():
        lemur = task.api is TaskApi.LEMUR and (task.lemur is None or task.lemur.input_text is None)
        if lemur or task.inject_transcript:
            key = "api" if lemur else "inject_transcript"
            found.append(
                doc.diagnostic(
                    ("tasks", task.name, key),
                    f"`{key}: {'lemur' if lemur else 'true'}` sends AssemblyAI the transcript's "
                    f"id, and a transcript made by engine {engine.engine} has none; put the "
                    "text in the prompt ({{ transcript.text }}) instead",
                )
            )
    return found


def _audio_files_only(doc: Document, recipe: Recipe, engine: str) -> list[Diagnostic]:
    """A transcription on this machine needs the audio here: no URL, no transcript id."""
    return [
        doc.diagnostic(
            ("inputs", spec.index),
            f"engine {engine} transcribes local audio files; a {spec.kind.value} input "
            "needs AssemblyAI: give the audio as a `file` input, or remove `engine`",
        )
        for spec in recipe.inputs
        if spec.kind in (InputKind.URL, InputKind.TRANSCRIPT_ID)
    ]

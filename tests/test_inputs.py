"""Expanding inputs into items: names are safe, unique and stable."""

from __future__ import annotations

from pathlib import Path

from runner.checks import load_recipe
from runner.items import expand, safe_name
from runner.prompt.templating import TemplateEngine

SAVED = '{"id": "t", "status": "completed", "text": "hi", "words": []}'


def test_names_never_collide_after_deduplication(tmp_path: Path) -> None:
    for name in ("A.json", "a-2.json", "a.json"):
        (tmp_path / name).write_text(SAVED)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: r\ninputs: [{transcript_file: '*.json'}]\n"
        "tasks: {s: {prompt: '{{ transcript.text }}'}}\n"
    )
    recipe = load_recipe(tmp_path / "r.yaml")
    names = [item.name for item in expand(recipe, TemplateEngine(tmp_path))]
    assert names == ["A", "a-2", "a-3"]
    assert len({n.lower() for n in names}) == 3


def test_safe_name_keeps_items_inside_their_folder() -> None:
    assert safe_name("../../etc/passwd", "x") == "etc-passwd"
    assert safe_name("Acme Corp / Q3", "x") == "Acme-Corp-Q3"
    assert safe_name("...", "item-1") == "item-1"

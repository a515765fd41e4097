"""The files a check reads its text from (``similar_to: {file: ...}``), for one item.

The path is a template over ``item`` and ``vars`` (``refs/{{ item.name }}.md``),
rendered for each item; what it names must be a file inside the recipe's folder, as
a ``prompt_file`` must, so a reference can never read past it.
"""

from __future__ import annotations

from pathlib import Path


def reference_file(base: Path, name: str) -> Path | str:
    """The file ``name`` (rendered) names under ``base``, or why it cannot be read."""
    name = name.strip()
    candidate = Path(name)
    if not name:
        return "the reference file's name is empty for this item"
    if candidate.is_absolute():
        return (
            f"the reference file {name!r} is an absolute path; give a path relative to the recipe"
        )
    root = base.resolve()
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        return f"the reference file {name!r} points outside the recipe's folder"
    if not resolved.is_file():
        return f"the reference file {name!r} does not exist (paths are relative to the recipe)"
    return resolved


def read_reference(base: Path, name: str) -> str:
    """The reference's text; ``ValueError`` saying why when it cannot be read."""
    found = reference_file(base, name)
    if isinstance(found, str):
        raise ValueError(found)
    try:
        return found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the reference file {name!r}: {exc}") from None

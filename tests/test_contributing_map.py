"""CONTRIBUTING.md's map of the house names every module under runner/, in its
package's row: a newcomer finds any module where the map says its stage is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAP = REPO / "CONTRIBUTING.md"
MODULES = sorted(
    path.relative_to(REPO).as_posix()
    for path in (REPO / "runner").rglob("*.py")
    if path.name not in {"__init__.py", "__main__.py"}
)


def _rows() -> dict[str, str]:
    """Each row of the house's table, by the package or module it is about."""
    text = MAP.read_text(encoding="utf-8")
    table = text[text.index("## The house, by stage") : text.index("## One home per rule")]
    rows: dict[str, str] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        for place in re.findall(r"`(runner/[\w/.]*)`", cells[1]):
            rows[place] = rows.get(place, "") + " " + cells[2]
    return rows


ROWS = _rows()


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_on_the_map(module: str) -> None:
    named_in_full = any(f"`{module}`" in cells for cells in ROWS.values())
    package, _, name = module.rpartition("/")
    in_its_row = any(
        re.search(rf"`(?:[\w/]*/)?{re.escape(name)}`", cells)
        for place, cells in ROWS.items()
        if place == module or (place.endswith("/") and f"{package}/".startswith(place))
    )
    assert module in ROWS or named_in_full or in_its_row, (
        f"{module} is not on CONTRIBUTING.md's map: name it in the row of {package}/"
    )

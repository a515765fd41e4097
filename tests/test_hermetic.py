"""The suite reads nothing outside the checkout (tests/hermetic.py), and says so when it does."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hermetic import CHECKOUT, GUARD, outside_the_checkout


def test_a_read_beside_the_checkout_is_caught() -> None:
    beside = CHECKOUT.parent / "beside-the-clone" / "fox.wav"
    with contextlib.suppress(OSError):  # nothing is there: the attempt is what counts
        beside.read_bytes()
    assert GUARD.take() == [str(beside)]


def test_a_listing_beside_the_checkout_is_caught() -> None:
    beside = CHECKOUT.parent
    list(beside.glob("*"))
    assert str(beside) in GUARD.take()


def test_reads_inside_the_checkout_and_tmp_path_pass(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("kept", encoding="utf-8")
    assert (tmp_path / "note.txt").read_text(encoding="utf-8") == "kept"
    assert (CHECKOUT / "README.md").read_text(encoding="utf-8").startswith("# transcript-runner")
    assert GUARD.take() == []


def test_beside_means_beside_even_when_the_checkout_is_in_the_temporary_folder() -> None:
    """A fresh clone is often made in /tmp: its neighbours are still not the suite's."""
    assert outside_the_checkout(str(CHECKOUT.parent / "beside-the-clone" / "x.json"))
    assert not outside_the_checkout(str(CHECKOUT / "tests" / "fixtures" / "README.md"))


def test_a_link_in_a_tests_folder_to_beside_the_checkout_is_caught(tmp_path: Path) -> None:
    """Folders are resolved once per test: a link still leads where it leads, whether it
    is the file, a folder on the way, or a folder made a link after it was resolved."""
    beside = CHECKOUT.parent / "beside-the-clone"
    (tmp_path / "file-link.json").symlink_to(beside / "x.json")
    (tmp_path / "folder-link").symlink_to(beside)
    (tmp_path / "swapped").mkdir()
    assert not outside_the_checkout(str(tmp_path / "swapped" / "x.json"))
    assert outside_the_checkout(str(tmp_path / "file-link.json"))
    assert outside_the_checkout(str(tmp_path / "folder-link" / "x.json"))
    assert outside_the_checkout(str(tmp_path / "folder-link" / "inner" / ".." / "x.json"))
    GUARD.take()  # a new test: its folders are resolved afresh
    (tmp_path / "swapped").rmdir()
    (tmp_path / "swapped").symlink_to(beside)
    assert outside_the_checkout(str(tmp_path / "swapped" / "x.json"))

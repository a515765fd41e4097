"""A set of texts kept as 16-byte digests in two flat arrays.

``validate`` checks a list of a million rows for repeated names and shared folders;
a ``set`` of the texts themselves held them all (hundreds of megabytes). Here each
text costs 16 bytes in a table at most half full: about 32 MB for a million, and no
Python object per entry. Two texts share a digest with a chance of about 2**-127
per pair, far below any disk error.
"""

from __future__ import annotations

import hashlib
from array import array

_INITIAL = 1 << 10


class DigestSet:
    """Texts seen: ``add`` says whether a text is new; ``in`` whether it was added."""

    def __init__(self) -> None:
        self._low = array("Q", bytes(8 * _INITIAL))  # 0: an empty slot
        self._high = array("Q", bytes(8 * _INITIAL))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        low, high = _digest(text)
        return self._find(low, high)[1]

    def add(self, text: str) -> bool:
        """Add ``text``; False when it was already there."""
        low, high = _digest(text)
        slot, found = self._find(low, high)
        if found:
            return False
        self._low[slot], self._high[slot] = low, high
        self._count += 1
        if 2 * self._count > len(self._low):
            self._grow()
        return True

    def _find(self, low: int, high: int) -> tuple[int, bool]:
        """The slot holding this digest, or the empty slot where it would go."""
        mask = len(self._low) - 1
        slot = (low >> 1) & mask  # the low bit is always 1
        while True:
            held = self._low[slot]
            if held == 0:
                return slot, False
            if held == low and self._high[slot] == high:
                return slot, True
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = zip(self._low, self._high, strict=True)
        size = 2 * len(self._low)
        self._low = array("Q", bytes(8 * size))
        self._high = array("Q", bytes(8 * size))
        for low, high in old:
            if low:
                slot, _ = self._find(low, high)
                self._low[slot], self._high[slot] = low, high


def _digest(text: str) -> tuple[int, int]:
    raw = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    # The low half never 0, which marks an empty slot: one bit of 128 given up.
    return int.from_bytes(raw[:8], "little") | 1, int.from_bytes(raw[8:], "little")

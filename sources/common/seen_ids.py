"""Ids met so far in one run, kept as their 64-bit string hashes in a sorted array.

A first listing of a long history meets every id once: a set of the strings costs about 110
bytes an id (110 MB for a million imports), this 8. The hashes are Python's, salted per process,
which is enough for ids that live one run. Two ids share a hash with probability about
n^2 / 2^65 (3e-8 for a million); the second would then be taken for one met before.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# ids added since the last merge wait in a set (~70 bytes an id)
MERGE_EVERY = 50_000


class SeenIds:
    """Membership of the ids met in this run, asked a page at a time."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, np.int64)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def unseen(self, ids: list[str]) -> list[bool]:
        """For each of `ids`, whether it was not met yet (an id twice in `ids` is unseen twice
        unless added in between)."""
        hashes = [hash(value) for value in ids]
        known = [False] * len(hashes)
        if len(self._sorted) and hashes:
            wanted = np.fromiter(hashes, np.int64, len(hashes))
            at = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
            known = (self._sorted[at] == wanted).tolist()
        return [not found and key not in self._recent for found, key in zip(known, hashes,
                                                                               strict=True)]

    def add(self, ids: Iterable[str]) -> None:
        self._recent.update(hash(value) for value in ids)
        if len(self._recent) >= MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        # one pass over the array: np.insert at positions found for the sorted newcomers
        new = np.sort(np.fromiter(self._recent, np.int64, len(self._recent)))
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)
        self._recent = set()

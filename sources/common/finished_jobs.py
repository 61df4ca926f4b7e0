"""Finished jobs kept as 64-bit digests of their references, for sources that never need the
references back (a provider whose listing names every job again, and nothing polls them).

A finished job has to stay known so that it is neither recorded nor fetched again, which makes
the source state grow with history. As a dict entry (the reference and a status index) a job
costs about 100 bytes in memory; here it costs 10 (an 8-byte digest and a 2-byte status
index), in sorted arrays that are searched, not walked. Two references collide with
probability about n^2 / 2^65: 3e-8 for a million jobs. The state keeps the sorted digests as
their gaps, byte plane by byte plane, deflated: 5.8 bytes a job instead of 8 (the state is
copied, compressed and loaded whole on every run that changes it).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Mapping

import numpy as np

_KEY = np.dtype("<u8")
_CODE = np.dtype("<u2")
# a run's additions wait in a dict (~70 bytes a job) until merged into the arrays: on a first
# run over a long history that would be every job
MERGE_EVERY = 50_000
PACKED = 2  # the state's layout: {"layout": 2, "keys": <packed gaps>, "codes": <deflated>}


def digest(job_ref: str) -> int:
    return int.from_bytes(hashlib.blake2b(job_ref.encode(), digest_size=8).digest(), "little")


class FinishedJobs:
    """Job digest -> index of its last `[native, canonical]` status pair."""

    def __init__(self, stored: Mapping[str, str] | None = None) -> None:
        self._keys, self._codes = _unpack(stored or {})
        self._added: dict[int, int] = {}  # this run's, merged in by `stored`
        self._dropped: set[int] = set()  # finished before, unfinished again now
        # digests of the jobs last asked for: a sighting asks for a job and then adds it
        self._page: dict[str, int] = {}
        self._dirty = False

    @property
    def changed(self) -> bool:
        """Whether jobs were added or dropped since the last `stored`."""
        return self._dirty

    def __len__(self) -> int:
        self._merge()
        return len(self._keys)

    def _key(self, job_ref: str) -> int:
        key = self._page.get(job_ref)
        return digest(job_ref) if key is None else key

    def get(self, job_ref: str) -> int | None:
        return self.get_many([job_ref])[0]

    def get_many(self, job_refs: list[str]) -> list[int | None]:
        """The status index of each job, None for one not known finished; a page's jobs are
        searched in one go (bench/RESULTS.md)."""
        keys = [digest(job_ref) for job_ref in job_refs]
        self._page = dict(zip(job_refs, keys, strict=True))
        found: list[int | None] = [self._added.get(key) for key in keys]
        if len(self._keys):
            wanted = np.fromiter(keys, _KEY, len(keys))
            at = np.minimum(np.searchsorted(self._keys, wanted), len(self._keys) - 1)
            hit = (self._keys[at] == wanted).tolist()
            codes = self._codes[at].tolist()
            for i, key in enumerate(keys):
                if found[i] is None and hit[i] and key not in self._dropped:
                    found[i] = codes[i]
        return found

    def add(self, job_ref: str, code: int) -> None:
        key = self._key(job_ref)
        self._added[key] = code
        self._dropped.discard(key)
        self._dirty = True
        if len(self._added) >= MERGE_EVERY:
            self._merge()

    def drop(self, job_ref: str) -> None:
        key = self._key(job_ref)
        self._added.pop(key, None)
        self._dropped.add(key)
        self._dirty = True

    def _merge(self) -> None:
        if not (self._dropped or self._added):
            return
        keys, codes = self._keys, self._codes
        gone = np.fromiter(self._dropped | self._added.keys(), _KEY)
        keep = ~np.isin(keys, gone)
        keys = np.concatenate([keys[keep], np.fromiter(self._added.keys(), _KEY)])
        codes = np.concatenate([codes[keep], np.fromiter(self._added.values(), _CODE)])
        order = np.argsort(keys, kind="stable")
        self._keys, self._codes, self._added, self._dropped = keys[order], codes[order], {}, set()

    def stored(self) -> dict[str, str]:
        """Everything known, merged and sorted, as the state keeps it (`_pack`)."""
        self._merge()
        self._dirty = False
        return _pack(self._keys, self._codes)


def _pack(keys: np.ndarray, codes: np.ndarray) -> dict[str, object]:
    # sorted digests have small gaps: their high bytes are mostly zero, which deflate takes
    gaps = np.diff(keys, prepend=np.uint64(0)).astype(_KEY)
    planes = np.ascontiguousarray(gaps.view(np.uint8).reshape(-1, 8).T)
    return {"layout": PACKED, "keys": _deflated(planes.tobytes()),
            "codes": _deflated(codes.tobytes())}


def _unpack(stored: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted digests and their codes, from either layout; ValueError when damaged."""
    try:
        if stored.get("layout") == PACKED:
            planes = np.frombuffer(_inflated(stored["keys"]), np.uint8)
            gaps = np.ascontiguousarray(planes.reshape(8, -1).T).view(_KEY).reshape(-1)
            keys = np.cumsum(gaps, dtype=_KEY)
            codes = np.frombuffer(_inflated(stored["codes"]), _CODE)
        else:  # the first layout: the arrays as they are
            keys = np.frombuffer(base64.b64decode(str(stored.get("keys", ""))), _KEY)
            codes = np.frombuffer(base64.b64decode(str(stored.get("codes", ""))), _CODE)
    except (KeyError, ValueError, TypeError, zlib.error) as exc:
        raise ValueError(f"finished jobs in the state are damaged: {exc}") from None
    if len(keys) != len(codes):
        raise ValueError("finished jobs in the state are damaged: keys and codes differ")
    return keys, codes


def _deflated(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 1)).decode()


def _inflated(text: object) -> bytes:
    return zlib.decompress(base64.b64decode(str(text)))

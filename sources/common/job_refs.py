"""Job references: how a job is written in config and `track` (`ref`), split into its parts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sources.common.errors import ConfigurationError

# control characters (C0, DEL, C1: ESC and BEL included) and lone surrogates
_BAD_ID_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PARTS = ("scope_id", "job_id")  # the parts a reference format may name


class InvalidJobRef(ConfigurationError):
    """A job id from config, a file or `track` that cannot be a job of this provider."""


@dataclass(frozen=True)
class JobRef:
    """One job to follow, as written in config and `track` (`ref`) and split into its parts."""

    ref: str
    job_id: str
    scope_id: str | None = None  # a container the API names with the job (a tenant, an entity)
    kind: str | None = None  # a job type the API takes as a distinct parameter

    def fields(self) -> dict[str, str]:
        return {"job_id": self.job_id, "scope_id": self.scope_id or "", "kind": self.kind or ""}


def check_id(value: str, what: str = "id") -> str:
    """An id part as given, or InvalidJobRef if it is empty or holds line breaks/controls."""
    if not value or not value.strip():
        raise InvalidJobRef(f"empty {what}")
    if value != value.strip() or _BAD_ID_CHARS.search(value):
        raise InvalidJobRef(f"{what} {value!r} has surrounding spaces or control characters")
    if value in (".", ".."):
        # even percent-encoded, a dot segment may be resolved by a proxy into another path
        raise InvalidJobRef(f"{what} {value!r} is a relative path segment")
    return value


def simple_ref(text: str) -> JobRef:
    """A provider whose jobs are identified by one id."""
    return JobRef(ref=check_id(text), job_id=text)


@dataclass(frozen=True)
class RefFormat:
    """A reference written as parts and separators, e.g. `{scope_id}/{job_id}`; `names` are
    how messages call each part ("activity id"). Each part is split at the first occurrence
    of the separator after it; the last part may not hold any separator."""

    template: str = "{job_id}"
    names: Mapping[str, str] = field(default_factory=dict)
    _pieces: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pieces = re.split(r"\{(\w+)\}", self.template)
        object.__setattr__(self, "_pieces", pieces)  # literals and part names, alternating
        if pieces[0] or pieces[-1] or "job_id" not in pieces[1::2]:
            raise ValueError("a reference format starts and ends with a part and names "
                             "{job_id}")
        unknown = set(pieces[1::2]) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown part {', '.join(sorted(unknown))}; parts: "
                             f"{', '.join(PARTS)}")
        if any(not sep for sep in pieces[2:-1:2]):
            raise ValueError("parts must be separated by at least one character")

    def name(self, part: str) -> str:
        return self.names.get(part, "id" if part == "job_id" else part.replace("_", " "))

    def expected(self) -> str:
        """The format as a message writes it: `TAXABLE_ENTITY_ID/ACTIVITY_ID`."""
        pieces = self._pieces
        return "".join(p if i % 2 == 0 else self.name(p).upper().replace(" ", "_")
                       for i, p in enumerate(pieces))

    def parse(self, text: str) -> JobRef:
        pieces = self._pieces
        parts, separators = pieces[1::2], pieces[2:-1:2]
        values, rest = {}, text
        for part, sep in zip(parts, separators, strict=False):
            value, found, rest = rest.partition(sep)
            if not found:
                raise InvalidJobRef(f"expected {self.expected()}")
            values[part] = value
        values[parts[-1]] = rest
        if separators and any(sep in rest for sep in separators):
            raise InvalidJobRef(f"expected {self.expected()}")
        for part in reversed(parts):  # the job's own id first, as the messages always did
            check_id(values[part], self.name(part))
        return JobRef(ref=text, job_id=values["job_id"], scope_id=values.get("scope_id"))


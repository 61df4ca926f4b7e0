"""References to a field of a JSON answer, as a declaration writes them: dotted
(`data.attributes.state`) or JSONPath (`$.data.attributes.state`, `items[0].status`), read as
dlt's REST helpers read a `data_selector` (`dlt.common.jsonpath`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dlt.common.jsonpath import compile_path

# a plain dotted path is walked directly: the common case, and a JSONPath match per answer
# costs ~40x more CPU on a 5,000-job run
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Missing:
    """The value of a path the answer does not have (unlike a field that is null)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = Missing()


@dataclass(frozen=True)
class FieldPath:
    """A path into an answer; `ValueError` naming the path when it cannot be parsed."""

    text: str
    _parts: tuple[str, ...] | None = field(init=False, repr=False, compare=False)
    _compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = tuple(self.text.split(".")) if _DOTTED.match(self.text) else None
        compiled = None
        if parts is None:
            try:
                compiled = compile_path(self.text)
            except Exception as exc:  # jsonpath_ng raises several types, all "cannot parse"
                raise ValueError(f"{self.text!r} is neither a dotted path nor a JSONPath "
                                 f"({exc})") from None
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_compiled", compiled)

    def __str__(self) -> str:
        return self.text

    @property
    def parts(self) -> tuple[str, ...] | None:
        """The fields of a dotted path, None for a JSONPath."""
        return self._parts

    @property
    def simple(self) -> str | None:
        """The field's name when the path is one top-level field, else None."""
        return self._parts[0] if self._parts is not None and len(self._parts) == 1 else None

    @property
    def top(self) -> str | None:
        """The answer's top-level field a dotted path starts with (None for a JSONPath)."""
        return self._parts[0] if self._parts else None

    def find(self, data: Any) -> Any:
        """The value at the path (the first, for a JSONPath matching several), or `MISSING`."""
        if self._parts is not None:
            for part in self._parts:
                if not isinstance(data, dict) or part not in data:
                    return MISSING
                data = data[part]
            return data
        if not isinstance(data, (dict, list)):
            return MISSING
        matches = self._compiled.find(data)
        return matches[0].value if matches else MISSING

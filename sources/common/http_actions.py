"""What an HTTP status code means for the unit it answers about, as a declaration sets it:

- `body`: the answer is the unit's status, read from its body;
- `not_found`: the unit does not exist (any more): final `not_found`, never asked again;
- `retry`: not the unit's fault (a rate limit, "busy"): it waits for the next run, no error;
  a run of them ends this run's requests;
- `fail`: no answer about the unit (a server error, a refused credential): its error line
  and reject row, asked again next run; a run of them is an outage;
- `reject`: an answer that cannot be read as the unit's status: its reject row and error
  line, asked again next run.

Keys are codes ("410"), classes ("4xx") or "default"; a declaration's table is laid over
`DEFAULT_ACTIONS`, so it names only what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

BODY, NOT_FOUND, RETRY, FAIL, REJECT = "body", "not_found", "retry", "fail", "reject"
ACTIONS = (BODY, NOT_FOUND, RETRY, FAIL, REJECT)

DEFAULT_ACTIONS: Mapping[str, str] = MappingProxyType({
    "200": BODY, "404": NOT_FOUND, "429": RETRY, "401": FAIL, "403": FAIL, "5xx": FAIL,
    "default": REJECT})


def _checked(table: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, action in table.items():
        key = str(key)
        valid_key = key == "default" or (len(key) == 3 and key[0] in "12345" and (
            key[1:].isdigit() or key[1:] == "xx"))
        if not valid_key:
            raise ValueError(f"{key!r} is not an HTTP code, a class such as '4xx' or 'default'")
        if action not in ACTIONS:
            raise ValueError(f"{key}: {action!r} is not one of {', '.join(ACTIONS)}")
        out[key] = action
    return out


@dataclass(frozen=True)
class CodeActions:
    """The action of every HTTP code: the declared table over the defaults."""

    declared: Mapping[str, str] = field(default_factory=dict)
    _table: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", {**DEFAULT_ACTIONS, **_checked(self.declared)})

    def of(self, code: int) -> str:
        """The action for `code`: its own entry, else its class's, else the default."""
        table = self._table
        return table.get(str(code)) or table.get(f"{str(code)[0]}xx") or table["default"]

    def codes(self, action: str) -> list[str]:
        """The keys mapped to `action` (for documentation and checks)."""
        return sorted(k for k, v in self._table.items() if v == action)

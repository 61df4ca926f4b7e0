"""Values a JSON answer may hold that a destination cannot store, made storable without loss
of meaning, in place, as the answer is checked (`http_guard`):

- an empty or blank key (`""`, `"  "`: dlt cannot name a column after it) is renamed
  `_empty_key` (`_blank_key` for blanks; `_2`, `_3` ... if taken);
- an integer outside int64 (Arrow, DuckDB and Postgres BIGINT) moves to `<key>_as_text` as its
  decimal text (`count` 10**20 is `count_as_text` '100000000000000000000', `count` NULL);
- a NUL character (Postgres text refuses it) becomes U+2400 (SYMBOL FOR NULL, `␀`), and an
  unpaired surrogate (not UTF-8) U+FFFD;
- an RFC 3339 moment written in lower case (`2026-12-01t08:00:00z`) is upper-cased, so it is
  parsed as one.

Each is counted in the run summary. Keys and strings are checked only where a cheap scan of
the raw body found a suspect (`suspects`); numbers are checked as the answer is walked, and an
answer with a number beyond int64 is parsed again exactly (`parse_leniently`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, NamedTuple

from sources.common.counts import Counted

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
NUL_STANDIN = "\u2400"
AS_TEXT = "_as_text"  # suffix of the key a number beyond int64 moves to
_BLANK_KEY = re.compile(rb'"\s*"\s*:')
_NUL = re.compile(rb"\\u0000|\\ud[89a-f]|\x00", re.IGNORECASE)


class HostileCount(Counted):
    KEYS_RENAMED = "empty keys renamed"
    INTS_AS_TEXT = "integers beyond int64 kept as text"
    TEXT_FIXED = "NUL or invalid characters replaced"


# an RFC 3339 moment written with a lower-case `t` or `z` (RFC 3339 allows it; the parsers
# dlt and Python use do not), upper-cased so it lands in its timestamp column
_LOWER_MOMENT_BYTES = re.compile(rb'\d\dt\d\d:\d\d[^"]*z"')
_LOWER_MOMENT = re.compile(r"\d{4}-\d\d-\d\d[tT]\d\d:\d\d(:\d\d(\.\d+)?)?([zZ]|[+-]\d\d:?\d\d)?")


class Suspects(NamedTuple):
    keys: bool  # a blank key may be present
    values: bool  # a NUL or a surrogate may be present
    moments: bool = False  # a moment in lower case (`...t...z`) may be present


def suspects(content: bytes) -> Suspects:
    """Cheap byte searches first (a regular expression over every page cost more than
    parsing it): only a body that may hold a suspect is looked at closer."""
    keys = (b'""' in content or b'" ' in content) and bool(_BLANK_KEY.search(content))
    values = (b"\\" in content and b"\\u" in content and bool(_NUL.search(content))) or \
        b"\x00" in content  # a backslash is rare in a body: one byte searched first
    moments = b'z"' in content and bool(_LOWER_MOMENT_BYTES.search(content))
    return Suspects(keys, values, moments)


def is_big(value: float) -> bool:
    """An integer outside int64, or a float as large (orjson reads an integer beyond 64 bits
    as one, losing its digits)."""
    return not INT64_MIN <= value <= INT64_MAX


def fix_moment(container: Any, key: Any, value: str) -> None:
    """`2026-12-01t08:00:00z` as `2026-12-01T08:00:00Z` (only a whole RFC 3339 moment)."""
    if value != value.upper() and _LOWER_MOMENT.fullmatch(value):
        container[key] = value.upper()


def parse_leniently(content: bytes) -> Any:
    """The answer by Python's own parser, for what orjson refuses or reads inexactly but JSON
    allows: integers beyond 64 bits, unpaired surrogates. NaN and Infinity (not JSON) stay
    refused."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(content, parse_constant=refuse)


def rename_blank_keys(record: dict[str, Any], counts: Counter[str]) -> None:
    blank = [k for k in record if isinstance(k, str) and not k.strip()]
    for key in blank:
        base = "_empty_key" if key == "" else "_blank_key"
        name, n = base, 1
        while name in record:
            n += 1
            name = f"{base}_{n}"
        record[name] = record.pop(key)
        counts[HostileCount.KEYS_RENAMED] += 1


def fix_number(container: Any, key: Any, value: float, counts: Counter[str]) -> None:
    """An integer (or a float as large) beyond int64 moves to `<key>_as_text` as its decimal
    text (dlt would coerce digits back into the typed column, and overflow there)."""
    if not is_big(value):
        return
    text = str(value)
    if isinstance(container, dict):
        del container[key]
        container[f"{key}{AS_TEXT}"] = text
    else:
        container[key] = text
    counts[HostileCount.INTS_AS_TEXT] += 1


def fix_text(container: Any, key: Any, value: str, counts: Counter[str]) -> None:
    fixed = value.replace("\x00", NUL_STANDIN) if "\x00" in value else value
    try:
        fixed.encode("utf-8")
    except UnicodeEncodeError:
        fixed = fixed.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if fixed != value:
        container[key] = fixed
        counts[HostileCount.TEXT_FIXED] += 1

"""The credential values of this process and every form they may take in text, so that any
string the tool prints, logs, raises or stores can be scrubbed of them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words; a real credential is never this short
_lock = threading.Lock()
_known: set[str] = set()
_variants: tuple[str, ...] = ()
_variant_bytes: tuple[bytes, ...] = ()


def variants(secret: str) -> set[str]:
    """The forms a secret takes once quoted somewhere: as is, `repr`-escaped, JSON-escaped,
    percent-encoded (path and form style)."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""),
             quote_plus(secret, safe="")}
    return {f for f in forms if len(f) >= _MIN_LEN}


def register(*secrets: str | None) -> None:
    """Remember credential values (and their forms) for `redact` and `mask`."""
    global _variants, _variant_bytes
    new = {s for s in secrets if isinstance(s, str) and len(s) >= _MIN_LEN} - _known
    if not new:
        return
    with _lock:
        _known.update(new)
        forms = set(_variants).union(*(variants(s) for s in new))
        # longest first: a form inside another form is masked after it
        _variants = tuple(sorted(forms, key=len, reverse=True))
        _variant_bytes = tuple(f.encode("utf-8", "surrogatepass") for f in _variants)


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """`text` with every known secret (and `extra` ones) in any of its forms replaced by ***."""
    forms = _variants
    extra_forms = [f for s in extra if isinstance(s, str) and len(s) >= _MIN_LEN
                   for f in variants(s)]
    for form in (*sorted(extra_forms, key=len, reverse=True), *forms):
        if form in text:
            text = text.replace(form, MASK)
    return text


def contains_secret(data: bytes) -> bool:
    """Whether raw bytes (an answer's body) hold a known secret in any of its forms."""
    return any(form in data for form in _variant_bytes)


def mask(value: Any) -> Any:
    """`value` (parsed JSON) with secrets masked in every string, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value

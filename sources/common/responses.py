"""Reading JSON answers once: dlt's client would parse a page's body for the data and again for
the paginator, and compile the JSONPath selectors anew on every page."""

from __future__ import annotations

import functools
from typing import Any

from dlt.common import json, jsonpath
from requests import Response

from sources.common.hostile_values import parse_leniently

_BODY = "_upload_status_body"


def body(response: Response) -> Any:
    """The answer's JSON (dlt's orjson), parsed on first use, checked by the session's guard
    (depth, long strings, credentials: `http_guard.Guard.checked`) and kept on the response;
    ValueError if it is not JSON, `AnswerRejected` (a ValueError) if it is over a bound."""
    try:
        return getattr(response, _BODY)
    except AttributeError:
        content = response.content
        exact = False
        try:  # orjson refuses some JSON (unpaired surrogates): Python's parser reads it
            parsed = json.loadb(content)
        except ValueError:
            parsed, exact = parse_leniently(content), True
        guard = getattr(getattr(response, "connection", None), "guard", None)
        if guard is not None:
            parsed = guard.checked(parsed, content, exact)
        setattr(response, _BODY, parsed)
        return parsed


def keep_body(response: Response, parsed: Any) -> None:
    """Use `parsed` as the answer's JSON from now on (a page with its bad records cut)."""
    setattr(response, _BODY, parsed)


def reason_not_read(exc: ValueError, default: str) -> str:
    """Why an answer's body could not be used: the bound it is over, else `default`."""
    return getattr(exc, "reason", None) or default


@functools.lru_cache(maxsize=256)
def compiled(path: str) -> Any:
    return jsonpath.compile_path(path)


def select(path: jsonpath.TJsonPath, response: Response) -> list[Any]:
    """Values at `path` (a JSONPath, compiled once per process) in the answer's JSON."""
    return jsonpath.find_values(compiled(path) if isinstance(path, str) else path,
                                body(response))

"""The hostile mode: answers a misbehaving or malicious API gives, as faults for any route.

Each builder returns a `Fault` for the requests matching `path` (a regex on the raw path);
inject it into a running `Simulator`. Together they serve every case the connector must survive:
redirects elsewhere, bodies too large, endless or trickling, gzip bombs, JSON too deep or too
wide, statuses a megabyte long, and answers that echo the credential back.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Iterator
from typing import Any

from simulator.server import Fault, Reply, SimRequest

_CREDENTIAL_WORDS = ("auth", "token", "key")  # in the name of a header carrying a credential


def credential_of(req: SimRequest) -> str:
    """The credential the request carried, as sent (scheme word removed): `Authorization` or
    a provider's own header (`X-...-Auth-Token`, `X-Api-Key`)."""
    names = sorted(req.headers, key=lambda n: n != "authorization")
    for name in names:
        if any(word in name for word in _CREDENTIAL_WORDS) and (value := req.headers[name]):
            return value.split(" ", 1)[-1]
    return ""


def poison(path: str, status: int = 500, body: Any = None,
           query: dict[str, str] | None = None) -> Fault:
    """Every request matching `path` (and `query`) answered with `status` for good: one bad
    job among healthy ones, or with `path` ".*" an outage."""
    return Fault(status, path, times=1 << 30, body=body, query=query)


def redirect(path: str, location: str, status: int = 302, times: int = 1) -> Fault:
    """A redirect to `location` (another origin, an http downgrade, itself: a loop)."""
    return Fault(None, path, times=times, answer=lambda req: Reply(
        status, b"", {"Location": location, "Content-Type": "text/plain"}))


def echo_credential(path: str, status: int, body: dict[str, Any], field: str = "echo",
                    times: int = 1) -> Fault:
    """`body` with the request's credential in `field` (and inside a message), as an API that
    quotes what it was sent does in an error or a debug field."""
    def answer(req: SimRequest) -> Reply:
        token = credential_of(req)
        return Reply(status, {**body, field: token, "message": f"token {token} is not valid"})
    return Fault(None, path, times=times, answer=answer)


@functools.lru_cache(maxsize=2)
def gzip_bomb(prefix: bytes = b'{"state": "', megabytes_compressed: int = 1) -> bytes:
    """A gzip member of about `megabytes_compressed` MB inflating to ~1,000 times that."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    out = [packer.compress(prefix)]
    zeros = b"0" * (1 << 20)
    size = 0
    while size < megabytes_compressed << 20:
        piece = packer.compress(zeros)
        out.append(piece)
        size += len(piece)
    out.append(packer.flush())
    return b"".join(out)


def gzip_bombed(path: str, times: int = 1) -> Fault:
    bomb = gzip_bomb()  # made here (seconds of CPU), not while the client waits
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, bomb, {"Content-Encoding": "gzip", "Content-Type": "application/json"}))


def _repeat(piece: bytes, count: int | None) -> Iterator[bytes]:
    sent = 0
    while count is None or sent < count:
        yield piece
        sent += 1


def huge_body(path: str, megabytes: int = 500, times: int = 1) -> Fault:
    """A JSON-looking body of `megabytes` MB with its Content-Length."""
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, headers={"Content-Length": str(megabytes << 20)},
        stream=_repeat(b" " * (1 << 20), megabytes)))


def endless_body(path: str, times: int = 1) -> Fault:
    """A chunked body that never ends."""
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, stream=_repeat(b'{"state": "PENDING", "pad": "' + b"x" * 65536, None)))


def trickle(path: str, body: dict[str, Any], bytes_per_second: float = 1.0,
            times: int = 1) -> Fault:
    """A valid answer sent one byte at a time: no read ever times out, the body never ends
    in any useful time."""
    data = json.dumps(body).encode()
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, stream=(data[i:i + 1] for i in range(len(data))),
        chunk_delay=1.0 / bytes_per_second))


def slow_headers(path: str, body: dict[str, Any], bytes_per_second: float = 1.0,
                 times: int = 1) -> Fault:
    """A valid answer whose status line and headers arrive one byte at a time."""
    data = json.dumps(body).encode()
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, headers={"Content-Length": str(len(data))}, stream=[data],
        head_delay=1.0 / bytes_per_second))


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(path: str, body: dict[str, Any], depth: int = 300, times: int = 1) -> Fault:
    """`body` with a field nested `depth` objects deep."""
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, {**body, "deep": nested(depth)}))


def wide_json(path: str, body: dict[str, Any], keys: int = 5000, times: int = 1) -> Fault:
    """`body` with `keys` fields named like data (`k0`, `k1`, ...)."""
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, {**body, **{f"k{i}": i for i in range(keys)}}))


def long_status(path: str, status_field: str, body: dict[str, Any], length: int = 1 << 20,
                times: int = 1) -> Fault:
    """`body` whose status field is `length` characters long."""
    return Fault(None, path, times=times, answer=lambda req: Reply(
        200, {**body, status_field: "P" * length}))

"""A real HTTP server on 127.0.0.1 hosting provider fixtures, with a request log and faults."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class SimRequest:
    """One parsed request, as a fixture handler sees it."""

    method: str
    path: str  # raw, percent-encoded as sent
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Reply:
    """A response: `body` is JSON-encoded unless it is bytes. With `stream`, its chunks are
    sent one by one (`chunk_delay` seconds apart), chunked unless a Content-Length is given:
    the hostile mode's endless, huge and trickling bodies (`simulator.hostile`)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None
    chunk_delay: float = 0.0
    head_delay: float = 0.0  # seconds between the bytes of the status line and headers


Handler = Callable[..., Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # regex on the raw (still percent-encoded) path; groups become kwargs
    handler: Handler

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        m = re.fullmatch(self.pattern, raw_path)
        # segments are decoded only after routing, so an encoded "/" stays inside its segment
        return {k: unquote(v) for k, v in m.groupdict().items()} if m else None


class Fixture(Protocol):
    """A simulated provider API: its routes and a way to move its jobs forward."""

    name: str

    def routes(self) -> Iterable[Route]: ...

    def advance(self) -> None: ...


@dataclass
class LoggedRequest:
    provider: str
    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float  # arrival time (time.time())
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


@dataclass
class Fault:
    """Answer `times` matching requests with `status` instead of the fixture's reply; with
    `status` None the fixture answers, after `delay` seconds. `arrived` is set when a matching
    request comes in (a test can act while the client waits: kill it, say); setting `release`
    ends the delay early. `body` bytes are sent as they are (an HTML page, a truncated
    document)."""

    status: int | None
    path_pattern: str = ".*"
    times: int = 1
    retry_after: str | None = None
    body: Any = None
    method: str | None = None
    delay: float = 0.0
    content_type: str | None = None
    query: dict[str, str] | None = None  # only requests with these query parameters
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    # builds the whole reply from the request (hostile answers: echoes, redirects, streams)
    answer: Callable[[SimRequest], Reply] | None = None

    def reply(self, req: SimRequest | None = None) -> Reply | None:
        if self.answer is not None and req is not None:
            return self.answer(req)
        if self.status is None:
            return None
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        body = self.body if self.body is not None else {
            "statusCode": self.status, "message": HTTPStatus(self.status).phrase}
        return Reply(self.status, body, headers)


class Simulator:
    """Serves several provider fixtures on one loopback port.

    Responses are written with a single socket write: http.server otherwise sends headers and
    body separately and Nagle's algorithm plus delayed ACKs stall each keep-alive response ~40 ms.
    """

    def __init__(self, *fixtures: Fixture, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.fixtures = {f.name: f for f in fixtures}
        self._routes = [(f.name, r) for f in fixtures for r in f.routes()]
        self.request_log: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being handled at once: shows client concurrency
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # https on loopback, for redirects from https to http
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> Simulator:
        # once: a second serve_forever loop outlives shutdown() (which stops one) and then
        # spins on the closed socket, a core lost for the rest of the test session
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance(self) -> None:
        """Move every fixture's jobs one step forward."""
        for fixture in self.fixtures.values():
            fixture.advance()

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def requests(self, provider: str | None = None, method: str | None = None,
                 path_pattern: str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally filtered by provider, method and a path regex."""
        with self._lock:
            log = list(self.request_log)
        return [
            r for r in log
            if (provider is None or r.provider == provider)
            and (method is None or r.method == method)
            and (path_pattern is None or re.fullmatch(path_pattern, r.path))
        ]

    def clear_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    def handle(self, req: SimRequest) -> tuple[str, Reply]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(req)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handle(self, req: SimRequest) -> tuple[str, Reply]:
        arrived = time.time()  # a server's rate limit counts requests as they arrive
        if self.latency:
            time.sleep(self.latency)
        provider, route_match = "?", None
        for name, route in self._routes:
            params = route.match(req.method, req.path)
            if params is not None:
                provider, route_match = name, (route, params)
                break
        fault = self._take_fault(req)
        reply = None
        if fault is not None:
            fault.arrived.set()
            fault.release.wait(fault.delay)
            reply = fault.reply(req)
        if reply is None:
            if route_match is None:
                reply = Reply(404, {"error": "no such endpoint", "path": req.path})
            else:
                route, params = route_match
                reply = route.handler(req, **params)
        with self._lock:
            self.request_log.append(LoggedRequest(
                provider, req.method, req.path, dict(req.query), reply.status, arrived,
                dict(req.headers)))
        return provider, reply

    def _take_fault(self, req: SimRequest) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times <= 0 or (fault.method and fault.method != req.method):
                    continue
                if fault.query and any(req.query.get(k) != v for k, v in fault.query.items()):
                    continue
                if re.fullmatch(fault.path_pattern, req.path):
                    fault.times -= 1
                    return fault
        return None


def _encode(reply: Reply) -> tuple[bytes, str]:
    if isinstance(reply.body, bytes):
        return reply.body, reply.headers.get("Content-Type", "application/octet-stream")
    if reply.body is None:
        return b"", "application/json"
    return json.dumps(reply.body).encode(), "application/json; charset=utf-8"


def _make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "upload-status-simulator"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = SimRequest(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            _, reply = sim.handle(req)
            if reply.stream is not None:
                self._stream(reply)
                return
            body, content_type = _encode(reply)
            phrase = HTTPStatus(reply.status).phrase
            headers = {"Content-Type": content_type, **reply.headers,
                       "Content-Length": str(len(body))}
            head = f"HTTP/1.1 {reply.status} {phrase}\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            self.wfile.write(head.encode("latin-1") + body)

        def _stream(self, reply: Reply) -> None:
            headers = {"Content-Type": "application/json", **reply.headers}
            chunked = "Content-Length" not in headers
            if chunked:
                headers["Transfer-Encoding"] = "chunked"
            head = f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            try:
                if reply.head_delay:
                    for byte in head.encode("latin-1"):
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(reply.head_delay)
                else:
                    self.wfile.write(head.encode("latin-1"))
                for chunk in reply.stream or ():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                    self.wfile.flush()
                    if reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                pass  # the client stopped reading: what a bounded client does
            self.close_connection = True

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log replaces stderr chatter

    return _Handler

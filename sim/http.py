"""The sim's HTTP/1.1 server: httptools parsing, handlers run inline, one socket write per response.

Why not aiohttp's server: at 100,000 pods the sim answers thousands of small requests a second on one
core, and aiohttp's per-request machinery (a task, request and response objects, the router, header
serialisation) costs about 100 us of Python, more than the store work behind a typical write. Almost
every sim handler finishes without awaiting anything, so here a handler is a plain function called from
`data_received`; only the few that must wait (watch streams, a list at a future resourceVersion, injected
latency, image pulls) return an awaitable, and only those get a task. Responses are framed by hand:
`Content-Length` for ordinary bodies, chunked encoding for streams.

What a Kubernetes client needs from HTTP/1.1 is here: keep-alive, pipelined requests answered in order,
chunked request bodies, `Expect: 100-continue`, `Connection: close`, flow control for slow watch readers
and handler cancellation when a streaming client goes away. Upgrades (exec, port-forward) are refused.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

import httptools
import msgspec

from sim.errors import ApiError

log = logging.getLogger("sim.http")

_dec = msgspec.json.Decoder()
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
MAX_BODY = 64 * 1024 * 1024
_MAX_QUEUED = 32  # pipelined requests waiting behind a running handler before reading pauses


class Headers(dict[str, str]):
    """Request headers under lower-case names; lookups by any case, as HTTP header names are."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)


class Request:
    """One parsed request. The body is complete before a handler sees it."""

    __slots__ = ("method", "path", "query_string", "headers", "body", "match_info", "_query", "_conn")

    def __init__(
        self, method: str, path: str, query_string: str, headers: Headers, body: bytes, conn: Any
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers  # lower-case names; a repeated header keeps its first value
        self.body = body
        self.match_info: dict[str, str] = {}
        self._query: dict[str, str] | None = None
        self._conn = conn

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; like aiohttp's `request.query.get`, a repeated key gives its first value."""
        if self._query is None:
            q: dict[str, str] = {}
            for k, v in parse_qsl(self.query_string, keep_blank_values=True):
                q.setdefault(k, v)
            self._query = q
        return self._query

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased; `application/octet-stream` when absent."""
        raw = dict.get(self.headers, "content-type")
        if not raw:
            return "application/octet-stream"
        return raw.split(";", 1)[0].strip().lower()

    @property
    def host(self) -> str:
        return str(self.headers.get("host", ""))

    def json(self) -> Any:
        return _dec.decode(self.body) if self.body else None


class Response:
    """A complete response, sent with one write."""

    __slots__ = ("status", "body", "headers")

    def __init__(
        self,
        body: bytes = b"",
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: list[tuple[str, str]] = [("Content-Type", content_type)]
        if headers:
            self.headers.extend(headers.items())

    def add_header(self, name: str, value: str) -> None:
        self.headers.append((name, value))


class StreamResponse:
    """A chunked response written piece by piece (watch streams). Writes wait while the client lags."""

    def __init__(self, request: Request, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._conn: _Connection = request._conn
        self.status = status
        self.headers = list((headers or {}).items())
        self.prepared = False
        self.finished = False

    async def prepare(self) -> None:
        head = _head(self.status, self.headers, None, self._conn.keep_alive)
        self.prepared = True
        self._conn.streaming = True
        await self._conn.send(head + b"Transfer-Encoding: chunked\r\n\r\n")

    async def write(self, data: bytes) -> None:
        if data:
            await self._conn.send(b"%x\r\n%b\r\n" % (len(data), data))

    async def write_eof(self) -> None:
        if not self.finished:
            self.finished = True
            await self._conn.send(b"0\r\n\r\n")


Result = Response | StreamResponse
Handler = Callable[[Request], "Response | Awaitable[Result]"]


class Router:
    """Method + path patterns (`/sim/nodes/{node}/images`, `/{tail:.*}`), tried in the order added."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        def group(m: re.Match[str]) -> str:
            name, _, expr = m.group(1).partition(":")
            return f"(?P<{name}>{expr or '[^/]+'})"

        regex = re.compile("^" + re.sub(r"\{([^}]+)\}", group, pattern) + "$")
        self._routes.append((method.upper(), regex, handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for m, regex, handler in self._routes:
            if m != "*" and m != method:
                continue
            match = regex.match(path)
            if match:
                return handler, match.groupdict()
        return None


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def _head(status: int, headers: list[tuple[str, str]], length: int | None, keep_alive: bool) -> bytes:
    parts = [b"HTTP/1.1 %d %b\r\nDate: %b\r\n" % (status, _REASONS.get(status, b"Unknown"), _date())]
    for k, v in headers:
        parts.append(f"{k}: {v}\r\n".encode("latin-1", "replace"))
    if length is not None:
        parts.append(b"Content-Length: %d\r\n" % length)
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    return b"".join(parts)


def _error(status: int, message: str) -> Response:
    """A Kubernetes Status body for what fails before (or outside) an API handler."""
    err = ApiError(status, HTTPStatus(status).phrase.replace(" ", ""), message)
    return Response(msgspec.json.encode(err.status()), status)


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers = Headers()
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.keep_alive = True
        self.queue: deque[tuple[Request, bool, Response | None]] = deque()  # keep-alive, refusal
        self.task: asyncio.Task[None] | None = None
        self.streaming = False
        self.closed = False
        self._paused = False
        self._drain: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not a subclass
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("client went away"))
            self._drain.exception()  # retrieved here: nobody may be waiting on it
        if self.task is not None and self.streaming:
            self.task.cancel()  # a watch stream whose reader is gone

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        elif self.task is None and self.queue:
            self._serve_queue()  # requests held while the client was not reading our answers

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # answered (refused) in order by _serve_queue; nothing after it is read
        except httptools.HttpParserError as e:
            self._write_response(_error(400, f"malformed HTTP request: {e}"), False)
            self._close()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = Headers()
        self.body = []
        self.size = 0
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if not dict.__contains__(self.headers, key):
            dict.__setitem__(self.headers, key, value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            self.too_large = True
        elif self.headers.get("expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.server.max_body:
            self.too_large = True
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        url = self.url.decode("latin-1")
        path, _, qs = url.partition("?")
        req = Request(
            self.parser.get_method().decode("latin-1"),
            unquote(path),
            qs,
            self.headers,
            b"".join(self.body),
            self,
        )
        refusal = None
        if self.too_large:
            refusal = _error(413, f"request body exceeds {self.server.max_body} bytes")
        elif self.parser.should_upgrade():
            refusal = _error(400, "connection upgrades (exec, attach, port-forward) are not supported")
        self.queue.append((req, refusal is None and self.parser.should_keep_alive(), refusal))
        if self.task is None and not self._paused:
            self._serve_queue()
        elif len(self.queue) > _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()

    # ------------------------------------------------------------------ serving

    def _serve_queue(self) -> None:
        """Answer queued requests in order; stop at the first one whose handler has to wait, or while
        the client is not reading the answers (the transport's buffer is over its high-water mark): a
        client that pipelines without reading must not make the server buffer without limit."""
        while self.queue and not self.closed:
            if self._paused:
                if self.transport is not None:
                    self.transport.pause_reading()
                return  # resume_writing() serves the rest
            req, keep_alive, refusal = self.queue.popleft()
            self.keep_alive = keep_alive
            if refusal is not None:
                self._write_response(refusal, False)
                self._close()
                return
            head_only = req.method == "HEAD"  # answered as the GET would be, without the body
            if head_only:
                req.method = "GET"
            result = self._call(req)
            if head_only and not isinstance(result, Response):
                if inspect.iscoroutine(result):
                    result.close()
                result = _error(405, "HEAD is not supported here")
            if isinstance(result, Response):
                self._write_response(result, keep_alive, head_only)
                if not keep_alive:
                    self._close()
                    return
                continue
            self.task = asyncio.get_running_loop().create_task(self._finish(result, keep_alive))
            return
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _call(self, req: Request) -> Response | Awaitable[Result]:
        found = self.server.router.resolve(req.method, req.path)
        if found is None:
            return _error(404, "the server could not find the requested resource")
        handler, req.match_info = found
        try:
            return handler(req)
        except Exception:
            log.exception("handler failed: %s %s", req.method, req.path)
            return _error(500, "internal error in the sim; see its log")

    async def _finish(self, pending: Awaitable[Result], keep_alive: bool) -> None:
        try:
            result: Result = await pending
        except asyncio.CancelledError:
            if not self.closed:
                self._close()
            return
        except ConnectionResetError:
            return
        except Exception:
            log.exception("handler failed")
            result = _error(500, "internal error in the sim; see its log")
        finally:
            self.task = None
        if isinstance(result, StreamResponse):
            self.streaming = False
            if not result.prepared or not result.finished:
                self._close()  # a stream that never ended cleanly cannot be followed by another response
                return
        else:
            self._write_response(result, keep_alive)
        if not keep_alive:
            self._close()
            return
        self._serve_queue()

    def _write_response(self, resp: Response, keep_alive: bool, head_only: bool = False) -> None:
        if self.transport is None or self.closed:
            return
        head = _head(resp.status, resp.headers, len(resp.body), keep_alive)
        self.transport.write(head + b"\r\n" + (b"" if head_only else resp.body))

    async def send(self, data: bytes) -> None:
        """Write for streams: waits while the transport's buffer is over its high-water mark."""
        if self.closed or self.transport is None:
            raise ConnectionResetError("client went away")
        self.transport.write(data)
        if self._paused:
            loop = asyncio.get_running_loop()
            self._drain = loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class HttpServer:
    """Serves a `Router` on one listening socket."""

    def __init__(self, router: Router, max_body: int = MAX_BODY) -> None:
        self.router = router
        self.max_body = max_body
        self.connections: set[_Connection] = set()
        self.port = 0  # the bound port, once started
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True, backlog=1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.task is not None:
                conn.task.cancel()
            conn._close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

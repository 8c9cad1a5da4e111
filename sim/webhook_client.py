"""A small keep-alive HTTPS/1.1 POST client for the sim's admission calls.

Every write a webhook matches costs one call, so at pod-creation rates the client's own CPU is a
large share of the sim's work; a general-purpose client (aiohttp) spends most of it on features a
webhook call never uses. This one does exactly: POST a JSON body, read a `Content-Length` or chunked
response, keep the connection for the next call. Failures raise `CallError` with the words
kube-apiserver (Go's net/http) uses, so the sim's messages read like a real cluster's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

_MAX_IDLE = 32
# Calls in flight per webhook address. kube-apiserver multiplexes its calls to one webhook over HTTP/2;
# without a bound, a burst would open (and TLS-handshake) one connection per concurrent call, and the
# handshakes' CPU would make the burst last longer: a few connections, reused, serve the load better.
_MAX_CONNS = 8


class CallError(Exception):
    """The call did not produce an HTTP response (or not a readable one)."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class WebhookClient:
    """Pools idle connections per (host, port, TLS server name, trust)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int, str, int], list[_Conn]] = {}
        self._slots: dict[tuple[str, int, str, int], asyncio.Semaphore] = {}

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise CallError(f"unsupported URL {url!r}: webhooks are called over https")
        host, port = parts.hostname, parts.port or 443
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        name = server_hostname or host
        key = (host, port, name, id(ssl_context))
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(_MAX_CONNS)
        async with asyncio.timeout(timeout), slots:
            idle = self._idle.setdefault(key, [])
            while idle:  # a pooled connection the server has closed fails at once: use a fresh one
                conn = idle.pop()
                try:
                    return await self._exchange(conn, key, head, body)
                except (ConnectionError, asyncio.IncompleteReadError, CallError):
                    conn.close()
                except BaseException:
                    conn.close()
                    raise
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ssl_context, server_hostname=name
                )
            except ssl.SSLCertVerificationError as e:
                raise CallError(f"tls: failed to verify certificate: x509: {e.verify_message}") from None
            except ssl.SSLError as e:
                raise CallError(f"remote error: tls: {e.reason or e}") from None
            except ConnectionRefusedError:
                raise CallError(f"dial tcp {host}:{port}: connect: connection refused") from None
            except OSError as e:
                raise CallError(f"dial tcp {host}:{port}: connect: {e.strerror or e}") from None
            conn = _Conn(reader, writer)
            try:
                return await self._exchange(conn, key, head, body)
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                conn.close()
                raise CallError(f"read tcp {host}:{port}: {e or 'EOF'}") from None
            except BaseException:
                conn.close()
                raise

    async def _exchange(
        self, conn: _Conn, key: tuple[str, int, str, int], head: bytes, body: bytes
    ) -> tuple[int, bytes]:
        conn.writer.write(head + body)
        status_line = await conn.reader.readuntil(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise CallError(f"malformed HTTP response {status_line[:80]!r}") from None
        length: int | None = None
        chunked = close = False
        while True:
            line = await conn.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.lower() == b"close":
                close = True
        if chunked:
            data = bytearray()
            while True:
                size = int((await conn.reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    while await conn.reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    break
                data += await conn.reader.readexactly(size)
                await conn.reader.readexactly(2)
            payload = bytes(data)
        elif length is not None:
            payload = await conn.reader.readexactly(length)
        else:
            payload = await conn.reader.read()
            close = True
        idle = self._idle.setdefault(key, [])
        if close or len(idle) >= _MAX_IDLE:
            conn.close()
        else:
            idle.append(conn)
        return status, payload

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

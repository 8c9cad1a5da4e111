"""The sim's own HTTP/1.1 server (sim/http.py), spoken to byte by byte over a real socket.

kubectl and kubernetes-asyncio only use a polite subset of HTTP; these tests pin the rest of what the
server promises: pipelining, chunked bodies, 100-continue, Connection: close, size limits, malformed
requests, refused upgrades, handler failures, a slow watch reader, and a watch whose reader goes away.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sim import SimCluster
from sim import testing as sim_testing
from sim.cluster import wait_until
from sim.http import HttpServer, Request, Response, Router

sim_cluster = sim_testing.sim_cluster

PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, padding: int = 0) -> bytes:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"padding": "x" * padding}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
    }
    return json.dumps(body).encode()


class Raw:
    """One client connection that writes exactly the bytes a test gives it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, rcvbuf: int | None = None) -> Raw:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small receive window: the server's writes back up quickly
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(*await asyncio.open_connection(sock=sock))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding") == "chunked":
            return status, headers, b""  # the caller reads the stream
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def chunk(self) -> bytes:
        size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), 10))[:-2], 16)
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    def close(self) -> None:
        self.writer.close()


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: sim"]
    if body:
        lines.append(f"Content-Length: {len(body)}")
        lines.append("Content-Type: application/json")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_pipelined_requests_are_answered_in_order(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    c.send(request("POST", PODS, pod("a")) + request("GET", "/version") + request("GET", f"{PODS}/a"))
    status, _, body = await c.response()
    assert status == 201 and json.loads(body)["metadata"]["name"] == "a"
    status, _, body = await c.response()
    assert status == 200 and json.loads(body)["major"] == "1"
    status, _, body = await c.response()
    assert status == 200 and json.loads(body)["metadata"]["name"] == "a"
    c.close()


async def test_chunked_request_body_and_expect_continue(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    body = pod("chunked")
    half = len(body) // 2
    c.send(
        f"POST {PODS} HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    assert (await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 100")
    c.send(b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:]))
    status, headers, out = await c.response()
    assert status == 201, out
    assert headers["content-type"] == "application/json"
    assert json.loads(out)["metadata"]["name"] == "chunked"
    c.close()


async def test_connection_close_is_honoured(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    c.send(request("GET", "/version", Connection="close"))
    status, headers, _ = await c.response()
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(c.reader.read(), 10) == b""  # the server closed its side


async def test_malformed_request_gets_400_and_close(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    c.send(b"GET /version HTTP/1.1\r\nHost sim-without-colon\r\n\r\n")
    status, _, body = await c.response()
    assert status == 400
    assert json.loads(body)["kind"] == "Status" and "malformed HTTP request" in json.loads(body)["message"]
    assert await asyncio.wait_for(c.reader.read(), 10) == b""


async def test_upgrade_is_refused(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    c.send(request("POST", f"{PODS}/a/exec?command=sh", Connection="Upgrade", Upgrade="SPDY/3.1"))
    status, _, body = await c.response()
    assert status == 400 and "upgrades" in json.loads(body)["message"]


async def test_undecodable_body_names_the_problem_and_keeps_the_connection(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    c.send(request("POST", PODS, b"{not json") + request("GET", "/version"))
    status, _, body = await c.response()
    assert status == 400 and "error decoding request body" in json.loads(body)["message"]
    status, _, _ = await c.response()
    assert status == 200


async def test_slow_watch_reader_loses_nothing(sim_cluster: SimCluster) -> None:
    """A watcher that does not read while 400 pods of 20 KB are created (more than the socket buffers
    hold): the stream pauses, then delivers every event in order once the reader catches up."""
    w = await Raw.open(sim_cluster.port, rcvbuf=4096)
    w.send(request("GET", f"{PODS}?watch=true&resourceVersion={sim_cluster.store.rv}"))
    status, headers, _ = await w.response()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    writer = await Raw.open(sim_cluster.port)
    n = 400
    for i in range(n):
        writer.send(request("POST", PODS, pod(f"slow-{i}", padding=20_000)))
        assert (await writer.response())[0] == 201
    seen: list[str] = []
    buf = b""
    while len(seen) < n:
        buf += await w.chunk()
        *lines, buf = buf.split(b"\n")
        for line in lines:
            ev = json.loads(line)
            if ev["type"] == "ADDED":
                seen.append(ev["object"]["metadata"]["name"])
    assert seen == [f"slow-{i}" for i in range(n)]
    w.close()
    writer.close()


async def test_watch_reader_going_away_frees_its_watch(sim_cluster: SimCluster) -> None:
    bucket = sim_cluster.store.bucket(sim_cluster.store.rt("pods"))
    before = len(bucket.watchers)
    c = await Raw.open(sim_cluster.port)
    c.send(request("GET", f"{PODS}?watch=true"))
    assert (await c.response())[0] == 200
    await wait_until(
        lambda: len(bucket.watchers) == before + 1, timeout=10, interval=0.02, message="watch registered"
    )
    c.close()
    await wait_until(
        lambda: len(bucket.watchers) == before,
        timeout=10,
        interval=0.02,
        message="watch released after disconnect",
    )


# ------------------------------------------------------------------ the server alone, with its own routes


BIG = b"x" * 256 * 1024


@pytest.fixture
async def tiny_server() -> AsyncIterator[HttpServer]:
    def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.05)
        return Response(b'{"slow": true}')

    def echo(request: Request) -> Response:
        out: dict[str, Any] = {
            "name": request.match_info["name"],
            "query": request.query,
            "ctype": request.content_type,
            "accept": request.headers.get("ACCEPT"),
            "size": len(request.body),
        }
        return Response(json.dumps(out).encode())

    def big(request: Request) -> Response:
        return Response(BIG, content_type="application/octet-stream")

    router = Router()
    router.add("GET", "/big", big)
    router.add("GET", "/boom", boom)
    router.add("GET", "/slow", slow)
    router.add("*", "/echo/{name}", echo)
    server = HttpServer(router, max_body=1024)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


@pytest.fixture
def tiny(tiny_server: HttpServer) -> int:
    return tiny_server.port


async def test_request_parts_reach_the_handler(tiny: int) -> None:
    c = await Raw.open(tiny)
    c.send(
        request(
            "PUT",
            "/echo/x?a=1&a=2&b=&c=k%20in%20(a%2Cb)",
            b"{}",
            Accept="application/json;as=Table",
        ).replace(
            b"Content-Type: application/json", b"Content-Type: Application/Merge-Patch+JSON; charset=utf-8"
        )
    )
    status, _, body = await c.response()
    assert status == 200
    assert json.loads(body) == {
        "name": "x",
        "query": {"a": "1", "b": "", "c": "k in (a,b)"},
        "ctype": "application/merge-patch+json",
        "accept": "application/json;as=Table",
        "size": 2,
    }


async def test_a_failing_handler_gets_500_and_the_connection_survives(tiny: int) -> None:
    c = await Raw.open(tiny)
    c.send(request("GET", "/boom") + request("GET", "/slow") + request("GET", "/nowhere"))
    assert (await c.response())[0] == 500
    status, _, body = await c.response()
    assert status == 200 and json.loads(body) == {"slow": True}  # an awaiting handler, then...
    assert (await c.response())[0] == 404  # ...the request pipelined behind it


async def test_body_over_the_limit_gets_413(tiny: int) -> None:
    c = await Raw.open(tiny)
    c.send(request("POST", "/echo/big", b"x" * 2048))
    status, headers, body = await c.response()
    assert status == 413 and headers["connection"] == "close"
    assert "exceeds 1024 bytes" in json.loads(body)["message"]


async def test_head_is_a_get_without_the_body(sim_cluster: SimCluster) -> None:
    c = await Raw.open(sim_cluster.port)
    c.send(request("HEAD", "/version") + request("GET", "/version"))
    head = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
    status, _, body = await c.response()  # the next bytes are the GET's answer, not a HEAD body
    assert status == 200 and json.loads(body)["major"] == "1"


async def test_a_client_that_does_not_read_its_answers_is_not_buffered_without_limit(
    tiny_server: HttpServer,
) -> None:
    """200 pipelined requests for 256 KB each, none of the answers read: the server stops reading
    requests once its socket buffer is full instead of queueing 50 MB of answers, then serves every
    request, in order, as the client catches up."""
    c = await Raw.open(tiny_server.port, rcvbuf=4096)
    n = 200
    c.send(request("GET", "/big") * n)
    await wait_until(lambda: any(not conn.transport.is_reading() for conn in tiny_server.connections
                                 if conn.transport is not None),
                     timeout=10, interval=0.02, message="the server to stop reading requests")
    (conn,) = tiny_server.connections
    assert conn.transport is not None and conn.transport.get_write_buffer_size() < 2 * 1024 * 1024
    for _ in range(n):
        status, _, body = await c.response()
        assert status == 200 and body == BIG

"""Garbage probe output through the prober's handlers: a real TCP server on 127.0.0.1 answering HTTP probes
with junk, and exec output of binary, control characters and megabytes.

Property: the result is Succeeded or Failed with a message of at most `PROBE_MESSAGE_MAX_BYTES` bytes of
valid UTF-8 that the result message can carry (it encodes), within the probe's timeout plus a margin;
and end to end, a pod answering junk next to one answering properly: both are reported and the
prober keeps probing (tests/component/test_prober.py covers a hang and 1 MB of exec output).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.constants import PROBE_MESSAGE_MAX_BYTES
from schemas.messages import ENCODER, PODPROBEMARKERS, PODS, ProbeResult
from schemas.podprobemarker import ContainerProbeSpec
from services.observe import poll
from services.planner.podprobemarker.matching import PodProbe
from services.prober.handlers import probe_http
from services.prober.results import truncate
from tests.component.test_prober import NS, Env, bare_pod, env, probe_marker, results, running
from tests.fuzz.strategies import budget

pytestmark = pytest.mark.timeout(120)
__all__ = ["env"]  # the prober stack fixture of tests/component/test_prober.py

GARBAGE_ANSWERS = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n\r\n" + b"\xff\xfe\x00" * 4000, b"HTTP/1.1 999 ???\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\nshort",
                     b"HTTP/1.1 200 OK\r\n" + b"X-Junk: " + b"a" * 100_000 + b"\r\n\r\n",
                     b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\n\x00\x01\x02\x03\x04",
                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     b"HTTP/1.1 200 OK\r\n\r\n" + "\u202e\x1b[31m🚀".encode() * 500,
                     b"\r\n\r\n\r\n", b"HTTP/1.1 301 Moved\r\nLocation: \x00\r\n\r\n"]),
    st.binary(max_size=64).map(lambda b: b"HTTP/1.1 200 OK\r\n" + b + b"\r\n\r\nbody"),
)


class GarbageServer:
    """Answers every connection with `answer` (whatever was asked), then closes it."""

    def __init__(self) -> None:
        self.answer = b""
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(4096)
            writer.write(self.answer)
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        await self.start_on("127.0.0.1")

    async def start_on(self, host: str, port: int = 0) -> int:
        self.server = await asyncio.start_server(self.handle, host, port)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self.port


@pytest.fixture
async def garbage() -> AsyncIterator[GarbageServer]:
    server = GarbageServer()
    await server.start()
    try:
        yield server
    finally:
        assert server.server is not None
        server.server.close()


def http_probe(port: int) -> PodProbe:
    spec = msgspec.convert({"httpGet": {"path": "/healthz", "port": port}, "timeoutSeconds": 1}, ContainerProbeSpec)
    return PodProbe(namespace="default", pod="p", pod_uid="pu", ip="127.0.0.1", name="m#check", container="main",
                    probe=spec)


def check_message(state: str, message: str) -> None:
    assert state in ("Succeeded", "Failed")
    raw = message.encode("utf-8")  # a str with lone surrogates would raise here
    assert len(raw) <= PROBE_MESSAGE_MAX_BYTES, len(raw)
    ENCODER.encode(ProbeResult(namespace="default", pod="p", pod_uid="pu", probe="m#check", state=state,
                               message=message, time="2026-12-02T10:00:00Z"))


@budget(40)
@given(answer=GARBAGE_ANSWERS)
async def test_garbage_http_answers_are_a_bounded_readable_result(garbage: GarbageServer, answer: bytes) -> None:
    garbage.answer = answer
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:
        state, message = await probe_http(session, http_probe(garbage.port))
    assert time.monotonic() - started < 3.0, "the probe outlasted its timeout"
    check_message(state, truncate(message))
    assert len(message.encode()) <= PROBE_MESSAGE_MAX_BYTES, f"an unbounded {len(message.encode())}-byte message"


@budget(60)
@given(output=st.binary(max_size=4096) | st.just(b"\xff" * (1 << 20)) | st.text().map(str.encode))
def test_exec_output_of_any_bytes_becomes_a_bounded_utf8_message(output: bytes) -> None:
    """What a runtime hands the prober (the CRI runtime decodes with `errors="replace"`), cut by `truncate`."""
    message = truncate(output.decode(errors="replace"))
    check_message("Succeeded", message)


async def test_a_pod_answering_garbage_fails_and_the_prober_keeps_probing_the_others(env: Env) -> None:
    """The prober of the embedded cluster (tests/component/test_prober.py's fixture): one pod's HTTP
    endpoint answers junk, another's answers properly and then flips to 500; both outcomes are reported."""
    cluster, kube, bus = env
    for n in ("junk", "fine"):
        await kube.create(PODS, NS, bare_pod(n))
    await running(cluster, ["junk", "fine"])
    ips = {p.name: p.ip for p in cluster.kubelets["sim-node-0"].pods.values()}
    junk, fine = GarbageServer(), GarbageServer()
    junk.answer = b"HTTP/1.1 200 OK\r\nX-\x00\xff: \x1b[31m\r\n\r\n" + b"\xff" * 50_000
    fine.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    port = await junk.start_on(ips["junk"])
    await fine.start_on(ips["fine"], port)
    try:
        await kube.create(PODPROBEMARKERS, NS, probe_marker("h", {"httpGet": {"path": "/", "port": port, "scheme": "HTTP"}}))

        def settled(rs: dict[tuple[str, str], ProbeResult]) -> bool:
            return all(rs.get((n, "h#check")) is not None and rs[(n, "h#check")].state != "Unknown"
                       for n in ("junk", "fine"))

        rs = await poll(lambda: results(bus), settled, timeout=30, what="a result for both pods")
        assert rs[("junk", "h#check")].state == "Failed", rs[("junk", "h#check")]
        check_message("Failed", rs[("junk", "h#check")].message)
        assert rs[("fine", "h#check")].state == "Succeeded" and rs[("fine", "h#check")].message == "ok"
        fine.answer = b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        rs = await poll(lambda: results(bus), lambda r: r[("fine", "h#check")].state == "Failed", timeout=20,
                        what="the fine pod still probed next to the junk one")
        assert rs[("fine", "h#check")].message == "HTTP probe failed with statuscode: 500"
    finally:
        for s in (junk, fine):
            if s.server is not None:
                s.server.close()

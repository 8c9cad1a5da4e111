"""One probe attempt: exec, tcpSocket or httpGet, as kruise-daemon's prober does it (`pkg/daemon/podprobe/prober.go`,
Kubernetes' `pkg/probe/{exec,tcp,http}`).

Each returns a raw result (Succeeded / Failed) and its message: exec -> exit 0 succeeds with stdout,
any other exit fails with stderr (stdout when stderr is empty), a timeout fails with "command ...
timed out"; tcpSocket -> a connection to podIP:port within the timeout; httpGet -> a GET on
`scheme://podIP:port/path` with the probe's headers, 2xx/3xx succeed with the body, >= 400 fail
"HTTP probe failed with statuscode: N", a connection error or timeout fails with the error. Only the
first bytes of an answer are read (the message is cut to 1024 bytes anyway), so a probe printing or
serving megabytes costs no more than one that does not. Exec goes through the runtime seam
(`services.runtime`: `exec_sync`, the sim's exec outcomes or CRI ExecSync); a runtime that cannot run
it at all raises `ExecUnavailable`, which is not a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiohttp

from schemas.constants import PROBE_FAILED, PROBE_MESSAGE_MAX_BYTES, PROBE_SUCCEEDED
from schemas.messages import ProbeState
from schemas.podprobemarker import ContainerProbeSpec
from services.errors import ExecTargetNotFound, RuntimeUnavailable
from services.planner.podprobemarker.matching import PodProbe
from services.prober.results import truncate
from services.runtime.base import ImageRuntime

READ_LIMIT = 10 * 1024  # bytes of an HTTP body read (Kubernetes' http prober reads 10 KiB)


class ExecUnavailable(Exception):
    """The runtime could not run the command (no such container, not running, runtime down)."""


def timeout_of(spec: ContainerProbeSpec) -> float:
    return float(max(spec.timeout_seconds, 1))


async def probe_exec(runtime: ImageRuntime, p: PodProbe) -> tuple[ProbeState, str]:
    assert p.probe.exec is not None
    command = list(p.probe.exec.command)
    try:
        result = await runtime.exec_sync(p.namespace, p.pod, p.container, command, timeout=timeout_of(p.probe))
    except (ExecTargetNotFound, RuntimeUnavailable, NotImplementedError) as e:
        raise ExecUnavailable(str(e)) from None
    if result.timed_out:
        return PROBE_FAILED, f'command "{" ".join(command)}" timed out'
    if result.exit_code == 0:
        return PROBE_SUCCEEDED, truncate(result.stdout)
    return PROBE_FAILED, truncate(result.stderr or result.stdout)


async def probe_tcp(p: PodProbe) -> tuple[ProbeState, str]:
    assert p.probe.tcp_socket is not None
    port = p.probe.tcp_socket.port
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(p.ip, int(port)), timeout_of(p.probe))
    except TimeoutError:
        return PROBE_FAILED, f"dial tcp {p.ip}:{port}: i/o timeout"
    except OSError as e:
        return PROBE_FAILED, f"dial tcp {p.ip}:{port}: connect: {e.strerror or e}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return PROBE_SUCCEEDED, ""


async def probe_http(session: aiohttp.ClientSession, p: PodProbe) -> tuple[ProbeState, str]:
    http = p.probe.http_get
    assert http is not None
    scheme = http.scheme.lower() or "http"
    path = http.path if http.path.startswith("/") else f"/{http.path}"
    url = f"{scheme}://{p.ip}:{http.port}{path}"
    headers = {h.name: h.value for h in http.http_headers}
    headers.setdefault("User-Agent", "kube-probe/kruisebus")
    try:
        async with session.get(url, headers=headers, allow_redirects=False,
                               ssl=False if scheme == "https" else True,
                               timeout=aiohttp.ClientTimeout(total=timeout_of(p.probe))) as resp:
            body = await resp.content.read(READ_LIMIT)
            status = resp.status
    except TimeoutError:
        return PROBE_FAILED, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except (aiohttp.ClientError, ssl.SSLError, OSError) as e:
        return PROBE_FAILED, f'Get "{url}": {e}'
    text = truncate(body.decode("utf-8", "replace"), PROBE_MESSAGE_MAX_BYTES)
    if 200 <= status < 400:
        return PROBE_SUCCEEDED, text
    return PROBE_FAILED, f"HTTP probe failed with statuscode: {status}"


__all__ = ["ExecUnavailable", "probe_exec", "probe_http", "probe_tcp", "timeout_of"]

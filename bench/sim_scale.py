"""The embedded cluster at scale: one `python -m sim` process holding 100,000 pods on 2,000 nodes.

Three processes, all over real HTTP on loopback:

* the sim (`python -m sim --nodes N --no-events --pull-delay 0`): its kubelets run every pod;
* a writer: creates the pods (bound round-robin to the nodes), then status patches (strategic merge of a
  condition on `pods/status`) and label patches (merge patch), `--concurrency` requests in flight;
* a watcher process with `--watchers` all-namespace pod watches (started before the writes, from the
  current resourceVersion), each decoding every event (type + resourceVersion, with msgspec).

Reported: writes/s per phase and overall (HTTP requests answered per second, as the writer sees them),
watch events/s delivered per watcher and how far behind the writes they finished (fan-out lag), time for
every pod to be Running, and the sim's peak RSS (VmHWM).

Run:   .venv/bin/python -m bench.sim_scale                       # 100k pods, 2k nodes, 3 watchers
Small: .venv/bin/python -m bench.sim_scale --pods 200 --nodes 10 --patches 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ writer


class _Conn:
    """A minimal keep-alive HTTP/1.1 client connection: the writer's own cost per request stays small, so
    the benchmark measures the server (aiohttp's client costs about as much CPU per request as the sim)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: str = "application/json"
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        chunked = False
        for line in raw.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v:
                chunked = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
            return status, data
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _writer(url: str, pods: int, nodes: int, patches: int, concurrency: int) -> dict[str, Any]:
    enc = msgspec.json.Encoder()
    hostport = url.split("://", 1)[1]
    host, port = hostport.rsplit(":", 1)
    conns = [_Conn(host, int(port)) for _ in range(concurrency)]
    base = "/api/v1/namespaces/default/pods"
    out: dict[str, Any] = {}
    errors = 0

    async def run(name: str, n: int, req: Any) -> None:
        next_i = iter(range(n))

        async def worker(c: _Conn) -> None:
            nonlocal errors
            for i in next_i:
                status, _ = await c.request(*req(i))
                if status >= 300:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        dt = time.perf_counter() - t0
        out[name] = {"requests": n, "seconds": round(dt, 2), "per_second": round(n / dt)}

    def create(i: int) -> tuple[str, str, bytes, str]:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p-{i}", "labels": {"app": "bench", "shard": str(i % 16)}},
            "spec": {
                "nodeName": f"sim-node-{i % nodes}",
                "containers": [{"name": "main", "image": "nginx:1.25"}],
            },
        }
        return "POST", base, enc.encode(body), "application/json"

    status_body = enc.encode({"status": {"conditions": [{"type": "example.com/bench", "status": "True"}]}})

    def status(i: int) -> tuple[str, str, bytes, str]:
        return "PATCH", f"{base}/p-{i % pods}/status", status_body, "application/strategic-merge-patch+json"

    def label(i: int) -> tuple[str, str, bytes, str]:
        body = enc.encode({"metadata": {"labels": {"bench": f"v{i}"}}})
        return "PATCH", f"{base}/p-{i % pods}", body, "application/merge-patch+json"

    t0 = time.perf_counter()
    await run("create", pods, create)
    await run("status_patch", patches, status)
    await run("label_patch", patches, label)
    total = pods + 2 * patches
    dt = time.perf_counter() - t0
    out["all_writes"] = {"requests": total, "seconds": round(dt, 2), "per_second": round(total / dt)}
    out["errors"] = errors
    # every pod Running (the sim's kubelets): poll the list with a field selector
    c = conns[0]
    t1 = time.perf_counter()
    while time.perf_counter() - t1 < 600:
        _, body = await c.request("GET", f"{base}?fieldSelector=status.phase%21%3DRunning&limit=1")
        if not msgspec.json.decode(body)["items"]:
            break
        await asyncio.sleep(0.5)
    out["all_running_after_writes_s"] = round(time.perf_counter() - t1, 2)
    _, body = await c.request("GET", f"{base}?limit=1")
    out["final_resource_version"] = int(msgspec.json.decode(body)["metadata"]["resourceVersion"])
    for c in conns:
        c.close()
    return out


# ------------------------------------------------------------------------------------------ watchers


class _Meta(msgspec.Struct):
    resourceVersion: str = ""


class _Obj(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class _Event(msgspec.Struct):
    type: str
    object: _Obj


async def _watchers(url: str, count: int, rv: str, status_file: Path) -> None:
    dec = msgspec.json.Decoder(_Event)
    stats = [{"events": 0, "first": 0.0, "last": 0.0, "last_rv": 0} for _ in range(count)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def watch(k: int, s: aiohttp.ClientSession) -> None:
        st = stats[k]
        params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "false"}
        async with s.get(f"{url}/api/v1/pods", params=params, timeout=aiohttp.ClientTimeout(total=None)) as r:
            buf = b""
            async for chunk in r.content.iter_any():
                buf += chunk
                *lines, buf = buf.split(b"\n")
                now = time.time()
                for line in lines:
                    if not line:
                        continue
                    ev = dec.decode(line)
                    if ev.type == "BOOKMARK":
                        continue
                    if not st["first"]:
                        st["first"] = now
                    st["events"] += 1
                    st["last"] = now
                    st["last_rv"] = int(ev.object.metadata.resourceVersion or 0)

    def publish() -> None:
        # write-then-rename, so the orchestrator never reads a half-written file
        tmp = status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(status_file)

    async def report() -> None:
        while not stop.is_set():
            publish()
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass
        publish()

    async with aiohttp.ClientSession() as s:
        tasks = [asyncio.ensure_future(watch(k, s)) for k in range(count)]
        await report()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------------------------------ orchestration


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(
    pods: int, nodes: int, patches: int, watchers: int, concurrency: int, quiet: bool = False
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="kb-sim-scale-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        max_pods = max(110, -(-pods // max(nodes, 1)) + 10)
        profile = os.environ.get("SIM_SCALE_PROFILE")  # cProfile output path for the sim process
        prof = ["-m", "cProfile", "-o", profile] if profile else []
        sim = subprocess.Popen(
            [
                sys.executable, *prof, "-m", "sim", "--nodes", str(nodes), "--port", "0", "--kubeconfig", str(kubeconfig),
                "--no-events", "--pull-delay", "0", "--start-delay", "0.5", "--max-pods", str(max_pods),
            ],
            stdout=subprocess.PIPE, text=True, env=env, cwd=tmp,
        )  # fmt: skip
        procs: list[subprocess.Popen[str]] = [sim]
        try:
            assert sim.stdout is not None
            line = sim.stdout.readline()
            if not line:
                raise RuntimeError("sim did not start")
            url = json.loads(line)["url"]
            rss_idle = _peak_rss_mb(sim.pid)
            import urllib.request

            with urllib.request.urlopen(f"{url}/api/v1/pods?limit=1") as r:
                rv = json.loads(r.read())["metadata"]["resourceVersion"]
            status_file = Path(tmp) / "watchers.json"
            watch_proc = subprocess.Popen(
                [sys.executable, "-m", "bench.sim_scale", "--role", "watchers", "--url", url,
                 "--watchers", str(watchers), "--rv", rv, "--status-file", str(status_file)],
                env=env, cwd=ROOT, text=True,
            )  # fmt: skip
            procs.append(watch_proc)
            deadline = time.monotonic() + 20
            while not status_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            cpu0, wall0 = _cpu_s(sim.pid), time.monotonic()
            writer = subprocess.run(
                [sys.executable, "-m", "bench.sim_scale", "--role", "writer", "--url", url, "--pods", str(pods),
                 "--nodes", str(nodes), "--patches", str(patches), "--concurrency", str(concurrency)],
                env=env, cwd=ROOT, text=True, capture_output=True, check=True,
            )  # fmt: skip
            sim_busy = (_cpu_s(sim.pid) - cpu0) / (time.monotonic() - wall0)
            w = json.loads(writer.stdout.strip().splitlines()[-1])
            final_rv = w["final_resource_version"]
            t_done = time.time()
            deadline = time.monotonic() + 120
            stats: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                stats = json.loads(status_file.read_text())
                if stats and all(s["last_rv"] >= final_rv for s in stats):
                    break
                # the final rv may belong to a non-pod write; stop once the watchers are idle
                if stats and all(s["last"] and time.time() - s["last"] > 2 for s in stats):
                    break
                time.sleep(0.1)
            watch_proc.send_signal(signal.SIGTERM)
            watch_proc.wait(10)
            stats = json.loads(status_file.read_text())
            result = {
                "pods": pods,
                "nodes": nodes,
                "watchers": watchers,
                "concurrency": concurrency,
                "writes": {k: w[k] for k in ("create", "status_patch", "label_patch", "all_writes")},
                "errors": w["errors"],
                "all_running_after_writes_s": w["all_running_after_writes_s"],
                "watch": [
                    {
                        "events": s["events"],
                        "per_second": round(s["events"] / max(s["last"] - s["first"], 1e-9)),
                        "finished_after_writer_s": round(max(s["last"] - t_done, 0.0), 2),
                    }
                    for s in stats
                ],
                "sim_cpu_busy": round(sim_busy, 2),  # sim CPU seconds per wall second while writing
                "cpus": os.cpu_count(),
                "sim_peak_rss_mb": round(_peak_rss_mb(sim.pid)),
                "sim_idle_rss_mb": round(rss_idle),
            }
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()
    if not quiet:
        print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sim_scale", description=__doc__.split("\n")[0])
    p.add_argument("--pods", type=int, default=100_000)
    p.add_argument("--nodes", type=int, default=2_000)
    p.add_argument(
        "--patches", type=int, default=None, help="status patches and label patches (default: --pods)"
    )
    p.add_argument("--watchers", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--role", choices=["main", "writer", "watchers"], default="main", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--rv", help=argparse.SUPPRESS)
    p.add_argument("--status-file", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    patches = a.pods if a.patches is None else a.patches
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    if a.role == "writer":
        print(json.dumps(runner(_writer(a.url, a.pods, a.nodes, patches, a.concurrency))))
    elif a.role == "watchers":
        runner(_watchers(a.url, a.watchers, a.rv, a.status_file))
    else:
        run(a.pods, a.nodes, patches, a.watchers, a.concurrency)


if __name__ == "__main__":
    main()

"""The local stack: NATS + the simulated cluster + every kruisebus service, each its own process.

`kruisebus demo`, `kruisebus up` and the end-to-end tests all start the pipeline through this one
class, so what the demo shows is exactly what the tests check. Services are real processes (the same
`kruisebus <service>` command a Pod would run), which is what lets chaos tests SIGKILL one mid-rollout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from services.natsd import NatsServer

SERVICES = ("watcher", "planner", "executor")


class StackError(RuntimeError):
    """A process of the stack failed to start; the message carries the tail of its log."""


class Stack:
    def __init__(self, *, nodes: int = 3, prefix: str = "kb", workdir: Path | None = None,
                 sim_args: tuple[str, ...] = (), service_args: dict[str, tuple[str, ...]] | None = None,
                 env: dict[str, str] | None = None, executors: int = 1) -> None:
        self._own = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kruisebus-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        self.prefix = prefix
        self.sim_args = sim_args
        self.service_args = service_args or {}
        # executors are a stateless pool on one work queue (DESIGN §5): the extra ones run as
        # `executor-2`, `executor-3`, ... (same command, same durable consumer)
        self.executors = executors
        self.env = {**os.environ, **(env or {})}
        self.nats = NatsServer(self.workdir / "nats")
        (self.workdir / "nats").mkdir(exist_ok=True)
        self.kubeconfig = str(self.workdir / "kubeconfig")
        self.sim_url = ""
        self.sim: asyncio.subprocess.Process | None = None
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def nats_url(self) -> str:
        return self.nats.url

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    async def start_nats(self) -> None:
        await asyncio.to_thread(self.nats.start)

    async def start_sim(self, timeout: float = 30.0) -> None:
        log = open(self.log_path("sim"), "ab")  # noqa: SIM115 - handed to the child
        self.sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sim", "--nodes", str(self.nodes), "--port", "0",
            "--kubeconfig", self.kubeconfig, *self.sim_args,
            stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=self.env,
        )
        log.close()
        assert self.sim.stdout is not None
        try:
            line = await asyncio.wait_for(self.sim.stdout.readline(), timeout)
            info = json.loads(line)
        except (TimeoutError, ValueError) as e:
            raise StackError(f"sim did not start ({e}):\n{self.log_tail('sim')}") from None
        self.sim_url = info["url"]

    async def start_service(self, name: str) -> None:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - handed to the child
        service = name.split("-", 1)[0]  # executor-2 runs `kruisebus executor`
        kube = () if service == "planner" else ("--kubeconfig", self.kubeconfig)  # the planner reads only NATS
        self.procs[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", service, "--nats", self.nats_url, *kube,
            "--prefix", self.prefix, *self.service_args.get(service, ()),
            stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=self.env,
        )
        log.close()

    async def start(self) -> Stack:
        await self.start_nats()
        await self.start_sim()
        for name in SERVICES:
            await self.start_service(name)
        for i in range(2, self.executors + 1):
            await self.start_service(f"executor-{i}")
        return self

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.returncode is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    async def kill(self, name: str) -> None:
        """SIGKILL one service (chaos)."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def restart(self, name: str) -> None:
        await self.kill(name)
        await self.start_service(name)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        await asyncio.gather(*(self._terminate(p) for p in self.procs.values()))
        if self.sim is not None:
            await self._terminate(self.sim)
        await asyncio.to_thread(self.nats.stop)

    async def cleanup(self) -> None:
        await self.stop()
        if self._own:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> Stack:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()

"""The local stack: NATS + the simulated cluster + every kruisebus service, each its own process.

`kruisebus demo`, `kruisebus up` and the end-to-end tests all start the pipeline through this one
class, so what the demo shows is exactly what the tests check. Services are real processes (the same
`kruisebus <service>` command a Pod would run), which is what lets chaos tests SIGKILL one mid-rollout.

With `cluster=<kubeconfig>` the services run against an existing API server instead of the sim (the
`[real]` tests: kube-apiserver itself); `nodes` > 0 then starts `python -m sim nodes` to give it that
many simulated kubelets, and 0 uses the nodes it already has.

NATS runs with the install's account and per-service users (services.natsauth; `auth=False` turns it
off): the stack creates the streams and the lease bucket as `admin`, then starts every service as its
own user, with the password in its environment. `watchers` / `planners` > 1 start standbys and
planner replicas (`watcher-2`, `planner-2`, ...), each its own lease holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services import natsauth
from services.natsd import NatsCluster, NatsServer

if TYPE_CHECKING:
    from services.bus import Bus

SERVICES = ("watcher", "planner", "executor")
AGENT = "agent"  # the node agents of every simulated node, in one process
# The admission webhook starts first (it admits the first CloneSet). It is not in SERVICES, the set the
# pipeline's chaos tests kill at random: it needs no NATS, and while it is down CloneSet writes fail.
WEBHOOK = "webhook"
# the webhook binds a free loopback port and registers `url: https://127.0.0.1:<port>` with the sim
WEBHOOK_ARGS = ("--host", "127.0.0.1", "--port", "0", "--url-host", "127.0.0.1")


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a process's log file (what a failure message quotes)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class StackError(RuntimeError):
    """A process of the stack failed to start; the message carries the tail of its log."""


class Stack:
    def __init__(self, *, nodes: int = 3, prefix: str = "kb", workdir: Path | None = None,
                 sim_args: tuple[str, ...] = (), service_args: dict[str, tuple[str, ...]] | None = None,
                 env: dict[str, str] | None = None, executors: int = 1, webhook: bool = True,
                 cluster: str | None = None, node_prefix: str = "sim-node-", auth: bool = True,
                 watchers: int = 1, planners: int = 1, node_agents: bool = False, probers: bool = False,
                 prober_processes: int = 0, nats_servers: int = 1) -> None:
        self._own = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kruisebus-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = nodes
        self.prefix = prefix
        self.sim_args = sim_args
        self.service_args = service_args or {}
        # executors are a stateless pool on one work queue: the extra ones run as
        # `executor-2`, `executor-3`, ... (same command, same durable consumer)
        self.executors = executors
        self.webhook = webhook  # False: no admission webhook (as if it were down when objects were written)
        self.env = {**os.environ, **(env or {})}
        self.watchers = watchers
        self.planners = planners
        self.passwords = natsauth.generate_passwords() if auth else None
        self.nats = NatsServer(self.workdir / "nats", auth=self.passwords, prefix=prefix)
        (self.workdir / "nats").mkdir(exist_ok=True)
        # more than 1: a JetStream cluster of that many servers instead (`self.nats_cluster`), the streams
        # and the lease bucket replicated on every member, each service connected with every URL
        self.nats_cluster = NatsCluster(self.workdir / "nats", nats_servers, auth=self.passwords, prefix=prefix) \
            if nats_servers > 1 else None
        if self.nats_cluster is not None:
            self.env["KRUISEBUS_STREAM_REPLICAS"] = str(nats_servers)
        self.cluster = cluster
        self.node_prefix = node_prefix
        # the simulated nodes' agents (`kruisebus executor --node A --node B ... --runtime sim`), as the
        # process `agent`: image pre-download needs them
        self.node_agents = node_agents
        # one `kruisebus prober --node N` per sim node (named `prober-<node>`), and the sim's pod network
        # (loopback pod IPs with listening containers) their tcpSocket/httpGet probes connect to
        self.probers = probers
        # 0: that one prober per node; N: the nodes split over N `kruisebus prober --node A --node B ...`
        # processes named `prober-g<i>` (many sim nodes on one machine)
        self.prober_processes = prober_processes
        self.kubeconfig = cluster or str(self.workdir / "kubeconfig")
        self.sim_url = ""
        self.sim: asyncio.subprocess.Process | None = None
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def nats_url(self) -> str:
        return self.nats_cluster.url if self.nats_cluster is not None else self.nats.url

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        return tail(self.log_path(name), lines)

    async def start_nats(self) -> None:
        from services.cli import ensure_bus
        from services.observe import poll

        replicas = 1
        if self.nats_cluster is not None:
            await asyncio.to_thread(self.nats_cluster.start)
            replicas = len(self.nats_cluster.members)
        else:
            await asyncio.to_thread(self.nats.start)
        bus = await self.connect(natsauth.ADMIN, name="kruisebus-stack-init", replicas=replicas)

        async def ensured() -> bool:
            try:
                await ensure_bus(bus)
            except Exception as e:  # a new cluster elects its JetStream leaders first
                if self.nats_cluster is None:
                    raise
                logging.getLogger("kruisebus.stack").debug("streams not created yet: %r", e)
                return False
            return True

        try:
            await poll(ensured, bool, timeout=30, interval=0.2, what="the streams created")
        finally:
            await bus.close()

    def password_file(self, user: str) -> Path | None:
        """A file holding `user`'s password (for `--nats-password-file`); None without auth."""
        if self.passwords is None:
            return None
        path = self.workdir / f"nats-{user}.password"
        path.write_text(self.passwords[user])
        path.chmod(0o600)
        return path

    def nats_env(self, user: str) -> dict[str, str]:
        """The environment that makes a `kruisebus` process connect as `user`."""
        if self.passwords is None:
            return {}
        return {"KRUISEBUS_NATS_USER": user, "KRUISEBUS_NATS_PASSWORD": self.passwords[user],
                "KRUISEBUS_ENSURE_STREAMS": "false"}

    async def connect(self, user: str = natsauth.ADMIN, *, name: str = "kruisebus-stack", **kwargs: Any) -> Bus:
        """A Bus on the stack's NATS as `user` (tests and tools read the streams as `admin` or `viewer`)."""
        from services.bus import Bus

        creds = (self.nats_cluster or self.nats).credentials(user)
        return await Bus.connect(self.nats_url, name=name, prefix=self.prefix,
                                 user=creds[0] if creds else None, password=creds[1] if creds else None,
                                 **kwargs)

    async def start_sim(self, timeout: float = 30.0) -> None:
        if self.cluster is not None:
            if self.nodes <= 0:
                return
            argv: tuple[str, ...] = ("nodes", "--kubeconfig", self.cluster, "--count", str(self.nodes),
                                     "--name-prefix", self.node_prefix)
            if self.node_agents or self.probers:  # their `sim` runtime pulls and execs through the nodes' control API
                argv = (*argv, "--control-port", "0")
        else:
            argv = ("--nodes", str(self.nodes), "--port", "0", "--kubeconfig", self.kubeconfig)
        if self.probers:
            argv = (*argv, "--pod-network")
        log = open(self.log_path("sim"), "ab")  # noqa: SIM115 - handed to the child
        self.sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sim", *argv, *self.sim_args,
            stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=self.env,
        )
        log.close()
        assert self.sim.stdout is not None
        try:
            line = await asyncio.wait_for(self.sim.stdout.readline(), timeout)
            info = json.loads(line)
        except (TimeoutError, ValueError) as e:
            raise StackError(f"sim did not start ({e}):\n{self.log_tail('sim')}") from None
        # the embedded cluster's URL, or the control API of `sim nodes` (none unless asked for)
        self.sim_url = info.get("url") or info.get("control", "")

    @property
    def node_names(self) -> list[str]:
        return [f"{self.node_prefix}{i}" for i in range(self.nodes)]

    @property
    def prober_groups(self) -> dict[str, list[str]]:
        """Prober process name -> the nodes it serves."""
        if self.prober_processes <= 0:
            return {f"prober-{n}": [n] for n in self.node_names}
        k = min(self.prober_processes, max(self.nodes, 1))
        return {f"prober-g{i}": self.node_names[i::k] for i in range(k)}

    def prober_of(self, node: str) -> str:
        """The name of the prober process that serves `node`."""
        return next(name for name, nodes in self.prober_groups.items() if node in nodes)

    async def start_service(self, name: str) -> None:
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - handed to the child
        service = name.split("-", 1)[0]  # executor-2 runs `kruisebus executor`
        user = service
        agent: tuple[str, ...] = ()
        if service == AGENT:  # one process serves every simulated node (a DaemonSet pod per node on a cluster)
            service, user = "executor", natsauth.NODE_AGENT
            agent = (*(a for n in self.node_names for a in ("--node", n)), "--runtime", "sim",
                     *(("--sim-url", self.sim_url) if self.sim_url else ()))
        # the planner and the probers read only NATS
        kube = () if service in ("planner", "prober") else ("--kubeconfig", self.kubeconfig)
        ready = self.workdir / f"{name}.ready"
        extra: tuple[str, ...] = (*WEBHOOK_ARGS, "--ready-file", str(ready)) if service == "webhook" else ()
        if service == "prober":
            extra = (*(a for n in self.prober_groups[name] for a in ("--node", n)), "--sim-url", self.sim_url)
        ready.unlink(missing_ok=True)
        env = {**self.env, **self.nats_env(user)}
        if service in ("watcher", "planner"):
            env["KRUISEBUS_HOLDER"] = name  # a restarted `planner` takes its own leases back at once
        self.procs[name] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", service, "--nats", self.nats_url, *kube,
            "--prefix", self.prefix, *extra, *agent, *self.service_args.get(service, ()),
            stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=env,
        )
        log.close()
        if service == "webhook":
            await self._wait_ready(name, ready)

    async def _wait_ready(self, name: str, ready: Path, timeout: float = 30.0) -> None:
        """Until the webhook has registered itself with the cluster (it writes `ready`)."""
        from services.observe import poll

        async def state() -> bool:
            self.check_alive()
            return ready.exists()

        try:
            await poll(state, bool, timeout=timeout, interval=0.05, what=f"{name} registered")
        except TimeoutError as e:
            raise StackError(f"{e}:\n{self.log_tail(name)}") from None

    async def start(self) -> Stack:
        await self.start_nats()
        await self.start_sim()
        if self.webhook:
            await self.start_service(WEBHOOK)
        for name in SERVICES:
            await self.start_service(name)
        for i in range(2, self.executors + 1):
            await self.start_service(f"executor-{i}")
        if self.node_agents:
            await self.start_service(AGENT)
        if self.probers:
            for prober in self.prober_groups:
                await self.start_service(prober)
        for i in range(2, self.watchers + 1):
            await self.start_service(f"watcher-{i}")
        for i in range(2, self.planners + 1):
            await self.start_service(f"planner-{i}")
        return self

    def permission_violations(self) -> list[str]:
        """The NATS server's log lines about a publish or subscribe a user was not allowed."""
        logs = [self.workdir / "nats" / "server.log", *(self.workdir / "nats").glob("n*/server.log")]
        return [line for log in logs if log.exists()
                for line in log.read_text(errors="replace").splitlines() if "Permissions Violation" in line]

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.returncode is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    async def kill(self, name: str, *, forget: bool = False) -> None:
        """SIGKILL one service (chaos); `forget`: for good (a replica lost), not checked as alive."""
        proc = self.procs.pop(name) if forget else self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def terminate(self, name: str) -> int:
        """SIGTERM one service and wait for it (a graceful stop: scale-in, rolling update)."""
        proc = self.procs.pop(name)
        await self._terminate(proc)
        assert proc.returncode is not None
        return proc.returncode

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
        if self.nats_cluster is not None:
            await asyncio.to_thread(self.nats_cluster.stop)

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

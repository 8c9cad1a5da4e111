"""A real Kubernetes control plane for the `[real]` tests: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler 1.20.2 as processes on loopback, with `python -m sim nodes` as the kubelets.

Why: everything kruisebus concludes from the embedded cluster (`sim/`) must also hold on Kubernetes
itself, and only the real API server and controllers show where the sim is kinder than they are. The
binaries are built once from Debian's `kubernetes` source package by `tools/realkube/build.sh` (which
`make test` runs through `python -m tests.realkube build`) into a cache outside the work tree; where that
cannot be done, `unavailable()` says why and the `[real]` tests skip with that reason.

Each `ControlPlane` has its own temporary etcd, a self-signed CA (openssl), a serving certificate for
127.0.0.1, a service-account key pair and an admin client certificate (`system:masters`); every
component binds 127.0.0.1 on free ports (the insecure ports of 1.20 are switched off). `kubeconfig`
points at the apiserver with the admin certificate inline, usable by kubectl, kubernetes-asyncio and
`sim.kubeconfig`.

    python -m tests.realkube build     # build (idempotent; a no-op once DIR/.built exists)
    python -m tests.realkube status    # where the cache is and whether it is usable
    python -m tests.realkube up        # start one and print its kubeconfig path (Ctrl-C stops it)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from services.stack import tail

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "tools" / "realkube" / "build.sh"
CRD_DIR = REPO / "deploy" / "helm" / "kruisebus" / "crds"
VERSION = "1.20.2"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
ENV_DIR = "KRUISEBUS_REALKUBE_DIR"


def cache_dir() -> Path:
    """Where the binaries are cached: $KRUISEBUS_REALKUBE_DIR, else /var/cache/kruisebus (root) or
    ~/.cache/kruisebus, in a directory named after the Kubernetes version."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    if os.geteuid() == 0:
        return Path("/var/cache/kruisebus") / f"kube-{VERSION}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kruisebus" / f"kube-{VERSION}"


def unavailable() -> str | None:
    """Why the real control plane cannot run here (None: it can)."""
    d = cache_dir()
    missing = [b for b in BINARIES if not (d / "bin" / b).is_file()]
    if not missing and (d / ".built").is_file():
        if shutil.which("etcd") is None:
            return "etcd is not installed (Debian etcd-server)"
        if shutil.which("openssl") is None:
            return "openssl is not installed"
        return None
    why = (d / "unavailable").read_text().strip() if (d / "unavailable").is_file() else ""
    return (
        f"the real control plane is not built in {d}"
        + (f": {why}" if why else f" (missing {', '.join(missing) or 'the .built stamp'})")
        + f"; build it with `{sys.executable} -m tests.realkube build` (make test does)"
    )


def build() -> int:
    """Run the build script (a no-op when the stamp exists)."""
    return subprocess.call(["bash", str(BUILD_SCRIPT), str(cache_dir())])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_nodes_ready(cp: ControlPlane, names: list[str], timeout: float = 90.0) -> None:
    """Until every node is Ready and schedulable: the node lifecycle controller has removed the
    `node.kubernetes.io/not-ready` taint admission put on it at creation."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        _, lst = cp.request("GET", "/api/v1/nodes")
        ok = {n["metadata"]["name"] for n in lst.get("items") or []
              if any(c.get("type") == "Ready" and c.get("status") == "True"
                     for c in (n.get("status") or {}).get("conditions") or [])
              and not any(t.get("key", "").startswith("node.kubernetes.io/")
                          for t in (n.get("spec") or {}).get("taints") or [])}
        pending = [n for n in names if n not in ok]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"nodes not Ready and untainted after {timeout:.0f}s: {pending}")
        time.sleep(0.5)


class SimNodes:
    """`python -m sim nodes` against a control plane: the kubelets of the real cluster (kwok-style)."""

    def __init__(self, cp: ControlPlane, count: int = 3, *, prefix: str = "real-node-",
                 args: tuple[str, ...] = ()) -> None:
        self.cp = cp
        self.count = count
        self.prefix = prefix
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.names: list[str] = []
        self.log = cp.workdir / f"nodes-{prefix.rstrip('-')}.log"

    def start(self, timeout: float = 90.0) -> SimNodes:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sim", "nodes", "--kubeconfig", str(self.cp.kubeconfig),
                 "--count", str(self.count), "--name-prefix", self.prefix, *self.args],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            self.names = list(json.loads(line)["nodes"])
        except (ValueError, KeyError):
            raise ControlPlaneError(f"sim nodes did not start:\n{self.log.read_text()[-3000:]}") from None
        wait_nodes_ready(self.cp, self.names, timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for name in self.names:
            self.cp.request("DELETE", f"/api/v1/nodes/{name}")


def metric(cp: ControlPlane, name: str, **labels: str) -> float:
    """Sum of the samples of `name` on kube-apiserver's /metrics whose labels include `labels`."""
    req = urllib.request.Request(cp.server + "/metrics")
    with urllib.request.urlopen(req, timeout=10, context=cp.client_ssl()) as r:
        text = r.read().decode()
    want = [f'{k}="{v}"' for k, v in labels.items()]
    # `resource="pods"` must not match `subresource="pods"`: compare whole label pairs
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _, value = line.rpartition(" ")
        pairs = series.partition("{")[2].rstrip("}").split(",")
        if all(w in pairs for w in want):
            total += float(value)
    return total


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """CA, apiserver serving cert (127.0.0.1, localhost), admin client cert, service-account keys."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=kruisebus-test-ca", cwd=d)
    (d / "serving.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\n"
        "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("apiserver", "/CN=kube-apiserver", "serving.ext"),
                            ("admin", "/O=system:masters/CN=kruisebus-admin", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext, cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def kubeconfig_for(server: str, pki: Path) -> dict[str, Any]:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "realkube", "cluster": {"server": server,
                                                      "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64("admin.crt"),
                                             "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": "realkube", "context": {"cluster": "realkube", "user": "admin"}}],
        "current-context": "realkube",
    }


class ControlPlaneError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler in `workdir` (a temp dir)."""

    def __init__(self, workdir: Path | None = None, *, bin_dir: Path | None = None,
                 component_args: dict[str, tuple[str, ...]] | None = None) -> None:
        self._own = workdir is None
        # extra flags per component (benchmarks lift the controllers' client-side rate limits)
        self.component_args = component_args or {}
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="kruisebus-realkube-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bin = bin_dir or cache_dir() / "bin"
        self.pki = self.workdir / "pki"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port = 0
        self.server = ""
        self.kubeconfig = self.workdir / "kubeconfig"
        # etcd fsyncs every write: a throwaway store on tmpfs keeps the API server's latency low
        shm = Path("/dev/shm")
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="kruisebus-etcd-", dir=shm if shm.is_dir() else None))

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        return tail(self.log_path(name), lines)

    def _spawn(self, name: str, argv: list[str]) -> None:
        argv = [*argv, *self.component_args.get(name, ())]
        with open(self.log_path(name), "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def _check(self, name: str) -> None:
        p = self.procs[name]
        if p.poll() is not None:
            raise ControlPlaneError(f"{name} exited with {p.returncode}:\n{self.log_tail(name)}")

    def _wait_http(self, name: str, url: str, ctx: ssl.SSLContext | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check(name)
            try:
                with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s ({last}):\n{self.log_tail(name)}")

    def client_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def start(self, timeout: float = 90.0) -> ControlPlane:
        why = unavailable()
        if why:
            raise ControlPlaneError(why)
        make_pki(self.pki)
        etcd_client, etcd_peer = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._spawn("etcd", [
            "etcd", "--name", "realkube", "--data-dir", str(self.etcd_dir),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"realkube=http://127.0.0.1:{etcd_peer}",
        ])
        self._wait_http("etcd", f"{etcd_url}/health", None, 30)
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        pki = self.pki
        self._spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            "--insecure-port=0",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            # Pods in a fresh namespace would race the controller-manager's `default` ServiceAccount.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type=none",
            "--v=0",
        ])
        self._wait_http("kube-apiserver", f"{self.server}/readyz", self.client_ssl(), timeout)
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(self.server, pki)))
        self._spawn("kube-controller-manager", [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}", "--bind-address=127.0.0.1", "--port=0", "--secure-port=0",
            "--leader-elect=false", "--controllers=*",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
            # the node lifecycle controller is what removes the not-ready taint admission puts on
            # every new node; its defaults (40 s grace) suit the sim kubelets' 10 s heartbeats
            "--v=0",
        ])
        self._spawn("kube-scheduler", [
            str(self.bin / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}", "--bind-address=127.0.0.1", "--port=0", "--secure-port=0",
            "--leader-elect=false", "--v=0",
        ])
        self.install_crds()
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._check(name)
        return self

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.client_ssl()) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def install_crds(self, timeout: float = 30.0) -> None:
        """The chart's CRDs, then wait until each is Established (served)."""
        names = []
        for f in sorted(CRD_DIR.glob("*.yaml")):
            for doc in yaml.safe_load_all(f.read_text()):
                if not doc:
                    continue
                code, out = self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)
                if code not in (201, 409):
                    raise ControlPlaneError(f"CRD {f.name}: {code} {out.get('message')}")
                names.append(doc["metadata"]["name"])
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                _, crd = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conds = (crd.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                    break
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not established after {timeout:.0f}s")
                time.sleep(0.1)

    def stop(self) -> None:
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.etcd_dir, ignore_errors=True)
        if self._own:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    if cmd == "build":
        return build()
    if cmd == "status":
        why = unavailable()
        print(json.dumps({"dir": str(cache_dir()), "usable": why is None, "why": why}))
        return 0
    if cmd == "up":
        with ControlPlane() as cp:
            print(json.dumps({"server": cp.server, "kubeconfig": str(cp.kubeconfig),
                              "workdir": str(cp.workdir)}), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    print(f"usage: {sys.argv[0]} build|status|up", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

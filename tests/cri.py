"""A real containerd and a real registry for the `cri` runtime's tests, as plain processes on loopback.

Why: the `cri` runtime is only proven by the container runtime a node runs. Debian's `containerd` runs
as a process with its config, root, state and socket in a temporary directory (native snapshotter:
nothing needs overlayfs), and Debian's `docker-registry` (distribution 2.8) serves plain HTTP on a free
127.0.0.1 port, once openly and once behind htpasswd (`apache2-utils`). Images are built here, not
downloaded: a layer tar, an OCI config and manifest, pushed through the registry's HTTP API.
`unavailable()` says why they cannot run (the tests then skip with that reason); `make test` installs
the packages (Makefile `tools`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from services.runtime import cri_api
from tests.realkube import free_port

# binary -> the Debian package that brings it
BINARIES = {
    "containerd": "containerd",
    "runc": "runc",
    "docker-registry": "docker-registry",
    "htpasswd": "apache2-utils",
}
BUSYBOX = Path("/bin/busybox")  # Debian busybox-static: the tool image's one binary (exec tests)


def unavailable() -> str | None:
    """Why containerd and the registry cannot run here (None: they can)."""
    missing = [f"{b} (Debian {p})" for b, p in BINARIES.items() if shutil.which(b) is None]
    if missing:
        return f"not installed: {', '.join(missing)}; make test installs them (Makefile tools)"
    if os.geteuid() != 0:
        return "containerd needs root"
    return cri_api.unavailable()


def _wait(check: object, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if callable(check) and check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {timeout:.0f}s: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- images ---------------------------------------------------------------------------------------


def layer(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """An uncompressed layer tar: regular files (mode 0755) and symlinks, parent directories added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        dirs = sorted({str(Path(p).parent) for p in [*files, *(links or {})]} - {"."})
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        for path, data in sorted(files.items()):
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode = len(data), 0o755
            t.addfile(ti, io.BytesIO(data))
        for path, target in sorted((links or {}).items()):
            ti = tarfile.TarInfo(path)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            t.addfile(ti)
    return buf.getvalue()


class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, plain HTTP; `auth=(user, password)` puts it
    behind htpasswd."""

    def __init__(self, workdir: Path, *, auth: tuple[str, str] | None = None) -> None:
        self.dir = workdir
        self.auth = auth
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "registry.log"

    def start(self) -> Registry:
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "version": 0.1,
            "log": {"level": "warn"},
            "http": {"addr": self.host, "secret": "kruisebus-test"},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")}},
        }
        if self.auth is not None:
            htpasswd = subprocess.run(
                ["htpasswd", "-Bbn", *self.auth], check=True, capture_output=True
            ).stdout
            (self.dir / "htpasswd").write_bytes(htpasswd)
            cfg["auth"] = {"htpasswd": {"realm": "kruisebus-test", "path": str(self.dir / "htpasswd")}}
        (self.dir / "config.yml").write_text(json.dumps(cfg))  # YAML is a superset of JSON
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.dir / "config.yml")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait(self._answers, f"docker-registry on {self.host}", self.proc, self.log)
        return self

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/v2/", timeout=2).close()
            return True
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def stop(self) -> None:
        _stop(self.proc)

    def _request(
        self, method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> urllib.request._UrlopenRet:
        h = dict(headers or {})
        if self.auth is not None:
            h["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        return urllib.request.urlopen(
            urllib.request.Request(url, data=data, method=method, headers=h), timeout=30
        )

    def _blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._request("POST", f"{self.url}/v2/{repo}/blobs/uploads/", b"") as r:
            loc = r.headers["Location"]
        loc = self.url + loc if loc.startswith("/") else loc
        sep = "&" if "?" in loc else "?"
        self._request(
            "PUT", f"{loc}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"}
        ).close()
        return digest

    def push(self, repo: str, tag: str, layer_tar: bytes, *, entrypoint: list[str] | None = None) -> str:
        """Push a one-layer OCI image; returns the config digest (the image id containerd reports)."""
        gz = gzip.compress(layer_tar, mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": entrypoint or [], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
            }
        ).encode()
        layer_digest, config_digest = self._blob(repo, gz), self._blob(repo, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest,
                        "size": len(gz),
                    }
                ],
            }
        ).encode()
        self._request(
            "PUT",
            f"{self.url}/v2/{repo}/manifests/{tag}",
            manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ).close()
        return config_digest


class Containerd:
    """Debian's containerd as a process: config, root, state and socket under `workdir`; `registries`
    (host:port) are reached over plain HTTP; `sandbox_image` is the pause image of pod sandboxes."""

    def __init__(self, workdir: Path, registries: list[str], *, sandbox_image: str = "") -> None:
        self.dir = workdir
        self.registries = registries
        self.sandbox_image = sandbox_image
        self.socket = str(workdir / "containerd.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "containerd.log"

    def config(self) -> str:
        d = self.dir
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        lines = [
            "version = 2",
            f'root = "{d / "root"}"',
            f'state = "{d / "state"}"',
            'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", '
            '"io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
            "[grpc]",
            f'  address = "{self.socket}"',
            "[ttrpc]",
            f'  address = "{d / "containerd-ttrpc.sock"}"',
            "[debug]",
            '  address = ""',
            "[metrics]",
            '  address = ""',
            f"[{cri}]",
            "  disable_apparmor = true",
            "  enable_selinux = false",
            *([f'  sandbox_image = "{self.sandbox_image}"'] if self.sandbox_image else []),
            f"[{cri}.containerd]",
            '  snapshotter = "native"',
            f"[{cri}.cni]",
            '  bin_dir = "/usr/lib/cni"',
            f'  conf_dir = "{d / "cni"}"',
        ]
        for host in self.registries:
            lines += [f'[{cri}.registry.mirrors."{host}"]', f'  endpoint = ["http://{host}"]']
        return "\n".join(lines) + "\n"

    def start(self) -> Containerd:
        (self.dir / "cni").mkdir(parents=True, exist_ok=True)
        (self.dir / "config.toml").write_text(self.config())
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(self.dir / "config.toml")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait(
            lambda: Path(self.socket).is_socket() and "serving..." in self.log.read_text(),
            "containerd",
            self.proc,
            self.log,
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.remove_pods()  # their shims would outlive containerd
            except Exception as e:
                print(f"containerd: removing pod sandboxes: {e}")
        _stop(self.proc)

    def _cri(self) -> tuple[Any, Any, Any]:
        import grpc

        pb, stubs = cri_api.load()
        ch = grpc.insecure_channel(f"unix://{self.socket}")
        return pb, stubs, ch

    def run_pod(self, namespace: str, pod: str, container: str, image: str, logs: Path) -> str:
        """A pod sandbox (host network: no CNI here) running `container` of `namespace/pod` from
        `image`, labelled as the kubelet labels them; returns the container id. Raises CannotRun with
        containerd's reason where it cannot start containers (runc inside a sandboxed machine)."""
        import grpc

        pb, stubs, ch = self._cri()
        try:
            rt = stubs.RuntimeServiceStub(ch)
            stubs.ImageServiceStub(ch).PullImage(
                pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=60
            )
            labels = {"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": pod}
            cfg = pb.PodSandboxConfig(
                metadata=pb.PodSandboxMetadata(name=pod, namespace=namespace, uid=f"uid-{pod}", attempt=0),
                labels=labels,
                log_directory=str(logs),
                linux=pb.LinuxPodSandboxConfig(
                    security_context=pb.LinuxSandboxSecurityContext(
                        namespace_options=pb.NamespaceOption(network=pb.NODE)
                    )
                ),
            )
            sb = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
            cc = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=container),
                image=pb.ImageSpec(image=image),
                labels={**labels, "io.kubernetes.container.name": container},
                log_path=f"{container}.log",
            )
            req = pb.CreateContainerRequest(pod_sandbox_id=sb, config=cc, sandbox_config=cfg)
            cid = rt.CreateContainer(req, timeout=60).container_id
            rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
            return str(cid)
        except grpc.RpcError as e:
            raise CannotRun(f"containerd cannot run containers here: {e.details()}") from None
        finally:
            ch.close()

    def remove_pods(self) -> None:
        pb, stubs, ch = self._cri()
        try:
            rt = stubs.RuntimeServiceStub(ch)
            for sb in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sb.id), timeout=60)
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sb.id), timeout=60)
        finally:
            ch.close()


class CannotRun(Exception):
    """containerd is up but cannot start containers here (the message says why)."""


__all__ = ["BUSYBOX", "CannotRun", "Containerd", "Registry", "layer", "unavailable"]

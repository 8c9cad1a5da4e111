"""The `cri` runtime against a real containerd pulling from a real registry, both on loopback
(tests/cri.py): a pull then ImageStatus, a missing image, htpasswd credentials from a pull secret,
and ExecSync in a running container where containerd can start one here."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.errors import ExecTargetNotFound, ImageNotFound, ImagePullUnauthorized
from services.runtime import PullAuth, RegistryCredentials, SandboxConfig, open_runtime
from services.runtime.cri import CriRuntime
from tests import cri

USER, PASSWORD = "alice", "s3cret"


@dataclass
class Env:
    containerd: cri.Containerd
    open: cri.Registry
    private: cri.Registry
    tiny_id: str


@pytest.fixture(scope="session")
def cri_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    why = cri.unavailable()
    if why:
        print(f"skipping the CRI tests: {why}")
        pytest.skip(why)
    d = tmp_path_factory.mktemp("cri")
    started: list[Any] = []
    try:
        reg = cri.Registry(d / "registry").start()
        started.append(reg)
        priv = cri.Registry(d / "private", auth=(USER, PASSWORD)).start()
        started.append(priv)
        tiny = cri.layer({"hello.txt": b"hello from kruisebus\n"})
        tiny_id = reg.push("tiny", "v1", tiny)
        priv.push("secret-app", "v1", tiny)
        if cri.BUSYBOX.is_file():
            tools = cri.layer(
                {"bin/busybox": cri.BUSYBOX.read_bytes()},
                {f"bin/{n}": "busybox" for n in ("sh", "sleep", "cat", "echo", "true")},
            )
            reg.push("toolbox", "1", tools, entrypoint=["/bin/sleep", "3600"])
        ctd = cri.Containerd(
            d / "containerd", [reg.host, priv.host], sandbox_image=f"{reg.host}/toolbox:1"
        ).start()
        started.append(ctd)
    except Exception as e:
        for p in reversed(started):
            p.stop()
        pytest.skip(f"containerd or the registry could not be started: {e}")
    try:
        yield Env(ctd, reg, priv, tiny_id)
    finally:
        for p in reversed(started):
            p.stop()


@pytest.fixture
async def runtime(cri_env: Env) -> Any:
    rt = await open_runtime("cri", node="cri-node", cri_socket=cri_env.containerd.socket)
    try:
        yield rt
    finally:
        await rt.close()


async def test_pull_then_image_status_reports_the_image(cri_env: Env, runtime: CriRuntime) -> None:
    image = f"{cri_env.open.host}/tiny:v1"
    assert await runtime.image_status(image) is None
    phases: list[str] = []
    pulled = await runtime.pull(image, timeout=60, on_progress=lambda p: phases.append(p.phase))
    assert pulled.image_id.startswith(
        f"{cri_env.open.host}/tiny@sha256:"
    )  # the repo digest, as kubelets report
    assert pulled.size_bytes and pulled.size_bytes > 0
    assert phases == ["Pulling", "Succeeded"]
    assert await runtime.image_status(image) == pulled
    assert "containerd" in await runtime.version()


async def test_nonexistent_image_fails_not_found(cri_env: Env, runtime: CriRuntime) -> None:
    image = f"{cri_env.open.host}/no-such-app:v1"
    with pytest.raises(ImageNotFound) as e:
        await runtime.pull(image, timeout=60)
    assert e.value.kube_reason == "ErrImagePull"
    assert e.value.message.startswith("rpc error: code = NotFound desc = failed to pull and unpack image")
    assert await runtime.image_status(image) is None


def docker_config(host: str, user: str, password: str) -> bytes:
    return json.dumps(
        {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}
    ).encode()


async def test_htpasswd_registry_pulls_with_the_right_credentials_only(
    cri_env: Env, runtime: CriRuntime
) -> None:
    from services.runtime.auth import credentials_from_docker_config

    host = cri_env.private.host
    image = f"{host}/secret-app:v1"
    with pytest.raises(ImagePullUnauthorized) as e:
        await runtime.pull(image, timeout=60)
    assert "401 Unauthorized" in e.value.message
    wrong = credentials_from_docker_config(docker_config(host, USER, "wrong"))
    with pytest.raises(ImagePullUnauthorized):
        await runtime.pull(image, timeout=60, auth=PullAuth(credentials=tuple(wrong)))
    other_registry = RegistryCredentials(server_address="elsewhere.example", username=USER, password=PASSWORD)
    with pytest.raises(ImagePullUnauthorized):  # credentials of another registry are not sent
        await runtime.pull(image, timeout=60, auth=PullAuth(credentials=(other_registry,)))
    right = credentials_from_docker_config(docker_config(host, USER, PASSWORD))
    sandbox = SandboxConfig(
        labels={"app": "web"}, annotations={"note": "pre-download"}
    )  # passed as sandbox_config
    pulled = await runtime.pull(image, timeout=60, auth=PullAuth(credentials=tuple(right)), sandbox=sandbox)
    assert pulled.image_id.startswith(f"{host}/secret-app@sha256:")


async def test_exec_sync_in_a_running_container(cri_env: Env, runtime: CriRuntime, tmp_path: Path) -> None:
    if not cri.BUSYBOX.is_file():
        pytest.skip(f"{cri.BUSYBOX} is missing (Debian busybox-static): no tool image to exec in")
    try:
        cri_env.containerd.run_pod("default", "web", "main", f"{cri_env.open.host}/toolbox:1", tmp_path)
    except cri.CannotRun as e:
        print(e)
        pytest.skip(str(e))
    ok = await runtime.exec_sync(
        "default", "web", "main", ["/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"], timeout=5
    )
    assert (ok.exit_code, ok.stdout, ok.stderr, ok.timed_out) == (3, "hi\n", "oops\n", False)
    hung = await runtime.exec_sync("default", "web", "main", ["/bin/sleep", "30"], timeout=1)
    assert hung.timed_out
    with pytest.raises(ExecTargetNotFound, match='no running container "nope" of pod default/web'):
        await runtime.exec_sync("default", "web", "nope", ["true"])

"""The `sim` runtime against the embedded cluster: pulls with the node's latency model, the simulated
registry's refusals (missing images, private repositories), progress, timeouts, exec outcomes; and the
simulated kubelet's own ErrImagePull / ImagePullBackOff for pods."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.errors import (
    ExecTargetNotFound,
    ImageNotFound,
    ImagePullTimeout,
    ImagePullUnauthorized,
    InvalidImageName,
    RuntimeUnavailable,
)
from services.kube import Kube
from services.runtime import ImageRuntime, PullAuth, PullProgress, SecretRef, open_runtime
from sim import SimCluster
from sim.nodes import NodeConfig
from tests.component.runtime_fixtures import cluster, kube

__all__ = ["cluster", "kube"]  # the shared fixtures, used by name

NODE = "sim-node-0"


@pytest.fixture
async def runtime(cluster: SimCluster, kube: Kube) -> AsyncIterator[ImageRuntime]:
    rt = await open_runtime("sim", node=NODE, kube=kube)
    try:
        yield rt
    finally:
        await rt.close()


async def post(c: SimCluster, path: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(f"{c.url}{path}", json=body) as r:
        return r.status, await r.json()


async def test_pull_takes_size_over_bandwidth_with_progress_then_is_present(
    cluster: SimCluster, runtime: ImageRuntime
) -> None:
    seen: list[PullProgress] = []
    assert await runtime.image_status("big:1") is None
    t0 = time.monotonic()
    pulled = await runtime.pull("big:1", on_progress=seen.append, timeout=30)
    took = time.monotonic() - t0
    assert took >= 0.6  # 60 MB at 100 MB/s
    assert pulled.image_id.startswith("big:1@sha256:")
    assert pulled.size_bytes == 60 * 1024 * 1024
    pulling = [p.percent for p in seen if p.phase == "Pulling"]
    assert pulling and pulling == sorted(pulling) and 0 <= pulling[0] < 100
    assert seen[-1].phase == "Succeeded" and seen[-1].percent == 100
    assert await runtime.image_status("big:1") == pulled
    kubelet = cluster.kubelets[NODE]
    assert kubelet.pull_count == 1
    # IfNotPresent: present already, no second download; the other node has not got it
    t0 = time.monotonic()
    assert await runtime.pull("big:1") == pulled
    assert time.monotonic() - t0 < 0.3 and kubelet.pull_count == 1
    assert not cluster.kubelets["sim-node-1"].has_image("big:1")


async def test_concurrent_pulls_wait_for_a_slot(tmp_path: Path) -> None:
    cfg = NodeConfig(pull_delay=0.3, max_parallel_pulls=1, start_delay=0.01)
    async with SimCluster(nodes=1, tmpdir=tmp_path, node_config=cfg) as c:
        rt = await open_runtime("sim", node=NODE, sim_url=c.url)
        try:
            seen: dict[str, list[str]] = {"a:1": [], "b:1": []}
            await asyncio.gather(
                *(rt.pull(img, on_progress=lambda p: seen[p.image].append(p.phase)) for img in seen)
            )
        finally:
            await rt.close()
        assert c.kubelets[NODE].max_pulls_seen == 1
        assert any("Waiting" in phases for phases in seen.values())  # one of them queued for the slot


@pytest.mark.parametrize(
    "image",
    ["registry.example/app-does-not-exist:1", "declared-missing:2"],
    ids=["marker-name", "declared-missing"],
)
async def test_nonexistent_image_fails_with_not_found(
    cluster: SimCluster, runtime: ImageRuntime, image: str
) -> None:
    status, body = await post(cluster, "/sim/registry", {"missing": ["declared-missing:2"]})
    assert status == 200 and body["missing"] == ["declared-missing:2"]
    t0 = time.monotonic()
    with pytest.raises(ImageNotFound) as e:
        await runtime.pull(image, timeout=30)
    assert time.monotonic() - t0 < 1.0  # refused at once, not after a download
    assert e.value.kube_reason == "ErrImagePull"
    assert f'failed to pull and unpack image "{image}"' in e.value.message and "not found" in e.value.message
    assert await runtime.image_status(image) is None


async def test_invalid_image_name_is_refused_before_the_node_is_asked(
    cluster: SimCluster, runtime: ImageRuntime
) -> None:
    with pytest.raises(InvalidImageName):
        await runtime.pull("Not A Name")
    assert cluster.kubelets[NODE].pull_failures == 0


def docker_secret(name: str, server: str, user: str, password: str) -> dict[str, Any]:
    cfg = json.dumps({"auths": {server: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": "default"},
        "data": {".dockerconfigjson": base64.b64encode(cfg.encode()).decode()},
    }


async def test_private_image_pulls_with_the_right_pull_secret_only(
    cluster: SimCluster, runtime: ImageRuntime
) -> None:
    status, _ = await post(cluster, "/sim/registry", {"private": {"private.example/": "alice:right"}})
    assert status == 200
    sec = cluster.store.rt("secrets")
    cluster.store.create(sec, "default", docker_secret("good", "private.example", "alice", "right"))
    cluster.store.create(sec, "default", docker_secret("bad", "private.example", "alice", "wrong"))
    image = "private.example/team/app:1"
    with pytest.raises(ImagePullUnauthorized, match="401 Unauthorized"):
        await runtime.pull(image)
    with pytest.raises(ImagePullUnauthorized):
        await runtime.pull(image, auth=PullAuth(secrets=(SecretRef(namespace="default", name="bad"),)))
    pulled = await runtime.pull(image, auth=PullAuth(secrets=(SecretRef(namespace="default", name="good"),)))
    assert pulled.image_id.startswith(image + "@sha256:")


async def test_pull_timeout(cluster: SimCluster, runtime: ImageRuntime) -> None:
    t0 = time.monotonic()
    with pytest.raises(ImagePullTimeout, match=r'pulling image "huge:1" did not finish within 0.3s'):
        await runtime.pull("huge:1", timeout=0.3)
    assert time.monotonic() - t0 < 2.0


async def test_open_runtime_checks_the_node_and_the_kind(cluster: SimCluster) -> None:
    with pytest.raises(RuntimeUnavailable, match="no simulated node 'nope'"):
        await open_runtime("sim", node="nope", sim_url=cluster.url)
    with pytest.raises(ValueError, match="runtime: unknown kind 'docker'"):
        await open_runtime("docker", node=NODE)


def app_pod(name: str, image: str = "nginx:1", containers: tuple[str, ...] = ("main",)) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": NODE, "containers": [{"name": c, "image": image} for c in containers]},
    }


def container_status(c: SimCluster, name: str) -> dict[str, Any]:
    p = c.store.try_get(c.store.rt("pods"), "default", name) or {}
    return ((p.get("status") or {}).get("containerStatuses") or [{}])[0]


async def test_exec_answers_with_the_outcome_set_per_container(
    cluster: SimCluster, runtime: ImageRuntime
) -> None:
    cluster.store.create(cluster.store.rt("pods"), "default", app_pod("web", containers=("main", "side")))
    await cluster.wait_for(lambda: container_status(cluster, "web").get("started"), message="started")
    await cluster.wait_for(
        lambda: cluster.kubelets[NODE].pod("default", "web").containers["side"].started,
        message="side started",
    )
    ok = await runtime.exec_sync("default", "web", "main", ["cat", "/tmp/healthy"], timeout=1)
    assert (ok.exit_code, ok.stdout, ok.timed_out) == (0, "", False)
    status, _ = await post(
        cluster,
        "/sim/pods/default/web/exec-outcomes",
        {
            "main": {"exitCode": 1, "stdout": "", "stderr": "cat: /tmp/healthy: No such file"},
            "*": {"exitCode": 0, "stdout": "ok\n"},
        },
    )
    assert status == 200
    bad = await runtime.exec_sync("default", "web", "main", ["cat", "/tmp/healthy"], timeout=1)
    assert (bad.exit_code, bad.stderr) == (1, "cat: /tmp/healthy: No such file")
    side = await runtime.exec_sync("default", "web", "side", ["true"], timeout=1)
    assert (side.exit_code, side.stdout) == (0, "ok\n")
    await post(cluster, "/sim/pods/default/web/exec-outcomes", {"main": {"hang": True}})
    t0 = time.monotonic()
    hung = await runtime.exec_sync("default", "web", "main", ["sleep", "1000"], timeout=0.3)
    assert hung.timed_out and time.monotonic() - t0 >= 0.3
    async with aiohttp.ClientSession() as s, s.get(f"{cluster.url}/sim/pods/default/web/exec-outcomes") as r:
        calls = (await r.json())["calls"]
    assert [c["command"][0] for c in calls] == ["cat", "cat", "true", "sleep"]
    with pytest.raises(ExecTargetNotFound, match='container "nope" not found in pod default/web'):
        await runtime.exec_sync("default", "web", "nope", ["true"])
    with pytest.raises(ExecTargetNotFound, match="pod default/ghost is not running"):
        await runtime.exec_sync("default", "ghost", "main", ["true"])


async def test_exec_outcomes_reject_bad_input(cluster: SimCluster) -> None:
    cluster.store.create(cluster.store.rt("pods"), "default", app_pod("p"))
    await cluster.wait_for(lambda: container_status(cluster, "p").get("started"), message="started")
    status, body = await post(cluster, "/sim/pods/default/p/exec-outcomes", {"main": {"exitcode": 1}})
    assert status == 400 and "main: unknown fields ['exitcode']" in body["message"]


async def test_pod_with_a_missing_image_waits_in_err_image_pull_then_backoff(cluster: SimCluster) -> None:
    cluster.store.create(cluster.store.rt("pods"), "default", app_pod("m", image="img-does-not-exist:1"))
    first = await cluster.wait_for(
        lambda: (
            (container_status(cluster, "m").get("state") or {}).get("waiting", {}).get("reason")
            == "ErrImagePull"
            and container_status(cluster, "m")
        ),
        message="ErrImagePull",
    )
    assert "not found" in first["state"]["waiting"]["message"]
    await cluster.wait_for(
        lambda: (
            (container_status(cluster, "m").get("state") or {}).get("waiting", {}).get("reason")
            == "ImagePullBackOff"
        ),
        message="ImagePullBackOff",
    )
    events, _ = cluster.store.list(cluster.store.rt("events"), "default")
    reasons = {(e.get("reason"), e.get("message", "").split(":")[0]) for e in events}
    assert ("Failed", 'Failed to pull image "img-does-not-exist') in reasons
    assert any(e.get("reason") == "BackOff" for e in events)
    # fixing the image lets the container start
    from sim.store import MERGE_PATCH

    cluster.store.patch(
        cluster.store.rt("pods"),
        "default",
        "m",
        MERGE_PATCH,
        {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}},
    )
    await cluster.wait_for(
        lambda: container_status(cluster, "m").get("started"), timeout=10, message="started"
    )


async def test_cli_pulls_and_reports_a_failed_pull(
    cluster: SimCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.runtime.__main__ import build_parser, run

    base = ["--runtime", "sim", "--sim-url", cluster.url, "--node", NODE]
    assert await run(build_parser().parse_args([*base, "pull", "redis:7"])) == 0
    assert json.loads(capsys.readouterr().out)["image_id"].startswith("redis:7@sha256:")
    assert await run(build_parser().parse_args([*base, "pull", "redis-does-not-exist:7"])) == 1
    assert "pull failed (not-found): ErrImagePull: rpc error: code = NotFound" in capsys.readouterr().err
    assert await run(build_parser().parse_args([*base, "status", "redis:7"])) == 0
    assert json.loads(capsys.readouterr().out)["image"] == "redis:7"

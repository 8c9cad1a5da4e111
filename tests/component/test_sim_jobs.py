"""The sim's run-to-completion containers, Job controller and node lifecycle: what only the sim has knobs
for (the exit API, the crash back-off, tolerationSeconds on a fast clock). Behaviour a real cluster shares
is in tests/component/conformance/test_conformance_jobs.py and test_conformance_scheduling.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sim import SimCluster
from sim.nodes import ANNOTATION_EXIT_CODE, ANNOTATION_RUN_SECONDS, NodeConfig

NS = "default"


def pod(name: str, restart: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.36"}],
            **spec,
        },
    }


@pytest.fixture
async def cluster(tmp_path: Path) -> Any:
    cfg = NodeConfig(pull_delay=0.01, start_delay=0.01, crash_backoff=0.2)
    async with SimCluster(nodes=2, tmpdir=tmp_path, node_config=cfg, job_backoff=0.2) as c:
        yield c


def status(c: SimCluster, name: str) -> dict[str, Any]:
    st: dict[str, Any] = c.store.get(c.store.rt("pods"), NS, name).get("status") or {}
    return st


async def test_on_failure_restarts_the_container_in_place_with_back_off(cluster: SimCluster) -> None:
    ann = {ANNOTATION_RUN_SECONDS: "0.05", ANNOTATION_EXIT_CODE: "3"}
    created = cluster.store.create(cluster.store.rt("pods"), NS, pod("crash", "OnFailure", ann))
    seen_waiting = []

    def restarted_twice() -> bool:
        cs = (status(cluster, "crash").get("containerStatuses") or [{}])[0]
        if "waiting" in (cs.get("state") or {}):
            seen_waiting.append(cs["state"]["waiting"]["reason"])
        return int(cs.get("restartCount") or 0) >= 2

    await cluster.wait_for(restarted_twice, timeout=10, interval=0.005, message="two restarts")
    st = status(cluster, "crash")
    assert cluster.store.get(cluster.store.rt("pods"), NS, "crash")["metadata"]["uid"] == created["metadata"]["uid"]
    assert st["phase"] == "Running"
    last = st["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert "CrashLoopBackOff" in seen_waiting  # the second restart waited for the back-off


async def test_on_failure_container_that_succeeds_completes_the_pod(cluster: SimCluster) -> None:
    ann = {ANNOTATION_RUN_SECONDS: "0.05"}
    cluster.store.create(cluster.store.rt("pods"), NS, pod("done", "OnFailure", ann))
    await cluster.wait_for(lambda: status(cluster, "done").get("phase") == "Succeeded", timeout=10)
    conds = {c["type"]: (c["status"], c.get("reason")) for c in status(cluster, "done")["conditions"]}
    assert conds["Ready"] == ("False", "PodCompleted")
    assert conds["ContainersReady"] == ("False", "PodCompleted")


async def test_always_restarts_even_after_success(cluster: SimCluster) -> None:
    cluster.store.create(cluster.store.rt("pods"), NS, pod("svc", "Always", {ANNOTATION_RUN_SECONDS: "0.05"}))

    def restarted() -> bool:
        cs = (status(cluster, "svc").get("containerStatuses") or [{}])[0]
        return int(cs.get("restartCount") or 0) >= 1

    await cluster.wait_for(restarted, timeout=10)
    assert status(cluster, "svc")["phase"] == "Running"


async def test_without_a_run_time_a_never_pod_runs_until_the_exit_api_ends_it(cluster: SimCluster) -> None:
    cluster.store.create(cluster.store.rt("pods"), NS, pod("manual", "Never"))
    await cluster.wait_for(lambda: status(cluster, "manual").get("phase") == "Running", timeout=10)
    async with aiohttp.ClientSession(cluster.url) as http:
        async with http.post(f"/sim/pods/{NS}/manual/exit", json={"exitCode": "x"}) as r:
            assert r.status == 400 and "exitCode" in (await r.json())["message"]
        async with http.post(f"/sim/pods/{NS}/nope/exit", json={"exitCode": 1}) as r:
            assert r.status == 404
        async with http.post(f"/sim/pods/{NS}/manual/exit", json={"exitCode": 137}) as r:
            assert r.status == 200 and (await r.json())["exited"] == ["main"]
    await cluster.wait_for(lambda: status(cluster, "manual").get("phase") == "Failed", timeout=10)
    term = status(cluster, "manual")["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (137, "Error")


async def test_node_config_run_seconds_ends_never_pods_but_not_always_pods(tmp_path: Path) -> None:
    cfg = NodeConfig(pull_delay=0.01, start_delay=0.01, run_seconds=0.05)
    async with SimCluster(nodes=1, tmpdir=tmp_path, node_config=cfg) as c:
        c.store.create(c.store.rt("pods"), NS, pod("batch", "Never"))
        c.store.create(c.store.rt("pods"), NS, pod("server", "Always"))
        await c.wait_for(lambda: status(c, "batch").get("phase") == "Succeeded", timeout=10)
        st = status(c, "server")
        assert st["phase"] == "Running" and st["containerStatuses"][0]["restartCount"] == 0


async def test_on_failure_job_fails_once_restarts_reach_the_backoff_limit(cluster: SimCluster) -> None:
    jobs = cluster.store.rt("jobs", "batch")
    tmpl = pod("x", "OnFailure", {ANNOTATION_RUN_SECONDS: "0.05", ANNOTATION_EXIT_CODE: "1"})
    cluster.store.create(
        jobs, NS, {"metadata": {"name": "restarts"}, "spec": {"backoffLimit": 2, "template": tmpl}}
    )

    def failed() -> dict[str, Any] | None:
        j = cluster.store.get(jobs, NS, "restarts")
        conds = (j.get("status") or {}).get("conditions") or []
        return j if any(c["type"] == "Failed" for c in conds) else None

    j = await cluster.wait_for(failed, timeout=15)
    (cond,) = j["status"]["conditions"]
    assert cond["reason"] == "BackoffLimitExceeded"
    assert j["status"]["failed"] == 1  # the one pod, restarted in place, deleted as the Job fails


async def test_job_without_completions_is_complete_when_one_pod_succeeds_and_none_run(
    cluster: SimCluster,
) -> None:
    jobs = cluster.store.rt("jobs", "batch")
    tmpl = pod("x", "Never", {ANNOTATION_RUN_SECONDS: "0.1"})
    cluster.store.create(jobs, NS, {"metadata": {"name": "queue"}, "spec": {"parallelism": 2, "template": tmpl}})

    def complete() -> dict[str, Any] | None:
        j = cluster.store.get(jobs, NS, "queue")
        conds = (j.get("status") or {}).get("conditions") or []
        return j if any(c["type"] == "Complete" for c in conds) else None

    j = await cluster.wait_for(complete, timeout=10)
    assert "completions" not in j["spec"] and j["status"]["succeeded"] == 2


async def test_scaling_parallelism_down_deletes_surplus_pods(cluster: SimCluster) -> None:
    jobs, pods = cluster.store.rt("jobs", "batch"), cluster.store.rt("pods")
    tmpl = pod("x", "Never")  # runs until deleted
    cluster.store.create(
        jobs, NS, {"metadata": {"name": "wide"}, "spec": {"parallelism": 3, "completions": 5, "template": tmpl}}
    )

    def live() -> list[dict[str, Any]]:
        items, _ = cluster.store.list(pods, NS)
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    await cluster.wait_for(lambda: len(live()) == 3, timeout=10)
    cluster.store.patch(jobs, NS, "wide", "application/merge-patch+json", {"spec": {"parallelism": 1}})
    await cluster.wait_for(lambda: len(live()) == 1, timeout=10)
    await cluster.wait_for(
        lambda: (cluster.store.get(jobs, NS, "wide").get("status") or {}).get("active") == 1, timeout=10
    )


async def test_job_template_is_immutable(cluster: SimCluster) -> None:
    from sim.errors import ApiError

    jobs = cluster.store.rt("jobs", "batch")
    cluster.store.create(jobs, NS, {"metadata": {"name": "fixed"}, "spec": {"template": pod("x", "Never")}})
    with pytest.raises(ApiError) as e:
        cluster.store.patch(
            jobs,
            NS,
            "fixed",
            "application/strategic-merge-patch+json",
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}}},
        )
    assert e.value.code == 422 and "spec.template" in e.value.message and "field is immutable" in e.value.message


async def test_no_execute_toleration_seconds_delay_the_eviction(cluster: SimCluster) -> None:
    pods, nodes = cluster.store.rt("pods"), cluster.store.rt("nodes")
    tol = [{"key": "maint", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]
    cluster.store.create(pods, NS, pod("grace", "Always", nodeName="sim-node-0", tolerations=tol))
    await cluster.wait_for(lambda: status(cluster, "grace").get("phase") == "Running", timeout=10)
    cluster.store.patch(
        nodes, "", "sim-node-0", "application/merge-patch+json",
        {"spec": {"taints": [{"key": "maint", "effect": "NoExecute"}]}},
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await cluster.wait_for(lambda: cluster.store.try_get(pods, NS, "grace") is None, timeout=10)
    assert loop.time() - t0 >= 0.9

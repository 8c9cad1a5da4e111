"""Simulated nodes: image pull concurrency, container stop time, per-pod probe outcomes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from sim import SimCluster
from sim.nodes import ANNOTATION_PROBES, ANNOTATION_STOP_DELAY, NodeConfig
from sim.store import MERGE_PATCH


def pod(name: str, image: str = "nginx:1.25", node: str = "sim-node-0", **ann: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": ann},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": image}]},
    }


def cstatus(c: SimCluster, name: str) -> dict[str, Any]:
    p = c.store.try_get(c.store.rt("pods"), "default", name)
    sts = ((p or {}).get("status") or {}).get("containerStatuses") or [{}]
    return sts[0]


async def test_max_parallel_pulls_queues_pulls(tmp_path: Path) -> None:
    cfg = NodeConfig(pull_delay=0.1, start_delay=0.01, max_parallel_pulls=2, events=False)
    async with SimCluster(nodes=1, tmpdir=tmp_path, node_config=cfg) as c:
        k = c.kubelets["sim-node-0"]
        prt = c.store.rt("pods")
        t0 = time.monotonic()
        for i in range(5):
            c.store.create(prt, "default", pod(f"p{i}", image=f"img:{i}"))
        await c.wait_for(lambda: k.pulls_waiting > 0, message="queued pulls")
        async with aiohttp.ClientSession() as s, s.get(f"{c.url}/sim/nodes") as r:
            info = (await r.json())[0]
        assert info["pullsActive"] <= 2 and info["pullsWaiting"] >= 1
        await c.wait_for(lambda: all(cstatus(c, f"p{i}").get("ready") for i in range(5)), message="ready")
        assert k.max_pulls_seen == 2
        assert time.monotonic() - t0 >= 0.3  # 5 pulls of 0.1 s, two at a time: 3 rounds


async def test_stop_delay_on_restart_and_delete(tmp_path: Path) -> None:
    async with SimCluster(nodes=1, tmpdir=tmp_path, pull_delay=0.0, start_delay=0.01) as c:
        prt = c.store.rt("pods")
        c.store.create(prt, "default", pod("s", **{ANNOTATION_STOP_DELAY: "0.3"}))
        await c.wait_for(lambda: cstatus(c, "s").get("ready"), message="ready")
        t0 = time.monotonic()
        c.store.patch(
            prt, "default", "s", MERGE_PATCH, {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}
        )
        seen: list[tuple[int, bool]] = []

        def restarted() -> bool:
            st = cstatus(c, "s")
            seen.append((st.get("restartCount", 0), bool(st.get("ready"))))
            return st.get("restartCount") == 1

        await c.wait_for(restarted, interval=0.01, message="restarted")
        assert time.monotonic() - t0 >= 0.3  # the old container took its 0.3 s to stop
        # no status write while it stopped (a kubelet's pod worker is busy killing and starting): the
        # old container stays as last reported, then the new one appears
        assert (0, False) not in seen and seen[0] == (0, True)
        t0 = time.monotonic()
        c.store.delete(prt, "default", "s")
        await c.wait_for(lambda: c.store.try_get(prt, "default", "s") is None, message="deleted")
        assert time.monotonic() - t0 >= 0.3


async def test_probe_outcomes_by_annotation_and_runtime_api(tmp_path: Path) -> None:
    async with SimCluster(nodes=1, tmpdir=tmp_path, pull_delay=0.0, start_delay=0.01) as c:
        prt = c.store.rt("pods")
        c.store.create(
            prt, "default", pod("pr", **{ANNOTATION_PROBES: json.dumps({"readiness": {"main": False}})})
        )
        await c.wait_for(lambda: cstatus(c, "pr").get("started"), message="started")
        assert cstatus(c, "pr")["ready"] is False
        url = f"{c.url}/sim/pods/default/pr/probes"
        async with aiohttp.ClientSession() as s:
            async with s.post(url, json={"readiness": True, "custom": {"healthy": True}}) as r:
                assert r.status == 200
                assert await r.json() == {"readiness": True, "custom": {"healthy": True}}
            await c.wait_for(lambda: cstatus(c, "pr").get("ready"), message="ready")
            # a failing liveness probe restarts the container (same image)
            async with s.post(url, json={"liveness": False}) as r:
                assert r.status == 200
            await c.wait_for(lambda: cstatus(c, "pr").get("restartCount") == 1, message="liveness restart")
            async with s.get(url) as r:
                assert (await r.json())["liveness"] is False
            async with s.post(f"{c.url}/sim/pods/default/nope/probes", json={}) as r:
                assert r.status == 404
        # the annotation can be changed at run time too
        c.store.patch(
            prt,
            "default",
            "pr",
            MERGE_PATCH,
            {"metadata": {"annotations": {"sim.kruisebus.io/ready": "false"}}},
        )
        await c.wait_for(lambda: cstatus(c, "pr").get("ready") is False, message="unready via annotation")

"""`python -m sim nodes`: simulated kubelets giving nodes to another API server over HTTP (kwok-style)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

from sim import SimCluster

ROOT = Path(__file__).resolve().parents[2]


async def test_nodes_process_drives_pods_of_another_api_server(tmp_path: Path) -> None:
    # the "real" control plane: the emulator with no nodes of its own (its scheduler still binds)
    async with SimCluster(nodes=0, tmpdir=tmp_path, bookmark_interval=0.2) as cp:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with (
            (tmp_path / "nodes.log").open("w") as err,
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sim",
                    "nodes",
                    "--kubeconfig",
                    str(cp.kubeconfig_path),
                    "--count",
                    "2",
                    "--name-prefix",
                    "ext-node-",
                    "--pull-delay",
                    "0.05",
                    "--start-delay",
                    "0.05",
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            ) as proc,
        ):
            try:
                assert proc.stdout is not None
                line = await _readline(proc)
                assert json.loads(line)["nodes"] == ["ext-node-0", "ext-node-1"], (
                    tmp_path / "nodes.log"
                ).read_text()
                cfg = client.Configuration()
                await config.load_kube_config(config_file=str(cp.kubeconfig_path), client_configuration=cfg)
                async with client.ApiClient(cfg) as api:
                    v1 = client.CoreV1Api(api)
                    await v1.create_namespaced_pod(
                        "default",
                        {
                            "metadata": {"name": "remote"},
                            "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
                        },
                    )

                    async def running() -> Any:
                        p = await v1.read_namespaced_pod("remote", "default")
                        cs = p.status.container_statuses or []
                        return p if cs and cs[0].ready else None

                    p = await cp.wait_for(running, timeout=15, message="remote pod ready")
                    assert p.spec.node_name.startswith("ext-node-")
                    assert p.status.container_statuses[0].image_id.startswith("nginx:1.25@sha256:")
                    lease = await client.CoordinationV1Api(api).read_namespaced_lease(
                        p.spec.node_name, "kube-node-lease"
                    )
                    assert lease.spec.holder_identity == p.spec.node_name
                    await v1.delete_namespaced_pod("remote", "default")
                    pods = cp.store.rt("pods")
                    await cp.wait_for(lambda: cp.store.try_get(pods, "default", "remote") is None, timeout=15)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(10) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()


async def _readline(proc: subprocess.Popen[str]) -> str:
    import asyncio

    assert proc.stdout is not None
    return await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)


async def test_nodes_process_labels_taints_and_control_api(tmp_path: Path) -> None:
    """`--node-labels`/`--node-taints` on the registered nodes; `--control-port` adds and removes nodes,
    runs execs in a pod's containers and ends them while the process runs."""
    import aiohttp

    async with SimCluster(nodes=0, tmpdir=tmp_path, bookmark_interval=0.2) as cp:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        argv = [
            sys.executable, "-m", "sim", "nodes", "--kubeconfig", str(cp.kubeconfig_path), "--count", "1",
            "--name-prefix", "lab-", "--pull-delay", "0.01", "--start-delay", "0.01",
            "--node-labels", "pool=batch,tier=", "--node-taints", "dedicated=batch:NoSchedule",
            "--control-port", "0",
        ]
        with (
            (tmp_path / "nodes.log").open("w") as err,
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env) as proc,
        ):
            try:
                ready = json.loads(await _readline(proc))
                assert ready["nodes"] == ["lab-0"], (tmp_path / "nodes.log").read_text()
                nodes, pods = cp.store.rt("nodes"), cp.store.rt("pods")
                n = cp.store.get(nodes, "", "lab-0")
                assert n["metadata"]["labels"]["pool"] == "batch" and n["metadata"]["labels"]["tier"] == ""
                assert n["spec"]["taints"] == [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]
                async with aiohttp.ClientSession(ready["control"]) as http:
                    async with http.post("/sim/nodes", json={"name": "lab-extra", "labels": {"pool": "x"}}) as r:
                        assert r.status == 201, await r.text()
                    async with http.post("/sim/nodes", json={"name": "lab-extra"}) as r:
                        assert r.status == 409
                    async with http.post("/sim/nodes", json={"name": "y", "taints": [{"key": "k"}]}) as r:
                        assert r.status == 400 and "taints" in (await r.json())["message"]
                    await cp.wait_for(lambda: cp.store.try_get(nodes, "", "lab-extra") is not None, timeout=10)
                    cp.store.create(
                        pods, "default",
                        {"metadata": {"name": "batch"},
                         "spec": {"nodeSelector": {"pool": "x"}, "restartPolicy": "Never",
                                  "containers": [{"name": "main", "image": "busybox:1.36"}]}},
                    )

                    def phase() -> str:
                        return str((cp.store.get(pods, "default", "batch").get("status") or {}).get("phase"))

                    await cp.wait_for(lambda: phase() == "Running", timeout=15)
                    assert cp.store.get(pods, "default", "batch")["spec"]["nodeName"] == "lab-extra"
                    # exec in its container (the prober's `sim` runtime) answers with the outcome set
                    async with http.post("/sim/pods/default/batch/exec-outcomes",
                                         json={"main": {"exitCode": 3, "stderr": "busy"}}) as r:
                        assert r.status == 200, await r.text()

                    async def executed() -> Any:  # once its container has started
                        async with http.post("/sim/pods/default/batch/exec",
                                             json={"container": "main", "command": ["/idle.sh"], "timeout": 1}) as r:
                            return await r.json() if r.status == 200 else None

                    answer = await cp.wait_for(executed, timeout=10, message="exec answered")
                    assert answer["exitCode"] == 3 and answer["stderr"] == "busy", answer
                    async with http.post("/sim/pods/default/nowhere/exec", json={"container": "main"}) as r:
                        assert r.status == 404 and "not running on a simulated node" in (await r.json())["message"]
                    async with http.post("/sim/pods/default/batch/exit", json={"exitCode": 0}) as r:
                        assert r.status == 200 and (await r.json())["exited"] == ["main"]
                    await cp.wait_for(lambda: phase() == "Succeeded", timeout=15)
                    async with http.delete("/sim/nodes/lab-extra") as r:
                        assert r.status == 200
                    await cp.wait_for(lambda: cp.store.try_get(nodes, "", "lab-extra") is None, timeout=10)
                    # the node agent's `sim` runtime pulls through these routes
                    async with http.post("/sim/nodes/lab-0/images", json={"image": "redis:7"}) as r:
                        assert r.status == 200 and (await r.json())["imageID"], await r.text()
                    async with http.get("/sim/nodes/lab-0/images") as r:
                        assert "redis:7" in (await r.json())["images"]
                    async with http.get("/sim/nodes") as r:
                        [lab] = await r.json()
                        assert "redis:7" in [p["image"] for p in lab["pullLog"]], lab
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(10) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()

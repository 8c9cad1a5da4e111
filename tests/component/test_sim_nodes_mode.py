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

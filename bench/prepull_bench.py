"""Image pre-download planner benchmark: the cost of one ImagePullJob pass and of the NodeImage passes
over many nodes (the issue's target: one job pass over 5,000 nodes in <= 20 ms).

Run: .venv/bin/python -m bench.prepull_bench [--nodes 5000] [--repeat 15]

Scenarios (median of ``--repeat`` runs, milliseconds of CPU time):

* ``job mid-way``  - one job over every node, 40% succeeded, `parallelism` pulling, the rest not handed
  out yet: the pass computes the status and hands the image to the next nodes;
* ``job finished`` - every node succeeded: the pass that completes the job;
* ``nodeimages steady`` - ``plan_node_images`` for every node, nothing to change (the common pass);
* ``nodeimages fold`` - mid-way NodeImages with one finished result per pulling node (a status write each)
  and a pull to send for every node not started.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.imagepulljob import ImagePullJob
from schemas.kube import Node, ObjectMeta
from schemas.nodeimage import NodeImage
from schemas.nodework import PullResult
from services.planner.imagepulljob.job import JobView, plan_image_pull_job
from services.planner.imagepulljob.nodeimage import plan_node_images
from services.planner.kit.gates import parse_feature_gates
from services.planner.kit.timeutil import format_time

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
GATES = parse_feature_gates("ImagePullJobGate=true")
JOB_UID = "bench-job"


def bench_job(parallelism: int) -> ImagePullJob:
    return msgspec.convert(
        {
            "metadata": {
                "name": "bench",
                "namespace": "default",
                "uid": JOB_UID,
                "resourceVersion": "1",
                "finalizers": ["apps.kruise.io/deletion-protection"],
            },
            "spec": {
                "image": "nginx:1.21",
                "parallelism": parallelism,
                "completionPolicy": {"type": "Always"},
                "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
                "imagePullPolicy": "IfNotPresent",
            },
            "status": {"startTime": format_time(NOW - timedelta(minutes=5))},
        },
        ImagePullJob,
    )


def bench_node_image(i: int, state: str) -> NodeImage:
    created = format_time(NOW - timedelta(seconds=30))
    tag: dict[str, Any] = {
        "tag": "1.21",
        "createdAt": created,
        "pullPolicy": {"ttlSecondsAfterFinished": 3600},
        "ownerReferences": [
            {
                "apiVersion": "apps.kruise.io/v1alpha1",
                "kind": "ImagePullJob",
                "namespace": "default",
                "name": "bench",
                "uid": JOB_UID,
            }
        ],
    }
    spec = {"images": {"nginx": {"tags": [tag]}}} if state != "new" else {}
    status: dict[str, Any] = {}
    if state == "done":
        status = {
            "imageStatuses": {
                "nginx": {
                    "tags": [
                        {"tag": "1.21", "phase": "Succeeded", "progress": 100, "completionTime": created}
                    ]
                }
            }
        }
    return msgspec.convert(
        {
            "metadata": {
                "name": f"node-{i:05d}",
                "uid": f"ni-{i}",
                "resourceVersion": "3",
                "labels": {"zone": f"z{i % 3}"},
            },
            "spec": spec,
            "status": status,
        },
        NodeImage,
    )


def bench_node(i: int) -> Node:
    return msgspec.convert(
        {
            "metadata": {"name": f"node-{i:05d}", "uid": f"n-{i}", "labels": {"zone": f"z{i % 3}"}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
                ]
            },
        },
        Node,
    )


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t = time.process_time()  # CPU time: the planner's cost, not the wait for a CPU on a busy machine
        fn()
        runs.append((time.process_time() - t) * 1000)
    return statistics.median(runs)


def run(nodes: int, repeat: int, parallelism: int = 20) -> dict[str, float]:
    done = int(nodes * 0.4)
    mid = [
        bench_node_image(i, "done" if i < done else "pulling" if i < done + parallelism else "new")
        for i in range(nodes)
    ]
    finished = [bench_node_image(i, "done") for i in range(nodes)]
    node_objs = [bench_node(i) for i in range(nodes)]
    jobs = {("default", "bench"): JOB_UID}
    job = bench_job(parallelism)
    results = [
        PullResult(metadata=ObjectMeta(name=f"node-{i:05d}", uid=f"node-{i:05d}/nginx:1.21"), node=f"node-{i:05d}",
                   image="nginx:1.21", version=0, phase="succeeded", completion_time=format_time(NOW))
        for i in range(done, done + parallelism)
    ]
    return {
        "job mid-way": _median_ms(
            lambda: plan_image_pull_job(JobView(job=job, node_images=mid), now=NOW, gates=GATES), repeat
        ),
        "job finished": _median_ms(
            lambda: plan_image_pull_job(JobView(job=job, node_images=finished), now=NOW, gates=GATES), repeat
        ),
        "nodeimages steady": _median_ms(lambda: plan_node_images(node_objs, finished, jobs, NOW), repeat),
        "nodeimages fold": _median_ms(lambda: plan_node_images(node_objs, mid, jobs, NOW, results), repeat),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prepull_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    results = run(args.nodes, args.repeat)
    print(f"| scenario ({args.nodes} nodes) | ms per pass |")
    print("|---|---|")
    for name, ms in results.items():
        print(f"| {name} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

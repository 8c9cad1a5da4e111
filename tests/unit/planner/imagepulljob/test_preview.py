"""`kruisebus plan` for an ImagePullJob (which nodes get the image next, the status it would write) and,
for a CloneSet with PreDownloadImageForInPlaceUpdate, the jobs its pass would create."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from services.dryrun import run

NOW = "2026-01-01T12:00:00Z"

JOB_FILE = """
apiVersion: apps.kruise.io/v1alpha1
kind: ImagePullJob
metadata: {name: warm, namespace: default}
spec:
  image: nginx:1.21
  parallelism: 2
  completionPolicy: {type: Always}
  pullPolicy: {timeoutSeconds: 600, backoffLimit: 3}
---
apiVersion: v1
kind: List
items:
""" + "".join(
    f"""
- apiVersion: apps.kruise.io/v1alpha1
  kind: NodeImage
  metadata: {{name: node-{i}, resourceVersion: "{i + 1}"}}
"""
    for i in range(4)
)


def test_job_preview_names_the_next_nodes_and_the_status(tmp_path: Path) -> None:
    f = tmp_path / "job.yaml"
    f.write_text(JOB_FILE)
    code, out = run(str(f), now=NOW, feature_gates="ImagePullJobGate=true")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["targets"] == ["node-0", "node-1", "node-2", "node-3"]
    assert doc["nextNodes"] == ["node-0", "node-1"]
    assert doc["status"]["desired"] == 4 and doc["status"]["active"] == 0
    assert doc["status"]["message"] == "job is running, progress 0.0%"
    assert [c["verb"] for c in doc["commands"]].count("nodeimage-spec") == 2


def test_job_preview_with_the_gate_off_says_so(tmp_path: Path) -> None:
    f = tmp_path / "job.yaml"
    f.write_text(JOB_FILE)
    code, out = run(str(f), now=NOW, feature_gates=None)
    doc = json.loads(out)
    assert code == 0 and doc["nextNodes"] == [] and "ImagePullJobGate" in doc["note"]


def test_invalid_job_preview_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "job.yaml"
    f.write_text(JOB_FILE.replace("parallelism: 2", "parallelism: 50%"))
    code, out = run(str(f), now=NOW, feature_gates="ImagePullJobGate=true")
    assert code == 1 and json.loads(out)["error"] == "parallelism does not support percentage value"


def test_cloneset_preview_lists_the_jobs_with_the_gate(tmp_path: Path) -> None:
    cs = {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "cs-1",
            "generation": 2,
            "annotations": {"apps.kruise.io/image-predownload-parallelism": "2"},
        },
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.21"}]},
            },
            "updateStrategy": {"type": "InPlaceIfPossible", "partition": 1},
        },
        "status": {"currentRevision": "web-old", "updateRevision": "web-old", "replicas": 5},
    }
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"web-{i}",
                "namespace": "default",
                "labels": {"app": "web", "controller-revision-hash": "web-old", "pod-template-hash": "old"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps.kruise.io/v1alpha1",
                        "kind": "CloneSet",
                        "name": "web",
                        "uid": "cs-1",
                        "controller": True,
                    }
                ],
            },
            "spec": {"nodeName": f"n{i}", "containers": [{"name": "main", "image": "nginx:1.20"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
        for i in range(5)
    ]
    f = tmp_path / "cs.yaml"
    f.write_text(yaml.safe_dump_all([cs, *pods]))
    _, plain = run(str(f), now=NOW, feature_gates=None)
    assert "imagePullJob" not in plain
    code, out = run(str(f), now=NOW, feature_gates="PreDownloadImageForInPlaceUpdate=true")
    assert code == 0, out
    [job] = [a["imagePullJob"] for a in json.loads(out)["actions"] if "imagePullJob" in a]
    assert job["image"] == "nginx:1.21" and job["parallelism"] == 2 and job["name"].endswith("-main")


def test_the_pre_download_planners_run_only_with_their_gate() -> None:
    from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
    from services.planner.workloads import REGISTRY, registry_for

    assert set(registry_for(DEFAULT_GATES)) == set(REGISTRY)
    on = set(registry_for(parse_feature_gates("PreDownloadImageForInPlaceUpdate=true")))
    assert on == set(REGISTRY) | {"imagepulljob", "nodeimage", "node"}
    assert set(registry_for(parse_feature_gates("ImagePullJobGate=true,KruiseDaemon=false"))) == set(REGISTRY)


def test_node_image_and_node_planners_through_the_protocol() -> None:
    from services.planner.imagepulljob.planner import NODE_IMAGE_PLANNER, NODE_PLANNER
    from services.planner.kit.gates import parse_feature_gates
    from tests.unit.planner.imagepulljob.builders import NOW as T
    from tests.unit.planner.imagepulljob.builders import job, node, node_image, owned_tag, result

    gates = parse_feature_gates("ImagePullJobGate=true")
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    code, doc = NODE_IMAGE_PLANNER.preview(ni, [node("n1"), job(), result("n1", "succeeded")], now=T, gates=gates,
                                           create_limit=None)
    assert code == 0 and [c["verb"] for c in doc["commands"]] == ["nodeimage-status"]
    code, doc = NODE_IMAGE_PLANNER.preview(ni, [node("n1"), job()], now=T, gates=gates, create_limit=None)
    assert [c["verb"] for c in doc["commands"]] == ["pull"]
    _, doc = NODE_PLANNER.preview(node("n2"), [ni], now=T, gates=gates, create_limit=None)
    assert [c["verb"] for c in doc["commands"]] == ["nodeimage-create"]
    _, doc = NODE_PLANNER.preview(node("n1"), [ni], now=T, gates=gates, create_limit=None)
    assert doc["commands"] == []  # it has its NodeImage

"""`kruisebus plan FILE`: the documented example, input errors, synthesised revisions."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from schemas.kinds import CLONESET
from services.dryrun import run
from services.planner.kit.gates import FeatureGates

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "unit" / "planner" / "fixtures"
NOW = "2026-01-01T12:00:00Z"


def test_documented_example(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "plan-format.md").read_text()
    example = doc[doc.index("## Example") :]
    yaml_in = re.search(r"```yaml\n(.*?)```", example, re.S)
    json_out = re.search(r"```json\n(.*?)```", example, re.S)
    now = re.search(r"kruisebus plan web.yaml --now (\S+)`", example)
    assert yaml_in and json_out and now
    f = tmp_path / "web.yaml"
    f.write_text(yaml_in.group(1))
    code, out = run(str(f), now=now.group(1), feature_gates=None)
    assert code == 0
    assert json.loads(out) == json.loads(json_out.group(1))


def test_seed_fixture_updates_one_pod_in_place_with_grace() -> None:
    code, out = run(str(FIXTURES / "inplace-partition.yaml"), now=NOW, feature_gates=None)
    assert code == 0, out
    res = json.loads(out)
    assert [a["verb"] for a in res["actions"]] == ["update-in-place"]
    act = res["actions"][0]
    assert act["graceSeconds"] == 10 and act["state"] == "Updating"
    assert act["event"]["reason"] == "SuccessfulUpdatePodInPlace"
    assert res["requeueAfter"] == 10.0
    assert res["status"]["expectedUpdatedReplicas"] == 2
    assert res["status"]["currentRevision"] == "web-old"


def test_json_input_and_missing_revisions_create_pods(tmp_path: Path) -> None:
    cs = {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {"name": "api", "namespace": "prod"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    }
    f = tmp_path / "cs.json"
    f.write_text(json.dumps(cs))
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 0, out
    res = json.loads(out)
    assert [a["verb"] for a in res["actions"]] == ["create", "create"]
    assert all(a["images"] == {"c": "x:1"} for a in res["actions"])
    assert all("pvcs" not in a for a in res["actions"])  # no volumeClaimTemplates


def test_revision_creation_is_listed_then_the_pass_continues(tmp_path: Path) -> None:
    text = (FIXTURES / "inplace-partition.yaml").read_text()
    rev = """---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: web-old, namespace: default, labels: {app: web}}
revision: 1
data: {spec: {template: {metadata: {labels: {app: web}}, spec: {containers: [{name: nginx, image: "nginx:1.25"}]}, $patch: replace}}}
"""
    f = tmp_path / "with-rev.yaml"
    f.write_text(text + rev)
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 0, out
    verbs = [a["verb"] for a in json.loads(out)["actions"]]
    assert verbs == ["revision-create", "update-in-place"]


def test_invalid_spec_exit_1(tmp_path: Path) -> None:
    text = (FIXTURES / "inplace-partition.yaml").read_text().replace("partition: 3", "partition: -1")
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 1
    res = json.loads(out)
    assert [a["verb"] for a in res["actions"]] == ["invalid-spec"]
    assert res["errors"][0]["field"] == "spec.updateStrategy.partition"


def test_bad_input_exit_2_names_document_and_field(tmp_path: Path) -> None:
    text = (
        (FIXTURES / "inplace-partition.yaml")
        .read_text()
        .replace('cloneset-instance-id: "24567"', "cloneset-instance-id: 24567")
    )
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 2
    assert "document 5 (Pod/web-24567)" in out and "metadata.labels" in out
    f.write_text("kind: Service\nmetadata: {name: x}\n")
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 2 and "document 0 (Service/x)" in out and "kind" in out
    f.write_text("a: [unclosed\n")
    assert run(str(f), now=NOW, feature_gates=None)[0] == 2
    assert run(str(tmp_path / "missing.yaml"), now=NOW, feature_gates=None)[0] == 2
    assert run(str(FIXTURES / "inplace-partition.yaml"), now="yesterday", feature_gates=None)[0] == 2
    assert run(str(FIXTURES / "inplace-partition.yaml"), now=NOW, feature_gates="Nope=true")[0] == 2


def test_feature_gates_flag(tmp_path: Path) -> None:
    code, out = run(str(FIXTURES / "inplace-partition.yaml"), now=NOW, feature_gates="CloneSetShortHash=true")
    assert code == 0
    res = json.loads(out)
    assert res["expectations"][0]["value"] == res["status"]["updateRevision"].rsplit("-", 1)[1]


def test_kept_claims_in_the_file_are_reused(tmp_path: Path) -> None:
    """A claim the CloneSet owns but no pod uses (its pod was evicted) gives its id to the next pod."""
    cs = {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {"name": "db", "namespace": "prod", "uid": "cs-uid"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "db"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    }
    kept = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-kept1", "namespace": "prod", "uid": "pvc-uid",
                     "labels": {"app": "db", "apps.kruise.io/cloneset-instance-id": "kept1"},
                     "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                          "name": "db", "uid": "cs-uid", "controller": True}]},
    }
    f = tmp_path / "db.json"
    f.write_text(json.dumps({"kind": "List", "items": [cs, kept]}))
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 0, out
    (create,) = json.loads(out)["actions"]
    assert create["verb"] == "create" and create["pod"] == "db-kept1"
    assert "pvcs" not in create  # the claim exists: only the pod is created
    cs["spec"]["replicas"] = 2
    f.write_text(json.dumps({"kind": "List", "items": [cs, kept]}))
    _, out = run(str(f), now=NOW, feature_gates=None)
    second = next(a for a in json.loads(out)["actions"] if a["pod"] != "db-kept1")
    assert second["pvcs"] == [f"data-{second['pod']}"]  # a new id gets its claim


class _CountingPreview:
    """A workload planner whose preview says what the dry run handed it."""

    kind = CLONESET
    owned = ()

    def plan(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a preview does not run the service's pass")

    def preview(self, obj: Any, objects: Any, *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        return 0, {"workload": obj.metadata.name, "others": sorted(o.metadata.name for o in objects),
                   "createLimit": create_limit}


def test_the_preview_is_the_registered_workload_planners(tmp_path: Path) -> None:
    """`kruisebus plan` previews through the same registry as the planner service."""
    path = tmp_path / "view.yaml"
    path.write_text(yaml.safe_dump_all([
        {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "web"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-a"}, "spec": {"containers": []}},
    ]))
    code, out = run(str(path), now=None, feature_gates=None, create_limit=3,
                    registry={CLONESET.token: _CountingPreview()})  # type: ignore[dict-item]
    assert code == 0 and json.loads(out) == {"workload": "web", "others": ["web-a"], "createLimit": 3}


def test_a_file_without_a_workload_names_what_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}))
    code, out = run(str(path), now=None, feature_gates=None)
    assert code == 2 and "expected exactly one workload (CloneSet, PodProbeMarker, AdvancedCronJob, BroadcastJob, DaemonSet, SidecarSet or ImagePullJob), found 0" in out


def test_in_place_images_are_named_by_container(tmp_path: Path) -> None:
    """An in-place update patches `/spec/containers/<index>/image`; the preview names the container."""
    text = (FIXTURES / "inplace-partition.yaml").read_text().replace(
        "    inPlaceUpdateStrategy: {gracePeriodSeconds: 10}\n", "")
    f = tmp_path / "no-grace.yaml"
    f.write_text(text)
    code, out = run(str(f), now=NOW, feature_gates=None)
    assert code == 0, out
    updates = [a for a in json.loads(out)["actions"] if a["verb"] == "update-in-place"]
    assert updates and all(a["images"] == {"nginx": "nginx:1.26"} for a in updates), updates

"""Revisions beyond the common case: several revisions holding the template (Q13), and a revision name
taken by other data (the collision path, where kruisebus does what Kruise's Q12 fails to do)."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import yaml

from services.dryrun import run
from services.planner.kit.revision import hash_revision, revision_bytes, template_patch_data
from tests.unit.planner.daemonset.helpers import NOW, UID, DsCluster, ds_dict

NODES = [f"node-{i}" for i in range(3)]


def _revision(c: DsCluster) -> dict:  # type: ignore[type-arg]
    (rev,) = c.revisions.values()
    return rev


def test_q13_duplicate_revisions_keep_the_highest_and_relabel_every_pod() -> None:
    c = DsCluster(ds_dict(), NODES)
    now = c.settle(NOW)
    first = _revision(c)
    hash_ = first["metadata"]["labels"]["controller-revision-hash"]
    dup = copy.deepcopy(first)
    dup["metadata"].update(name="ds-dupl1", uid="rev-dup", labels={**first["metadata"]["labels"],
                                                                    "controller-revision-hash": "dupl1"})
    dup["revision"] = first["revision"] + 1
    c.revisions["rev-dup"] = dup
    pods = sorted(c.pods)
    c.pods[pods[0]]["metadata"]["labels"]["controller-revision-hash"] = "anold1"  # a genuinely old pod too
    plan = c.step(now + timedelta(seconds=1), kubelet=False)
    relabelled = sorted(cmd.pod for cmd in plan.commands if cmd.verb == "backfill")
    assert relabelled == pods  # every pod whose hash differs from the kept one's
    assert sorted(plan.relabelled) == pods and plan.revisions_deleted == [first["metadata"]["name"]]
    assert [cmd.revision for cmd in plan.commands if cmd.verb == "revision-delete"] == [first["metadata"]["name"]]
    assert plan.created == [] and plan.deleted == []
    assert not any(cmd.verb == "status" for cmd in plan.commands)  # the pass stops: pods are relabelled first
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in c.pods.values()} == {"dupl1"}
    assert [r["metadata"]["name"] for r in c.revisions.values()] == ["ds-dupl1"]
    plan = c.step(now + timedelta(seconds=2))
    assert plan.created == [] and plan.deleted == []
    assert plan.status.daemon_set_hash == "dupl1" and plan.status.updated_number_scheduled == 3
    assert hash_ != "dupl1"


def test_a_revision_name_taken_by_other_data_bumps_the_collision_count() -> None:
    c = DsCluster(ds_dict(), NODES)
    data = template_patch_data(c.daemonset().spec.template)
    want = revision_bytes(data)
    taken = f"ds-{hash_revision(want, None)}"
    other = template_patch_data(DsCluster(ds_dict(image="other:1"), []).daemonset().spec.template)
    c.revisions["rev-x"] = {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1, "data": other,
        "metadata": {"name": taken, "namespace": "default", "uid": "rev-x", "resourceVersion": "1",
                     "labels": {"app": "d", "controller-revision-hash": "x"},
                     "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet", "name": "ds",
                                          "uid": UID, "controller": True}]}}
    plan = c.step(NOW, kubelet=False)
    expected = f"ds-{hash_revision(want, 1)}"
    assert [cmd.revision for cmd in plan.commands if cmd.verb == "revision-create"] == [expected]
    assert plan.status.collision_count == 1 and c.cs["status"]["collisionCount"] == 1
    assert [e.type for e in plan.events][:1] == ["revision-collision"]
    c.settle(NOW + timedelta(seconds=1))
    hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in c.pods.values()}
    assert hashes == {expected.rsplit("-", 1)[1]} and len(c.pods) == 3
    assert c.cs["status"]["collisionCount"] == 1 and c.cs["status"]["daemonSetHash"] == expected.rsplit("-", 1)[1]


def test_kruisebus_plan_shows_the_relabels_and_the_deleted_duplicate(tmp_path: Path) -> None:
    """`kruisebus plan` over a DaemonSet with two revisions of its template: the pods it relabels (to the
    kept revision) and the revision it deletes, not an empty pass."""
    c = DsCluster(ds_dict(), NODES)
    now = c.settle(NOW)
    first = _revision(c)
    dup = copy.deepcopy(first)
    dup["metadata"].update(name="ds-dupl1", uid="rev-dup", labels={**first["metadata"]["labels"],
                                                                    "controller-revision-hash": "dupl1"})
    dup["revision"] = first["revision"] + 1
    kind = {"apiVersion": "apps/v1", "kind": "ControllerRevision"}
    docs = [c.cs, *c.nodes.values(), *c.pods.values(), {**kind, **first}, {**kind, **dup}]
    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    code, out = run(str(path), now=(now + timedelta(seconds=1)).isoformat(), feature_gates=None)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["revision"] == "ds-dupl1"
    assert sorted(r["pod"] for r in doc["relabel"]) == sorted(c.pods)
    assert {r["revision"] for r in doc["relabel"]} == {"ds-dupl1"}
    assert doc["revisionsDeleted"] == [first["metadata"]["name"]]
    assert doc["create"] == [] and doc["delete"] == []

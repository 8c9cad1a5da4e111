"""Taking a CloneSet over from OpenKruise changes nothing: no pod is updated, no revision is written.

The fixtures (fixtures/kruise-web*.yaml and the raw revision data next to them) are what OpenKruise
stores for a CloneSet, derived from its code as the fixtures' comments explain; nothing in them was
produced by kruisebus. If kruisebus serialised a template differently from Kruise's ``getPatch``
(``pkg/controller/cloneset/revision/cloneset_revision.go``) by a single byte, it would compute another
revision name, create a revision and update every pod to it: the tests here fail first.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from schemas.cloneset import CloneSet
from schemas.constants import ANNOTATION_INPLACE_STATE, LABEL_HASH, LABEL_REVISION_HASH
from schemas.messages import VERB_REVISION_BUMP, VERB_REVISION_CREATE, VERB_STATUS
from services.dryrun import load, run
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.preview import view_of as preview_view_of
from services.planner.cloneset.revision import build_revision, select_revisions
from services.planner.cloneset.view import CloneSetView, Plan
from services.planner.kit.revision import hash_revision, revision_bytes, revision_name
from tests.unit.planner.simkube import Cluster, drive

FIXTURES = Path(__file__).parent / "fixtures"
STEADY = FIXTURES / "kruise-web.yaml"
ROLLOUT = FIXTURES / "kruise-web-rollout.yaml"
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
R1 = "web-7db9768d64"  # derived in kruise-web.yaml: SafeEncodeString(FNV-1(r1 data + "0"))
R2 = "web-64647fcd59"  # derived in kruise-web-rollout.yaml


def raw_data(name: str) -> bytes:
    """A revision's ``Data.Raw`` exactly as Kruise's ``json.Marshal`` wrote it (derived in the fixtures)."""
    return (FIXTURES / {R1: "kruise-web-r1.data.json", R2: "kruise-web-r2.data.json"}[name]).read_bytes()


def documents(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        out.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def view_of(path: Path) -> CloneSetView:
    """The view ``kruisebus plan`` builds from the file (services/dryrun.py)."""
    _, workload, others = load(path.read_text())
    cs, pods, revisions, claims = preview_view_of(workload, others)
    return CloneSetView(cloneset=cs, pods=pods, revisions=revisions, pvcs=claims)


def cluster_of(docs: list[dict[str, Any]]) -> Cluster:
    return Cluster(of_kind(docs, "CloneSet")[0], of_kind(docs, "Pod"), of_kind(docs, "ControllerRevision"))


def verbs(plan: Plan) -> list[str]:
    return [c.verb for c in plan.commands]


# ---------------------------------------------------------------- the revision Kruise wrote


def test_fixture_revision_is_self_consistent() -> None:
    """The ControllerRevision objects carry the derived bytes, name and hash label (guards the fixture)."""
    for path, name in ((STEADY, R1), (ROLLOUT, R1), (ROLLOUT, R2)):
        rev = next(r for r in of_kind(documents(path), "ControllerRevision") if r["metadata"]["name"] == name)
        assert rev["data"] == json.loads(raw_data(name))
        assert rev["metadata"]["labels"][LABEL_HASH] == name.rsplit("-", 1)[1]


@pytest.mark.parametrize(("path", "name"), [(STEADY, R1), (ROLLOUT, R2)])
def test_revision_for_stored_template_is_kruises(path: Path, name: str) -> None:
    """Same name, hash label, data bytes, labels and annotations as the revision Kruise created."""
    cs = view_of(path).cloneset
    stored = next(r for r in view_of(path).revisions if r.metadata.name == name)
    ours = build_revision(cs, stored.revision, cs.status.collision_count)
    assert revision_bytes(ours.data) == raw_data(name)
    assert ours.metadata.name == name
    assert ours.metadata.labels == stored.metadata.labels
    assert ours.metadata.annotations == stored.metadata.annotations
    # and Kruise's stored data re-serialises to the bytes Kruise compared (history.EqualRevision)
    assert revision_bytes(stored.data) == raw_data(name)


# ---------------------------------------------------------------- taking over a finished rollout


def test_takeover_writes_nothing() -> None:
    """The first kruisebus pass over Kruise's objects: no command at all, not even a status write."""
    view = view_of(STEADY)
    sel = select_revisions(view.cloneset, view.revisions, view.pods)
    assert sel.create is None and sel.bump is None and sel.delete == []
    assert sel.update.metadata.name == sel.current.metadata.name == R1
    plan = plan_cloneset(view, now=NOW)
    assert plan.commands == []
    assert plan.status == view.cloneset.status


def test_takeover_through_kruisebus_plan() -> None:
    """``kruisebus plan`` on ``kubectl get -o yaml`` output of a Kruise CloneSet previews no action."""
    code, out = run(str(STEADY), now="2026-01-01T12:00:00Z", feature_gates=None)
    assert code == 0, out
    res = json.loads(out)
    assert res["actions"] == []
    assert res["statusWritten"] is False
    assert res["status"]["updateRevision"] == res["status"]["currentRevision"] == R1


def test_takeover_stays_quiet_while_the_kubelet_runs() -> None:
    """Many passes, kubelet syncs in between: still no pod write and no revision."""
    cluster = cluster_of(documents(STEADY))
    drive(cluster, NOW)
    assert cluster.applied == []
    assert set(cluster.revisions) == {R1}


def _strip_go_emitted(cs: dict[str, Any]) -> dict[str, Any]:
    """Drop (in place) the template members Go emits whatever the stored bytes say."""
    template = cs["spec"]["template"]
    del template["metadata"]["creationTimestamp"]
    for key in ("initContainers", "containers"):
        for c in template["spec"][key]:
            if c["resources"] == {}:
                del c["resources"]
    return cs


def test_stored_template_without_go_emitted_members_keeps_kruises_revision() -> None:
    """A stored template may lack what Go always emits; Kruise's revision still has it.

    E.g. ``kubectl replace`` of a manifest that spells out the defaults but not ``resources: {}``:
    Kruise's webhook decodes an unchanged template, injects nothing and patches nothing, so the stored
    object keeps the request's bytes, while getPatch re-encodes the decoded struct with
    ``"resources":{}`` and ``"creationTimestamp":null``.
    """
    docs = documents(STEADY)
    cs = _strip_go_emitted(of_kind(docs, "CloneSet")[0])
    cluster = cluster_of(docs)
    plan = plan_cloneset(cluster.view(), now=NOW)
    assert plan.commands == []
    assert plan.status.update_revision == R1
    assert revision_bytes(build_revision(msgspec.convert(cs, CloneSet), 1, 0).data) == raw_data(R1)


def test_revision_an_earlier_kruisebus_wrote_still_matches() -> None:
    """Upgrading kruisebus starts no rollout: data stored before revisions carried ``"resources":{}``.

    Before, the stored template was copied as it is; for a CloneSet stored without ``resources`` the
    revision (and the pods' labels) got another name than Kruise's. That revision stays the one in use.
    """
    docs = documents(STEADY)
    _strip_go_emitted(of_kind(docs, "CloneSet")[0])
    old = json.loads(raw_data(R1))
    for key in ("initContainers", "containers"):
        for c in old["spec"]["template"]["spec"][key]:
            if c["resources"] == {}:
                del c["resources"]
    old_name = revision_name("web", hash_revision(revision_bytes(old), 0))  # how it was named then
    assert old_name != R1
    rev = of_kind(docs, "ControllerRevision")[0]
    rev["metadata"]["name"] = old_name
    rev["data"] = old
    for pod in of_kind(docs, "Pod"):
        pod["metadata"]["labels"][LABEL_REVISION_HASH] = old_name
        pod["metadata"]["labels"]["pod-template-hash"] = old_name.rsplit("-", 1)[1]
    cs = of_kind(docs, "CloneSet")[0]
    cs["status"]["updateRevision"] = cs["status"]["currentRevision"] = old_name
    cluster = cluster_of(docs)
    drive(cluster, NOW)
    assert not [c for c in cluster.applied if c.verb != "status"]
    assert set(cluster.revisions) == {old_name}


# ---------------------------------------------------------------- template defaults at admission


def _without_template_defaults(cs: dict[str, Any]) -> dict[str, Any]:
    """The fixture CloneSet as admitted with no webhook in the path (or Kruise's TemplateNoDefaults)."""
    cs = copy.deepcopy(cs)
    spec = cs["spec"]["template"]["spec"]
    for key in (
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "dnsPolicy",
        "securityContext",
        "schedulerName",
    ):
        del spec[key]
    for c in spec["initContainers"] + spec["containers"]:
        for key in ("imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy"):
            del c[key]
        if c["resources"] == {}:
            del c["resources"]
        for p in c.get("ports", []):
            del p["protocol"]
        probe = c.get("readinessProbe")
        if probe:
            c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}}
    del cs["spec"]["template"]["metadata"]["creationTimestamp"]
    del cs["spec"]["revisionHistoryLimit"]
    cs["spec"]["updateStrategy"] = {"type": "InPlaceIfPossible"}
    cs["status"] = {}
    return cs


def _readmitted(cs: dict[str, Any]) -> dict[str, Any]:
    """The same object after an UPDATE that did not touch the template went through Kruise's webhook.

    SetDefaultsCloneSet runs on every admission, but injects template defaults only when the template
    changed (pkg/webhook/cloneset/mutating/cloneset_create_update_handler.go): only spec-level defaults
    and the user's edit (an annotation) appear.
    """
    cs = copy.deepcopy(cs)
    cs["metadata"].setdefault("annotations", {})["owner"] = "platform"
    spec = cs["spec"]
    before = copy.deepcopy(spec)
    spec["revisionHistoryLimit"] = 10
    spec["updateStrategy"].update({"partition": 0, "maxUnavailable": "20%", "maxSurge": 0})
    spec["updateStrategy"]["inPlaceUpdateStrategy"] = {}
    if spec != before:
        cs["metadata"]["generation"] += 1
    return cs


@pytest.mark.parametrize("defaults", ["missing", "present"])
def test_template_defaults_never_start_a_rollout_by_themselves(defaults: str) -> None:
    """The same stored template always gives the same revision: re-planning and re-admitting it is quiet.

    Whether the template defaults were injected at admission or not, the planner takes the stored
    template as it is (it does not add the defaults itself), so after the first rollout nothing moves:
    not when re-planned, not after the object is re-admitted with only spec-level defaults.
    """
    cs = of_kind(documents(STEADY), "CloneSet")[0]
    if defaults == "missing":
        cs = _without_template_defaults(cs)
    else:
        cs = copy.deepcopy(cs)
        cs["status"] = {}
    cluster = Cluster(cs)
    now = drive(cluster, NOW)
    assert len(cluster.revisions) == 1
    (name,) = cluster.revisions
    assert (name == R1) == (defaults == "present")  # Kruise would also have hashed the defaults in
    assert len(cluster.pods) == 3
    created = len(cluster.applied)

    now = drive(cluster, now)
    cluster.cs = _readmitted(cluster.cs)
    drive(cluster, now)
    later = {c.verb for c in cluster.applied[created:]}
    assert later == ({VERB_STATUS} if defaults == "missing" else set())  # observedGeneration only
    assert set(cluster.revisions) == {name}
    assert {p["metadata"]["labels"][LABEL_REVISION_HASH] for p in cluster.pods.values()} == {name}


# ---------------------------------------------------------------- an in-progress Kruise rollout


def test_in_progress_rollout_continues_where_kruise_left_it() -> None:
    """Next pass: one more in-place update (maxUnavailable 50% of 4, one pod still updating), nothing else.

    web-b2xqk finished its in-place update and web-dz5wm is waiting for the kubelet (Kruise's
    in-place-update-state annotation): neither is touched; neither revision is re-created.
    """
    view = view_of(ROLLOUT)
    sel = select_revisions(view.cloneset, view.revisions, view.pods)
    assert sel.create is None and sel.bump is None
    assert (sel.current.metadata.name, sel.update.metadata.name) == (R1, R2)
    plan = plan_cloneset(view, now=NOW)
    assert verbs(plan) == ["update-in-place"]
    assert plan.commands[0].pod in {"web-hv7tc", "web-9n4ls"}
    assert plan.commands[0].revision == R2


def test_in_progress_rollout_finishes_without_redoing_finished_pods() -> None:
    docs = documents(ROLLOUT)
    cluster = cluster_of(docs)
    drive(cluster, NOW)
    assert cluster.update_count == {("pod-hv7tc", R2): 1, ("pod-9n4ls", R2): 1}
    assert not [c for c in cluster.applied if c.verb in (VERB_REVISION_CREATE, VERB_REVISION_BUMP, "create")]
    assert set(cluster.pods) == {"web-b2xqk", "web-dz5wm", "web-hv7tc", "web-9n4ls"}  # nobody recreated
    for pod in cluster.pods.values():
        assert pod["metadata"]["labels"][LABEL_REVISION_HASH] == R2
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == ready["InPlaceUpdateReady"] == "True", pod["metadata"]["name"]
    # Kruise's annotation on the finished pod is left as Kruise wrote it
    finished = next(p for p in of_kind(docs, "Pod") if p["metadata"]["name"] == "web-b2xqk")
    kruise_state = finished["metadata"]["annotations"][ANNOTATION_INPLACE_STATE]
    assert cluster.pods["web-b2xqk"]["metadata"]["annotations"][ANNOTATION_INPLACE_STATE] == kruise_state
    assert cluster.cs["status"]["currentRevision"] == cluster.cs["status"]["updateRevision"] == R2
    assert set(cluster.revisions) == {R1, R2}


def test_pods_labelled_under_kruises_short_hash_gate_are_taken_over() -> None:
    """With CloneSetShortHash Kruise labels pods with the hash alone; they count as on the revision."""
    docs = documents(STEADY)
    for pod in of_kind(docs, "Pod"):
        pod["metadata"]["labels"][LABEL_REVISION_HASH] = R1.rsplit("-", 1)[1]
    cluster = cluster_of(docs)
    drive(cluster, NOW)
    assert cluster.applied == []


def test_rolling_back_mid_rollout_reuses_kruises_first_revision() -> None:
    """Template set back to nginx:1.25: Kruise's revision 1 is found equal and renumbered, not re-created."""
    docs = documents(ROLLOUT)
    cs = of_kind(docs, "CloneSet")[0]
    cs["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25"
    cs["metadata"]["generation"] = 3
    plan = plan_cloneset(cluster_of(docs).view(), now=NOW)
    assert verbs(plan) == [VERB_REVISION_BUMP, "status"]
    assert plan.commands[0].revision == R1
    assert plan.status.update_revision == R1


# Derived like kruise-web-r1.data.json: the template below after SetDefaultPodSpec (imagePullPolicy
# Always, SetDefaults_Container, SetDefaults_Probe, SetDefaults_DownwardAPIVolumeSource defaultMode 0644
# = 420, SetDefaults_PodSpec), re-encoded by getPatch: core/v1 ResourceFieldSelector.Divisor is a
# resource.Quantity struct (omitempty never drops it; the zero Quantity marshals as "0") and
# GRPCAction.Service is a *string tagged `json:"service"` (no omitempty: null), Container.Resources {}.
PROBE_DATA = (
    b'{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"probe"}},'
    b'"spec":{"containers":[{"env":[{"name":"MEM","valueFrom":{"resourceFieldRef":{"divisor":"0",'
    b'"resource":"limits.memory"}}}],"image":"app:1","imagePullPolicy":"Always","livenessProbe":'
    b'{"failureThreshold":3,"grpc":{"port":9000,"service":null},"periodSeconds":10,"successThreshold":1,'
    b'"timeoutSeconds":1},"name":"app","resources":{},"terminationMessagePath":"/dev/termination-log",'
    b'"terminationMessagePolicy":"File","volumeMounts":[{"mountPath":"/etc/podinfo","name":"podinfo"}]}],'
    b'"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler",'
    b'"securityContext":{},"terminationGracePeriodSeconds":30,"volumes":[{"downwardAPI":{"defaultMode":420,'
    b'"items":[{"path":"mem","resourceFieldRef":{"containerName":"app","divisor":"0",'
    b'"resource":"limits.memory"}}]},"name":"podinfo"}]}}}}'
)


def test_divisor_and_grpc_service_are_written_as_go_writes_them() -> None:
    """Stored with or without the members Go emits, the template gets Kruise's bytes and one name."""
    container = {
        "name": "app",
        "image": "app:1",
        "imagePullPolicy": "Always",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "env": [{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}],
        "livenessProbe": {
            "grpc": {"port": 9000},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo"}],
    }
    spec = {
        "containers": [container],
        "volumes": [
            {
                "name": "podinfo",
                "downwardAPI": {
                    "defaultMode": 420,
                    "items": [
                        {
                            "path": "mem",
                            "resourceFieldRef": {"containerName": "app", "resource": "limits.memory"},
                        }
                    ],
                },
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler",
    }
    as_go_wrote_it = copy.deepcopy(spec)
    c = as_go_wrote_it["containers"][0]
    c["resources"] = {}
    c["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"] = "0"
    c["livenessProbe"]["grpc"]["service"] = None
    as_go_wrote_it["volumes"][0]["downwardAPI"]["items"][0]["resourceFieldRef"]["divisor"] = "0"
    names = set()
    for pod_spec in (spec, as_go_wrote_it):
        cs = msgspec.convert(
            {
                "metadata": {"name": "probe", "namespace": "default", "uid": "u"},
                "spec": {
                    "selector": {"matchLabels": {"app": "probe"}},
                    "template": {"metadata": {"labels": {"app": "probe"}}, "spec": pod_spec},
                },
            },
            CloneSet,
        )
        rev = build_revision(cs, 1, 0)
        assert revision_bytes(rev.data) == PROBE_DATA
        names.add(rev.metadata.name)
    assert len(names) == 1


def test_quantities_spelled_otherwise_keep_kruises_revision() -> None:
    """``cpu: 0.1`` and ``memory: 65536Ki`` are ``100m`` and ``64Mi`` to Go, so the revision is Kruise's.

    Such spellings survive in the stored object when a template edit needs no default (Kruise's webhook
    then returns no patch); Kruise's revision has the canonical form getPatch re-encodes.
    """
    docs = documents(STEADY)
    cs = of_kind(docs, "CloneSet")[0]
    cs["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": 0.1, "memory": "65536Ki"}
    }
    plan = plan_cloneset(cluster_of(docs).view(), now=NOW)
    assert plan.commands == []
    assert plan.status.update_revision == R1

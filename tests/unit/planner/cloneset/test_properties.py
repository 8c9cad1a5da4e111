"""Hypothesis properties for the invariants of docs/architecture.md, driving plans through the simulated cluster.

For random CloneSets (replicas, strategy, partition int/%, maxUnavailable int/%, maxSurge, grace,
minReadySeconds) a settled CloneSet gets a new image and is driven pass by pass, optionally with every
command delivered twice and with old plans replayed at random (the executor's at-least-once world).
After every applied plan:

* unavailable pods never exceed what maxUnavailable allows (available >= replicas - maxUnavailable);
* no pod beyond the partition is updated (pods not on the update revision >= partition);
* no pod is updated in place twice for one revision;
* the same view always yields the same plan, also from a cold planner (memo cleared);

and the rollout converges: replicas pods, exactly ``partition`` on the old revision, all available,
no surge pod or specified-delete mark left, status consistent.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.planner.cloneset import calc
from services.planner.cloneset.calc import max_unavailable_and_surge
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.view import Plan
from services.planner.kit.intstr import partition_replicas
from tests.unit.planner.helpers import NOW, cs_dict, cs_obj, with_image
from tests.unit.planner.simkube import Cluster, drive


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    replicas = draw(st.integers(1, 7))
    strategy = draw(st.sampled_from(["ReCreate", "InPlaceIfPossible"]))
    partition = draw(
        st.one_of(st.none(), st.integers(0, replicas), st.sampled_from(["0%", "20%", "50%", "99%", "100%"]))
    )
    mu = draw(st.one_of(st.integers(1, 3), st.sampled_from(["20%", "50%", "100%"])))
    ms = draw(st.sampled_from([None, 0, 1, "50%"]))
    return {
        "replicas": replicas,
        "strategy": strategy,
        "partition": partition,
        "max_unavailable": mu,
        "max_surge": ms,
        "grace": draw(st.sampled_from([None, 0, 3])),
        "min_ready": draw(st.sampled_from([0, 2])),
    }


def available(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    labels = pod["metadata"]["labels"]
    return (
        conds.get("Ready") == "True"
        and conds.get("InPlaceUpdateReady", "True") == "True"
        and labels.get("lifecycle.apps.kruise.io/state", "") in ("", "Normal")
    )


def same_plan_cold(cluster: Cluster, plan: Plan, now: Any) -> None:
    view = cluster.view()
    again = plan_cloneset(view, now=now)
    calc._CACHE.clear()
    cold = plan_cloneset(cluster.view(), now=now)
    enc = msgspec.json.encode
    assert enc(again) == enc(cold)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), duplicate=st.booleans(), replay=st.booleans(), seed=st.integers(0, 2**16))
def test_rollout_invariants_and_convergence(
    cfg: dict[str, Any], duplicate: bool, replay: bool, seed: int
) -> None:
    rng = random.Random(seed)
    cs = cs_dict(**cfg)
    c = Cluster(cs)
    now = drive(c, NOW)
    old_rev = c.cs["status"]["updateRevision"]
    replicas = cfg["replicas"]
    assert len(c.pods) == replicas and all(available(p) for p in c.pods.values())

    c.cs = with_image(c.cs, "nginx:9.9")
    cso = cs_obj(c.cs)
    mu, _ = max_unavailable_and_surge(cso.spec.update_strategy, replicas)
    partition = partition_replicas(cfg["partition"], replicas) if cfg["partition"] is not None else 0
    history: list[Plan] = []
    steps = 0

    def check(cl: Cluster, plan: Plan) -> None:
        nonlocal steps
        steps += 1
        if duplicate:
            for cmd in plan.commands:
                cl.apply_command(cmd, now)
        if replay and history and rng.random() < 0.3:
            for cmd in rng.choice(history).commands:
                cl.apply_command(cmd, now)
        history.append(plan)
        pods = list(cl.pods.values())
        n_available = sum(1 for p in pods if available(p))
        assert n_available >= replicas - mu, (n_available, replicas, mu)
        not_new = [p for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == old_rev]
        assert len(not_new) >= partition
        assert all(v == 1 for v in cl.update_count.values()), cl.update_count
        if steps % 7 == 0:
            same_plan_cold(cl, plan, now)

    drive(c, now + timedelta(seconds=1), check=check, max_passes=600)

    new_rev = c.cs["status"]["updateRevision"]
    assert new_rev != old_rev
    pods = list(c.pods.values())
    assert len(pods) == replicas
    assert len(c.pods_on(old_rev)) == partition
    assert len(c.pods_on(new_rev)) == replicas - partition
    assert all(available(p) for p in pods)
    assert not any("apps.kruise.io/specified-delete" in p["metadata"]["labels"] for p in pods)
    st_ = c.cs["status"]
    assert st_["replicas"] == st_["readyReplicas"] == replicas
    assert st_["updatedReplicas"] == replicas - partition
    if cfg["strategy"] == "InPlaceIfPossible":
        # image-only change: every update was in place (no pod re-created)
        assert not any(cmd.verb == "update-recreate" for cmd in c.applied)


@settings(max_examples=40, deadline=None)
@given(cfg=configs(), scale_to=st.integers(0, 8))
def test_scaling_converges_and_keeps_partition(cfg: dict[str, Any], scale_to: int) -> None:
    c = Cluster(cs_dict(**cfg))
    now = drive(c, NOW)
    c.cs = with_image(c.cs, "nginx:9.9")
    now = drive(c, now)
    c.cs["spec"]["replicas"] = scale_to
    c.cs["metadata"]["generation"] += 1
    drive(c, now)
    assert len(c.pods) == scale_to
    assert c.cs["status"]["replicas"] == scale_to


@st.composite
def messy_views(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Arbitrary mid-flight states: mixed revisions, lifecycle states, readiness, deletions, grace."""
    from tests.unit.planner.helpers import pod_dict, revision_dict

    cfg = draw(configs())
    old = cs_dict(**cfg)
    new = with_image(old, "nginx:2.0")
    revs = [revision_dict(old, 1), revision_dict(new, 2)]
    new["status"] = {"currentRevision": revs[0]["metadata"]["name"]}
    states = ["Normal", "PreparingNormal", "PreparingUpdate", "Updating", "Updated", "PreparingDelete", None]
    pods = []
    for i in range(draw(st.integers(0, 9))):
        rev = revs[draw(st.integers(0, 1))]["metadata"]["name"]
        p = pod_dict(
            new,
            rev,
            i,
            ready=draw(st.booleans()),
            state=draw(st.sampled_from(states)),
            specified_delete=draw(st.booleans()),
            inplace_ready=draw(st.sampled_from([True, False, None])),
            deleting=draw(st.integers(0, 9)) == 0,
            phase=draw(st.sampled_from(["Running", "Running", "Pending", "Failed"])),
        )
        if draw(st.integers(0, 4)) == 0:
            p["metadata"].setdefault("annotations", {})["apps.kruise.io/inplace-update-grace"] = (
                json.dumps({"revision": rev, "containerImages": {"main": "nginx:2.0"}, "graceSeconds": 5})
            )
        pods.append(p)
    return new, pods, revs


@settings(max_examples=150, deadline=None)
@given(state=messy_views(), rollback=st.booleans())
def test_any_state_plans_without_error_and_with_unique_ids(
    state: tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]], rollback: bool
) -> None:
    from services.planner.cloneset.view import CloneSetView
    from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
    from tests.unit.planner.helpers import pod_obj, rev_obj

    cs, pods, revs = state
    view = CloneSetView(
        cloneset=cs_obj(cs), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(r) for r in revs]
    )
    gates = FeatureGates(clone_set_partition_rollback=True) if rollback else DEFAULT_GATES
    plan = plan_cloneset(view, now=NOW, gates=gates)
    ids = [c.id for c in plan.commands]
    assert len(ids) == len(set(ids))
    # at most one pod-changing update per pod per pass
    updated = [c.pod for c in plan.commands if c.verb in ("update-in-place", "update-recreate")]
    assert len(updated) == len(set(updated))
    # the same input gives the same plan, warm or cold
    calc._CACHE.clear()
    assert msgspec.json.encode(plan_cloneset(view, now=NOW, gates=gates)) == msgspec.json.encode(plan)

"""SidecarSet decision costs: `python -m bench.sidecarset [--sets 100] [--pods 10000]`.

Why: injection sits on every pod creation (the issue's target: p99 <= 5 ms in the webhook at 500 pod
creations/s with 100 SidecarSets in the view) and the upgrade pass runs over every matched pod on each
change (target: <= 20 ms for 10,000 pods). Both are pure functions, timed here in-process:

* `inject`: the pod webhook's answer (`services.webhook.admission.mutate_pod`, JSON patch included) for
  one pod against `--sets` SidecarSets of which 5 select it, `--rounds` times; p50/p99/max;
* `plan`: `plan_sidecarset` passes over `--pods` matched pods (half already updated): the first pass,
  which decides every pod (a planner start), the p50 of five more on the same pods (per-pod matching
  and facts are memoised per object and resourceVersion, `kit.memo`), the p50 of five passes each
  after one pod was replaced by a new version (one pod re-decided, the status and upgrade order
  rebuilt), the p50 and max of five upgrade passes, each right after the sidecar image changed (the
  pods' facts kept, the hashes compared again, the status and upgrade order rebuilt); and the bytes
  per pod the planner keeps between passes for the SidecarSet (its memo and podfacts' memo).

The webhook's HTTPS round trip is measured by `bench.webhook` (its pod hook path is this function).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.admission import AdmissionRequest
from schemas.constants import ANNOTATION_SIDECARSET_HASH, ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE
from schemas.kube import Pod
from schemas.sidecarset import SidecarSet
from services.planner.sidecarset import plan as ss_plan
from services.planner.sidecarset import podfacts
from services.planner.sidecarset.defaults import default_sidecarset
from services.planner.sidecarset.plan import plan_sidecarset
from services.webhook.admission import PodView, mutate_pod


def _set(i: int, image: str = "agent:v1") -> SidecarSet:
    app = "web" if i < 5 else f"other-{i}"
    raw = {"metadata": {"name": f"ss-{i:03d}", "uid": f"u{i}"}, "spec": {
        "selector": {"matchLabels": {"app": app}},
        "containers": [{"name": f"agent-{i}", "image": image, "env": [{"name": "A", "value": "b"}],
                        "volumeMounts": [{"name": "logs", "mountPath": f"/logs/{i}"}]}],
        "volumes": [{"name": "logs", "emptyDir": {}}]}}
    return msgspec.convert(default_sidecarset(raw), SidecarSet)


def bench_inject(sets: int, rounds: int) -> dict[str, float]:
    view = PodView(ready=True)
    for i in range(sets):
        ss = _set(i)
        view.sidecarsets[ss.metadata.name] = ss
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default",
                                                           "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "main", "image": "nginx", "env": [{"name": "X", "value": "1"}]}]}}
    req = msgspec.convert({"uid": "u", "kind": {"kind": "Pod", "version": "v1"}, "resource": {
        "version": "v1", "resource": "pods"}, "operation": "CREATE", "namespace": "default", "object": pod},
        AdmissionRequest)
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        resp = mutate_pod(req, view, now="2026-01-01T00:00:00Z")
        samples.append(time.perf_counter() - t)
        assert resp.patch
    samples.sort()
    return {"p50_ms": samples[len(samples) // 2] * 1e3, "p99_ms": samples[int(len(samples) * 0.99)] * 1e3,
            "max_ms": samples[-1] * 1e3}


def _pods(ss: SidecarSet, old_hash: str, n: int) -> list[Pod]:
    out = []
    name = ss.metadata.name
    for i in range(n):
        h = ss.metadata.annotations[ANNOTATION_SIDECARSET_HASH] if i % 2 else old_hash
        out.append(msgspec.convert({
            "metadata": {"name": f"pod-{i:05d}", "namespace": "default", "uid": f"p{i}", "labels": {"app": "web"},
                         "resourceVersion": str(i + 1),
                         "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {
                "kruise.io/sidecarset-injected-list": name,
                ANNOTATION_SIDECARSET_HASH: json.dumps({name: {"hash": h, "sidecarSetName": name}}),
                ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE: json.dumps({name: {
                    "hash": ss.metadata.annotations[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE], "sidecarSetName": name}})}},
            "spec": {"containers": [{"name": "agent-0", "image": "agent:v2" if i % 2 else "agent:v1"},
                                    {"name": "main", "image": "nginx"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "agent-0", "image": "agent:v2" if i % 2 else "agent:v1",
                                              "ready": True}, {"name": "main", "image": "nginx", "ready": True}]}},
            Pod))
    return out


def bench_plan(n: int) -> dict[str, float]:
    old, new = _set(0), _set(0, "agent:v2")
    pods = _pods(new, old.metadata.annotations[ANNOTATION_SIDECARSET_HASH], n)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    times = []
    for _ in range(6):
        t = time.perf_counter()
        plan = plan_sidecarset(new, pods, [], now=now)
        times.append(time.perf_counter() - t)
    assert plan.status.matched_pods == n
    # the first pass decides every pod; later ones only pods whose resourceVersion changed (none here)
    changed = []
    for k in range(5):  # one pod replaced by a new version between passes
        i = (k * 7919) % n
        pods[i] = msgspec.structs.replace(pods[i], metadata=msgspec.structs.replace(
            pods[i].metadata, resource_version=f"r{k}"))
        t = time.perf_counter()
        plan_sidecarset(new, pods, [], now=now)
        changed.append(time.perf_counter() - t)
    # the upgrade pass: the sidecar image changes again (v3, no pod has it), the memo built for v2 serves
    upgrade_passes = []
    for k in range(5):
        image = f"agent:v{3 + k}"
        t = time.perf_counter()
        started = plan_sidecarset(_set(0, image), pods, [], now=now)
        upgrade_passes.append(time.perf_counter() - t)
        assert started.status.updated_pods == 0 and started.upgrade
    # what the planner keeps between passes for this SidecarSet: its memo, rebuilt from cold under tracemalloc
    ss_plan._MATCHES.clear()
    podfacts._FACTS.clear()
    tracemalloc.start()
    plan_sidecarset(new, pods, [], now=now)
    memo, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"first_ms": times[0] * 1e3, "steady_p50_ms": statistics.median(times[1:]) * 1e3,
            "one_changed_p50_ms": statistics.median(changed) * 1e3,
            "image_changed_p50_ms": statistics.median(upgrade_passes) * 1e3,
            "image_changed_max_ms": max(upgrade_passes) * 1e3, "upgrades": float(len(plan.upgrade)),
            "memo_bytes_per_pod": memo / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sidecarset", description=__doc__.splitlines()[0])
    p.add_argument("--sets", type=int, default=100)
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=2000)
    args = p.parse_args(argv)
    result: dict[str, Any] = {"inject": bench_inject(args.sets, args.rounds), "plan": bench_plan(args.pods)}
    print(json.dumps({k: {m: round(v, 3) for m, v in d.items()} for k, d in result.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The PodProbeMarker planner's pass over one marker selecting many pods, in process.

Run: .venv/bin/python -m bench.probemarker_pass [--pods 10000] [--repeat 15]

Why: a marker is planned again on every change of one of its results or pods, so its pass time bounds
how fast results become labels (the end-to-end figures are `bench/probemarker.py`'s). Scenarios, each
one `plan_podprobemarker` call (median of ``--repeat``):

* ``cold``: the first pass after a start (empty memo), every pod already marked;
* ``steady``: the same inputs again (what a pass triggered by an unrelated change sees);
* ``1 result changed`` / ``100 results changed``: that many results flipped since the previous pass
  (a different set each run), each flipped pod needing its write.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime

import msgspec

from schemas.kube import Pod
from schemas.messages import ProbeResult, ProbeState
from schemas.podprobemarker import PodProbeMarker
from services.planner.podprobemarker import plan as ppm_plan
from services.planner.podprobemarker.plan import MarkerRecord, encode_records, plan_podprobemarker

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = "2026-01-01T00:00:00Z"
PROBE = "idle#Idle"
IDLE = "gameserver-idle"
CONDITION = "game.kruise.io/idle"


def _marker() -> PodProbeMarker:
    return msgspec.convert({
        "metadata": {"name": "idle", "namespace": "default", "uid": "idle-uid", "generation": 1,
                     "resourceVersion": "1", "finalizers": ["kruise.io/node-pod-probe-cleanup"]},
        "spec": {"selector": {"matchLabels": {"app": "game"}}, "probes": [{
            "name": "Idle", "containerName": "main", "probe": {"exec": {"command": ["/idle.sh"]}},
            "podConditionType": CONDITION,
            "markerPolicy": [{"state": "Succeeded", "labels": {IDLE: "true"}},
                             {"state": "Failed", "labels": {IDLE: "false"}}]}]},
        "status": {"observedGeneration": 1},
    }, PodProbeMarker)


def _pod(i: int) -> Pod:
    record = encode_records({PROBE: MarkerRecord(labels=[IDLE], condition=CONDITION)})
    return msgspec.convert({
        "metadata": {"name": f"game-{i}", "namespace": "default", "uid": f"uid-{i}", "resourceVersion": "7",
                     "labels": {"app": "game", IDLE: "true"}, "annotations": {"kruisebus.io/probe-markers": record}},
        "spec": {"nodeName": f"node-{i % 100}", "containers": [{"name": "main", "image": "game:v1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"},
                                                      {"type": CONDITION, "status": "True", "message": ""}]},
    }, Pod)


def _result(i: int, state: ProbeState = "Succeeded") -> ProbeResult:
    return ProbeResult(namespace="default", pod=f"game-{i}", pod_uid=f"uid-{i}", probe=PROBE, state=state,
                       message="", time=STAMP, last_transition_time=STAMP)


def _ms(f: object, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.probemarker_pass", description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)
    n = args.pods
    marker, pods = _marker(), [_pod(i) for i in range(n)]
    results = [_result(i) for i in range(n)]

    def cold() -> None:
        ppm_plan._FACTS.clear()
        plan_podprobemarker(marker, pods, results, None, now=NOW)

    def steady() -> None:
        plan_podprobemarker(marker, pods, results, None, now=NOW)

    runs = {"cold": _ms(cold, args.repeat)}
    steady()
    runs["steady"] = _ms(steady, args.repeat)
    for flips in (1, 100):
        offset = [0]

        def flipped(k: int = flips, offset: list[int] = offset) -> None:
            view = list(results)
            start = offset[0]
            for j in range(start, start + k):
                view[j % n] = _result(j % n, "Failed")
            offset[0] += k
            plan = plan_podprobemarker(marker, pods, view, None, now=NOW)
            assert sum(c.verb == "probe" for c in plan.commands) == k, "each flipped pod needs its write"

        steady()
        runs[f"{flips} result{'s' if flips > 1 else ''} changed"] = _ms(flipped, args.repeat)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"plan_podprobemarker, one marker over {n:,} pods (median of {args.repeat}; load average {load})")
    for name, ms in runs.items():
        print(f"  {name:<20} {ms:8.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

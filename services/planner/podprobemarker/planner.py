"""The PodProbeMarker's entry in the registry of workload planners.

A marker owns no pod: it selects pods by label in its namespace, so it reads pods as a shared kind
(a pod change re-plans the markers of its namespace whose selector selects it, before or after the
change). Its probe results arrive from KB_PROBE under `PROBE_RESULTS`: an `Input` it declares, which the
engine follows for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from schemas.kinds import POD, PODPROBEMARKER, Kind
from schemas.kube import Pod
from schemas.messages import PROBE_DECODER, ProbeResult
from schemas.podprobemarker import PodProbeMarker, split_probe_key
from services.planner.kit.gates import FeatureGates
from services.planner.kit.selectors import matches
from services.planner.kit.workload import PROBE_RESULTS, Input, Shared
from services.planner.podprobemarker.lean import lean_pod
from services.planner.podprobemarker.plan import MarkerPlan, plan_podprobemarker


def selects(ppm: PodProbeMarker, pod: Pod) -> bool:
    """Whether a change of `pod` concerns the marker: same namespace, its selector matches the labels."""
    return (pod.metadata.namespace == ppm.metadata.namespace and ppm.spec.selector is not None
            and matches(ppm.spec.selector, pod.metadata.labels))


PROBE_INPUT = Input(
    token=PROBE_RESULTS,
    subject=lambda s: s.probe_all(),
    decoder=PROBE_DECODER,
    route=lambda r: (r.namespace, split_probe_key(r.probe)[0]),  # probe `<marker>#<name>`: that marker's
    key=lambda r: (r.pod_uid, r.probe),
    order=lambda r: (r.pod, r.probe),
    pod=lambda r: r.pod_uid,
)
"""The probe results on KB_PROBE, each the marker's its probe name names (forgotten with their pod)."""


class PodProbeMarkerPlanner:
    kind: Kind = PODPROBEMARKER
    owned: tuple[Kind, ...] = ()
    shared: tuple[Shared, ...] = (Shared(POD, compact=lean_pod, match=selects),)
    inputs: tuple[Input, ...] = (PROBE_INPUT,)

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> MarkerPlan:
        assert isinstance(obj, PodProbeMarker)
        shared_pods: Sequence[Pod] = owned.get(POD.token, ())
        results: Sequence[ProbeResult] = owned.get(PROBE_RESULTS, ())
        return plan_podprobemarker(obj, shared_pods, results, previous, now=now, gates=gates)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, PodProbeMarker)
        pods = sorted((o for o in objects if isinstance(o, Pod)), key=lambda p: p.metadata.name)
        results = [o for o in objects if isinstance(o, ProbeResult)]
        plan = plan_podprobemarker(obj, pods, results, None, now=now, gates=gates)
        doc: dict[str, Any] = {
            "commands": msgspec.to_builtins(plan.commands),
            "errors": [str(e) for e in plan.errors],
            "matchedPods": plan.matched_pods,
        }
        return (1 if plan.errors else 0), doc


PLANNER = PodProbeMarkerPlanner()

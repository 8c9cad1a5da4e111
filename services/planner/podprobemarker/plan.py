"""One pass over a PodProbeMarker: its probe results become pod labels, annotations and a condition.

Kruise's NodePodProbe controller (`pkg/controller/nodepodprobe/node_pod_probe_controller.go`) and the
PodProbeMarker controller's finalizer and status (`pkg/controller/podprobemarker/`), as a pure decision:

* For every pod the marker matches and every probe with a result on KB_PROBE: the markerPolicy whose
  state is the result's is "matched", the last other one "opposite"; the opposite's keys are removed
  first, then the matched keys set (a key both set, such as `controller.kubernetes.io/pod-deletion-cost`,
  ends with the matched value); with no matching policy (Unknown) the opposite keys are just removed.
  `podConditionType` becomes a condition (True for Succeeded, False otherwise, the result's message),
  replaced only when its status or message differs. All of a pod's changes are one strategic merge
  through the pod's status endpoint, as Kruise writes them, with a KruiseProbeSucceeded /
  KruiseProbeFailed Event on the pod. Nothing is written while the pod already shows the results.
* What a probe set is recorded on the pod (`kruisebus.io/probe-markers`: per `<ppm>#<probe>`, its
  label and annotation keys and condition type). A probe removed from the marker, a pod the marker no
  longer matches, and every probe of a marker being deleted lose exactly what the record names, except
  keys another probe's record still claims. (Kruise keeps a removed probe's markers, and on deletion
  strips every probe whose name merely contains `<ppm>#`, so `pm-1` took `ppm-1#...` along.)
* The finalizer `kruise.io/node-pod-probe-cleanup` keeps a deleted marker until its pods are clean.
* Status `observedGeneration` and `matchedPods`, written when they differ.
* An invalid spec is never run: the `InvalidSpec` condition, a Warning Event and a `rejected` rollout
  event naming the field, once per message.

A marker's pass runs again whenever one of its results or pods changes, and a marker may select
thousands of pods: each pod's decision is kept (`kit.memo`) and reused while the pod is the same object
at the same resourceVersion, its results are equal and the marker's spec is the one it was decided for,
so a pass pays only for the pods whose inputs changed (`tests/unit/planner/podprobemarker/test_memo.py`
checks it against passes from a cold memo).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import attrgetter, ne
from typing import Any

import msgspec

from schemas.constants import (
    ANNOTATION_PROBE_MARKERS,
    CONDITION_INVALID_SPEC,
    EVENT_KRUISE_PROBE_FAILED,
    EVENT_KRUISE_PROBE_SUCCEEDED,
    FINALIZER_NODE_POD_PROBE_CLEANUP,
    PROBE_SUCCEEDED,
    REASON_INVALID_SPEC,
)
from schemas.kinds import PODPROBEMARKER
from schemas.kube import JsonObject, ObjectReference, Pod
from schemas.messages import (
    PODPROBEMARKERS,
    PODS,
    VERB_FINALIZER,
    VERB_INVALID_SPEC,
    VERB_PROBE_MARKER,
    VERB_STATUS,
    Command,
    Expectation,
    PatchOp,
    ProbeResult,
    RolloutEvent,
)
from schemas.podprobemarker import PodContainerProbe, PodProbeMarker, PodProbeMarkerCondition, probe_key
from services.planner.kit.builder import Builder, kube_event, short_digest
from services.planner.kit.fielderrors import FieldError, errors_message
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.gcpause import gc_paused
from services.planner.kit.memo import MemoRegistry, true_positions
from services.planner.kit.plan import Revisionless
from services.planner.kit.podpatch import status_metadata_patch
from services.planner.kit.timeutil import format_time
from services.planner.podprobemarker.matching import is_matched
from services.planner.podprobemarker.validation import validate_podprobemarker


class MarkerRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one `<ppm>#<probe>` set on a pod (an entry of the `kruisebus.io/probe-markers` annotation)."""

    labels: list[str] = []
    annotations: list[str] = []
    condition: str = ""


_RECORDS = msgspec.json.Decoder(dict[str, MarkerRecord])


def pod_records(pod: Pod) -> dict[str, MarkerRecord]:
    """The pod's record of probe markers ({} when absent or unreadable: then nothing is removed)."""
    raw = pod.metadata.annotations.get(ANNOTATION_PROBE_MARKERS)
    if not raw:
        return {}
    try:
        return _RECORDS.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}


def encode_records(records: Mapping[str, MarkerRecord]) -> str:
    return msgspec.json.encode(dict(sorted(records.items()))).decode()


@dataclass
class MarkerPlan(Revisionless):
    commands: list[Command] = field(default_factory=list)
    events: list[RolloutEvent] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    requeue_after: float | None = None
    errors: list[FieldError] = field(default_factory=list)
    matched_pods: int = 0

    @property
    def accepted(self) -> bool:
        return not self.errors


@dataclass
class _PodChange:
    """The accumulated change of one pod: label/annotation sets (None = remove) and conditions."""

    pod: Pod
    labels: dict[str, str | None] = field(default_factory=dict)
    annotations: dict[str, str | None] = field(default_factory=dict)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    event: tuple[str, str] | None = None  # (reason, message) of the first probe whose state shows anew
    stamps: list[str] = field(default_factory=list)  # transition times of the results applied

    def set_label(self, key: str, value: str) -> None:
        self.labels[key] = value

    def remove_label(self, key: str) -> None:
        self.labels[key] = None

    def set_annotation(self, key: str, value: str) -> None:
        self.annotations[key] = value

    def remove_annotation(self, key: str) -> None:
        self.annotations[key] = None

    def put_label(self, key: str, value: str | None) -> None:
        self.labels[key] = value

    def put_annotation(self, key: str, value: str | None) -> None:
        self.annotations[key] = value

    def effective(self) -> tuple[dict[str, str | None], dict[str, str | None]]:
        """Only the label/annotation changes the pod does not already show."""
        meta = self.pod.metadata
        labels = {k: v for k, v in self.labels.items() if meta.labels.get(k) != v}
        annotations = {k: v for k, v in self.annotations.items() if meta.annotations.get(k) != v}
        return labels, annotations


def _policies(probe: PodContainerProbe, state: str) -> tuple[Any, Any]:
    """(matched, opposite) markerPolicy of `state`, as Kruise picks them (the last other one is opposite)."""
    matched = opposite = None
    for policy in probe.marker_policy:
        if policy.state == state:
            matched = policy
        else:
            opposite = policy
    return matched, opposite


def _apply_result(change: _PodChange, probe: PodContainerProbe, result: ProbeResult) -> MarkerRecord:
    pod = change.pod
    matched, opposite = _policies(probe, result.state)
    labels: dict[str, str | None] = {}
    annotations: dict[str, str | None] = {}
    if opposite is not None:
        labels.update(dict.fromkeys(opposite.labels))
        annotations.update(dict.fromkeys(opposite.annotations))
    if matched is not None:
        labels.update(matched.labels)
        annotations.update(matched.annotations)
    for key, label in labels.items():
        change.put_label(key, label)
    for key, annotation in annotations.items():
        change.put_annotation(key, annotation)
    meta = pod.metadata
    # the pod already shows this result (then no Event, and no part in the command's id)
    shows = all(meta.labels.get(k) == v for k, v in labels.items()) and \
        all(meta.annotations.get(k) == v for k, v in annotations.items())
    ctype = probe.pod_condition_type
    if ctype:
        status = "True" if result.state == PROBE_SUCCEEDED else "False"
        current = pod.status.condition(ctype)
        if current is None or current.status != status or current.message != result.message:
            shows = False
            change.conditions.append({"type": ctype, "status": status, "message": result.message,
                                      "lastProbeTime": result.time,
                                      "lastTransitionTime": result.last_transition_time or result.time})
    if not shows:
        change.stamps.append(f"{result.probe}={result.state}@{result.last_transition_time or result.time}")
        if change.event is None:
            reason = EVENT_KRUISE_PROBE_SUCCEEDED if result.state == PROBE_SUCCEEDED else EVENT_KRUISE_PROBE_FAILED
            change.event = (reason, result.message)
    return MarkerRecord(labels=sorted(matched.labels) if matched is not None else [],
                        annotations=sorted(matched.annotations) if matched is not None else [],
                        condition=ctype)


def _release(change: _PodChange, record: MarkerRecord, claimed: Mapping[str, MarkerRecord]) -> None:
    """Remove what `record` set, except what another probe's record still claims."""
    labels = {k for r in claimed.values() for k in r.labels}
    annotations = {k for r in claimed.values() for k in r.annotations}
    conditions = {r.condition for r in claimed.values() if r.condition}
    for key in record.labels:
        if key not in labels and change.labels.get(key) is None:
            change.remove_label(key)
    for key in record.annotations:
        if key not in annotations and change.annotations.get(key) is None:
            change.remove_annotation(key)
    if record.condition and record.condition not in conditions \
            and change.pod.status.condition(record.condition) is not None:
        change.conditions.append({"type": record.condition, "$patch": "delete"})


@dataclass(frozen=True, slots=True, eq=False)
class _PodFacts:
    """What a pass needs of one pod that depends on the pod and the marker's spec alone.

    Compared by identity: the memo hands out the same object while the pod is unchanged, and a new
    one for a new version of the pod, whose decision may differ even where these facts are equal."""

    mine: bool  # in the marker's namespace
    matched: bool  # selected by the marker (not deleting)
    records: dict[str, MarkerRecord]


# Per marker: each pod's facts (kit.memo), and in the memo's `derived` the decisions of its last pass.
_FACTS: MemoRegistry[Pod, _PodFacts] = MemoRegistry(limit=1024)

_RESULT_KEY = attrgetter("pod_uid", "probe")
_NAMESPACE = attrgetter("namespace")
_UID = attrgetter("metadata.uid")
_MATCHED = attrgetter("matched")


@dataclass(slots=True)
class _Decided:
    """A pass's inputs per pod position (uid; facts and results) and the change each needed."""

    uids: list[str]
    inputs: list[tuple[_PodFacts, tuple[ProbeResult | None, ...]]]
    changes: list[_PodChange | None]


def _pod_change(ppm: PodProbeMarker, pod: Pod, facts: _PodFacts, live: Mapping[str, PodContainerProbe],
                results: Sequence[ProbeResult | None]) -> _PodChange | None:
    """The change `pod` needs; `results` are its results for the probes of `live`, in that order."""
    name = ppm.metadata.name
    change = _PodChange(pod)
    records = facts.records
    new_records = dict(records)
    if facts.matched:
        for (key, probe), result in zip(live.items(), results, strict=True):
            if result is None:
                continue  # not probed yet: nothing to show, nothing to take away
            new_records[key] = _apply_result(change, probe, result)
    mine = [k for k in records if k.partition("#")[0] == name and (k not in live or not facts.matched)]
    for key in mine:
        del new_records[key]
    for key in mine:
        _release(change, records[key], new_records)
    if new_records != records:
        if new_records:
            change.set_annotation(ANNOTATION_PROBE_MARKERS, encode_records(new_records))
        else:
            change.remove_annotation(ANNOTATION_PROBE_MARKERS)
    labels, annotations = change.effective()
    if not (labels or annotations or change.conditions):
        return None
    change.labels, change.annotations = labels, annotations
    return change


def _changes(ppm: PodProbeMarker, pods: Sequence[Pod], live: Mapping[str, PodContainerProbe],
             results: Sequence[ProbeResult], deleting: bool) -> tuple[int, list[_PodChange]]:
    """(matched pods, the changes of the pods that need one, in pod order), from the marker's memo.

    The inputs of every pod are compared with the previous pass's at C level (the same facts object,
    equal results); only the few pods whose inputs differ are decided again."""
    meta = ppm.metadata
    namespace = meta.namespace

    def facts_of(pod: Pod) -> _PodFacts:
        if pod.metadata.namespace != namespace:
            return _PodFacts(False, False, {})
        return _PodFacts(True, not deleting and is_matched(ppm, pod), pod_records(pod))

    memo = _FACTS.get(meta.uid or f"{namespace}/{meta.name}",
                      (namespace, meta.name, deleting, msgspec.json.encode(ppm.spec)), facts_of)
    facts = memo.facts(pods)
    if any(map(ne, map(_NAMESPACE, results), repeat(namespace))):
        results = [r for r in results if r.namespace == namespace]
    by_key = dict(zip(map(_RESULT_KEY, results), results, strict=True))
    uids: list[str] = list(map(_UID, pods))
    columns = [list(map(by_key.get, zip(uids, repeat(k)))) for k in live]
    inputs = list(zip(facts, zip(*columns, strict=True) if columns else repeat((), len(pods)), strict=True))
    before = memo.derived
    changed: list[int] | None = None
    if isinstance(before, _Decided) and before.uids == uids:
        changed = true_positions(list(map(ne, inputs, before.inputs)), max(64, len(pods) // 16))
    if changed is None or not isinstance(before, _Decided):
        decided = [_pod_change(ppm, pod, f, live, mine) if f.mine else None for pod, (f, mine) in zip(pods, inputs,
                                                                                                      strict=True)]
    else:
        decided = list(before.changes)
        for i in changed:
            f, mine = inputs[i]
            decided[i] = _pod_change(ppm, pods[i], f, live, mine) if f.mine else None
    memo.derived = _Decided(uids, inputs, decided)
    return sum(map(_MATCHED, facts)), [c for c in decided if c is not None]


def _marker_command(b: Builder, change: _PodChange) -> None:
    pod = change.pod
    body = status_metadata_patch(pod, labels=change.labels, annotations=change.annotations,
                                 conditions=change.conditions)
    digest = short_digest([body, change.stamps])
    on_success = None
    if change.event is not None:
        reason, message = change.event
        on_success = kube_event(reason, message)
        on_success.involved = ObjectReference(api_version="v1", kind="Pod", namespace=pod.metadata.namespace,
                                              name=pod.metadata.name, uid=pod.metadata.uid)
    b.command(f"{b.uid}/{VERB_PROBE_MARKER}/{pod.metadata.uid}/{digest}", VERB_PROBE_MARKER,
              [PatchOp(resource=PODS, namespace=pod.metadata.namespace, name=pod.metadata.name,
                       patch_type="strategic", patch=body, subresource="status")],
              pod=pod.metadata.name, pod_uid=pod.metadata.uid, on_success=on_success)


def _finalizer_command(b: Builder, ppm: PodProbeMarker, finalizers: list[str], what: str) -> None:
    old = ppm.metadata.finalizers
    ops: list[JsonObject] = [{"op": "test", "path": "/metadata/uid", "value": ppm.metadata.uid}]
    if old:
        ops += [{"op": "test", "path": "/metadata/finalizers", "value": list(old)},
                {"op": "replace", "path": "/metadata/finalizers", "value": finalizers}]
    else:
        ops += [{"op": "test", "path": "/metadata/finalizers", "value": None},
                {"op": "add", "path": "/metadata/finalizers", "value": finalizers}]
    b.command(f"{b.uid}/{VERB_FINALIZER}/{what}/{ppm.metadata.resource_version}", VERB_FINALIZER,
              [PatchOp(resource=PODPROBEMARKERS, namespace=ppm.metadata.namespace, name=ppm.metadata.name,
                       patch_type="json", patch=ops)])


def _invalid(b: Builder, ppm: PodProbeMarker, errors: list[FieldError], now: datetime) -> MarkerPlan:
    message = errors_message(errors)
    existing = next((c for c in ppm.status.conditions if c.type == CONDITION_INVALID_SPEC), None)
    if existing is not None and existing.status == "True" and existing.message == message:
        return MarkerPlan(errors=errors)
    cond = PodProbeMarkerCondition(type=CONDITION_INVALID_SPEC, status="True", reason=REASON_INVALID_SPEC,
                                   message=message, last_transition_time=format_time(now))
    conditions = [c for c in ppm.status.conditions if c.type != CONDITION_INVALID_SPEC] + [cond]
    b.reject_invalid(ppm.metadata.generation, message, errors[0].field, VERB_INVALID_SPEC,
                     [b.status_patch({"conditions": msgspec.to_builtins(conditions)})])
    return MarkerPlan(commands=b.commands, events=b.events, errors=errors)


def _status(b: Builder, ppm: PodProbeMarker, matched: int) -> None:
    status = ppm.status
    invalid = any(c.type == CONDITION_INVALID_SPEC for c in status.conditions)
    if status.observed_generation == ppm.metadata.generation and status.matched_pods == matched and not invalid:
        return
    body: JsonObject = {"observedGeneration": ppm.metadata.generation, "matchedPods": matched}
    if invalid:
        body["conditions"] = msgspec.to_builtins([c for c in status.conditions if c.type != CONDITION_INVALID_SPEC])
    b.command(f"{b.uid}/{VERB_STATUS}/{ppm.metadata.resource_version}/{short_digest(body)}", VERB_STATUS,
              [b.status_patch(body)])


@gc_paused
def plan_podprobemarker(ppm: PodProbeMarker, pods: Sequence[Pod], results: Sequence[ProbeResult],
                        previous: PodProbeMarker | None, *, now: datetime,
                        gates: FeatureGates = DEFAULT_GATES) -> MarkerPlan:
    """One pass; `pods` are every pod the engine knows (those of other namespaces are ignored),
    `results` the marker's results on KB_PROBE (probe names `<ppm>#<probe>`)."""
    b = Builder.of(PODPROBEMARKER, ppm, now)
    meta = ppm.metadata
    deleting = bool(meta.deletion_timestamp)
    errors = [] if deleting else validate_podprobemarker(ppm, previous, gates)
    if errors:
        return _invalid(b, ppm, errors, now)
    adding = not deleting and FINALIZER_NODE_POD_PROBE_CLEANUP not in meta.finalizers
    if adding:
        _finalizer_command(b, ppm, [*meta.finalizers, FINALIZER_NODE_POD_PROBE_CLEANUP], "add")
    live = {} if deleting else {probe_key(meta.name, p.name): p for p in ppm.spec.probes}
    matched, changes = _changes(ppm, pods, live, results, deleting)
    for change in changes:
        _marker_command(b, change)
    dirty = bool(changes)
    if deleting:
        if not dirty and FINALIZER_NODE_POD_PROBE_CLEANUP in meta.finalizers:
            _finalizer_command(b, ppm, [f for f in meta.finalizers if f != FINALIZER_NODE_POD_PROBE_CLEANUP],
                               "remove")
    elif not adding:  # the finalizer write moves the resourceVersion the status write is guarded by
        _status(b, ppm, matched)
    return MarkerPlan(commands=b.commands, events=b.events, matched_pods=matched)


__all__ = ["MarkerPlan", "MarkerRecord", "encode_records", "plan_podprobemarker", "pod_records"]

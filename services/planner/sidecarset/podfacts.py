"""What one SidecarSet pass asks about each pod: matched, updated, upgradable, consistent, ready.

Kruise's `pkg/control/sidecarcontrol/sidecarset_control.go` (IsPodSidecarUpdated, IsSidecarSetUpgradable,
IsPodStateConsistent, IsPodConsistentWithSidecarSet), `util_hotupgrade.go` (the working container of
a HotUpgrade pair) and the controller's status (`calculateStatus`). Decided once per pod and pass
(`facts_of`, memoised by resourceVersion).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    ANNOTATION_SIDECARSET_INPLACE_STATE,
    ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER,
    LABEL_NAMESPACE_NAME,
    SIDECAR_HOT_UPGRADE,
)
from schemas.kube import Pod
from schemas.sidecarset import SidecarSet, SidecarSetStatus, sidecar_fields
from services.planner.kit.inplace import normalise_image
from services.planner.kit.podstate import is_active, is_ready
from services.planner.sidecarset.inject import UpgradeSpec, read_hashes
from services.planner.sidecarset.matching import pod_matches


def hot_pairs(ss: SidecarSet) -> dict[str, tuple[str, str, str]]:
    """HotUpgrade containers: base name -> (`X-1`, `X-2`, the empty image)."""
    out = {}
    for c in ss.spec.containers:
        f = sidecar_fields(c)
        if f.upgrade_strategy.upgrade_type == SIDECAR_HOT_UPGRADE:
            out[f.name] = (f"{f.name}-1", f"{f.name}-2", f.upgrade_strategy.hot_upgrade_empty_image)
    return out


def sidecar_names(ss: SidecarSet) -> list[str]:
    """The pod containers the SidecarSet's containers are (HotUpgrade `X` is `X-1` and `X-2`)."""
    out: list[str] = []
    pairs = hot_pairs(ss)
    for c in ss.spec.containers:
        name = str(c.get("name"))
        out.extend(pairs[name][:2] if name in pairs else (name,))
    return out


def working_containers(pod: Pod) -> dict[str, str]:
    """`kruise.io/sidecarset-working-hotupgrade-container`: base name -> the working container."""
    raw = pod.metadata.annotations.get(ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _hot_ready(ss: SidecarSet, pod: Pod) -> bool:
    """Every HotUpgrade pair's non-working container runs the empty image."""
    pairs = hot_pairs(ss)
    if not pairs:
        return True
    working = working_containers(pod)
    images = {c.name: c.image for c in pod.spec.containers}
    for base, (n1, n2, empty) in pairs.items():
        other = n2 if working.get(base, n1) == n1 else n1
        if images.get(other) != empty:
            return False
    return True


def _entry(pod: Pod, key: str, name: str) -> UpgradeSpec | None:
    try:
        return read_hashes(pod.metadata.name, pod.metadata.namespace, pod.metadata.annotations, key).get(name)
    except ValueError:
        return None


def is_updated(ss: SidecarSet, pod: Pod) -> bool:
    entry = _entry(pod, ANNOTATION_SIDECARSET_HASH, ss.metadata.name)
    return entry is not None and entry.hash == ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH, "")


def is_upgradable(ss: SidecarSet, pod: Pod) -> bool:
    entry = _entry(pod, ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE, ss.metadata.name)
    return entry is not None and \
        entry.hash == ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE, "")


def inplace_state(pod: Pod) -> dict[str, Any] | None:
    raw = pod.metadata.annotations.get(ANNOTATION_SIDECARSET_INPLACE_STATE)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"\x00": None}  # unparsable: never consistent
    return value if isinstance(value, dict) else {"\x00": None}


def _container_inconsistent(pod: Pod, name: str, state: Mapping[str, Any]) -> bool:
    spec = {c.name: c for c in pod.spec.containers}.get(name)
    status = {c.name: c for c in pod.status.container_statuses}.get(name)
    if spec is None or status is None:
        return False
    for entry in state.values():
        last = ((entry or {}).get("lastContainerStatuses") or {}).get(name) if isinstance(entry, dict) else None
        if isinstance(last, dict) and last.get("imageID") == status.image_id and \
                normalise_image(spec.image) != normalise_image(status.image):
            return True
    return False


def is_consistent(pod: Pod, names: Sequence[str]) -> bool:
    """`IsPodSidecarConsistent`: the sidecars run the images their spec names (as far as the state
    annotation tells)."""
    if len(pod.spec.containers) != len(pod.status.container_statuses):
        return False
    spec = {c.name: c for c in pod.spec.containers}
    statuses = {c.name: c for c in pod.status.container_statuses}
    if names and all("@" in spec[n].image for n in names if n in spec):
        for n in names:
            if n in spec and n in statuses:
                digest = spec[n].image
                if digest.split("@", 1)[1] not in statuses[n].image_id:
                    return False
        return True
    state = inplace_state(pod)
    if state is None:
        return True
    if "\x00" in state:
        return False
    return not any(_container_inconsistent(pod, n, state) for n in names)


def _upgrading(pod: Pod, names: Sequence[str]) -> bool:
    ready = {c.name for c in pod.status.container_statuses if c.ready}
    return any(n in ready and not is_consistent(pod, [n]) for n in names)


def is_matched(ss: SidecarSet, pod: Pod, namespaces: Mapping[str, Mapping[str, str]] | None = None, *,
               names: Sequence[str] | None = None, pairs: Mapping[str, tuple[str, str, str]] | None = None) -> bool:
    """Step 1 of the pass: the pods this SidecarSet counts. `namespaces`: labels by Namespace name (None: every namespace exists
    with only its name label, as when no Namespace was read)."""
    meta = pod.metadata
    listed = meta.annotations.get(ANNOTATION_SIDECARSET_INJECTED_LIST)
    if listed is None or ss.metadata.name not in listed.split(","):
        return False
    if not is_active(pod) or pod.status.phase in ("Succeeded", "Failed"):
        return False
    ns_labels: Mapping[str, str] | None = {LABEL_NAMESPACE_NAME: meta.namespace} if namespaces is None else \
        _ns_labels(namespaces, meta.namespace)
    if not pod_matches(ss, meta.labels, ns_labels):
        return False
    have = {c.name for c in pod.spec.containers}
    pairs = hot_pairs(ss) if pairs is None else pairs
    if pairs and not set(pairs) <= set(working_containers(pod)):
        return False
    return all(n in have for n in (sidecar_names(ss) if names is None else names))


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What one pass asks about one matched pod, decided once per pod version (the pass is over every
    matched pod). Nothing here depends on the SidecarSet's hashes, so a change of its sidecar images
    (the pass that starts an upgrade) reuses every pod's facts and only compares hashes again."""

    hash: str | None  # this SidecarSet's entry in the pod's hash annotation (None: no entry)
    hash_without_image: str | None  # and in the without-image one
    consistent: bool
    ready: bool
    revision: str  # the `controllerRevision` of its hash entry
    # a sidecar container reports Ready while not running its spec's image: an upgrade still under
    # way, waited for before the next (`IsSidecarSetUpgradable`'s "consistent"); a sidecar that is not
    # ready (its image cannot be pulled) does not hold a new upgrade back
    upgrading: bool = False


class Wanted(NamedTuple):
    """The SidecarSet's two hashes, which a pod's entries must equal to be updated / upgradable."""

    hash: str
    without_image: str

    @classmethod
    def of(cls, ss: SidecarSet) -> Wanted:
        annotations = ss.metadata.annotations
        return cls(annotations.get(ANNOTATION_SIDECARSET_HASH, ""),
                   annotations.get(ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE, ""))

    def updated(self, facts: PodFacts) -> bool:
        return facts.hash == self.hash

    def upgradable(self, facts: PodFacts) -> bool:
        return facts.hash_without_image == self.without_image


_FACTS: dict[tuple[str, str, str], PodFacts] = {}
"""Facts of a pod at a resourceVersion for one SidecarSet's sidecars (uid, rv, the SidecarSet's name and
sidecar containers): a memo for callers that keep none of their own (the pass keeps `plan._MATCHES`)."""
_FACTS_MAX = 200_000


def pod_facts(ss: SidecarSet, pod: Pod, names: Sequence[str]) -> PodFacts:
    """One pod's facts for this SidecarSet (`names`: its `sidecar_names`)."""
    name = ss.metadata.name
    entry = _entry(pod, ANNOTATION_SIDECARSET_HASH, name)
    without = _entry(pod, ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE, name)
    return PodFacts(hash=entry.hash if entry is not None else None,
                    hash_without_image=without.hash if without is not None else None,
                    consistent=is_consistent(pod, names), ready=is_ready(pod) and _hot_ready(ss, pod),
                    revision=entry.controllerRevision if entry is not None else "",
                    upgrading=_upgrading(pod, names))


def facts_of(ss: SidecarSet, pods: Sequence[Pod]) -> dict[str, PodFacts]:
    """Facts by pod uid."""
    names = sidecar_names(ss)
    content = f"{ss.metadata.name}/{names}/{sorted(hot_pairs(ss).items())}"
    out: dict[str, PodFacts] = {}
    if len(_FACTS) > _FACTS_MAX:
        _FACTS.clear()
    for pod in pods:
        rv = pod.metadata.resource_version
        key = (pod.metadata.uid, rv, content)
        if rv and (known := _FACTS.get(key)) is not None:
            out[pod.metadata.uid] = known
            continue
        facts = pod_facts(ss, pod, names)
        if rv:
            _FACTS[key] = facts
        out[pod.metadata.uid] = facts
    return out


def _ns_labels(namespaces: Mapping[str, Mapping[str, str]], name: str) -> Mapping[str, str] | None:
    labels = namespaces.get(name)
    return None if labels is None else {LABEL_NAMESPACE_NAME: name, **labels}


def tally(facts: PodFacts, want: Wanted) -> tuple[int, int, int]:
    """One matched pod's share of the status: (updated, ready, updated and ready)."""
    u = facts.hash == want.hash
    r = facts.consistent and facts.ready
    return int(u), int(r), int(u and r)


def tally_all(facts: Iterable[PodFacts], want: Wanted) -> tuple[int, int, int]:
    """`tally` summed over matched pods (one loop, no tuple per pod: it runs over every matched pod when
    the hashes change)."""
    updated = ready = updated_ready = 0
    hash_ = want.hash
    for f in facts:
        u = f.hash == hash_
        r = f.consistent and f.ready
        updated += u
        ready += r
        updated_ready += u and r
    return updated, ready, updated_ready


def status_of(ss: SidecarSet, matched: int, counts: tuple[int, int, int], latest_revision: str,
              collisions: int | None) -> SidecarSetStatus:
    """The status from the matched count and the summed tallies."""
    updated, ready, updated_ready = counts
    return SidecarSetStatus(observed_generation=ss.metadata.generation, matched_pods=matched,
                            updated_pods=updated, ready_pods=ready, updated_ready_pods=updated_ready,
                            latest_revision=latest_revision, collision_count=collisions)


def compute_status(ss: SidecarSet, matched: Sequence[Pod], latest_revision: str, collisions: int,
                   facts: Mapping[str, PodFacts] | None = None) -> SidecarSetStatus:
    facts = facts if facts is not None else facts_of(ss, matched)
    counts = tally_all((facts[pod.metadata.uid] for pod in matched), Wanted.of(ss))
    return status_of(ss, len(matched), counts, latest_revision, collisions)


def is_consistent_container(pod: Pod, name: str) -> bool:
    state = inplace_state(pod)
    if state is None:
        return True
    return "\x00" not in state and not _container_inconsistent(pod, name, state)


__all__ = ["PodFacts", "Wanted", "pod_facts", "compute_status", "status_of", "tally", "tally_all", "facts_of", "hot_pairs", "inplace_state", "is_consistent",
           "is_consistent_container", "is_matched", "is_updated", "is_upgradable", "sidecar_names",
           "working_containers"]

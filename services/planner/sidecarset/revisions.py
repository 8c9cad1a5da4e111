"""A SidecarSet's ControllerRevisions: their data, names, labels, lookup and history limit.

Kruise's `pkg/control/sidecarcontrol/history_control.go` and `pkg/controller/sidecarset/
sidecarset_processor.go` (registerLatestRevision, truncateHistory). Revisions live in Kruise's namespace
(not the pods'), are labelled `kruise.io/sidecarset-name`, carry the custom version as a label, and
record five spec fields: containers, imagePullSecrets, initContainers, patchPodMetadata and volumes (so
a revision changes where the hash does not). Naming, hashing and collision handling are the kit's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE,
    DEFAULT_SIDECARSET_HISTORY_LIMIT,
    LABEL_SIDECARSET_CUSTOM_VERSION,
    LABEL_SIDECARSET_NAME,
)
from schemas.kube import ControllerRevision, JsonObject, LabelSelector, OwnerReference
from schemas.sidecarset import SidecarSet, SidecarSetSpec
from services.planner.kit.gojson import PATCH_KEY
from services.planner.kit.revision import claim_name, comparable_bytes, new_revision, owned_revisions
from services.planner.sidecarset.hash import go_container_json, sidecarset_hash, sidecarset_hash_without_image

_SPEC_FIELDS = ("containers", "imagePullSecrets", "initContainers", "patchPodMetadata", "volumes")


def revision_data(ss: SidecarSet) -> JsonObject:
    """`{"spec":{"$patch":"replace", <the five fields, null when empty>}}`."""
    spec: dict[str, Any] = msgspec.to_builtins(ss.spec)
    out: dict[str, Any] = {PATCH_KEY: "replace"}
    for key in _SPEC_FIELDS:
        value = spec.get(key) or None
        if value is not None and key in ("containers", "initContainers"):
            value = [go_container_json(c) for c in value]
        out[key] = value
    return {"spec": out}


def history(ss: SidecarSet, revisions: Iterable[ControllerRevision], namespace: str) -> list[ControllerRevision]:
    """The SidecarSet's revisions (label `kruise.io/sidecarset-name`), oldest first."""
    selector = LabelSelector(match_labels={LABEL_SIDECARSET_NAME: ss.metadata.name})
    return owned_revisions(list(revisions), namespace=namespace, selector=selector, owner_uid=ss.metadata.uid)


def custom_version(ss: SidecarSet) -> str:
    """`spec.customVersion` of v1beta1: the v1alpha1 label of the same name."""
    return ss.metadata.labels.get(LABEL_SIDECARSET_CUSTOM_VERSION, "")


@dataclass(frozen=True)
class Registration:
    """What registering the latest revision decides: the revision, and whether to create it,
    renumber it (a rollback to an older one) or relabel its custom version."""

    revision: ControllerRevision
    create: bool = False
    renumber: bool = False
    relabel: bool = False
    collision_count: int = 0


def register_latest(ss: SidecarSet, revisions: Sequence[ControllerRevision], namespace: str, owner: OwnerReference,
                    all_in_namespace: Sequence[ControllerRevision] = ()) -> Registration:
    """`registerLatestRevision`: the newest equal revision, an older equal one renumbered, or a new one."""
    hist = history(ss, revisions, namespace)
    labels = {k: v for k, v in ss.metadata.labels.items() if k != LABEL_SIDECARSET_CUSTOM_VERSION}
    labels[LABEL_SIDECARSET_NAME] = ss.metadata.name
    version = custom_version(ss)
    if version:
        labels[LABEL_SIDECARSET_CUSTOM_VERSION] = version
    next_number = (hist[-1].revision + 1) if hist else 1
    collisions = ss.status.collision_count or 0
    candidate = new_revision(owner, namespace, revision_data(ss), next_number, collisions,
                             labels=labels, annotations=ss.metadata.annotations)
    wanted = comparable_bytes(candidate.data)
    chosen: ControllerRevision | None = None
    renumber = False
    if hist and comparable_bytes(hist[-1].data) == wanted:
        chosen = hist[-1]
    else:
        for rev in reversed(hist[:-1]):
            if comparable_bytes(rev.data) == wanted:
                chosen, renumber = msgspec.structs.replace(rev, revision=next_number), True
                break
    if chosen is None:
        rev, create, collisions = claim_name(candidate, list(all_in_namespace) or hist, ss.metadata.name, collisions)
        chosen = rev
        if not create:
            return Registration(revision=rev, collision_count=collisions)
        return Registration(revision=rev, create=True, collision_count=collisions)
    relabel = bool(version) and chosen.metadata.labels.get(LABEL_SIDECARSET_CUSTOM_VERSION) != version
    if relabel:
        meta = msgspec.structs.replace(
            chosen.metadata, labels={**chosen.metadata.labels, LABEL_SIDECARSET_CUSTOM_VERSION: version})
        chosen = msgspec.structs.replace(chosen, metadata=meta)
    return Registration(revision=chosen, renumber=renumber, relabel=relabel, collision_count=collisions)


def find_specific(ss: SidecarSet, revisions: Iterable[ControllerRevision], namespace: str) -> ControllerRevision | None:
    """`GetHistorySidecarSet`'s lookup: revisionName by name (wins), else the highest revision labelled
    with customVersion; None: not found."""
    wanted = ss.spec.injection_strategy.revision
    if wanted is None:
        return None
    revs = [r for r in revisions if not namespace or r.metadata.namespace in ("", namespace)]
    if wanted.revision_name is not None:
        return next((r for r in revs if r.metadata.name == wanted.revision_name), None)
    if wanted.custom_version is not None:
        labelled = [r for r in revs if r.metadata.labels.get(LABEL_SIDECARSET_NAME) == ss.metadata.name
                    and r.metadata.labels.get(LABEL_SIDECARSET_CUSTOM_VERSION) == wanted.custom_version]
        return max(labelled, key=lambda r: r.revision, default=None)
    return None


def not_found_message(ss: SidecarSet) -> str:
    """Kruise's NotFound error of a failed lookup: the revision name's, or for a custom version the
    SidecarSet name's under group resource `ControllerRevision.apps`."""
    wanted = ss.spec.injection_strategy.revision
    if wanted is not None and wanted.revision_name is not None:
        return f'controllerrevisions.apps "{wanted.revision_name}" not found'
    return f'ControllerRevision.apps "{ss.metadata.name}" not found'


def historical(ss: SidecarSet, rev: ControllerRevision) -> SidecarSet:
    """The SidecarSet as of `rev`: spec's five fields from the revision, its hashes from the revision's
    annotations (recomputed when absent), `status.latestRevision` = the revision's name."""
    stored = (rev.data.get("spec") or {}) if isinstance(rev.data, dict) else {}
    raw: dict[str, Any] = msgspec.to_builtins(ss.spec)
    for key in _SPEC_FIELDS:
        raw[key] = stored.get(key) or []
    spec = msgspec.convert(raw, SidecarSetSpec)
    annotations = dict(ss.metadata.annotations)
    for key, compute in ((ANNOTATION_SIDECARSET_HASH, sidecarset_hash),
                         (ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE, sidecarset_hash_without_image)):
        annotations[key] = rev.metadata.annotations.get(key) or compute(spec.containers, spec.init_containers)
    meta = msgspec.structs.replace(ss.metadata, annotations=annotations)
    status = msgspec.structs.replace(ss.status, latest_revision=rev.metadata.name)
    return msgspec.structs.replace(ss, metadata=meta, spec=spec, status=status)


def history_limit(ss: SidecarSet) -> int:
    limit = ss.spec.revision_history_limit
    return max(1, DEFAULT_SIDECARSET_HISTORY_LIMIT if limit is None else limit)


def to_truncate(ss: SidecarSet, hist: Sequence[ControllerRevision], active: set[str]) -> tuple[list[str], str | None]:
    """`truncateHistory`: names to delete oldest-first (never the newest, never an active one), and the
    error Kruise logs when not enough can go."""
    limit = history_limit(ss)
    if len(hist) <= limit:
        return [], None
    wanted = ss.spec.injection_strategy.revision
    if wanted is not None and wanted.revision_name:
        active = active | {wanted.revision_name}
    if wanted is not None and wanted.custom_version:
        labelled = [r for r in hist if r.metadata.labels.get(LABEL_SIDECARSET_CUSTOM_VERSION) == wanted.custom_version]
        if labelled:
            active = active | {max(labelled, key=lambda r: r.revision).metadata.name}
    excess = len(hist) - limit
    out: list[str] = []
    for rev in hist[:-1]:
        if len(out) == excess:
            break
        if rev.metadata.name not in active:
            out.append(rev.metadata.name)
    error = None
    if len(out) < excess:
        error = (f"failed to limit the number of stored revisions, limited: {limit}, actual: {len(hist) - len(out)}, "
                 f"name: {ss.metadata.name}")
    return out, error


__all__ = ["Registration", "custom_version", "find_specific", "historical", "history", "history_limit",
           "not_found_message",
           "register_latest", "revision_data", "to_truncate"]

"""ControllerRevisions as Kubernetes' `pkg/controller/history` handles them, for every workload with revisions.

A revision's name is ``<owner>-<hash>``: the owner's name cut to 223 characters and Kubernetes'
``HashControllerRevision``, the safe-encoded decimal FNV-1 (32-bit, not 1a) over the revision's data
bytes plus the decimal collision count. Two revisions are equal when their data bytes are
(``history.EqualRevision``). Controllers that serialise the same object the same way therefore agree
on names, which is what lets kruisebus take over workloads OpenKruise created (the bytes of a pod
template are `kit.gojson`'s).

What is generic lives here: hashing and naming, equality (also with data an earlier kruisebus wrote),
the pod template patch most workloads store (``{"spec":{"template":{...,"$patch":"replace"}}}``, the
``getPatch`` of Kruise's CloneSet and Advanced DaemonSet), building a revision for an owner, listing and
ordering an owner's history, name collisions and history truncation. Which data a workload versions,
its labels and annotations, and how it picks the current and update revisions stay in its package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import msgspec

from schemas.constants import (
    CONTROLLER_REVISION_API_VERSION,
    CONTROLLER_REVISION_KIND,
    DEFAULT_REVISION_HISTORY_LIMIT,
    LABEL_HASH,
    LABEL_REVISION_HASH,
    REVISION_NAME_PREFIX_MAX,
    SAFE_ALPHABET,
)
from schemas.kube import (
    ControllerRevision,
    JsonObject,
    LabelSelector,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodTemplateSpec,
)
from services.planner.kit.gojson import PATCH_KEY, go_json_bytes, go_pod_spec, go_template, stored_template
from services.planner.kit.selectors import matches
from services.planner.kit.timeutil import parse_time

_FNV32_OFFSET = 2166136261
_FNV32_PRIME = 16777619
_MASK32 = 0xFFFFFFFF


class RevisionSelection(msgspec.Struct, kw_only=True):
    """The outcome of revision selection for one reconcile.

    ``create`` is a revision the executor must create (it is also ``update``); ``bump`` is an existing
    older revision whose ``revision`` number was raised to the next number (rollback to an old
    template; also ``update``; write it back with an update call); ``delete`` lists names that
    ``truncateHistory`` removes. ``collision_count`` must be written to ``status.collisionCount``.
    """

    update: ControllerRevision
    current: ControllerRevision
    create: ControllerRevision | None = None
    bump: ControllerRevision | None = None
    collision_count: int = 0
    delete: list[str] = []


# ---------------------------------------------------------------- data


def template_patch_data(template: PodTemplateSpec) -> JsonObject:
    """``{"spec":{"template":{<template>,"$patch":"replace"}}}``: the data of a pod-template revision.

    The template is rendered as Go re-encodes the decoded PodTemplateSpec (:func:`kit.gojson.go_template`).
    """
    return {"spec": {"template": {**go_template(template), PATCH_KEY: "replace"}}}


def template_of(rev: ControllerRevision) -> PodTemplateSpec:
    """The pod template stored in a revision (inverse of :func:`template_patch_data`).

    Raises ValueError if the revision has no template (foreign or corrupt data).
    """
    spec = rev.data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(template, dict):
        raise ValueError(f"ControllerRevision {rev.metadata.name} has no spec.template")
    return stored_template(template)


def comparable_data(data: JsonObject) -> JsonObject:
    """Stored revision data as the current :func:`template_patch_data` would have written it.

    Kruise-written data already has every member Go emits, so it is returned unchanged; data an earlier
    kruisebus wrote without them (``"resources":{}``, ...) gains them, so an upgrade compares equal to
    the same template and starts no rollout. Data without a pod template is returned unchanged.
    """
    spec = data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod_spec, dict):
        return data
    fixed = go_pod_spec(pod_spec)
    if fixed is pod_spec:
        return data
    assert isinstance(spec, dict) and isinstance(template, dict)
    return {**data, "spec": {**spec, "template": {**template, "spec": fixed}}}


def revision_bytes(data: JsonObject) -> bytes:
    """Deterministic bytes of revision data (the ``Data.Raw`` Kruise hashes and compares)."""
    return go_json_bytes(data)


def comparable_bytes(data: JsonObject) -> bytes:
    """``revision_bytes(comparable_data(data))``, memoised on the data's JSON (history is compared each pass)."""
    return _comparable_json(msgspec.json.encode(data))


@lru_cache(maxsize=1024)
def _comparable_json(raw: bytes) -> bytes:
    return revision_bytes(comparable_data(msgspec.json.decode(raw)))


# ---------------------------------------------------------------- hashing and naming


@lru_cache(maxsize=512)
def fnv1_32(data: bytes) -> int:
    """FNV-1 (multiply, then xor — *not* FNV-1a) 32-bit, as Go's ``hash/fnv.New32``."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h * _FNV32_PRIME) & _MASK32) ^ byte
    return h


def fnv1a_32(data: bytes) -> int:
    """FNV-1a (xor, then multiply) 32-bit, as Go's ``hash/fnv.New32a``."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & _MASK32
    return h


def safe_encode(text: str) -> str:
    """Kubernetes ``rand.SafeEncodeString``: each character -> alphabet[ord(c) % 27].

    The alphabet has no vowels (no accidental words) and no confusable characters.
    """
    n = len(SAFE_ALPHABET)
    return "".join(SAFE_ALPHABET[ord(c) % n] for c in text)


def hash_revision(data_bytes: bytes, collision_count: int | None) -> str:
    """Kubernetes ``HashControllerRevision``: safe-encoded decimal FNV-1 over data + decimal collision count."""
    payload = data_bytes if collision_count is None else data_bytes + str(collision_count).encode()
    return safe_encode(str(fnv1_32(payload)))


def revision_name(owner_name: str, hash_: str) -> str:
    """``ControllerRevisionName``: the owner's name cut to 223 characters, "-", the hash."""
    return f"{owner_name[:REVISION_NAME_PREFIX_MAX]}-{hash_}"


def short_hash(name: str) -> str:
    """The part after the last '-' (the hash of a revision name; the whole string if there is no '-')."""
    return name.rsplit("-", 1)[-1]


def is_pod_updated(pod: Pod, update_revision_name: str) -> bool:
    """Pod's ``controller-revision-hash`` equals the revision name, or the short hashes are equal.

    The short-hash arm makes pods labelled under CloneSetShortHash (label = hash only) and pods labelled
    with the full name interchangeable. A pod without the label is never updated.
    """
    label = pod.metadata.labels.get(LABEL_REVISION_HASH, "")
    return label == update_revision_name or short_hash(label) == short_hash(update_revision_name)


def new_revision(
    owner: OwnerReference,
    namespace: str,
    data: JsonObject,
    revision_number: int,
    collision_count: int | None,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    hash_label: bool = True,
) -> ControllerRevision:
    """Kubernetes ``history.NewControllerRevision``: the revision of ``data`` for controller ``owner``.

    Name ``<owner>-<hash>``; labels are ``labels`` plus ``controller.kubernetes.io/hash``; the owner
    reference is ``owner`` (a controller reference). Annotations do not influence name or equality.
    ``hash_label=False``: no ``controller.kubernetes.io/hash`` (the Advanced DaemonSet builds its
    revisions itself and labels them ``controller-revision-hash`` instead).
    """
    hash_ = hash_revision(revision_bytes(data), collision_count)
    return ControllerRevision(
        metadata=ObjectMeta(
            name=revision_name(owner.name, hash_),
            namespace=namespace,
            labels={**labels, LABEL_HASH: hash_} if hash_label else dict(labels),
            annotations=dict(annotations),
            owner_references=[owner],
        ),
        revision=revision_number,
        data=data,
        api_version=CONTROLLER_REVISION_API_VERSION,
        kind=CONTROLLER_REVISION_KIND,
    )


# ---------------------------------------------------------------- equality, history


def _numeric_hash(rev: ControllerRevision) -> int | None:
    """The hash label parsed as int32 — Kubernetes ``EqualRevision`` compares it when both parse."""
    text = rev.metadata.labels.get(LABEL_HASH)
    if text is None or not text.lstrip("+-").isdigit() or not text.isascii():
        return None
    value = int(text)
    return value & _MASK32 if -(2**31) <= value < 2**31 else None


def equal_revision(a: ControllerRevision, b: ControllerRevision) -> bool:
    """Kubernetes ``history.EqualRevision``: equal data bytes, unless both hash labels are numeric and differ.

    Both sides go through :func:`comparable_data` first (a no-op for data Kruise wrote).
    """
    ha, hb = _numeric_hash(a), _numeric_hash(b)
    if ha is not None and hb is not None and ha != hb:
        return False
    return comparable_bytes(a.data) == comparable_bytes(b.data)


def _sort_key(rev: ControllerRevision) -> tuple[int, float, str]:
    created = parse_time(rev.metadata.creation_timestamp)
    return (rev.revision, created.timestamp() if created is not None else float("-inf"), rev.metadata.name)


def owned_revisions(
    revisions: Sequence[ControllerRevision], *, namespace: str, selector: LabelSelector | None, owner_uid: str
) -> list[ControllerRevision]:
    """``ListControllerRevisions`` + ``SortControllerRevisions``: an owner's history, oldest first.

    Revisions in ``namespace`` matching ``selector`` whose controller is ``owner_uid`` *or nobody*
    (orphans are history too), sorted by revision number, then creation time, then name.
    """
    owned = []
    for rev in revisions:
        if namespace and rev.metadata.namespace and rev.metadata.namespace != namespace:
            continue
        if not matches(selector, rev.metadata.labels):
            continue
        ref = rev.metadata.controller_ref()
        if ref is None or ref.uid == owner_uid:
            owned.append(rev)
    owned.sort(key=_sort_key)
    return owned


def claim_name(
    candidate: ControllerRevision,
    revisions: Sequence[ControllerRevision],
    owner_name: str,
    collision_count: int,
) -> tuple[ControllerRevision, bool, int]:
    """Kubernetes ``CreateControllerRevision`` as a decision: (revision, to create?, collision count).

    ``revisions`` is every ControllerRevision in the namespace (the API server's AlreadyExists). A free
    name is created; a name taken by equal data is that revision, reused; a name taken by other data
    raises the collision count and re-hashes. Like Kubernetes, the ``controller.kubernetes.io/hash``
    label keeps the first hash.
    """
    by_name = {r.metadata.name: r for r in revisions}
    data_bytes = revision_bytes(candidate.data)
    while True:
        name = revision_name(owner_name, hash_revision(data_bytes, collision_count))
        existing = by_name.get(name)
        if existing is None:
            meta = msgspec.structs.replace(candidate.metadata, name=name)
            return msgspec.structs.replace(candidate, metadata=meta), True, collision_count
        if comparable_bytes(existing.data) == data_bytes:
            return existing, False, collision_count
        collision_count += 1


def truncate_history(
    history: Sequence[ControllerRevision],
    pods: Sequence[Pod],
    current: ControllerRevision,
    update: ControllerRevision,
    limit: int | None,
) -> list[str]:
    """``truncateHistory``: names of the oldest non-live revisions beyond ``limit`` (None: 10).

    Live = current, update, or referenced by a pod's ``controller-revision-hash`` (full or short form).
    ``history`` must be sorted oldest first (as :func:`owned_revisions` returns it).
    """
    if limit is None:
        limit = DEFAULT_REVISION_HISTORY_LIMIT
    keep = (current.metadata.name, update.metadata.name)
    if sum(1 for r in history if r.metadata.name not in keep) <= limit:
        return []  # nothing to truncate, whichever revisions the pods use (saves a walk over every pod)
    live_labels = {p.metadata.labels.get(LABEL_REVISION_HASH, "") for p in pods}
    live_short = {short_hash(label) for label in live_labels}
    not_live = [
        r.metadata.name
        for r in history
        if r.metadata.name not in (current.metadata.name, update.metadata.name)
        and r.metadata.name not in live_labels
        and short_hash(r.metadata.name) not in live_short
    ]
    if len(not_live) <= limit:
        return []
    return not_live[: len(not_live) - max(limit, 0)]

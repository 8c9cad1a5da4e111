"""ControllerRevisions for a CloneSet: content, naming, hashing and selection (kruise-semantics §2).

A revision versions *only* the pod template. Its name is ``<cloneset>-<hash>`` where the hash is
Kubernetes' safe-encoded decimal FNV-1 (32-bit, not 1a) over the revision data plus the collision count,
so two controllers that serialise the template the same way agree on names. The data is serialised as
Go's ``encoding/json`` would after a round trip through ``map[string]interface{}`` (sorted keys, compact,
HTML characters escaped): same template ⇒ same bytes ⇒ same revision.

:func:`select_revisions` is Kruise's ``getActiveRevisions`` + ``truncateHistory`` as a pure decision: it
returns which revision to create, which older equal revision to renumber (rollback), the current/update
revisions and which revisions to delete; the caller performs the writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import (
    ANNOTATION_VCT_HASH,
    API_VERSION,
    CONTROLLER_REVISION_API_VERSION,
    CONTROLLER_REVISION_KIND,
    DEFAULT_REVISION_HISTORY_LIMIT,
    KIND_CLONESET,
    LABEL_HASH,
    LABEL_REVISION_HASH,
    REVISION_NAME_PREFIX_MAX,
    SAFE_ALPHABET,
)
from schemas.kube import ControllerRevision, JsonObject, ObjectMeta, OwnerReference, Pod, PodTemplateSpec
from services.planner.cloneset.selectors import matches
from services.planner.cloneset.timeutil import parse_time

_FNV32_OFFSET = 2166136261
_FNV32_PRIME = 16777619
_MASK32 = 0xFFFFFFFF
_PATCH_KEY = "$patch"

# Go's encoding/json escapes these even inside strings (HTML safety + JS line separators).
_GO_JSON_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


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


def go_json_bytes(value: Any) -> bytes:
    """Serialise like Go's ``json.Marshal`` of decoded JSON: sorted keys, compact, HTML-escaped.

    Floats that are whole numbers keep Python's spelling, which differs from Go only for magnitudes
    >= 1e21; pod templates do not contain such numbers.
    """
    out = msgspec.json.encode(value, order="sorted")
    for raw, escaped in _GO_JSON_ESCAPES:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def revision_data(template: PodTemplateSpec) -> JsonObject:
    """``{"spec":{"template":{<template>,"$patch":"replace"}}}`` — what Kruise stores in ``data``.

    The template is rendered the way the Kubernetes codec renders a PodTemplateSpec: metadata always has
    ``"creationTimestamp": null`` and empty labels/annotations/finalizers are omitted.
    """
    rendered: JsonObject = msgspec.to_builtins(template)
    metadata: JsonObject = dict(rendered.get("metadata") or {})
    metadata["creationTimestamp"] = None
    spec: JsonObject = msgspec.json.decode(msgspec.json.encode(template.spec))
    return {"spec": {"template": {"metadata": metadata, "spec": spec, _PATCH_KEY: "replace"}}}


def revision_bytes(data: JsonObject) -> bytes:
    """Deterministic bytes of revision data (the ``Data.Raw`` Kruise hashes and compares)."""
    return go_json_bytes(data)


@lru_cache(maxsize=512)
def fnv1_32(data: bytes) -> int:
    """FNV-1 (multiply, then xor — *not* FNV-1a) 32-bit, as Go's ``hash/fnv.New32``."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h * _FNV32_PRIME) & _MASK32) ^ byte
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


def revision_name(cs_name: str, hash_: str) -> str:
    """``ControllerRevisionName``: the CloneSet name cut to 223 characters, "-", the hash."""
    return f"{cs_name[:REVISION_NAME_PREFIX_MAX]}-{hash_}"


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


def vct_hash(volume_claim_templates: Sequence[JsonObject]) -> str:
    """Hash of the PVC templates for the ``kruise.io/cloneset-volumeclaimtemplate-hash`` annotation.

    Like Kruise it only covers each template's name and spec, ordered by name, and is "" without
    templates. The digits differ from Kruise's (Kruise hashes a Go ``spew`` dump), but the annotation
    is only ever compared between revisions kruisebus wrote, where equality is what matters.
    """
    if not volume_claim_templates:
        return ""
    items = [
        {"metadata": {"name": (t.get("metadata") or {}).get("name", "")}, "spec": t.get("spec") or {}}
        for t in volume_claim_templates
    ]
    items.sort(key=lambda t: str(t["metadata"]["name"]))
    h = 2166136261
    for byte in go_json_bytes(items):  # FNV-1a, as Kruise uses for this annotation
        h = ((h ^ byte) * _FNV32_PRIME) & _MASK32
    return str(h)


def controller_ref(cs: CloneSet) -> OwnerReference:
    """The controller owner reference every object a CloneSet creates carries."""
    return OwnerReference(
        api_version=API_VERSION,
        kind=KIND_CLONESET,
        name=cs.metadata.name,
        uid=cs.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def owner_reference(cs: CloneSet) -> JsonObject:
    """`controller_ref` as the JSON an object body carries (pods and PVCs the CloneSet creates)."""
    ref: JsonObject = msgspec.to_builtins(controller_ref(cs))
    return ref


def build_revision(cs: CloneSet, revision_number: int, collision_count: int | None) -> ControllerRevision:
    """Kruise ``NewRevision``: the ControllerRevision for the CloneSet's current template.

    Labels = template labels + ``controller.kubernetes.io/hash``; annotations = *all* CloneSet
    annotations + the VCT hash (they do not influence name or equality).
    """
    data = revision_data(cs.spec.template)
    hash_ = hash_revision(revision_bytes(data), collision_count)
    labels = dict(cs.spec.template.metadata.labels)
    labels[LABEL_HASH] = hash_
    annotations = dict(cs.metadata.annotations)
    annotations[ANNOTATION_VCT_HASH] = vct_hash(cs.spec.volume_claim_templates)
    return ControllerRevision(
        metadata=ObjectMeta(
            name=revision_name(cs.metadata.name, hash_),
            namespace=cs.metadata.namespace,
            labels=labels,
            annotations=annotations,
            owner_references=[controller_ref(cs)],
        ),
        revision=revision_number,
        data=data,
        api_version=CONTROLLER_REVISION_API_VERSION,
        kind=CONTROLLER_REVISION_KIND,
    )


def template_of(rev: ControllerRevision) -> PodTemplateSpec:
    """The pod template stored in a revision (inverse of :func:`revision_data`).

    Raises ValueError if the revision has no template (foreign or corrupt data).
    """
    spec = rev.data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(template, dict):
        raise ValueError(f"ControllerRevision {rev.metadata.name} has no spec.template")
    clean = {k: v for k, v in template.items() if k != _PATCH_KEY}
    metadata = clean.get("metadata")
    if isinstance(metadata, dict):
        clean["metadata"] = {k: v for k, v in metadata.items() if k != "creationTimestamp"}
    return msgspec.convert(clean, type=PodTemplateSpec)


def apply_revision(cs: CloneSet, rev: ControllerRevision) -> CloneSet:
    """Kruise ``ApplyRevision``: the CloneSet with its template replaced by the revision's (``$patch: replace``)."""
    return msgspec.structs.replace(cs, spec=msgspec.structs.replace(cs.spec, template=template_of(rev)))


def _numeric_hash(rev: ControllerRevision) -> int | None:
    """The hash label parsed as int32 — Kubernetes ``EqualRevision`` compares it when both parse."""
    text = rev.metadata.labels.get(LABEL_HASH)
    if text is None or not text.lstrip("+-").isdigit() or not text.isascii():
        return None
    value = int(text)
    return value & _MASK32 if -(2**31) <= value < 2**31 else None


def equal_revision(a: ControllerRevision, b: ControllerRevision) -> bool:
    """Kubernetes ``history.EqualRevision``: equal data bytes, unless both hash labels are numeric and differ."""
    ha, hb = _numeric_hash(a), _numeric_hash(b)
    if ha is not None and hb is not None and ha != hb:
        return False
    return revision_bytes(a.data) == revision_bytes(b.data)


def _sort_key(rev: ControllerRevision) -> tuple[int, float, str]:
    created = parse_time(rev.metadata.creation_timestamp)
    return (rev.revision, created.timestamp() if created is not None else float("-inf"), rev.metadata.name)


def owned_revisions(cs: CloneSet, revisions: Sequence[ControllerRevision]) -> list[ControllerRevision]:
    """``ListControllerRevisions`` + ``SortControllerRevisions``: the CloneSet's history, oldest first.

    Revisions in the CloneSet's namespace matching its selector whose controller is this CloneSet *or
    nobody* (orphans are history too), sorted by revision number, then creation time, then name.
    """
    ns = cs.metadata.namespace
    owned = []
    for rev in revisions:
        if ns and rev.metadata.namespace and rev.metadata.namespace != ns:
            continue
        if not matches(cs.spec.selector, rev.metadata.labels):
            continue
        ref = rev.metadata.controller_ref()
        if ref is None or ref.uid == cs.metadata.uid:
            owned.append(rev)
    owned.sort(key=_sort_key)
    return owned


def truncate_history(
    cs: CloneSet,
    pods: Sequence[Pod],
    history: Sequence[ControllerRevision],
    current: ControllerRevision,
    update: ControllerRevision,
) -> list[str]:
    """Kruise ``truncateHistory``: names of the oldest non-live revisions beyond revisionHistoryLimit.

    Live = current, update, or referenced by a pod's ``controller-revision-hash`` (full or short form).
    ``history`` must be sorted oldest first (as :func:`owned_revisions` returns it).
    """
    live_labels = {p.metadata.labels.get(LABEL_REVISION_HASH, "") for p in pods}
    live_short = {short_hash(label) for label in live_labels}
    not_live = [
        r.metadata.name
        for r in history
        if r.metadata.name not in (current.metadata.name, update.metadata.name)
        and r.metadata.name not in live_labels
        and short_hash(r.metadata.name) not in live_short
    ]
    limit = cs.spec.revision_history_limit
    if limit is None:
        limit = DEFAULT_REVISION_HISTORY_LIMIT
    if len(not_live) <= limit:
        return []
    return not_live[: len(not_live) - max(limit, 0)]


def select_revisions(
    cs: CloneSet, revisions: Sequence[ControllerRevision], pods: Sequence[Pod]
) -> RevisionSelection:
    """Kruise ``getActiveRevisions`` + ``truncateHistory`` (§2.2) as a pure decision.

    ``revisions`` should be every ControllerRevision in the namespace: ownership/selector filtering is
    done here, and the full list is what a name collision is detected against (Kubernetes detects it
    with AlreadyExists from the API server). ``pods`` are the CloneSet's active pods (history that a pod
    still runs is never deleted).

    * newest revision equal to the template -> it is the update revision;
    * an older equal revision -> rollback: renumbered to next (``bump``), VCT hash refreshed if stale;
    * none -> a new revision (``create``); a name taken by different data bumps collisionCount and
      re-hashes. Like Kubernetes, the ``controller.kubernetes.io/hash`` label keeps the first hash.
    """
    history = owned_revisions(cs, revisions)
    collision_count = cs.status.collision_count or 0
    next_number = history[-1].revision + 1 if history else 1
    candidate = build_revision(cs, next_number, collision_count)

    create: ControllerRevision | None = None
    bump: ControllerRevision | None = None
    equal = [r for r in history if equal_revision(r, candidate)]
    if equal and equal_revision(history[-1], equal[-1]):
        update = history[-1]
    elif equal:
        last_equal = equal[-1]
        annotations = dict(last_equal.metadata.annotations)
        wanted_vct = candidate.metadata.annotations[ANNOTATION_VCT_HASH]
        if annotations.get(ANNOTATION_VCT_HASH) != wanted_vct:
            annotations[ANNOTATION_VCT_HASH] = wanted_vct
        update = msgspec.structs.replace(
            last_equal,
            revision=next_number,
            metadata=msgspec.structs.replace(last_equal.metadata, annotations=annotations),
        )
        bump = update
    else:
        by_name = {r.metadata.name: r for r in revisions}
        data_bytes = revision_bytes(candidate.data)
        while True:
            name = revision_name(cs.metadata.name, hash_revision(data_bytes, collision_count))
            existing = by_name.get(name)
            if existing is None:
                update = msgspec.structs.replace(
                    candidate, metadata=msgspec.structs.replace(candidate.metadata, name=name)
                )
                create = update
                break
            if revision_bytes(existing.data) == data_bytes:
                update = existing
                break
            collision_count += 1

    current = next((r for r in history if r.metadata.name == cs.status.current_revision), update)
    if current.metadata.name == update.metadata.name:
        current = update
    delete = truncate_history(cs, pods, history, current, update)
    return RevisionSelection(
        update=update,
        current=current,
        create=create,
        bump=bump,
        collision_count=collision_count,
        delete=delete,
    )

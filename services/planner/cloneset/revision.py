"""A CloneSet's ControllerRevisions: what it versions and how it picks them (`pkg/controller/cloneset/revision/cloneset_revision.go`).

A CloneSet revision versions *only* the pod template: its data is the template patch
(``{"spec":{"template":{...,"$patch":"replace"}}}``, `kit.revision.template_patch_data`), its labels are
the template's, its annotations the CloneSet's plus the volume-claim-template hash. Hashing, naming,
equality, collisions and truncation are the kit's (`services/planner/kit/revision.py`).

:func:`select_revisions` is Kruise's ``getActiveRevisions`` + ``truncateHistory`` as a pure decision: it
returns which revision to create, which older equal revision to renumber (rollback), the current/update
revisions and which revisions to delete; the caller performs the writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import ANNOTATION_VCT_HASH
from schemas.kinds import CLONESET
from schemas.kube import ControllerRevision, JsonObject, OwnerReference, Pod
from services.planner.kit import revision as kit_revision
from services.planner.kit.builder import controller_ref as kit_controller_ref
from services.planner.kit.gojson import go_json_bytes
from services.planner.kit.revision import RevisionSelection, equal_revision, fnv1a_32, template_of


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
    return str(fnv1a_32(go_json_bytes(items)))  # FNV-1a, as Kruise uses for this annotation


def controller_ref(cs: CloneSet) -> OwnerReference:
    """The controller owner reference every object a CloneSet creates carries."""
    return kit_controller_ref(CLONESET.ref(cs.metadata))


def owner_reference(cs: CloneSet) -> JsonObject:
    """`controller_ref` as the JSON an object body carries (pods and PVCs the CloneSet creates)."""
    ref: JsonObject = msgspec.to_builtins(controller_ref(cs))
    return ref


def build_revision(cs: CloneSet, revision_number: int, collision_count: int | None) -> ControllerRevision:
    """Kruise ``NewRevision``: the ControllerRevision for the CloneSet's current template.

    Labels = template labels + ``controller.kubernetes.io/hash``; annotations = *all* CloneSet
    annotations + the VCT hash (they do not influence name or equality).
    """
    annotations = dict(cs.metadata.annotations)
    annotations[ANNOTATION_VCT_HASH] = vct_hash(cs.spec.volume_claim_templates)
    return kit_revision.new_revision(
        controller_ref(cs),
        cs.metadata.namespace,
        kit_revision.template_patch_data(cs.spec.template),
        revision_number,
        collision_count,
        labels=cs.spec.template.metadata.labels,
        annotations=annotations,
    )


def apply_revision(cs: CloneSet, rev: ControllerRevision) -> CloneSet:
    """Kruise ``ApplyRevision``: the CloneSet with its template replaced by the revision's (``$patch: replace``)."""
    return msgspec.structs.replace(cs, spec=msgspec.structs.replace(cs.spec, template=template_of(rev)))


def owned_revisions(cs: CloneSet, revisions: Sequence[ControllerRevision]) -> list[ControllerRevision]:
    """The CloneSet's history, oldest first (`kit.revision.owned_revisions` by its namespace, selector and uid)."""
    return kit_revision.owned_revisions(
        revisions, namespace=cs.metadata.namespace, selector=cs.spec.selector, owner_uid=cs.metadata.uid
    )


def truncate_history(
    cs: CloneSet,
    pods: Sequence[Pod],
    history: Sequence[ControllerRevision],
    current: ControllerRevision,
    update: ControllerRevision,
) -> list[str]:
    """Kruise ``truncateHistory`` with the CloneSet's ``revisionHistoryLimit`` (default 10)."""
    return kit_revision.truncate_history(history, pods, current, update, cs.spec.revision_history_limit)


def select_revisions(
    cs: CloneSet, revisions: Sequence[ControllerRevision], pods: Sequence[Pod]
) -> RevisionSelection:
    """Kruise ``getActiveRevisions`` + ``truncateHistory`` as a pure decision.

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
        update, created, collision_count = kit_revision.claim_name(
            candidate, revisions, cs.metadata.name, collision_count
        )
        if created:
            create = update

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

"""In-place update: what may be updated in place, and the pod writes that do it (`pkg/util/inplaceupdate/`).

Kruise's in-place update is a small protocol written onto the pod itself, and kruisebus speaks it
verbatim so that ``kubectl describe pod`` and any Kruise-aware tool read the same state:

* ``apps.kruise.io/inplace-update-state`` records the revision, when the update started, each changed
  container's imageID *before* the update (completion = the kubelet reports a different imageID), and
  the container batches for launch-priority ordering;
* ``apps.kruise.io/inplace-update-grace`` holds the pending spec while ``gracePeriodSeconds`` runs: the
  pod is already relabelled (it counts as updated) and marked ``InPlaceUpdateReady=False`` so it leaves
  Service endpoints, but images change only when the grace expires;
* the ``InPlaceUpdateReady`` condition backs the readiness gate injected into every CloneSet pod.

Eligibility (`defaultCalculateInPlaceUpdateSpec`) is computed structurally between the pod's own revision template and the target
template: only container image replacements and template metadata (labels, annotations, finalizers)
may differ; anything else means recreate. This is equivalent to Kruise's JSON-patch scan of the revision
data (same-length container lists compared index by index; added/removed fields are not "replace").

Everything here returns data (JSON-patch operations, condition dicts, requeue delays); the caller wraps
them into commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from schemas.constants import (
    ANNOTATION_INPLACE_GRACE,
    ANNOTATION_INPLACE_GRACE_LEGACY,
    ANNOTATION_INPLACE_STATE,
    ANNOTATION_INPLACE_STATE_LEGACY,
    ANNOTATION_RUNTIME_CONTAINERS_META,
    ANNOTATION_VCT_HASH,
    CONDITION_CONTAINERS_READY,
    CONDITION_INPLACE_UPDATE_READY,
    CONDITION_READY,
    LABEL_LIFECYCLE_STATE,
    LABEL_POD_TEMPLATE_HASH,
    REASON_READINESS_GATES_NOT_READY,
    REASON_START_INPLACE_UPDATE,
    STATE_NORMAL,
)
from schemas.kube import ControllerRevision, JsonObject, Pod, PodTemplateSpec
from services.planner.kit.gates import FeatureGates
from services.planner.kit.podpatch import PodPatch
from services.planner.kit.timeutil import format_time, parse_time

CONTAINER_BARRIER_ENV = "KRUISE_CONTAINER_BARRIER"


class RefMetadata(msgspec.Struct, omit_defaults=True):
    """Per-container labels/annotations referenced by downward-API env (metav1.ObjectMeta subset)."""

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class ContainerStatusRecord(msgspec.Struct, omit_defaults=True):
    imageID: str = ""  # noqa: N815 - Kruise's JSON field name


class PreCheckBeforeNext(msgspec.Struct, omit_defaults=True):
    containersRequiredReady: list[str] = []  # noqa: N815


class ContainerBatch(msgspec.Struct):
    timestamp: str
    containers: list[str]


class InPlaceUpdateState(msgspec.Struct, rename="camel", omit_defaults=True):
    """``apps.kruise.io/inplace-update-state`` (appspub.InPlaceUpdateState), field order as Kruise writes it."""

    revision: str = ""
    update_timestamp: str = ""
    last_container_statuses: dict[str, ContainerStatusRecord] = {}
    update_env_from_metadata: bool = False
    update_images: bool = False
    update_resources: bool = False
    next_container_images: dict[str, str] = {}
    next_container_ref_metadata: dict[str, RefMetadata] = {}
    pre_check_before_next: PreCheckBeforeNext | None = None
    container_batches_record: list[ContainerBatch] = []


class UpdateSpec(msgspec.Struct, rename="camel", omit_defaults=True):
    """Kruise's UpdateSpec, stored in ``apps.kruise.io/inplace-update-grace`` during the grace period.

    ``meta_data_patch`` is the strategic-merge patch of the template metadata, as bytes (base64 in JSON,
    like Go's ``[]byte``).
    """

    revision: str = ""
    container_images: dict[str, str] = {}
    container_ref_metadata: dict[str, RefMetadata] = {}
    meta_data_patch: bytes = b""
    update_env_from_metadata: bool = False
    grace_seconds: int = 0


_STATE_DECODER = msgspec.json.Decoder(InPlaceUpdateState)
_SPEC_DECODER = msgspec.json.Decoder(UpdateSpec)
_ENCODER = msgspec.json.Encoder()


def read_state(pod: Pod) -> InPlaceUpdateState | None:
    """The pod's in-place state (new key, then legacy key); unparsable -> None."""
    ann = pod.metadata.annotations
    raw = ann.get(ANNOTATION_INPLACE_STATE) or ann.get(ANNOTATION_INPLACE_STATE_LEGACY)
    if not raw:
        return None
    try:
        return _STATE_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def grace_annotation(pod: Pod) -> str:
    ann = pod.metadata.annotations
    return ann.get(ANNOTATION_INPLACE_GRACE) or ann.get(ANNOTATION_INPLACE_GRACE_LEGACY) or ""


def read_grace(pod: Pod) -> UpdateSpec | None:
    raw = grace_annotation(pod)
    if not raw:
        return None
    try:
        return _SPEC_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def encode_json(value: object) -> str:
    return _ENCODER.encode(value).decode()


# --- `defaultCalculateInPlaceUpdateSpec` eligibility -----------------------------------------------------------------------------


def _env_refs(container: JsonObject, kind: str, key: str) -> bool:
    """Does the container read ``metadata.<kind>['key']`` through a downward-API env var?"""
    want = {f"metadata.{kind}['{key}']", f'metadata.{kind}["{key}"]'}
    for env in container.get("env") or []:
        if not isinstance(env, dict) or env.get("value"):
            continue
        name = env.get("name", "")
        if name in ("SIDECARSET_VERSION", "SIDECARSET_VERSION_ALT"):
            continue
        ref = (env.get("valueFrom") or {}).get("fieldRef") or {}
        if ref.get("fieldPath") in want:
            return True
    return False


def _metadata_patch(old: dict[str, Any], new: dict[str, Any]) -> JsonObject:
    """Strategic two-way merge patch between two template metadata dicts (labels, annotations, finalizers)."""
    meta: JsonObject = {}
    for kind in ("labels", "annotations"):
        o: dict[str, str] = old.get(kind) or {}
        n: dict[str, str] = new.get(kind) or {}
        diff: dict[str, str | None] = {k: v for k, v in n.items() if o.get(k) != v}
        diff.update({k: None for k in o if k not in n})
        if diff:
            meta[kind] = dict(sorted(diff.items()))
    of: list[str] = old.get("finalizers") or []
    nf: list[str] = new.get("finalizers") or []
    removed = [f for f in of if f not in nf]
    added = [f for f in nf if f not in of]
    if removed:
        meta["$deleteFromPrimitiveList/finalizers"] = removed
    if added:
        meta["finalizers"] = added
    return {"metadata": meta} if meta else {}


def calculate_spec(
    old_revision: ControllerRevision | None,
    new_revision: ControllerRevision | None,
    old_template: PodTemplateSpec | None,
    new_template: PodTemplateSpec | None,
    *,
    grace_seconds: int,
    gates: FeatureGates,
) -> UpdateSpec | None:
    """`defaultCalculateInPlaceUpdateSpec`: the in-place UpdateSpec from the pod's revision to the target revision, or None (recreate)."""
    if old_revision is None or new_revision is None or old_template is None or new_template is None:
        return None
    if gates.recreate_pod_when_change_vct_in_clone_set_gate:
        oh = old_revision.metadata.annotations.get(ANNOTATION_VCT_HASH)
        nh = new_revision.metadata.annotations.get(ANNOTATION_VCT_HASH)
        if oh and nh and oh != nh:
            return None
    old_spec = old_template.spec
    new_spec = new_template.spec
    for key in set(old_spec) | set(new_spec):
        if key != "containers" and old_spec.get(key) != new_spec.get(key):
            return None
    old_cs: list[JsonObject] = old_spec.get("containers") or []
    new_cs: list[JsonObject] = new_spec.get("containers") or []
    if len(old_cs) != len(new_cs):
        return None
    images: dict[str, str] = {}
    for oc, nc in zip(old_cs, new_cs, strict=True):
        if set(oc) != set(nc):
            return None
        for key in oc:
            if key == "image":
                if oc[key] != nc[key]:
                    images[str(oc.get("name", ""))] = str(nc[key])
            elif oc[key] != nc[key]:
                return None

    old_meta: dict[str, Any] = {
        "labels": dict(old_template.metadata.labels),
        "annotations": dict(old_template.metadata.annotations),
        "finalizers": list(old_template.metadata.finalizers),
    }
    new_meta: dict[str, Any] = {
        "labels": dict(new_template.metadata.labels),
        "annotations": dict(new_template.metadata.annotations),
        "finalizers": list(new_template.metadata.finalizers),
    }
    ref_meta: dict[str, RefMetadata] = {}
    env_from_metadata = False
    if gates.in_place_update_env_from_metadata:
        for kind in ("labels", "annotations"):
            o = dict(old_meta[kind])
            for key, value in sorted(new_meta[kind].items()):
                if o.get(key) == value:
                    continue  # unchanged (only add/replace are extracted)
                for c in new_cs:
                    if not _env_refs(c, kind, key):
                        continue
                    rm = ref_meta.setdefault(str(c.get("name", "")), RefMetadata())
                    getattr(rm, kind)[key] = value
                    old_meta[kind].pop(key, None)
                    new_meta[kind].pop(key, None)
                    env_from_metadata = True
    patch = _metadata_patch(old_meta, new_meta)
    return UpdateSpec(
        revision=new_revision.metadata.name,
        container_images=images,
        container_ref_metadata=ref_meta,
        meta_data_patch=_ENCODER.encode(patch) if patch else b"",
        update_env_from_metadata=env_from_metadata,
        grace_seconds=grace_seconds,
    )


# --- completion -----------------------------------------------------------------------------------


def normalise_image(image: str) -> str:
    """An image reference as a container runtime reports it: `nginx:1.21` and
    `docker.io/library/nginx:1.21` are one image (the Docker Hub domain and `library/` implied, tag
    `latest` when neither a tag nor a digest is given)."""
    name, digest = image.split("@", 1) if "@" in image else (image, "")
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if rest else f"docker.io/library/{name}"
    elif first == "index.docker.io":
        name = f"docker.io/{rest}"
    if name.startswith("docker.io/") and "/" not in name.removeprefix("docker.io/"):
        name = f"docker.io/library/{name.removeprefix('docker.io/')}"
    if digest:
        return f"{name}@{digest}"
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def runs_image(reported: str, image_id: str, wanted: str) -> bool:
    """Does a container status (`image`, `imageID`) show the container running `wanted`?

    A runtime that reports the image only by id (`sha256:...`) proves nothing either way: then the
    imageID check alone decides, as in Kruise.
    """
    if not reported or reported.startswith("sha256:"):
        return True
    want = normalise_image(wanted)
    if "@" in want:
        return want.split("@", 1)[1] in image_id or normalise_image(reported) == want
    return normalise_image(reported) == want


def containers_completed(pod: Pod, state: InPlaceUpdateState) -> bool:
    """Kruise's container completion check, made strict: every recorded container reports a new
    imageID *and* runs the image its spec now names.

    A container whose imageID is unchanged still counts as done if its reported image already equals
    the spec image (two tags of one digest). Kruise stops at "the imageID changed", which an update
    that overtakes one still restarting gets wrong: the restart into the *intermediate* image changes
    the imageID, the pod turns ready, and one more pod is taken down while this one restarts again (two
    unavailable under a budget of one). Requiring the spec's image keeps that pod unavailable until it
    runs what the latest update asked for. Env-from-metadata updates need kruise-daemon's runtime
    hashes, which kruisebus does not produce: such updates wait for that annotation like in Kruise.
    """
    if state.update_env_from_metadata and ANNOTATION_RUNTIME_CONTAINERS_META not in pod.metadata.annotations:
        return False
    spec_images = {c.name: c.image for c in pod.spec.containers}
    seen = 0
    for cs in pod.status.container_statuses:
        last = state.last_container_statuses.get(cs.name)
        if last is None:
            continue
        seen += 1
        wanted = spec_images.get(cs.name, "")
        if not runs_image(cs.image, cs.image_id, wanted):
            return False
        if last.imageID == cs.image_id and normalise_image(cs.image) != normalise_image(wanted):
            return False
    return seen == len(state.last_container_statuses)


def pod_update_completed(pod: Pod) -> bool:
    """Pod-level completion (lifecycle Updating -> Normal): no grace, no deferred batch, containers done."""
    if grace_annotation(pod):
        return False
    state = read_state(pod)
    if state is None:
        return True
    if state.next_container_images or state.next_container_ref_metadata:
        return False
    return containers_completed(pod, state)


# --- applying a spec to a pod (defaultPatchUpdateSpecToPod) ---------------------------------------


def container_priority(container: JsonObject) -> int | None:
    """Launch priority from the ``KRUISE_CONTAINER_BARRIER`` env (configMapKeyRef key ``p_<n>``)."""
    for env in container.get("env") or []:
        if isinstance(env, dict) and env.get("name") == CONTAINER_BARRIER_ENV:
            key = str(((env.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("key", ""))
            try:
                return int(key[2:])
            except ValueError:
                return 0
    return None


def priorities_of(template: PodTemplateSpec | None) -> dict[str, int | None]:
    if template is None:
        return {}
    return {str(c.get("name", "")): container_priority(c) for c in template.spec.get("containers") or []}


def _apply_meta_patch(patch: PodPatch, raw: bytes) -> None:
    if not raw:
        return
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return
    meta = body.get("metadata") or {} if isinstance(body, dict) else {}
    for key, value in (meta.get("labels") or {}).items():
        if value is None:
            patch.remove_label(key)
        else:
            patch.set_label(key, str(value))
    for key, value in (meta.get("annotations") or {}).items():
        if value is None:
            patch.remove_annotation(key)
        else:
            patch.set_annotation(key, str(value))
    for name in meta.get("$deleteFromPrimitiveList/finalizers") or []:
        patch.remove_finalizer(str(name))
    for name in meta.get("finalizers") or []:
        patch.add_finalizer(str(name))


def apply_spec(
    patch: PodPatch,
    spec: UpdateSpec,
    state: InPlaceUpdateState,
    priorities: dict[str, int | None],
    now: datetime,
) -> InPlaceUpdateState:
    """Add the operations that apply ``spec`` (one container batch) to the pod; returns the new state.

    The caller writes the returned state into the state annotation (done here too, for convenience).
    """
    pod = patch.pod
    state = msgspec.structs.replace(state, next_container_images={}, next_container_ref_metadata={})
    _apply_meta_patch(patch, spec.meta_data_patch)

    to_update: set[str] = set()
    highest: int | None = None
    highest_group: list[str] = []
    for c in pod.spec.containers:
        if c.name not in spec.container_images and c.name not in spec.container_ref_metadata:
            continue
        prio = priorities.get(c.name)
        if prio is None:
            to_update.add(c.name)
        elif highest is None or prio > highest:
            highest, highest_group = prio, [c.name]
        elif prio == highest:
            highest_group.append(c.name)
    to_update.update(highest_group)
    _add_metadata_shared(to_update, spec.container_ref_metadata)

    changed: set[str] = set()
    next_images: dict[str, str] = {}
    for index, c in enumerate(pod.spec.containers):
        image = spec.container_images.get(c.name)
        if image is None:
            continue
        if c.name in to_update:
            patch.set_container_image(index, image)
            changed.add(c.name)
        else:
            next_images[c.name] = image
    last = dict(state.last_container_statuses)
    for cs in pod.status.container_statuses:
        if cs.name in changed:
            last[cs.name] = ContainerStatusRecord(imageID=cs.image_id)
    next_meta: dict[str, RefMetadata] = {}
    for name, meta in sorted(spec.container_ref_metadata.items()):
        if name in to_update:
            for k, v in meta.labels.items():
                patch.set_label(k, v)
            for k, v in meta.annotations.items():
                patch.set_annotation(k, v)
        else:
            next_meta[name] = meta
    batch = sorted(to_update)
    state = msgspec.structs.replace(
        state,
        last_container_statuses=last,
        next_container_images=next_images,
        next_container_ref_metadata=next_meta,
        pre_check_before_next=PreCheckBeforeNext(containersRequiredReady=batch)
        if (next_images or next_meta)
        else None,
        container_batches_record=[
            *state.container_batches_record,
            ContainerBatch(timestamp=format_time(now), containers=batch),
        ],
    )
    patch.set_annotation(ANNOTATION_INPLACE_STATE, encode_json(state))
    return state


def _add_metadata_shared(to_update: set[str], ref: dict[str, RefMetadata]) -> None:
    """Containers sharing a changed env-from-metadata key with a container of this batch join the batch."""
    frontier = set(to_update)
    labels: set[str] = set()
    annotations: set[str] = set()
    while frontier:
        for name in frontier:
            meta = ref.get(name)
            if meta is not None:
                labels.update(meta.labels)
                annotations.update(meta.annotations)
        frontier = set()
        for name, meta in ref.items():
            if name in to_update:
                continue
            if labels & set(meta.labels) or annotations & set(meta.annotations):
                to_update.add(name)
                frontier.add(name)


# --- conditions -----------------------------------------------------------------------------------


def has_readiness_gate(pod: Pod) -> bool:
    return any(g.condition_type == CONDITION_INPLACE_UPDATE_READY for g in pod.spec.readiness_gates)


def start_conditions(pod: Pod, now: datetime) -> list[dict[str, Any]]:
    """Status conditions written before an in-place update: InPlaceUpdateReady False (+ Ready False).

    Ready is recomputed only when ContainersReady is True (otherwise the kubelet owns it), exactly as
    Kruise's ``updatePodReadyCondition`` does, with the same unready-gate message.
    """
    ts = format_time(now)
    out: list[dict[str, Any]] = [
        {
            "type": CONDITION_INPLACE_UPDATE_READY,
            "status": "False",
            "reason": REASON_START_INPLACE_UPDATE,
            "lastTransitionTime": ts,
        }
    ]
    ready = pod.status.condition(CONDITION_READY)
    containers_ready = pod.status.condition(CONDITION_CONTAINERS_READY)
    if ready is None or containers_ready is None or containers_ready.status != "True":
        return out
    messages: list[str] = []
    for gate in pod.spec.readiness_gates:
        ctype = gate.condition_type
        if ctype == CONDITION_INPLACE_UPDATE_READY:
            messages.append(f'the status of pod readiness gate "{ctype}" is not "True", but False')
            continue
        cond = pod.status.condition(ctype)
        if cond is None:
            messages.append(f'corresponding condition of pod readiness gate "{ctype}" does not exist.')
        elif cond.status != "True":
            messages.append(f'the status of pod readiness gate "{ctype}" is not "True", but {cond.status}')
    if messages and ready.status != "False":
        out.append(
            {
                "type": CONDITION_READY,
                "status": "False",
                "reason": REASON_READINESS_GATES_NOT_READY,
                "message": ", ".join(messages),
                "lastTransitionTime": ts,
            }
        )
    return out


def ready_condition_needed(pod: Pod) -> bool:
    """Refresh step 3: the gate is present and InPlaceUpdateReady is not already a plain True."""
    if not has_readiness_gate(pod):
        return False
    cond = pod.status.condition(CONDITION_INPLACE_UPDATE_READY)
    return cond is None or cond.status != "True" or bool(cond.reason) or bool(cond.message)


def ready_condition(now: datetime) -> dict[str, Any]:
    # reason/message explicitly emptied: a strategic merge keeps fields the patch does not mention, and
    # the condition still carries reason StartInPlaceUpdate from the start of the update.
    return {
        "type": CONDITION_INPLACE_UPDATE_READY,
        "status": "True",
        "reason": "",
        "message": "",
        "lastTransitionTime": format_time(now),
    }


# --- refresh (every pass, every pod) ----------------------------------------------------------------


@dataclass(slots=True)
class RefreshResult:
    """What the in-place refresh wants for one pod."""

    patch: PodPatch | None = None  # grace completion or next container batch
    kind: str = ""  # "grace-finish", "grace-drop", "next-batch"
    set_ready: bool = False  # write InPlaceUpdateReady True
    delay: float | None = None  # requeue (grace remainder, whole seconds)
    notes: list[str] = field(default_factory=list)


def refresh(
    pod: Pod,
    now: datetime,
    revision_matches: bool,
    priorities: dict[str, int | None],
) -> RefreshResult:
    """in-place refresh refresh for one pod. ``revision_matches``: the pod's revision label equals the grace spec's.

    1. grace annotation: revision changed -> drop it; grace not over -> requeue after the remainder
       (whole seconds); over -> apply the spec now and drop the annotation.
    2. state annotation: containers not done -> nothing; deferred batch and the previous batch is
       ready -> apply the next batch.
    3. readiness gate and InPlaceUpdateReady not True -> set it True (also initialises new pods).
    """
    res = RefreshResult()
    if grace_annotation(pod):
        spec = read_grace(pod)
        state = read_state(pod)
        patch = PodPatch(pod)
        patch.test_annotation(ANNOTATION_INPLACE_GRACE)
        patch.test_label("controller-revision-hash")
        if spec is None or state is None or not revision_matches:
            # Unreadable grace spec or revision moved on: drop it and let the normal flow redo the update.
            patch.remove_annotation(ANNOTATION_INPLACE_GRACE)
            patch.remove_annotation(ANNOTATION_INPLACE_GRACE_LEGACY)
            res.patch, res.kind = patch, "grace-drop"
            return res
        started = parse_time(state.update_timestamp)
        if started is not None:
            elapsed = (now - started).total_seconds()
            if elapsed < spec.grace_seconds:
                remaining = spec.grace_seconds - elapsed
                res.delay = float(int(remaining) if remaining == int(remaining) else int(remaining) + 1)
                return res
        apply_spec(patch, spec, state, priorities, now)
        patch.remove_annotation(ANNOTATION_INPLACE_GRACE)
        patch.remove_annotation(ANNOTATION_INPLACE_GRACE_LEGACY)
        res.patch, res.kind = patch, "grace-finish"
        return res

    state = read_state(pod)
    if state is not None:
        if not containers_completed(pod, state):
            return res
        if state.next_container_images or state.next_container_ref_metadata:
            required = (
                state.pre_check_before_next.containersRequiredReady if state.pre_check_before_next else []
            )
            statuses = {c.name: c for c in pod.status.container_statuses}
            if all(name in statuses and statuses[name].ready for name in required):
                patch = PodPatch(pod)
                patch.test_annotation(ANNOTATION_INPLACE_STATE)
                spec = UpdateSpec(
                    revision=state.revision,
                    container_images=state.next_container_images,
                    container_ref_metadata=state.next_container_ref_metadata,
                    update_env_from_metadata=state.update_env_from_metadata,
                )
                apply_spec(patch, spec, state, priorities, now)
                res.patch, res.kind = patch, "next-batch"
            return res

    if ready_condition_needed(pod):
        res.set_ready = True
    return res


def start_update(
    pod: Pod,
    spec: UpdateSpec,
    revision_name: str,
    short_hash: str,
    priorities: dict[str, int | None],
    now: datetime,
    *,
    template_hash_label: bool = True,
) -> PodPatch:
    """The pod patch starting an in-place update (after the InPlaceUpdateReady=False status write).

    ``template_hash_label=False``: only ``controller-revision-hash`` is rewritten (the Advanced
    DaemonSet's pods carry no ``pod-template-hash``).

    Relabel to the target revision (the caller adds lifecycle ``Updating`` + timestamp), write a fresh state annotation, and either apply the images now (grace <= 0)
    or park the spec in the grace annotation.
    """
    patch = PodPatch(pod)
    patch.test_label("controller-revision-hash")
    patch.set_label("controller-revision-hash", revision_name)
    if template_hash_label:
        patch.set_label("pod-template-hash", short_hash)
    state = InPlaceUpdateState(
        revision=revision_name,
        update_timestamp=format_time(now),
        update_env_from_metadata=spec.update_env_from_metadata,
        update_images=bool(spec.container_images),
    )
    patch.remove_annotation(ANNOTATION_INPLACE_STATE_LEGACY)
    if spec.grace_seconds <= 0:
        apply_spec(patch, spec, state, priorities, now)
        patch.remove_annotation(ANNOTATION_INPLACE_GRACE)
        patch.remove_annotation(ANNOTATION_INPLACE_GRACE_LEGACY)
    else:
        patch.set_annotation(ANNOTATION_INPLACE_STATE, encode_json(state))
        patch.set_annotation(ANNOTATION_INPLACE_GRACE, encode_json(spec))
    return patch


def refresh_is_noop(pod: Pod) -> bool:
    """True when the update step's refresh (in-place in-place refresh, lifecycle the lifecycle hooks, back-fill) has nothing to do.

    Depends only on the pod object (a later kubelet or user change produces a new object), so it can be
    memoised per pod: in a settled 10,000-pod CloneSet almost every pod is skipped by this test.
    """
    labels = pod.metadata.labels
    if LABEL_POD_TEMPLATE_HASH not in labels:
        return False
    if labels.get(LABEL_LIFECYCLE_STATE, "") not in ("", STATE_NORMAL):
        return False
    if grace_annotation(pod):
        return False
    state = read_state(pod)
    if state is not None:
        if not containers_completed(pod, state):
            return True
        if state.next_container_images or state.next_container_ref_metadata:
            return False
    return not ready_condition_needed(pod)

"""What the webhook answers: CloneSet, AdvancedCronJob and BroadcastJob defaulting and validation, and the pod hook, as AdmissionResponses.

Pure functions of the request and the in-memory view (no I/O), so the HTTP layer stays thin and the
unit tests call these directly. Validation is the planner's own rule set
(``services.planner.cloneset.validation``): one implementation of Kruise's
``pkg/webhook/cloneset/validating/validation.go``, enforced here at admission and again by the planner
for anything admitted while the webhook was down. Denials carry Kruise's HTTP code (422 for field
errors, 400 for an undecodable object) and its aggregated message naming each field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgspec

from schemas.admission import (
    OP_CREATE,
    OP_DELETE,
    OP_UPDATE,
    PATCH_TYPE_JSON,
    AdmissionRequest,
    AdmissionResponse,
    StatusResult,
)
from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.cloneset import CloneSet
from schemas.constants import (
    DEFAULT_KRUISE_NAMESPACE,
    DELETION_PROTECTION_ALWAYS,
    DELETION_PROTECTION_CASCADING,
    LABEL_DELETION_PROTECTION,
)
from schemas.daemonset import DaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ControllerRevision, Pod
from schemas.nodeimage import NodeImage
from schemas.podprobemarker import PodProbeMarker
from schemas.sidecarset import SidecarSet
from services.planner.advancedcronjob.validation import validate_advancedcronjob
from services.planner.broadcastjob.validation import validate_broadcastjob
from services.planner.cloneset.validation import validate_cloneset
from services.planner.daemonset.validation import default_daemonset
from services.planner.daemonset.validation import validate_daemonset as validate_ds
from services.planner.daemonset.validation import validate_update as validate_ds_update
from services.planner.imagepulljob.defaults import default_image_pull_job, default_node_image
from services.planner.imagepulljob.validation import gate_error, validate_image_pull_job, validate_node_image
from services.planner.kit.fielderrors import decode_error, errors_message
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.podprobemarker.validation import validate_podprobemarker
from services.planner.sidecarset.defaults import default_sidecarset
from services.planner.sidecarset.inject import InjectError, InjectionView, inject
from services.planner.sidecarset.revisions import find_specific
from services.planner.sidecarset.validation import validate_sidecarset
from services.webhook.defaults import (
    default_advancedcronjob,
    default_broadcastjob,
    default_cloneset,
    json_patch,
    should_inject_template_defaults,
)

# Kruise's webhook names (config/webhook/manifests.yaml) and handler paths
MUTATING_CLONESET: Final = "mcloneset.kb.io"
VALIDATING_CLONESET: Final = "vcloneset.kb.io"
MUTATING_POD: Final = "mpod.kb.io"
PATH_MUTATE_CLONESET: Final = "/mutate-apps-kruise-io-v1alpha1-cloneset"
PATH_VALIDATE_CLONESET: Final = "/validate-apps-kruise-io-v1alpha1-cloneset"
PATH_MUTATE_POD: Final = "/mutate-pod"
MUTATING_IMAGE_PULL_JOB: Final = "mimagepulljob.kb.io"
VALIDATING_IMAGE_PULL_JOB: Final = "vimagepulljob.kb.io"
PATH_MUTATE_IMAGE_PULL_JOB: Final = "/mutate-apps-kruise-io-imagepulljob"
PATH_VALIDATE_IMAGE_PULL_JOB: Final = "/validate-apps-kruise-io-imagepulljob"
MUTATING_NODE_IMAGE: Final = "mnodeimage.kb.io"
VALIDATING_NODE_IMAGE: Final = "vnodeimage.kb.io"
PATH_MUTATE_NODE_IMAGE: Final = "/mutate-apps-kruise-io-nodeimage"
PATH_VALIDATE_NODE_IMAGE: Final = "/validate-apps-kruise-io-nodeimage"
VALIDATING_PODPROBEMARKER: Final = "vpodprobemarker.kb.io"
PATH_VALIDATE_PODPROBEMARKER: Final = "/validate-apps-kruise-io-v1alpha1-podprobemarker"
MUTATING_ADVANCED_CRON_JOB: Final = "madvancedcronjob.kb.io"
VALIDATING_ADVANCED_CRON_JOB: Final = "vadvancedcronjob.kb.io"
PATH_MUTATE_ADVANCED_CRON_JOB: Final = "/mutate-apps-kruise-io-v1alpha1-advancedcronjob"
PATH_VALIDATE_ADVANCED_CRON_JOB: Final = "/validate-apps-kruise-io-v1alpha1-advancedcronjob"
MUTATING_BROADCAST_JOB: Final = "mbroadcastjob.kb.io"
VALIDATING_BROADCAST_JOB: Final = "vbroadcastjob.kb.io"
PATH_MUTATE_BROADCAST_JOB: Final = "/mutate-apps-kruise-io-v1alpha1-broadcastjob"
PATH_VALIDATE_BROADCAST_JOB: Final = "/validate-apps-kruise-io-v1alpha1-broadcastjob"


@dataclass
class PodView:
    """The pods the podsToDelete rule looks names up in, kept from KB_STATE by the server.

    ``ready`` turns true once the state stream's replay is done; before that a missing pod may just
    not have been read yet, so the rule is skipped with a warning instead of denying a valid name.
    """

    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    ready: bool = False
    # SidecarSets by name and ControllerRevisions by (namespace, name): what injection and SidecarSet
    # validation look up (Kruise's informer cache); the whitelist (key `SidecarSet_PatchPodMetadata_WhiteList`
    # of ConfigMap `kruise-configuration` in Kruise's namespace), None while that ConfigMap or key is
    # absent from the view; like every other fact here it is known once `ready`
    sidecarsets: dict[str, SidecarSet] = field(default_factory=dict)
    revisions: dict[tuple[str, str], ControllerRevision] = field(default_factory=dict)
    whitelist: str | None = None
    kruise_namespace: str = DEFAULT_KRUISE_NAMESPACE
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels

    def put(self, pod: Pod) -> None:
        self.pods[(pod.metadata.namespace, pod.metadata.name)] = pod

    def drop(self, pod: Pod) -> None:
        self.pods.pop((pod.metadata.namespace, pod.metadata.name), None)

    def lookup(self, namespace: str, names: list[str]) -> list[Pod]:
        return [p for n in names if (p := self.pods.get((namespace, n))) is not None]


def allowed(uid: str, *, warnings: list[str] | None = None) -> AdmissionResponse:
    return AdmissionResponse(uid=uid, allowed=True, warnings=warnings or None)


S = TypeVar("S", bound=msgspec.Struct)


def denied(uid: str, code: int, message: str) -> AdmissionResponse:
    return AdmissionResponse(
        uid=uid, allowed=False, status=StatusResult(code=code, message=message, status="Failure")
    )


def decode_request(req: AdmissionRequest, kind: type[S]) -> tuple[S, S | None] | AdmissionResponse:
    """The request's object and, on UPDATE, its old one, as `kind`; or the 400 that names the field of a
    body that is not of its kind's type (a wrong type, a number out of range)."""
    try:
        obj = msgspec.convert(req.object, kind)
        old = msgspec.convert(req.old_object, kind) if req.operation == OP_UPDATE and req.old_object else None
    except msgspec.ValidationError as e:
        return denied(req.uid, 400, str(decode_error(e)))
    return obj, old


def undecodable(req: AdmissionRequest, kind: type[msgspec.Struct]) -> AdmissionResponse | None:
    """The 400 of an object that is not of its kind's type, before any default is set on it: Kruise's
    handlers decode first, so defaulting never sees such a body."""
    decoded = decode_request(req, kind)
    return decoded if isinstance(decoded, AdmissionResponse) else None


def mutate_cloneset(req: AdmissionRequest, gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """``SetDefaultsCloneSet`` as a JSON patch (none when nothing changes, as Kruise answers)."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    if (bad := undecodable(req, CloneSet)) is not None:
        return bad
    if req.resource.version != "v1alpha1":
        return denied(req.uid, 400, f"unsupported version: {req.resource.version}")
    inject = should_inject_template_defaults(
        req.operation, req.object, req.old_object, template_no_defaults=gates.template_no_defaults
    )
    defaulted = default_cloneset(req.object, inject_template_defaults=inject,
                                 host_network_ports=gates.default_host_network_host_ports_in_pod_templates)
    return _patch_response(req.uid, req.object, defaulted)


def deletion_protection_error(old: dict[str, Any] | None, gates: FeatureGates) -> str | None:
    """Kruise's ``ValidateWorkloadDeletion`` (``pkg/webhook/util/deletionprotection``): with the gate
    ResourcesDeletionProtection on, label ``Always`` forbids deleting the CloneSet, ``Cascading`` forbids
    it while ``spec.replicas > 0``; an object already being deleted is let through."""
    if not gates.resources_deletion_protection or not old:
        return None
    meta = old.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    value = (meta.get("labels") or {}).get(LABEL_DELETION_PROTECTION)
    if value == DELETION_PROTECTION_ALWAYS:
        return f"forbidden by ResourcesProtectionDeletion for {LABEL_DELETION_PROTECTION}={value}"
    replicas = (old.get("spec") or {}).get("replicas")
    if value == DELETION_PROTECTION_CASCADING and isinstance(replicas, int) and replicas > 0:
        return (f"forbidden by ResourcesProtectionDeletion for {LABEL_DELETION_PROTECTION}={value} "
                f"and replicas {replicas}>0")
    return None


def validate_cloneset_request(
    req: AdmissionRequest, view: PodView, gates: FeatureGates = DEFAULT_GATES
) -> AdmissionResponse:
    """Every v1alpha1 rule; UPDATE adds the immutability and InPlaceOnly rules; DELETE checks
    deletion protection."""
    if req.operation == OP_DELETE:
        problem = deletion_protection_error(req.old_object, gates)
        return denied(req.uid, 403, problem) if problem else allowed(req.uid)
    if req.object is None:
        return allowed(req.uid)
    if isinstance(decoded := decode_request(req, CloneSet), AdmissionResponse):
        return decoded
    cs, old = decoded
    warnings: list[str] = []
    names = list(cs.spec.scale_strategy.pods_to_delete)
    pods: list[Pod] = []
    if names:
        ns = cs.metadata.namespace or req.namespace
        if not view.ready:
            # not replayed yet: check duplicates only (every pod "exists"), the planner truncates later
            warnings.append("spec.scaleStrategy.podsToDelete: pods not checked, the webhook is still "
                            "reading cluster state")
            fake_owner = cs.metadata.uid
            pods = [_stand_in(ns, n, fake_owner) for n in names]
        else:
            pods = view.lookup(ns, names)
    errs = validate_cloneset(cs, old=old, pods=pods, gates=gates)
    if errs:
        return denied(req.uid, 422, errors_message(errs))
    return allowed(req.uid, warnings=warnings)


def _stand_in(namespace: str, name: str, owner_uid: str) -> Pod:
    return msgspec.convert(
        {"metadata": {"name": name, "namespace": namespace, "ownerReferences": [
            {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "", "uid": owner_uid,
             "controller": True}]}},
        Pod,
    )


def validate_podprobemarker_request(req: AdmissionRequest, gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """Kruise's PodProbeMarker rules (``pkg/webhook/podprobemarker/validating``); UPDATE adds the
    selector's immutability. A disabled gate is Forbidden (403), a bad spec 400, as Kruise answers."""
    if req.object is None or req.operation not in (OP_CREATE, OP_UPDATE):
        return allowed(req.uid)
    if isinstance(decoded := decode_request(req, PodProbeMarker), AdmissionResponse):
        return decoded
    ppm, old = decoded
    errs = validate_podprobemarker(ppm, old, gates)
    if errs:
        forbidden = errs[0].type == "Forbidden" and errs[0].field == "spec" and len(errs) == 1
        return denied(req.uid, 403 if forbidden else 400,
                      errs[0].detail if forbidden else errors_message(errs))
    return allowed(req.uid)


class NotSynced(Exception):
    """The webhook has not read the cluster state an answer depends on yet: the HTTP layer fails the
    call (503), so kube-apiserver applies the webhook's failurePolicy, as it does while Kruise's
    webhook waits for its informer caches."""


def mutate_pod(req: AdmissionRequest, view: PodView | None = None, *, now: str = "", draw: Any = None,
               gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """Pod creation hook (Kruise's ``mpod.kb.io``): SidecarSet injection (`services.planner.sidecarset.inject`)
    as a JSON patch; an injection error rejects the pod with 500, as Kruise answers."""
    if view is None or req.operation != OP_CREATE or req.object is None or req.sub_resource or not gates.pod_webhook:
        return allowed(req.uid)  # the gate PodWebhook off: Kruise injects nothing
    if not view.ready:
        raise NotSynced("the webhook has not read the cluster's SidecarSets yet")
    if not view.sidecarsets:
        return allowed(req.uid)
    import random

    injection = InjectionView(sidecarsets=list(view.sidecarsets.values()), revisions=list(view.revisions.values()),
                              namespaces=view.namespaces, kruise_namespace=view.kruise_namespace)
    try:
        out = inject(req.object, injection, namespace=req.namespace, now=now, draw=draw or random.random,
                     sort_by_name=gates.enable_sort_sidecar_container_by_name)
    except InjectError as e:
        return denied(req.uid, 500, str(e))
    return allowed(req.uid) if out is None else _patch_response(req.uid, req.object, out)


def mutate_sidecarset(req: AdmissionRequest) -> AdmissionResponse:
    """``SetDefaultsSidecarSet`` + ``SetHashSidecarSet`` as a JSON patch (create and update)."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    return _patch_response(req.uid, req.object, default_sidecarset(req.object))


def validate_sidecarset_request(req: AdmissionRequest, view: PodView,
                                gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """Kruise's SidecarSet rules against the webhook's view of other SidecarSets and revisions (422)."""
    if req.object is None or req.operation not in (OP_CREATE, OP_UPDATE):
        return allowed(req.uid)
    if isinstance(decoded := decode_request(req, SidecarSet), AdmissionResponse):
        return decoded
    ss, old = decoded
    if ss.spec.patch_pod_metadata and not view.ready:
        raise NotSynced("the webhook has not read the SidecarSet patchPodMetadata whitelist yet")
    if ss.spec.injection_strategy.revision is not None and not view.ready:
        raise NotSynced("the webhook has not read the SidecarSets' ControllerRevisions yet")
    revisions = list(view.revisions.values())
    others = [o for name, o in view.sidecarsets.items() if name != ss.metadata.name]
    errs = validate_sidecarset(ss, old, others=others, whitelist=view.whitelist, gates=gates,
                               lookup=lambda s: find_specific(s, revisions, view.kruise_namespace))
    if errs:
        return denied(req.uid, 422, errors_message(errs))
    warnings = None if view.ready else [
        "spec: conflicts with other SidecarSets and injectionStrategy.revision not checked: the webhook is "
        "still reading cluster state"]
    return allowed(req.uid, warnings=warnings)


def mutate_image_pull_job(req: AdmissionRequest) -> AdmissionResponse:
    """``SetDefaultsImagePullJob`` as a JSON patch (the finalizer on CREATE only); none when nothing changes."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    if (bad := undecodable(req, ImagePullJob)) is not None:
        return bad
    if req.resource.version != "v1alpha1":
        return denied(req.uid, 400, f"unsupported version: {req.resource.version}")
    return _patch_response(req.uid, req.object,
                           default_image_pull_job(req.object, add_protection=req.operation == OP_CREATE))


def validate_image_pull_job_request(req: AdmissionRequest, gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """Kruise's ImagePullJob rules: 403 while KruiseDaemon or ImagePullJobGate is off, 403 for a changed
    ``spec.pullSecrets``, 400 with Kruise's message for the first other violation."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    problem = gate_error(gates)
    if problem is not None:
        return denied(req.uid, problem.code, problem.message)
    if req.resource.version != "v1alpha1":
        return denied(req.uid, 400, f"unsupported version: {req.resource.version}")
    if isinstance(decoded := decode_request(req, ImagePullJob), AdmissionResponse):
        return decoded
    job, old = decoded
    error = validate_image_pull_job(job, old)
    if error is not None:
        return denied(req.uid, error.code, error.message)
    return allowed(req.uid)


def mutate_node_image(req: AdmissionRequest, now: str) -> AdmissionResponse:
    """``SetDefaultsNodeImage`` and tag sorting as a JSON patch; `now` (RFC 3339) stamps tags without createdAt."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    if (bad := undecodable(req, NodeImage)) is not None:
        return bad
    if req.resource.version != "v1alpha1":
        return denied(req.uid, 400, f"unsupported version: {req.resource.version}")
    return _patch_response(req.uid, req.object, default_node_image(req.object, now))


def validate_node_image_request(req: AdmissionRequest, gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """Kruise's NodeImage rules: 403 while KruiseDaemon is off, 400 with Kruise's message otherwise."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    if not gates.kruise_daemon:
        return denied(req.uid, 403, "feature-gate KruiseDaemon is not enabled")
    if isinstance(decoded := decode_request(req, NodeImage), AdmissionResponse):
        return decoded
    ni, _ = decoded
    problem = validate_node_image(ni)
    return denied(req.uid, 400, problem) if problem else allowed(req.uid)
# --- AdvancedCronJob and BroadcastJob ---------------------------------------------------------------


def _patch_response(uid: str, original: dict[str, Any], defaulted: dict[str, Any]) -> AdmissionResponse:
    ops = json_patch(original, defaulted)
    if not ops:
        return allowed(uid)
    return AdmissionResponse(uid=uid, allowed=True, patch=msgspec.json.encode(ops), patch_type=PATCH_TYPE_JSON)


def mutate_advancedcronjob(req: AdmissionRequest, gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """``SetDefaultsAdvancedCronJob`` as a JSON patch: spec defaults on every request, pod-template
    defaults on CREATE or when ``spec.template`` changed (`mutating/advancedcronjob_create_update_handler.go`)."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    if (bad := undecodable(req, AdvancedCronJob)) is not None:
        return bad
    inject = should_inject_template_defaults(req.operation, req.object, req.old_object,
                                             template_no_defaults=gates.template_no_defaults)
    return _patch_response(req.uid, req.object, default_advancedcronjob(req.object, inject_template_defaults=inject))


def validate_advancedcronjob_request(req: AdmissionRequest) -> AdmissionResponse:
    """CREATE: every rule; UPDATE: resourceVersion, the spec rules, then immutability; DELETE: allowed."""
    if req.operation == OP_DELETE or req.object is None:
        return allowed(req.uid)
    if isinstance(decoded := decode_request(req, AdvancedCronJob), AdmissionResponse):
        return decoded
    acj, old = decoded
    if not acj.metadata.namespace and req.namespace:
        acj = msgspec.structs.replace(acj, metadata=msgspec.structs.replace(acj.metadata, namespace=req.namespace))
    errs = validate_advancedcronjob(acj, old, update=req.operation == OP_UPDATE)
    return denied(req.uid, 422, errors_message(errs)) if errs else allowed(req.uid)


def mutate_broadcastjob(req: AdmissionRequest, gates: FeatureGates = DEFAULT_GATES) -> AdmissionResponse:
    """``SetDefaultsBroadcastJob`` as a JSON patch (`pkg/webhook/broadcastjob/mutating`)."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    if (bad := undecodable(req, BroadcastJob)) is not None:
        return bad
    inject = should_inject_template_defaults(req.operation, req.object, req.old_object,
                                             template_no_defaults=gates.template_no_defaults)
    return _patch_response(req.uid, req.object, default_broadcastjob(req.object, inject_template_defaults=inject))


def validate_broadcastjob_request(req: AdmissionRequest) -> AdmissionResponse:
    if req.operation == OP_DELETE or req.object is None:
        return allowed(req.uid)
    if isinstance(decoded := decode_request(req, BroadcastJob), AdmissionResponse):
        return decoded
    job, _ = decoded
    errs = validate_broadcastjob(job)
    return denied(req.uid, 422, errors_message(errs)) if errs else allowed(req.uid)


def mutate_daemonset(req: AdmissionRequest) -> AdmissionResponse:
    """``SetDefaultsDaemonSet`` as a JSON patch on CREATE and UPDATE (`pkg/webhook/daemonset/mutating`); the
    pod template is not defaulted."""
    if req.operation not in (OP_CREATE, OP_UPDATE) or req.object is None:
        return allowed(req.uid)
    return _patch_response(req.uid, req.object, default_daemonset(req.object))


def validate_daemonset_request(req: AdmissionRequest) -> AdmissionResponse:
    """`pkg/webhook/daemonset/validating`: the defaulted object on CREATE; on UPDATE the selector must stay
    and the new object is validated in full (HTTP 422 either way)."""
    if req.operation == OP_DELETE or req.object is None:
        return allowed(req.uid)
    if isinstance(decoded := decode_request(req, DaemonSet), AdmissionResponse):
        return decoded
    ds, old = decoded
    errs = validate_ds_update(ds, old) if old is not None else validate_ds(ds)
    return denied(req.uid, 422, errors_message(errs)) if errs else allowed(req.uid)

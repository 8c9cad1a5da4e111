"""The CloneSet defaults Kruise's mutating webhook writes, on plain JSON objects, and the JSON patch for them.

Kruise defaults in ``apis/apps/defaults/v1alpha1.go`` (``SetDefaultsCloneSet``) and, for the pod
template, ``apis/apps/defaults/pod.go`` (``SetDefaultPodSpec``: Kubernetes' ``SetDefaults_PodSpec`` and
container/volume/probe defaults, except that a regular container with no ``imagePullPolicy`` gets
``Always`` so in-place image updates are pulled). The mutating handler
(``pkg/webhook/cloneset/mutating/cloneset_create_update_handler.go``) injects template defaults on
CREATE, and on UPDATE only when the template differs from the stored one, so re-applying an unchanged
object never rewrites its template (and never starts a rollout). With the ``TemplateNoDefaults`` gate
on, templates are never defaulted.

Everything here works on the JSON the API server sends, so fields kruisebus does not model pass
through untouched; the result is expressed as an RFC 6902 patch, as Kubernetes expects.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from schemas.constants import (
    COMPLETION_ALWAYS,
    DEFAULT_CONCURRENCY_POLICY,
    DEFAULT_FAILED_JOBS_HISTORY_LIMIT,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_REVISION_HISTORY_LIMIT,
    DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT,
    FAILURE_FAIL_FAST,
    MAX_INT32,
    STRATEGY_IN_PLACE_IF_POSSIBLE,
    STRATEGY_IN_PLACE_ONLY,
    STRATEGY_RECREATE,
)
from services.planner.kit.poddefaults import (  # the pod-level defaults every workload shares
    default_container,
    default_volume,
    image_tag,
)

DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"
DEFAULT_TERMINATION_GRACE_SECONDS: Final = 30

JsonDict = dict[str, Any]


def _obj(parent: JsonDict, key: str) -> JsonDict:
    """``parent[key]`` as a dict, created (as Go's zero struct would marshal) when missing or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _dicts(value: object) -> list[JsonDict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def default_pod_spec(spec: JsonDict, *, host_network_ports: bool = False) -> None:
    """Kruise's ``SetDefaultPodSpec``, in place (``host_network_ports``: the
    DefaultHostNetworkHostPortsInPodTemplates gate, hostPort = containerPort under hostNetwork)."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_SECONDS
    if not spec.get("schedulerName"):
        spec["schedulerName"] = DEFAULT_SCHEDULER_NAME
    if host_network_ports and spec.get("hostNetwork") is True:
        for c in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
            for port in _dicts(c.get("ports")):
                if not port.get("hostPort"):
                    port["hostPort"] = port.get("containerPort")
    for v in _dicts(spec.get("volumes")):
        default_volume(v)
    for c in _dicts(spec.get("initContainers")):
        default_container(c, pull_always=False)
    for c in _dicts(spec.get("containers")):
        default_container(c, pull_always=True)  # Kruise: Always, so an in-place image change is pulled


def default_pvc_template(pvc: JsonDict) -> None:
    """``SetDefaults_PersistentVolumeClaim`` for a volumeClaimTemplate."""
    spec = _obj(pvc, "spec")
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    status = _obj(pvc, "status")
    if not status.get("phase"):
        status["phase"] = "Pending"


def default_template(template: JsonDict, claims: list[JsonDict], *, host_network_ports: bool = False) -> None:
    """Template defaults plus what Go's marshalling of a PodTemplateSpec always writes."""
    meta = _obj(template, "metadata")
    meta.setdefault("creationTimestamp", None)
    default_pod_spec(_obj(template, "spec"), host_network_ports=host_network_ports)
    for pvc in claims:
        default_pvc_template(pvc)


def default_cloneset(obj: JsonDict, *, inject_template_defaults: bool, host_network_ports: bool = False) -> JsonDict:
    """``SetDefaultsCloneSet`` on a copy of a CloneSet's JSON; returns the defaulted copy."""
    out = copy.deepcopy(obj)
    spec = _obj(out, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = DEFAULT_REVISION_HISTORY_LIMIT
    if inject_template_defaults:
        claims = _dicts(spec.get("volumeClaimTemplates"))
        default_template(_obj(spec, "template"), claims, host_network_ports=host_network_ports)
    _obj(spec, "scaleStrategy")  # a Go struct field: always marshalled
    strategy = _obj(spec, "updateStrategy")
    type_ = strategy.get("type")
    if not type_:
        strategy["type"] = STRATEGY_RECREATE
    elif type_ in (STRATEGY_IN_PLACE_IF_POSSIBLE, STRATEGY_IN_PLACE_ONLY) and not isinstance(
        strategy.get("inPlaceUpdateStrategy"), dict
    ):
        strategy["inPlaceUpdateStrategy"] = {}
    if strategy.get("partition") is None:
        strategy["partition"] = 0
    if strategy.get("maxUnavailable") is None:
        strategy["maxUnavailable"] = DEFAULT_MAX_UNAVAILABLE
    if strategy.get("maxSurge") is None:
        strategy["maxSurge"] = 0
    return out


def should_inject_template_defaults(
    operation: str, obj: JsonDict, old: JsonDict | None, *, template_no_defaults: bool
) -> bool:
    """CREATE always; UPDATE only when ``spec.template`` changed; never with ``TemplateNoDefaults``."""
    if template_no_defaults:
        return False
    if operation != "UPDATE" or old is None:
        return True
    return ((obj.get("spec") or {}).get("template")) != ((old.get("spec") or {}).get("template"))


# --- RFC 6902 --------------------------------------------------------------------------------------


def _pointer(parts: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def json_patch(old: Any, new: Any, path: tuple[str | int, ...] = ()) -> list[JsonDict]:
    """An RFC 6902 patch turning ``old`` into ``new``: per key for objects, per index for equal-length
    arrays, a whole ``replace`` otherwise (the defaults above never change an array's length)."""
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[JsonDict] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": _pointer((*path, key))})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": _pointer((*path, key)), "value": value})
            else:
                ops.extend(json_patch(old[key], value, (*path, key)))
        return ops
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        ops = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            ops.extend(json_patch(a, b, (*path, i)))
        return ops
    if old == new and type(old) is type(new):
        return []
    return [{"op": "replace", "path": _pointer(path), "value": new}]


# --- AdvancedCronJob and BroadcastJob ---------------------------------------------------------------


def default_broadcastjob_spec(spec: JsonDict, *, inject_template_defaults: bool) -> None:
    """``SetDefaultsBroadcastJob`` in place: completionPolicy Always, parallelism MaxInt32, failurePolicy
    FailFast, and (``inject_template_defaults``) the pod-template defaults."""
    if inject_template_defaults:
        default_template(_obj(spec, "template"), [])
    if not _obj(spec, "completionPolicy").get("type"):
        spec["completionPolicy"]["type"] = COMPLETION_ALWAYS
    if spec.get("parallelism") is None:
        spec["parallelism"] = MAX_INT32
    if not _obj(spec, "failurePolicy").get("type"):
        spec["failurePolicy"]["type"] = FAILURE_FAIL_FAST


def default_broadcastjob(obj: JsonDict, *, inject_template_defaults: bool) -> JsonDict:
    out = copy.deepcopy(obj)
    default_broadcastjob_spec(_obj(out, "spec"), inject_template_defaults=inject_template_defaults)
    return out


def default_advancedcronjob(obj: JsonDict, *, inject_template_defaults: bool) -> JsonDict:
    """``SetDefaultsAdvancedCronJob`` (`apis/apps/defaults/v1beta1.go`) on a copy, status cleared.

    Spec defaults always; pod-template defaults only when asked (CREATE, or a changed template). Nothing
    inside the Job spec or the BroadcastJob spec is defaulted here: the child gets those at its own
    admission.
    """
    out = copy.deepcopy(obj)
    out.pop("status", None)
    spec = _obj(out, "spec")
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = DEFAULT_CONCURRENCY_POLICY
    if spec.get("paused") is None:
        spec["paused"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = DEFAULT_FAILED_JOBS_HISTORY_LIMIT
    if inject_template_defaults:
        template = _obj(spec, "template")
        for key in ("jobTemplate", "broadcastJobTemplate"):
            child = template.get(key)
            if isinstance(child, dict) and isinstance(child.get("spec"), dict):
                pod = child["spec"].get("template")
                if isinstance(pod, dict):
                    default_template(pod, [])
    return out


__all__ = ["default_advancedcronjob", "default_broadcastjob", "default_cloneset", "default_container", "default_pod_spec",
           "default_volume", "image_tag", "json_patch", "should_inject_template_defaults"]

"""Lifecycle hooks and state transitions (`pkg/util/lifecycle/`, shared by every workload with `spec.lifecycle`).

The lifecycle label ``lifecycle.apps.kruise.io/state`` lets users hold a pod at well-defined points
(before it serves, before an in-place update, before deletion) by attaching labels or finalizers that a
hook names. Two predicates drive everything and are easy to confuse:

* *hooked* (``IsPodHooked``): ANY hook finalizer present or ANY hook label matching — used to decide
  that a pod must wait (PreparingUpdate / PreparingDelete);
* *all hooked* (``IsPodAllHooked``): ALL hook labels and finalizers present — used to decide that a pod
  may go back to Normal (preNormal, and Updated -> Normal).

A nil hook is never hooked and never all-hooked. Every state change also rewrites the timestamp
annotation, as Kruise does; with ``markPodNotReady`` the ``KruisePodReady`` condition carries a message
while the pod waits in PreparingDelete/PreparingUpdate.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from schemas.constants import (
    ANNOTATION_LIFECYCLE_TIMESTAMP,
    CONDITION_KRUISE_POD_READY,
    LABEL_LIFECYCLE_STATE,
    STATE_PREPARING_DELETE,
    STATE_PREPARING_UPDATE,
    STATE_UPDATED,
)
from schemas.kube import Pod
from schemas.pub import Lifecycle, LifecycleHook
from services.planner.kit.podpatch import PodPatch
from services.planner.kit.timeutil import format_time

PRE_DELETE_HOOK_KEY = "preDeleteHook"
PRE_UPDATE_HOOK_KEY = "preUpdateHook"
LIFECYCLE_USER_AGENT = "Lifecycle"


def is_hooked(hook: LifecycleHook | None, pod: Pod) -> bool:
    if hook is None:
        return False
    labels = pod.metadata.labels
    if any(labels.get(k) == v for k, v in hook.labels_handler.items()):
        return True
    finalizers = set(pod.metadata.finalizers)
    return any(f in finalizers for f in hook.finalizers_handler)


def is_all_hooked(hook: LifecycleHook | None, pod: Pod) -> bool:
    if hook is None:
        return False
    labels = pod.metadata.labels
    if any(labels.get(k) != v for k, v in hook.labels_handler.items()):
        return False
    finalizers = set(pod.metadata.finalizers)
    return all(f in finalizers for f in hook.finalizers_handler)


def set_state(patch: PodPatch, state: str, now: datetime) -> None:
    """Set the lifecycle label and its timestamp annotation on a pod patch."""
    patch.set_label(LABEL_LIFECYCLE_STATE, state)
    patch.set_annotation(ANNOTATION_LIFECYCLE_TIMESTAMP, format_time(now))


def apply_hook(patch: PodPatch, hook: LifecycleHook | None) -> None:
    """Re-attach a hook's labels and finalizers (Updated -> PreparingUpdate)."""
    if hook is None:
        return
    for k, v in hook.labels_handler.items():
        patch.set_label(k, v)
    for f in hook.finalizers_handler:
        patch.add_finalizer(f)


def has_kruise_pod_ready_gate(pod: Pod) -> bool:
    return any(g.condition_type == CONDITION_KRUISE_POD_READY for g in pod.spec.readiness_gates)


def not_ready_condition(pod: Pod, state: str, now: datetime) -> dict[str, Any] | None:
    """The ``KruisePodReady`` condition after a markPodNotReady transition to ``state`` (None: no change).

    PreparingDelete / PreparingUpdate add the hook's message (status False); Updated removes the
    preUpdate message (True when none remain). Only pods with the KruisePodReady gate are touched.
    """
    if not has_kruise_pod_ready_gate(pod):
        return None
    cond = pod.status.condition(CONDITION_KRUISE_POD_READY)
    messages: list[dict[str, str]] = []
    if cond is not None and cond.message:
        try:
            parsed = json.loads(cond.message)
            if isinstance(parsed, list):
                messages = [m for m in parsed if isinstance(m, dict)]
        except ValueError:
            messages = []
    keys = {(m.get("userAgent", ""), m.get("key", "")) for m in messages}
    if state in (STATE_PREPARING_DELETE, STATE_PREPARING_UPDATE):
        key = PRE_DELETE_HOOK_KEY if state == STATE_PREPARING_DELETE else PRE_UPDATE_HOOK_KEY
        keys.add((LIFECYCLE_USER_AGENT, key))
    elif state == STATE_UPDATED:
        keys.discard((LIFECYCLE_USER_AGENT, PRE_UPDATE_HOOK_KEY))
    else:
        return None
    new_messages = [{"userAgent": a, "key": k} for a, k in sorted(keys)]
    status = "False" if new_messages else "True"
    message = json.dumps(new_messages, separators=(",", ":")) if new_messages else ""
    if cond is not None and cond.status == status and cond.message == message:
        return None
    out: dict[str, Any] = {
        "type": CONDITION_KRUISE_POD_READY,
        "status": status,
        "lastTransitionTime": format_time(now),
    }
    if message:
        out["message"] = message
    return out


def pre_normal_hook(lifecycle: Lifecycle | None) -> LifecycleHook | None:
    return lifecycle.pre_normal if lifecycle else None


def in_place_update_hook(lifecycle: Lifecycle | None) -> LifecycleHook | None:
    return lifecycle.in_place_update if lifecycle else None


def pre_delete_hook(lifecycle: Lifecycle | None) -> LifecycleHook | None:
    return lifecycle.pre_delete if lifecycle else None

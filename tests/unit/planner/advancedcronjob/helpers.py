"""Builders for AdvancedCronJob tests: the ACJ, its Job and BroadcastJob children, as the API server returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.job import Job

UID = "acj-uid"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pod_template(restart: str | None = "OnFailure") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox"}]}
    if restart is not None:
        spec["restartPolicy"] = restart
    return {"spec": spec}


def acj_dict(schedule: str = "0 * * * *", *, name: str = "acj", tz: str | None = None,
             created: str = "2026-01-01T00:00:00Z", policy: str | None = "Allow", sds: int | None = None,
             paused: bool | None = False, succ: int | None = 3, fail: int | None = 1, broadcast: bool = False,
             labels: dict[str, str] | None = None, last: str | None = None, rv: str = "7",
             status: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": schedule}
    for key, value in (("timeZone", tz), ("concurrencyPolicy", policy), ("startingDeadlineSeconds", sds),
                       ("paused", paused), ("successfulJobsHistoryLimit", succ), ("failedJobsHistoryLimit", fail)):
        if value is not None:
            spec[key] = value
    meta = {"labels": labels} if labels else {}
    if broadcast:
        spec["template"] = {"broadcastJobTemplate": {"metadata": meta, "spec": {"template": pod_template(),
                                                                                "completionPolicy": {"type": "Always"}}}}
    else:
        spec["template"] = {"jobTemplate": {"metadata": meta, "spec": {"template": pod_template()}}}
    st = dict(status or {})
    if last is not None:
        st["lastScheduleTime"] = last
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "AdvancedCronJob",
            "metadata": {"name": name, "namespace": "default", "uid": UID, "resourceVersion": rv, "generation": 1,
                         "creationTimestamp": created},
            "spec": spec, "status": st}


def acj(schedule: str = "0 * * * *", **kw: Any) -> AdvancedCronJob:
    return msgspec.convert(acj_dict(schedule, **kw), AdvancedCronJob)


def job(slot: str | None, *, name: str = "", state: str | None = None, start: str | None = None,
        kind: str = "Job", uid: str = "") -> Any:
    meta: dict[str, Any] = {"name": name or f"acj-{int(t(slot).timestamp()) if slot else 'x'}", "namespace": "default",
                            "uid": uid or f"uid-{name or slot}", "resourceVersion": "1",
                            "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "AdvancedCronJob",
                                                 "name": "acj", "uid": UID, "controller": True}]}
    if slot is not None:
        meta["annotations"] = {"apps.kruise.io/scheduled-at": slot}
    status: dict[str, Any] = {}
    if state:
        status["conditions"] = [{"type": state, "status": "True"}]
    if start:
        status["startTime"] = start
    body = {"apiVersion": "batch/v1" if kind == "Job" else "apps.kruise.io/v1alpha1", "kind": kind, "metadata": meta,
            "status": status}
    return msgspec.convert(body, Job if kind == "Job" else BroadcastJob)

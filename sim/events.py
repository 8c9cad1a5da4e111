"""The Event objects the simulated control plane writes (kubelet, scheduler, job and node controllers).

Each component reports as its Kubernetes counterpart does: an Event named `<object>.<random hex>` in the
object's namespace, its involvedObject, the component as source and reporting component, first/last
timestamp now and count 1. Built here once so every component's Events read alike in `kubectl describe`.
"""

from __future__ import annotations

import secrets
from typing import Any

from sim.store import now_iso


def event_body(obj: dict[str, Any], *, kind: str, api_version: str, type_: str, reason: str, message: str,
               component: str, host: str = "", field_path: str = "") -> dict[str, Any]:
    meta = obj["metadata"]
    ns = meta.get("namespace", "")
    involved = {"kind": kind, "namespace": ns, "name": meta["name"], "uid": meta.get("uid", ""),
                "apiVersion": api_version}
    if meta.get("resourceVersion") and kind != "Pod":
        involved["resourceVersion"] = meta["resourceVersion"]
    if field_path:
        involved["fieldPath"] = field_path
    ts = now_iso()
    source = {"component": component, **({"host": host} if host else {})}
    body: dict[str, Any] = {
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
        "type": type_,
        "reportingComponent": component,
    }
    if host:
        body["reportingInstance"] = host
    return body


__all__ = ["event_body"]

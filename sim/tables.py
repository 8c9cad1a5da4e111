"""Server-side printing (`meta.k8s.io/v1` Table), which `kubectl get` asks for."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sim import job_api
from sim.resources import ResourceType


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 192:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    y = d // 365
    if d < 365 * 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - t).total_seconds())


_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|\d+)\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The subset of JSONPath that printer columns use: `.a.b`, `[*]`, `[0]`, optionally wrapped in {}."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    cur = [obj]
    for m in _TOKEN.finditer(path):
        key, idx = m.groups()
        nxt: list[Any] = []
        for c in cur:
            if key is not None:
                if isinstance(c, dict) and key in c:
                    nxt.append(c[key])
            elif idx == "*":
                if isinstance(c, list):
                    nxt.extend(c)
            elif isinstance(c, list) and int(idx) < len(c):
                nxt.append(c[int(idx)])
        cur = nxt
    return cur


def _col(
    name: str, type_: str = "string", priority: int = 0, fmt: str = "", desc: str = ""
) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": desc or name, "priority": priority}


NAME_COL = _col("Name", fmt="name", desc="Name must be unique within a namespace.")


def _pod_row(p: dict[str, Any]) -> list[Any]:
    meta, spec, status = p["metadata"], p.get("spec") or {}, p.get("status") or {}
    cs = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in cs:
        st = c.get("state") or {}
        if st.get("waiting", {}).get("reason"):
            reason = st["waiting"]["reason"]
        elif st.get("terminated", {}).get("reason"):
            reason = st["terminated"]["reason"]
    if meta.get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    gates_cell = (
        f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
        if gates
        else "<none>"
    )
    return [
        meta["name"],
        f"{ready}/{total}",
        reason,
        str(restarts),
        age(meta.get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        gates_cell,
    ]


POD_COLS = [
    NAME_COL,
    _col("Ready"),
    _col("Status"),
    _col("Restarts"),
    _col("Age"),
    _col("IP", priority=1),
    _col("Node", priority=1),
    _col("Nominated Node", priority=1),
    _col("Readiness Gates", priority=1),
]


def _node_row(n: dict[str, Any]) -> list[Any]:
    conds = {c.get("type"): c.get("status") for c in (n.get("status") or {}).get("conditions") or []}
    st = "Ready" if conds.get("Ready") == "True" else "NotReady"
    if (n.get("spec") or {}).get("unschedulable"):
        st += ",SchedulingDisabled"
    info = (n.get("status") or {}).get("nodeInfo") or {}
    return [
        n["metadata"]["name"],
        st,
        "<none>",
        age(n["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
    ]


def _event_row(e: dict[str, Any]) -> list[Any]:
    io = e.get("involvedObject") or {}
    last = e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp")
    return [
        age(last[:19] + "Z" if last and len(last) > 20 else last),
        e.get("type", ""),
        e.get("reason", ""),
        f"{(io.get('kind') or '').lower()}/{io.get('name', '')}",
        e.get("message", ""),
    ]


JOB_COLS = [
    NAME_COL,
    _col("Completions", desc="The desired number of successfully finished pods the job should be run with."),
    _col("Duration", desc="Time required to complete the job."),
    _col("Age"),
    _col("Containers", priority=1, desc="Names of each container in the template."),
    _col("Images", priority=1, desc="Images referenced by each container in the template."),
    _col("Selector", priority=1, desc="Query over pods that should match the replicas count."),
]


def _selector_string(sel: dict[str, Any] | None) -> str:
    """metav1.FormatLabelSelector for matchLabels/matchExpressions."""
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), sorted(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _job_row(j: dict[str, Any]) -> list[Any]:
    """pkg/printers/internalversion printJob (1.20)."""
    secs = job_api.duration_seconds(j, datetime.now(UTC))
    containers = ((j.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return [
        j["metadata"]["name"],
        job_api.completions_cell(j),
        "" if secs is None else human_duration(secs),
        age(j["metadata"].get("creationTimestamp")),
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        _selector_string((j.get("spec") or {}).get("selector")),
    ]


def columns_and_rows(
    rt: ResourceType, items: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    if rt.group == "" and rt.kind == "Pod":
        return POD_COLS, [_pod_row(p) for p in items]
    if rt.group == "" and rt.kind == "Node":
        return [NAME_COL, _col("Status"), _col("Roles"), _col("Age"), _col("Version")], [
            _node_row(n) for n in items
        ]
    if rt.group == "batch" and rt.kind == "Job":
        return JOB_COLS, [_job_row(j) for j in items]
    if rt.group == "" and rt.kind == "Namespace":
        return [NAME_COL, _col("Status"), _col("Age")], [
            [
                o["metadata"]["name"],
                (o.get("status") or {}).get("phase", ""),
                age(o["metadata"].get("creationTimestamp")),
            ]
            for o in items
        ]
    if rt.group == "" and rt.kind == "Event":
        return [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")], [
            _event_row(e) for e in items
        ]
    if rt.printer_columns:
        cols = [NAME_COL] + [
            _col(
                c["name"],
                c.get("type", "string"),
                int(c.get("priority", 0)),
                c.get("format", ""),
                c.get("description", ""),
            )
            for c in rt.printer_columns
        ]
        rows = []
        for o in items:
            row: list[Any] = [o["metadata"]["name"]]
            for c in rt.printer_columns:
                vals = jsonpath(o, c["jsonPath"])
                if not vals:
                    row.append(None)
                elif c.get("type") == "date":
                    row.append(age(vals[0]))
                elif len(vals) == 1:
                    row.append(vals[0])
                else:
                    row.append(",".join(str(v) for v in vals))
            rows.append(row)
        return cols, rows
    return [NAME_COL, _col("Age")], [
        [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"))] for o in items
    ]


def table(rt: ResourceType, items: list[dict[str, Any]], rv: str, include_object: str) -> dict[str, Any]:
    cols, rows = columns_and_rows(rt, items)
    out_rows = []
    for o, cells in zip(items, rows, strict=True):
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        out_rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": cols,
        "rows": out_rows,
    }

"""Every Kubernetes API call each kruisebus service makes, as one table: the source of its RBAC.

Least privilege needs the exact list of (API group, resource, verbs) per service, and a list written
by hand in the Helm chart drifts from the code the day a workload kind is added. So the list is
derived here from the code's own tables: the watcher lists and watches every row of
`schemas.kinds.KINDS`; the executor performs what the registered planners decide (their workload's
spec and status, the objects the workloads own, pods and their status, Events); the webhook keeps its
two webhook configurations' caBundle (and that of the CRDs it converts) current. `python -m services.rbac` writes the chart's
`files/rbac.yaml` from this table (the ClusterRoles are rendered from that file), and a test checks
the rendered chart against the table: nothing missing, nothing extra.

The node agent's calls depend on its container runtime (`--runtime kube` pulls through pods,
`--runtime cri` talks to the node's containerd and reads pull secrets), so it has one role per runtime.
A service whose calls do not exist yet (the prober) has no rows: its ServiceAccount gets no ClusterRole
until its code makes a call and a row here says so.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import yaml

from schemas.kinds import LISTED, WORKLOADS
from schemas.messages import EVENTS, PODS, Resource
from services import chartfiles
from services.names import EXECUTOR, NODE_AGENT, PLANNER, PROBER, SERVICES, WATCHER, WEBHOOK

CHART_FILE = chartfiles.CHART_DIR / "files" / "rbac.yaml"

# The services' names come from services.names (also their NATS users'); the node agent's role is
# the one with the `kube` runtime (pull pods through the API server)
NODE_AGENT_CRI = f"{NODE_AGENT}-cri"  # with the `cri` runtime (the node's containerd; reads pull secrets)
ROLES: tuple[str, ...] = (*SERVICES, NODE_AGENT_CRI)
"""Every role the chart renders: a service's, and the node agent's with the cri runtime."""


@dataclass(frozen=True, order=True)
class Call:
    """One permission: `verbs` on `resource` (plural, optionally `/subresource`) in API `group`."""

    service: str
    group: str
    resource: str
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    why: str = ""


def _res(resource: Resource, sub: str = "") -> str:
    return f"{resource.plural}/{sub}" if sub else resource.plural


def _watcher() -> list[Call]:
    # services/watcher/service.py: Kube.list (cluster-wide) then Kube.watch, per listed kind; a kind
    # followed for one object only (`Kind.only`, with its metadata.name field selector) is granted by name
    return [Call(WATCHER, r.group, r.plural, ("list", "watch"), (k.only[1],) if k.only else (),
                 why=f"the {k.kind} state" if k.only is None else f"the {k.kind} {k.only[0]}/{k.only[1]}")
            for k in LISTED if (r := k.resource) is not None]


def _executor() -> list[Call]:
    # services/executor/service.py performs the planners' CreateOp/PatchOp/DeleteOp
    from services.planner.workloads import owned_kinds

    calls: list[Call] = []
    for k in WORKLOADS:
        r = k.resource
        if r is None:
            continue
        calls.append(Call(EXECUTOR, r.group, _res(r), ("get", "patch"),
                          why="a create's owner check (get); spec patches (partition, scale)"))
        calls.append(Call(EXECUTOR, r.group, _res(r, "status"), ("patch",), why="the workload's status"))
    owned = [PODS] + [r for k in owned_kinds().values() if (r := k.resource) is not None]
    for r in dict.fromkeys(owned):
        calls.append(Call(EXECUTOR, r.group, _res(r), ("create", "delete", "get", "patch"),
                          why="what a workload owns: created, patched, deleted; get settles a create's 500 and AlreadyExists"))
    calls.append(Call(EXECUTOR, PODS.group, _res(PODS, "status"), ("patch",),
                      why="readiness gate conditions (InPlaceUpdateReady, lifecycle)"))
    calls.append(Call(EXECUTOR, EVENTS.group, _res(EVENTS), ("create",), why="Kruise's Events on the workload"))
    return calls


def _webhook() -> list[Call]:
    # services/webhook/server.py WebhookServer.register: get, then create if missing or patch the caBundle
    from services.webhook.server import (
        MUTATING_CONFIG_NAME,
        MUTATING_CONFIGS,
        VALIDATING_CONFIG_NAME,
        VALIDATING_CONFIGS,
    )

    calls: list[Call] = []
    for r, name in ((MUTATING_CONFIGS, MUTATING_CONFIG_NAME), (VALIDATING_CONFIGS, VALIDATING_CONFIG_NAME)):
        calls.append(Call(WEBHOOK, r.group, _res(r), ("get", "patch"), (name,),
                          why="keep the caBundle of its own configuration current"))
        # create cannot be limited by name (the object does not exist yet)
        calls.append(Call(WEBHOOK, r.group, _res(r), ("create",), why="register when the chart did not"))
    # WebhookServer.register_conversion: the CRDs served in two versions point their conversion here
    from services.webhook.conversion import CONVERTED, CRDS

    calls.append(Call(WEBHOOK, CRDS.group, _res(CRDS), ("get", "patch"), tuple(c.crd_name for c in CONVERTED),
                      why="keep the caBundle of the CRD conversion webhook current"))
    return calls


def _node_agent() -> list[Call]:
    # services/runtime/kubepod.py (the `kube` runtime): the Node's status.images, pull pods pinned to
    # the node (created, read until the kubelet pulled, deleted; leftovers swept by a cluster-wide list);
    # services/runtime/auth.py (the `cri` runtime): the pull secrets an ImagePullJob names
    from schemas.messages import NODES

    return [
        Call(NODE_AGENT, NODES.group, _res(NODES), ("get",), why="images already on the node"),
        Call(NODE_AGENT, PODS.group, _res(PODS), ("create", "delete", "get", "list"),
             why="short-lived pull pods on the node"),
        Call(NODE_AGENT_CRI, "", "secrets", ("get",), why="registry credentials of a pull"),
    ]


def table() -> list[Call]:
    """Every call of every service (the planner talks only to NATS: no rows)."""
    return sorted(_watcher() + _executor() + _webhook() + _node_agent())


def rules(service: str) -> list[dict[str, list[str]]]:
    """The ClusterRole rules of one service, merged per (group, resource names, verbs)."""
    merged: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for c in table():
        if c.service == service:
            merged.setdefault((c.group, c.resource_names, tuple(sorted(c.verbs))), []).append(c.resource)
    out: list[dict[str, list[str]]] = []
    for (group, names, verbs), resources in sorted(merged.items()):
        rule = {"apiGroups": [group], "resources": sorted(set(resources)), "verbs": list(verbs)}
        if names:
            rule["resourceNames"] = list(names)
        out.append(rule)
    return out


def chart_file() -> str:
    """The chart's files/rbac.yaml: service -> ClusterRole rules."""
    doc = {service: rules(service) for service in ROLES}
    head = "# Generated by `python -m services.rbac --write` from services/rbac.py. Do not edit.\n"
    return head + yaml.safe_dump(doc, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    return chartfiles.generate(argv, prog="python -m services.rbac", description=__doc__.splitlines()[0],
                               path=CHART_FILE, render=chart_file)


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["CHART_FILE", "Call", "EXECUTOR", "NODE_AGENT", "NODE_AGENT_CRI", "PLANNER", "PROBER", "ROLES",
           "SERVICES", "WATCHER", "WEBHOOK", "chart_file", "main", "rules", "table"]

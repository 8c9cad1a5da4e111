"""When has the planner seen the effect of what it decided? (Kruise's expectations, as a predicate.)

The pure planner returns, with each pass, what it expects to observe next; whoever drives it (the
planner service, the test kubelet) must not plan that CloneSet again until these hold or time out.
One definition, so the service and the tests cannot disagree on what "observed" means.

Node work (an image pull) is taken up by a node's agent, not the API server: its expectation is the
agent's report (`reported`). It holds back only the command it belongs to (`command_scoped`), not the
workload: a NodeImage whose node has a queue of pulls keeps folding the finished ones into its status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from schemas.kube import Pod
from schemas.messages import Expectation

Reports = Callable[[str], str | None]
"""uid of a reporting object (a `PullResult`) -> the command id it answers (None: no such object)."""


def _no_reports(uid: str) -> str | None:
    return None


def command_scoped(exp: Expectation) -> bool:
    """Whether the expectation holds back only its own command (node work), not the whole workload."""
    return exp.kind == "reported"


def expectation_met(exp: Expectation, pods_by_name: Mapping[str, Pod], reports: Reports = _no_reports,
                    shared_pods: Mapping[str, Pod] | None = None) -> bool:
    """``shared_pods``: the pods no workload owns, by uid (what a `changed` expectation is about)."""
    if exp.kind == "reported":
        return reports(exp.key) == exp.value
    if exp.kind == "changed":
        seen = (shared_pods or {}).get(exp.key)
        return seen is None or seen.metadata.resource_version != exp.value
    pod = pods_by_name.get(exp.pod)
    if exp.kind == "present":
        return pod is not None
    if exp.kind == "absent":
        return pod is None or pod.metadata.deletion_timestamp is not None
    if pod is None:
        return True  # the pod is gone: nothing more will be observed about it
    if exp.kind == "label":
        return pod.metadata.labels.get(exp.key) == exp.value
    if exp.kind == "annotation-absent":
        return exp.key not in pod.metadata.annotations
    return True


__all__ = ["Reports", "command_scoped", "expectation_met"]

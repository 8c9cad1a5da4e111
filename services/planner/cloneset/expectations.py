"""When has the planner seen the effect of what it decided? (Kruise's expectations, as a predicate.)

The pure planner returns, with each pass, what it expects to observe next; whoever drives it (the
planner service, the test kubelet) must not plan that CloneSet again until these hold or time out.
One definition, so the service and the tests cannot disagree on what "observed" means.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.kube import Pod
from services.planner.cloneset.view import Expectation


def expectation_met(exp: Expectation, pods_by_name: Mapping[str, Pod]) -> bool:
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

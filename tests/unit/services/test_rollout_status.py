"""`rollout status` lines for the states a CloneSet passes through (what a user waiting on it reads)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from services.rollout_status import status_message


def cs(spec_replicas: int = 5, generation: int = 2, **status: Any) -> CloneSet:
    base = {"observedGeneration": 2, "replicas": spec_replicas, "updateRevision": "web-b", "currentRevision": "web-a"}
    return msgspec.convert({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": spec_replicas},
                            "status": {**base, **status}}, CloneSet)


ROWS = [
    ("spec-not-observed", cs(generation=3), "Waiting for CloneSet spec update to be observed...", False),
    ("scaling-up", cs(replicas=3, expectedUpdatedReplicas=5),
     'Waiting for clone "web" rollout to finish: 3 of 5 pods have been created...', False),
    ("scaling-down", cs(replicas=6, expectedUpdatedReplicas=5),
     'Waiting for clone "web" rollout to finish: 1 old pods are pending termination...', False),
    ("updating", cs(expectedUpdatedReplicas=5, updatedReplicas=2, updatedReadyReplicas=1),
     'Waiting for clone "web" rollout to finish: 2 out of 5 new pods have been updated...', False),
    ("becoming-ready", cs(expectedUpdatedReplicas=5, updatedReplicas=5, updatedReadyReplicas=4),
     'Waiting for clone "web" rollout to finish: 4 of 5 updated pods are ready...', False),
    ("status-catching-up", cs(expectedUpdatedReplicas=5, updatedReplicas=5, updatedReadyReplicas=5),
     'Waiting for clone "web" rollout to finish: current revision web-a is not yet web-b...', False),
    ("complete", cs(expectedUpdatedReplicas=5, updatedReplicas=5, updatedReadyReplicas=5, currentRevision="web-b"),
     'clone "web" successfully rolled out: 5 pods at revision web-b', True),
    ("partition-waiting", cs(expectedUpdatedReplicas=2, updatedReplicas=1, updatedReadyReplicas=1),
     "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...", False),
    ("partition-complete", cs(expectedUpdatedReplicas=2, updatedReplicas=2, updatedReadyReplicas=2),
     "partitioned roll out complete: 2 new pods have been updated...", True),
    ("partition-at-creation", cs(expectedUpdatedReplicas=2, updatedReplicas=5, updatedReadyReplicas=5,
                                 currentRevision="web-b"),
     'clone "web" successfully rolled out: 5 pods at revision web-b', True),
]


@pytest.mark.parametrize(("obj", "line", "done"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_status_line(obj: CloneSet, line: str, done: bool) -> None:
    assert status_message(obj) == (line, done)

"""The kube runtime's pull pod and how its status reads (services/runtime/kubepod.py, pure parts)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.constants import LABEL_IMAGE_PULL_POD
from services.errors import ImageNotFound, ImagePullError, ImagePullUnauthorized, InvalidImageName
from services.runtime.kubepod import _Pod, pull_outcome, pull_pod


def test_pull_pod_is_pinned_tolerates_everything_and_never_restarts() -> None:
    p = pull_pod(
        "nginx:1.25",
        "node-7",
        name="image-pull-x",
        namespace="ns",
        policy="Always",
        timeout=42.5,
        pull_secrets=["regcred"],
    )
    spec = p["spec"]
    assert spec["nodeName"] == "node-7"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 43
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    [c] = spec["containers"]
    assert (c["image"], c["imagePullPolicy"], c["command"]) == ("nginx:1.25", "Always", ["/bin/true"])
    assert p["metadata"]["labels"] == {LABEL_IMAGE_PULL_POD: "true"}
    assert (
        "imagePullSecrets"
        not in pull_pod("i", "n", name="x", namespace="ns", policy="IfNotPresent", timeout=1)["spec"]
    )


def pod(
    state: dict[str, Any] | None = None, image_id: str = "", phase: str = "Pending", **status: Any
) -> _Pod:
    cs = [] if state is None else [{"name": "pull", "imageID": image_id, "state": state}]
    return msgspec.convert({"status": {"phase": phase, "containerStatuses": cs, **status}}, _Pod)


@pytest.mark.parametrize(
    ("p", "outcome"),
    [
        (pod(), ("waiting", None)),
        (pod({"waiting": {"reason": "ContainerCreating"}}), ("pulling", None)),
        (pod({"running": {"startedAt": "t"}}, "nginx@sha256:ab"), ("pulled", "nginx@sha256:ab")),
        (
            pod({"terminated": {"reason": "Completed"}}, "nginx@sha256:ab", "Succeeded"),
            ("pulled", "nginx@sha256:ab"),
        ),
        (pod({"terminated": {"reason": "StartError"}}), ("pulled", "")),
        (
            pod({"waiting": {"reason": "CreateContainerError", "message": "no such file /bin/true"}}),
            ("pulled", ""),
        ),
        (pod({"waiting": {"reason": "RunContainerError"}}), ("pulled", "")),
    ],
    ids=["unscheduled", "creating", "running", "completed", "start-error", "no-command", "run-error"],
)
def test_pull_outcome_done_once_past_the_pull(p: _Pod, outcome: tuple[str, str | None]) -> None:
    assert pull_outcome("nginx", p) == outcome


@pytest.mark.parametrize(
    ("reason", "message", "cls"),
    [
        (
            "ErrImagePull",
            'rpc error: code = NotFound desc = failed to pull and unpack image "x": not found',
            ImageNotFound,
        ),
        ("ImagePullBackOff", 'Back-off pulling image "x"', ImagePullError),
        ("ErrImagePull", "failed to resolve reference: 401 Unauthorized", ImagePullUnauthorized),
        (
            "InvalidImageName",
            'Failed to apply default image tag "X": couldn\'t parse image reference',
            InvalidImageName,
        ),
    ],
    ids=["not-found", "backoff", "unauthorized", "invalid"],
)
def test_pull_outcome_failures_carry_the_kubelets_reason(
    reason: str, message: str, cls: type[ImagePullError]
) -> None:
    with pytest.raises(cls) as e:
        pull_outcome("x", pod({"waiting": {"reason": reason, "message": message}}))
    assert e.value.kube_reason == reason
    assert e.value.message == message


def test_pull_outcome_pod_failed_before_any_container_status() -> None:
    with pytest.raises(ImagePullError, match="Pod was active on the node longer than the specified deadline"):
        pull_outcome(
            "x",
            pod(
                phase="Failed",
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the specified deadline",
            ),
        )


def test_pull_pod_carries_the_jobs_sandbox_labels_and_annotations_but_keeps_its_own_label() -> None:
    from services.runtime import SandboxConfig

    sandbox = SandboxConfig(labels={"team": "a", LABEL_IMAGE_PULL_POD: "no"}, annotations={"note": "x"})
    p = pull_pod("i", "n", name="x", namespace="ns", policy="IfNotPresent", timeout=1, sandbox=sandbox)
    assert p["metadata"]["labels"] == {"team": "a", LABEL_IMAGE_PULL_POD: "true"}
    assert p["metadata"]["annotations"] == {"note": "x"}

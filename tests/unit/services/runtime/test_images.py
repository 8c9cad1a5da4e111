"""Image references and pull failures as every runtime reports them (services/runtime/images.py)."""

from __future__ import annotations

import pytest

from services.errors import (
    ImageNotFound,
    ImagePullError,
    ImagePullTimeout,
    ImagePullUnauthorized,
    InvalidImageName,
    PermanentError,
    TransientError,
)
from services.runtime.images import parse_image, pull_error, registry_host


@pytest.mark.parametrize(
    ("image", "normal", "repository"),
    [
        ("nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io/library/nginx:1.25", "docker.io/library/nginx"),
        ("library/nginx:1.25", "docker.io/library/nginx:1.25", "docker.io/library/nginx"),
        (
            "openkruise/kruise-manager:v1.5",
            "docker.io/openkruise/kruise-manager:v1.5",
            "docker.io/openkruise/kruise-manager",
        ),
        ("127.0.0.1:5000/tiny:v1", "127.0.0.1:5000/tiny:v1", "127.0.0.1:5000/tiny"),
        ("localhost/app", "localhost/app:latest", "localhost/app"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "docker.io/library/busybox"),
        (
            "busybox@sha256:" + "a" * 64,
            "docker.io/library/busybox@sha256:" + "a" * 64,
            "docker.io/library/busybox",
        ),
    ],
    ids=["bare", "tag", "library", "hub-org", "ip-port", "localhost", "registry", "hub-alias", "digest"],
)
def test_parse_image_normalises_like_the_kubelet(image: str, normal: str, repository: str) -> None:
    ref = parse_image(image)
    assert str(ref) == normal
    assert ref.repository == repository


@pytest.mark.parametrize(
    "image",
    ["", "Nginx", "nginx:", "nginx:-bad", "a//b", "nginx@sha256:short", "x" * 256],
    ids=["empty", "upper-case-repo", "empty-tag", "bad-tag", "empty-component", "bad-digest", "too-long"],
)
def test_invalid_image_names_fail_with_the_kubelets_reason(image: str) -> None:
    with pytest.raises(InvalidImageName) as e:
        parse_image(image)
    assert e.value.kube_reason == "InvalidImageName"
    assert "invalid reference format" in e.value.message
    assert isinstance(e.value, PermanentError)


@pytest.mark.parametrize(
    ("message", "cls", "reason"),
    [
        (
            'rpc error: code = NotFound desc = failed to pull and unpack image "x": failed to resolve reference "x": x: not found',
            ImageNotFound,
            "not-found",
        ),
        ("manifest unknown: manifest unknown", ImageNotFound, "not-found"),
        (
            "failed to resolve reference: pulling from host 127.0.0.1:5000 failed with status code [manifests v1]: 401 Unauthorized",
            ImagePullUnauthorized,
            "unauthorized",
        ),
        (
            "pull access denied, repository does not exist or may require authorization: server message: "
            "insufficient_scope: authorization failed",
            ImagePullUnauthorized,
            "unauthorized",
        ),
        ("rpc error: code = DeadlineExceeded desc = context deadline exceeded", ImagePullTimeout, "timeout"),
        ('couldn\'t parse image reference "A": invalid reference format', InvalidImageName, "invalid-image"),
        (
            "rpc error: code = Unknown desc = failed to copy: httpReadSeeker: connection reset",
            ImagePullError,
            "pull-failed",
        ),
    ],
    ids=[
        "containerd-not-found",
        "registry-manifest-unknown",
        "registry-401",
        "hub-denied",
        "deadline",
        "invalid",
        "other",
    ],
)
def test_pull_error_classifies_runtime_messages(message: str, cls: type[ImagePullError], reason: str) -> None:
    err = pull_error("img:1", message, kube_reason="ErrImagePull")
    assert type(err) is cls
    assert err.reason == reason
    assert err.message == message
    assert err.image == "img:1"
    assert str(err).startswith(err.kube_reason + ": ")


def test_pull_error_settles_on_the_bus_by_its_cause() -> None:
    assert isinstance(pull_error("i", "not found"), PermanentError)
    assert isinstance(pull_error("i", "401 Unauthorized"), PermanentError)
    timeout = pull_error("i", "context deadline exceeded")
    assert isinstance(timeout, TransientError) and not isinstance(timeout, PermanentError)


@pytest.mark.parametrize(
    ("server", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("docker.io", "docker.io"),
    ],
    ids=["hub-url", "host-port", "http-url", "hub"],
)
def test_registry_host_of_docker_config_keys(server: str, host: str) -> None:
    assert registry_host(server) == host

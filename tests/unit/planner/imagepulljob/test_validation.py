"""ImagePullJob admission: every rule of Kruise's validating webhook, its defaults, and the webhook's
pure handlers (`pkg/webhook/imagepulljob/*`)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from schemas.admission import AdmissionRequest
from services.planner.imagepulljob.defaults import default_image_pull_job
from services.planner.imagepulljob.validation import parallelism_of, validate_image_pull_job
from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
from services.webhook.admission import (
    mutate_image_pull_job,
    mutate_node_image,
    validate_image_pull_job_request,
    validate_node_image_request,
)
from sim.patch import json_patch as apply_patch
from tests.unit.planner.imagepulljob.builders import job

GATES_ON = parse_feature_gates("ImagePullJobGate=true")

# (id, job() keyword arguments, expected message or None = valid)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("valid-defaults", {}, None),
    ("valid-names", {"selector": {"names": ["n1", "n2"]}}, None),
    ("valid-label-selector", {"selector": {"matchLabels": {"zone": "a"}}}, None),
    ("valid-pod-selector", {"pod_selector": {"matchLabels": {"app": "a"}}}, None),
    ("valid-int-string-parallelism", {"parallelism": "3"}, None),
    ("valid-zero-parallelism-pauses", {"parallelism": 0}, None),
    ("valid-never", {"completion": {"type": "Never"}}, None),
    ("valid-deadline-equal-timeout", {"completion": {"type": "Always", "activeDeadlineSeconds": 600}}, None),
    (
        "names-and-label-selector",
        {"selector": {"names": ["n1"], "matchLabels": {"a": "b"}}},
        "can not set both names and labelSelector in this spec.selector",
    ),
    (
        "invalid-selector-operator",
        {"selector": {"matchExpressions": [{"key": "a", "operator": "Bad"}]}},
        'invalid selector: "Bad" is not a valid label selector operator',
    ),
    ("duplicated-names", {"selector": {"names": ["n1", "n1"]}}, "duplicated name in selector names"),
    (
        "selector-and-pod-selector",
        {"selector": {"names": ["n1"]}, "pod_selector": {"matchLabels": {"a": "b"}}},
        "can not set both selector and podSelector",
    ),
    (
        "invalid-pod-selector",
        {"pod_selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        "invalid podSelector: for 'in', 'notin' operators, values set can't be empty",
    ),
    ("empty-image", {"image": ""}, "image can not be empty"),
    (
        "uppercase-image",
        {"image": "Nginx:1"},
        "invalid image Nginx:1: invalid reference format: repository name must be lowercase",
    ),
    ("malformed-image", {"image": "nginx:::"}, "invalid image nginx:::: invalid reference format"),
    ("percent-parallelism", {"parallelism": "50%"}, "parallelism does not support percentage value"),
    (
        "non-integer-parallelism",
        {"parallelism": "abc"},
        'parallelism must be a valid integer: strconv.ParseInt: parsing "abc": invalid syntax',
    ),
    ("negative-parallelism", {"parallelism": -1}, "parallelism must be non-negative"),
    ("negative-string-parallelism", {"parallelism": "-2"}, "parallelism must be non-negative"),
    (
        "always-deadline-below-timeout",
        {"completion": {"type": "Always", "activeDeadlineSeconds": 300}},
        "completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default 600)",
    ),
    (
        "always-deadline-below-default-timeout",
        {"completion": {"type": "Always", "activeDeadlineSeconds": 599}, "pull_policy": {}},
        "completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default 600)",
    ),
    (
        "never-with-ttl",
        {"completion": {"type": "Never", "ttlSecondsAfterFinished": 60}},
        "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
    ),
    (
        "never-with-deadline",
        {"completion": {"type": "Never", "activeDeadlineSeconds": 6000}},
        "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
    ),
    (
        "unknown-completion-type",
        {"completion": {"type": "Sometimes"}},
        "unknown type of completionPolicy: Sometimes",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(kwargs: dict[str, Any], message: str | None) -> None:
    error = validate_image_pull_job(job(**kwargs))
    assert (error.message if error else None) == message


def test_pull_secrets_are_immutable() -> None:
    error = validate_image_pull_job(job(pull_secrets=["b"]), old=job(pull_secrets=["a"]))
    assert error is not None and error.message == "spec.pullSecrets is immutable" and error.code == 403
    assert validate_image_pull_job(job(pull_secrets=["a"]), old=job(pull_secrets=["a"])) is None


def test_errors_name_their_field() -> None:
    error = validate_image_pull_job(job(parallelism="50%"))
    assert error is not None and error.field == "spec.parallelism"
    error = validate_image_pull_job(job(completion={"type": "Never", "ttlSecondsAfterFinished": 1}))
    assert error is not None and error.field == "spec.completionPolicy"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 1), (0, 0), (4, 4), ("3", 3), ("50%", 0)],
    ids=["default-1", "zero-pauses", "int", "int-string", "percent-reads-as-0"],
)
def test_controller_reads_parallelism(value: Any, expected: int) -> None:
    assert parallelism_of(job(parallelism=value)) == expected


def test_defaults() -> None:
    raw = {"metadata": {"name": "j"}, "spec": {"image": "nginx"}}
    out = default_image_pull_job(raw, add_protection=True)
    assert out["spec"] == {
        "image": "nginx",
        "completionPolicy": {"type": "Always"},
        "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
        "imagePullPolicy": "IfNotPresent",
    }
    assert out["metadata"]["finalizers"] == ["apps.kruise.io/deletion-protection"]
    assert raw == {"metadata": {"name": "j"}, "spec": {"image": "nginx"}}  # input untouched
    kept = default_image_pull_job(
        {
            "spec": {
                "image": "x",
                "imagePullPolicy": "Always",
                "pullPolicy": {"timeoutSeconds": 30},
                "completionPolicy": {"type": "Never"},
            }
        },
        add_protection=False,
    )
    assert kept["spec"]["imagePullPolicy"] == "Always" and kept["spec"]["completionPolicy"] == {
        "type": "Never"
    }
    assert kept["spec"]["pullPolicy"] == {"timeoutSeconds": 30, "backoffLimit": 3}
    assert "finalizers" not in kept.get("metadata", {})


def request(op: str, obj: dict[str, Any] | None, old: dict[str, Any] | None = None) -> AdmissionRequest:
    return msgspec.convert(
        {
            "uid": "r1",
            "operation": op,
            "namespace": "default",
            "name": "j",
            "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "ImagePullJob"},
            "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "imagepulljobs"},
            "object": obj,
            "oldObject": old,
        },
        AdmissionRequest,
    )


def raw_job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "ImagePullJob",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {"image": "nginx:1.21", "completionPolicy": {"type": "Always"}, **spec},
    }


def test_mutating_handler_patches_defaults_and_finalizer_on_create() -> None:
    obj = raw_job()
    resp = mutate_image_pull_job(request("CREATE", obj))
    assert resp.allowed and resp.patch is not None
    ops = msgspec.json.decode(resp.patch if isinstance(resp.patch, bytes) else base64.b64decode(resp.patch))
    out = apply_patch(obj, ops)
    assert out["spec"]["pullPolicy"] == {"timeoutSeconds": 600, "backoffLimit": 3}
    assert out["spec"]["imagePullPolicy"] == "IfNotPresent"
    assert out["metadata"]["finalizers"] == ["apps.kruise.io/deletion-protection"]
    update = mutate_image_pull_job(request("UPDATE", out, out))
    assert update.allowed and update.patch is None  # nothing left to default, no finalizer on update


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"parallelism": "50%"}, "parallelism does not support percentage value"),
        (
            {"completionPolicy": {"type": "Never", "ttlSecondsAfterFinished": 30}},
            "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
        ),
    ],
    ids=["percent-parallelism", "never-with-ttl"],
)
def test_validating_handler_denies_with_kruise_message(spec: dict[str, Any], message: str) -> None:
    resp = validate_image_pull_job_request(request("CREATE", raw_job(**spec)), GATES_ON)
    assert not resp.allowed and resp.status is not None
    assert resp.status.code == 400 and resp.status.message == message


def test_validating_handler_forbids_while_gate_is_off() -> None:
    resp = validate_image_pull_job_request(request("CREATE", raw_job()), DEFAULT_GATES)
    assert not resp.allowed and resp.status is not None and resp.status.code == 403
    assert resp.status.message == "feature-gate ImagePullJobGate is not enabled"
    daemon_off = parse_feature_gates("KruiseDaemon=false,ImagePullJobGate=true")
    resp = validate_image_pull_job_request(request("CREATE", raw_job()), daemon_off)
    assert resp.status is not None and resp.status.message == "feature-gate KruiseDaemon is not enabled"


def test_pre_download_gate_turns_the_job_gate_on() -> None:
    gates = parse_feature_gates("PreDownloadImageForInPlaceUpdate=true")
    assert validate_image_pull_job_request(request("CREATE", raw_job()), gates).allowed


def test_validating_handler_update_of_pull_secrets() -> None:
    resp = validate_image_pull_job_request(
        request("UPDATE", raw_job(pullSecrets=["b"]), raw_job(pullSecrets=["a"])), GATES_ON
    )
    assert not resp.allowed and resp.status is not None
    assert (resp.status.code, resp.status.message) == (403, "spec.pullSecrets is immutable")


# --- NodeImage (mnodeimage.kb.io / vnodeimage.kb.io) ------------------------------------------------


def raw_node_image(tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "NodeImage",
        "metadata": {"name": "n1"},
        "spec": {"images": {"nginx": {"tags": tags}}},
    }


def ni_request(op: str, obj: dict[str, Any]) -> AdmissionRequest:
    return msgspec.convert(
        {
            "uid": "r2",
            "operation": op,
            "name": "n1",
            "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": "NodeImage"},
            "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": "nodeimages"},
            "object": obj,
        },
        AdmissionRequest,
    )


FULL_TAG = {"tag": "1", "createdAt": "2026-01-01T00:00:00Z", "pullPolicy": {"ttlSecondsAfterFinished": 60}}

NODE_IMAGE_CASES: list[tuple[str, list[dict[str, Any]], str | None]] = [
    ("valid", [FULL_TAG], None),
    ("empty-tag", [{**FULL_TAG, "tag": ""}], "tag for image nginx can not be empty"),
    ("duplicated-tag", [FULL_TAG, FULL_TAG], "duplicated tag 1 for image nginx"),
    (
        "no-created-at",
        [{"tag": "1", "pullPolicy": {"ttlSecondsAfterFinished": 60}}],
        "createAt field for nginx/1 can not be empty",
    ),
    ("negative-version", [{**FULL_TAG, "version": -1}], "version for nginx/1 can not be less than 0"),
    (
        "no-pull-policy",
        [{"tag": "1", "createdAt": "2026-01-01T00:00:00Z"}],
        "pullPolicy field for nginx/1 must set",
    ),
    (
        "no-ttl",
        [{**FULL_TAG, "pullPolicy": {"timeoutSeconds": 5}}],
        "pullPolicy.ttlSecondsAfterFinished for nginx/1 must set",
    ),
]


@pytest.mark.parametrize(
    ("tags", "message"), [c[1:] for c in NODE_IMAGE_CASES], ids=[c[0] for c in NODE_IMAGE_CASES]
)
def test_node_image_rule(tags: list[dict[str, Any]], message: str | None) -> None:
    answer = validate_node_image_request(ni_request("CREATE", raw_node_image(tags)))
    assert answer.allowed is (message is None)
    if message is not None:
        assert answer.status is not None and (answer.status.code, answer.status.message) == (400, message)


def test_node_image_too_many_images() -> None:
    obj = raw_node_image([FULL_TAG])
    obj["spec"]["images"] = {f"img{i}": {"tags": [FULL_TAG]} for i in range(257)}
    answer = validate_node_image_request(ni_request("CREATE", obj))
    assert (
        answer.status is not None
        and answer.status.message == "spec images length 257 can not be more than 256"
    )


def test_node_image_defaults_stamp_and_sort_tags() -> None:
    obj = raw_node_image([{"tag": "2"}, {"tag": "1", "createdAt": "2025-01-01T00:00:00Z"}])
    resp = mutate_node_image(ni_request("CREATE", obj), "2026-01-01T00:00:00Z")
    assert resp.patch is not None
    ops = msgspec.json.decode(resp.patch if isinstance(resp.patch, bytes) else base64.b64decode(resp.patch))
    tags = apply_patch(obj, ops)["spec"]["images"]["nginx"]["tags"]
    assert [t["tag"] for t in tags] == ["1", "2"]
    assert tags[1]["createdAt"] == "2026-01-01T00:00:00Z" and tags[0]["createdAt"] == "2025-01-01T00:00:00Z"
    assert tags[1]["pullPolicy"] == {"timeoutSeconds": 600, "backoffLimit": 3}

"""ControllerRevision mechanics every workload shares: FNV-1 + safe-encoding names, the template patch data, equality."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.constants import LABEL_HASH, LABEL_REVISION_HASH
from schemas.kube import ControllerRevision, ObjectMeta, OwnerReference, Pod, PodTemplateSpec
from services.planner.kit.gojson import go_json_bytes
from services.planner.kit.revision import (
    equal_revision,
    fnv1_32,
    hash_revision,
    is_pod_updated,
    revision_bytes,
    revision_name,
    safe_encode,
    short_hash,
    template_of,
    template_patch_data,
)


def template(image: str = "nginx:1.9.1") -> PodTemplateSpec:
    data: dict[str, Any] = {
        "metadata": {"labels": {"app": "test"}},
        "spec": {"containers": [{"name": "nginx", "image": image}]},
    }
    return msgspec.convert(data, type=PodTemplateSpec)


def rev(
    name: str, number: int, data: dict[str, Any], *, labels: dict[str, str] | None = None
) -> ControllerRevision:
    owner = OwnerReference(
        api_version="apps.kruise.io/v1alpha1",
        kind="CloneSet",
        name="test-cs",
        uid="test-uid",
        controller=True,
    )
    return ControllerRevision(
        metadata=ObjectMeta(
            name=name, namespace="default", labels=labels or {"app": "test"}, owner_references=[owner]
        ),
        revision=number,
        data=data,
    )


def pod(name: str, revision_label: str | None) -> Pod:
    labels = {} if revision_label is None else {LABEL_REVISION_HASH: revision_label}
    return Pod(metadata=ObjectMeta(name=name, namespace="default", labels=labels))


# ---------------------------------------------------------------- hashing known answers


def test_fnv1_32_known_answers() -> None:
    assert fnv1_32(b"") == 2166136261  # offset basis
    assert fnv1_32(b"a") == 0x050C5D7E  # FNV-1 (FNV-1a would be 0xE40C292C)
    assert fnv1_32(b"foobar") == 0x31F0B262


def test_safe_encode_known_answers() -> None:
    # digits map to alphabet[ord(c) % 27]: '0'->'4', '1'->'5', ..., '5'->'9', '6'->'b', ..., '9'->'f'
    assert safe_encode("0123456789") == "456789bcdf"
    assert safe_encode("2166136261") == "65bb57b6b5"
    assert hash_revision(b"", None) == "65bb57b6b5"


def test_hash_includes_collision_count_as_decimal_suffix() -> None:
    data = b'{"x":1}'
    assert hash_revision(data, 0) == safe_encode(str(fnv1_32(data + b"0")))
    assert hash_revision(data, 12) == safe_encode(str(fnv1_32(data + b"12")))
    assert hash_revision(data, 0) != hash_revision(data, 1)
    assert hash_revision(data, None) != hash_revision(data, 0)


def test_revision_name_truncates_prefix() -> None:
    assert revision_name("cs", "abc") == "cs-abc"
    assert revision_name("x" * 300, "h") == "x" * 223 + "-h"
    assert short_hash("my-cs-79d8d577cb") == "79d8d577cb"
    assert short_hash("nohyphen") == "nohyphen"


# ---------------------------------------------------------------- data layout, equality


def test_revision_data_layout_and_bytes() -> None:
    data = template_patch_data(template("img<1>&"))
    # Go re-encodes the decoded template: creationTimestamp null, and each container's struct-typed
    # `resources` as {} even though the stored CloneSet omits it
    assert data == {
        "spec": {
            "template": {
                "$patch": "replace",
                "metadata": {"creationTimestamp": None, "labels": {"app": "test"}},
                "spec": {"containers": [{"name": "nginx", "image": "img<1>&", "resources": {}}]},
            }
        }
    }
    assert revision_bytes(data) == (
        b'{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"test"}},'
        b'"spec":{"containers":[{"image":"img\\u003c1\\u003e\\u0026","name":"nginx","resources":{}}]}}}}'
    )
    assert go_json_bytes({"b": 1, "a": "\u2028"}) == b'{"a":"\\u2028","b":1}'


def test_template_of_rejects_foreign_data() -> None:
    with pytest.raises(ValueError):
        template_of(rev("x", 1, {"spec": {}}))


def test_is_pod_updated_long_and_short_forms() -> None:
    name = "test-cs-5b6c8c959"
    assert is_pod_updated(pod("p", name), name)
    assert is_pod_updated(pod("p", "5b6c8c959"), name)  # CloneSetShortHash label
    assert is_pod_updated(pod("p", "other-cs-5b6c8c959"), name)  # short hashes equal
    assert not is_pod_updated(pod("p", "test-cs-abc"), name)
    assert not is_pod_updated(pod("p", None), name)


def test_equal_revision_numeric_hash_labels() -> None:
    data = template_patch_data(template())
    a = rev("a", 1, data, labels={LABEL_HASH: "4567"})
    b = rev("b", 2, data, labels={LABEL_HASH: "4568"})
    c = rev("c", 3, data, labels={LABEL_HASH: "5b6c8c959"})
    assert not equal_revision(a, b)  # both numeric and different -> unequal despite equal data
    assert equal_revision(a, c)

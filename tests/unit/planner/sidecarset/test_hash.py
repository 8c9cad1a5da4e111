"""K26: the two SidecarSet hashes, byte for byte (Kruise's hash_test.go and the mutating webhook's test)."""

from __future__ import annotations

import pytest

from schemas.constants import ANNOTATION_SIDECARSET_HASH, ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE
from services.planner.sidecarset.defaults import default_sidecarset
from services.planner.sidecarset.hash import hash_input, sidecarset_hash, sidecarset_hash_without_image

C1 = [{"name": "container1", "image": "test-image"}]
PLAIN_INIT = [{"name": "container1", "image": "test-image"}]
NATIVE_INIT = [{"name": "container1", "image": "test-image", "restartPolicy": "Always"}]


@pytest.mark.parametrize(("containers", "inits", "expected", "expected_without"), [
    pytest.param(C1, [], "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78", None, id="K26a-containers"),
    pytest.param(C1, PLAIN_INIT, "w26c4x8fz245642fdv499b464248f974xddx4x55z5dw55bc6x66464fxz77dc78",
                 "8wzddb4dvv9c6x8zdc77z4z75987424f457dfv6724ddw6zbdx467wz5x24fc759", id="K26b-plain-init-not-hashed"),
    pytest.param(C1, NATIVE_INIT, "4xwx4d4844vd4v9x79wb4xbxf4xb29475cc4446v8cz2c2f2f5c5bw448vd42z8w",
                 "5725fw8bwbx249bw57v5892c847dzf48bww9zb7c86xb95264fdz26654847b2c8", id="K26c-native-init-hashed"),
])
def test_hash_vectors(containers: list[dict[str, object]], inits: list[dict[str, object]], expected: str,
                      expected_without: str | None) -> None:
    assert sidecarset_hash(containers, inits) == expected
    if expected_without is not None:
        assert sidecarset_hash_without_image(containers, inits) == expected_without


def test_hash_bytes_follow_go_member_order() -> None:
    assert hash_input(C1, [], without_image=False) == (
        b'{"containers":[{"name":"container1","image":"test-image","resources":{},"upgradeStrategy":{},'
        b'"shareVolumePolicy":{}}]}')


def test_webhook_defaulted_hashes_K26d() -> None:
    """The mutating webhook defaults, then hashes: the vector of sidecarset_mutating_test.go."""
    obj = default_sidecarset({"metadata": {"name": "s", "annotations": {ANNOTATION_SIDECARSET_HASH: "user"}},
                              "spec": {"containers": [{"name": "dns-f", "image": "dns:1.0"}]}})
    ann = obj["metadata"]["annotations"]
    assert ann[ANNOTATION_SIDECARSET_HASH] == "6wbd76bd7984x24fb4f44fv9222cw9v9bcf85x766744wddd4zwx927zzz2zb684"
    assert ann[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE] == \
        "82684vwf9d4cb4wz4vffx4ddfbb47ww4z4wwxdbwb8w2zbb7zvf4524cdd49bv94"


def test_defaults() -> None:
    obj = default_sidecarset({"metadata": {"name": "s"}, "spec": {
        "containers": [{"name": "c", "image": "c"}], "initContainers": [{"name": "i", "image": "i:1"}],
        "patchPodMetadata": [{"annotations": {"k": "v"}}], "injectionStrategy": {"revision": {"customVersion": "1"}}}})
    spec = obj["spec"]
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "maxUnavailable": 1, "partition": 0}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["containers"][0]["podInjectPolicy"] == "BeforeAppContainer"
    assert spec["containers"][0]["imagePullPolicy"] == "Always"  # tag absent = latest
    assert spec["initContainers"][0]["podInjectPolicy"] == "AfterAppContainer"
    assert spec["initContainers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert spec["containers"][0]["upgradeStrategy"] == {"upgradeType": "ColdUpgrade"}
    assert spec["containers"][0]["shareVolumePolicy"] == {"type": "disabled"}
    assert spec["patchPodMetadata"][0]["patchPolicy"] == "Retain"
    assert spec["injectionStrategy"]["revision"]["policy"] == "Always"


def test_resources_policy_in_go_member_order_with_the_crd_default() -> None:
    """`resourcesPolicy` is hashed as Go writes ResourcesPolicy (targetContainersMode,
    targetContainersNameRegex, resourcesExpr), after the CRD's default regex ".*" is filled in."""
    import json

    from services.planner.sidecarset.defaults import default_sidecarset
    from services.planner.sidecarset.hash import go_container_json

    ss = default_sidecarset({"metadata": {"name": "s"}, "spec": {"containers": [{
        "name": "c", "image": "c:1",
        "resourcesPolicy": {"resourcesExpr": {"requests": {"memory": "memory/2", "cpu": "cpu"}},
                            "targetContainersMode": "sum"}}]}})
    out = go_container_json(ss["spec"]["containers"][0])["resourcesPolicy"]
    assert json.dumps(out, separators=(",", ":")) == (
        '{"targetContainersMode":"sum","targetContainersNameRegex":".*",'
        '"resourcesExpr":{"requests":{"cpu":"cpu","memory":"memory/2"}}}')

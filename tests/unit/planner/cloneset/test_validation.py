"""CloneSet webhook rules (Kruise's webhook rules), case for case with Kruise's TestValidate (Kruise's TestValidate)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.kube import ObjectMeta, OwnerReference, Pod
from services.planner.cloneset.validation import (
    inplace_only_violation,
    json_patch_ops,
    validate_cloneset,
)
from services.planner.kit.fielderrors import FieldError, errors_message

UID = "cs-uid"
MAX_INT32 = 2**31 - 1


def template(
    image: str = "image", pull: str = "IfNotPresent", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"a": "b"} if labels is None else labels},
        "spec": {
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "containers": [
                {"name": "abc", "image": image, "imagePullPolicy": pull, "terminationMessagePolicy": "File"}
            ],
        },
    }


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"a": "b"}},
        "template": template(),
        "updateStrategy": {"type": "InPlaceIfPossible", "partition": 2, "maxUnavailable": 1},
    }
    for key, value in overrides.items():
        if key == "updateStrategy":
            base["updateStrategy"] = {**base["updateStrategy"], **value}
        else:
            base[key] = value
    return base


def cs(s: dict[str, Any], name: str = "cs-1") -> CloneSet:
    return msgspec.convert(
        {"metadata": {"name": name, "namespace": "default", "uid": UID}, "spec": copy.deepcopy(s)},
        type=CloneSet,
    )


def make_pod(name: str, owner: str | None = UID, terminating: bool = False) -> Pod:
    refs = (
        []
        if owner is None
        else [
            OwnerReference(
                api_version="apps.kruise.io/v1alpha1", kind="CloneSet", name="cs", uid=owner, controller=True
            )
        ]
    )
    return Pod(
        metadata=ObjectMeta(
            name=name,
            namespace="default",
            owner_references=refs,
            deletion_timestamp="2026-01-01T00:00:00Z" if terminating else None,
        )
    )


PODS = [
    make_pod("p0"),
    make_pod("gone", terminating=True),
    make_pod("foreign", owner="other"),
    make_pod("orphan", owner=None),
]


def check(s: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    return validate_cloneset(cs(s), old=None if old is None else cs(old), pods=PODS)


# ------------------------------------------------------------------------------------ success (H3)

SUCCESS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "podsToDelete-owned-pod": (spec(scaleStrategy={"podsToDelete": ["p0"]}), None),
    "mu1-ms1": (spec(updateStrategy={"maxSurge": 1}), None),
    "H3-mu0-ms1": (spec(updateStrategy={"maxUnavailable": 0, "maxSurge": 1}), None),
    "H3-mu-120%": (spec(updateStrategy={"maxUnavailable": "120%"}), None),
    "weight-priority": (
        spec(
            updateStrategy={
                "maxUnavailable": "120%",
                "priorityStrategy": {
                    "weightPriority": [{"weight": 20, "matchSelector": {"matchLabels": {"key": "foo"}}}]
                },
            }
        ),
        None,
    ),
    "H3-InPlaceOnly-image-only-update": (
        spec(
            revisionHistoryLimit=1,
            scaleStrategy={"podsToDelete": ["p0"]},
            volumeClaimTemplates=[{"metadata": {"name": "foo"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
            updateStrategy={"type": "InPlaceOnly"},
        ),
        spec(
            replicas=2,
            template=template("image1"),
            revisionHistoryLimit=2,
            scaleStrategy={"podsToDelete": ["p1"]},
            updateStrategy={"type": "ReCreate"},
        ),
    ),
    "pds-and-minReady-MaxInt32": (
        spec(
            updateStrategy={"type": "InPlaceOnly"},
            progressDeadlineSeconds=MAX_INT32,
            minReadySeconds=MAX_INT32,
        ),
        spec(updateStrategy={"type": "ReCreate"}, progressDeadlineSeconds=10, minReadySeconds=5),
    ),
    "defaults-only": ({"selector": {"matchLabels": {"a": "b"}}, "template": template()}, None),
    "fractional-partition": (spec(replicas=100, updateStrategy={"partition": "0.5%"}), None),
    "old-podsToDelete-not-rechecked": (
        spec(scaleStrategy={"podsToDelete": ["gone"]}),
        spec(scaleStrategy={"podsToDelete": ["gone"]}),
    ),
    "zero-replicas-zero-budgets": (spec(replicas=0, updateStrategy={"maxUnavailable": 0}), None),
}


@pytest.mark.parametrize(("s", "old"), list(SUCCESS.values()), ids=list(SUCCESS))
def test_valid(s: dict[str, Any], old: dict[str, Any] | None) -> None:
    assert check(s, old) == []


# ------------------------------------------------------------------------------------ errors (H1-H7)

ERRORS: dict[str, tuple[dict[str, Any], dict[str, Any] | None, str]] = {
    "H1-invalid-replicas": (spec(replicas=-1), None, "spec.replicas"),
    "H1-invalid-template": (
        spec(
            template={
                "metadata": {"labels": {"NoUppercaseOrSpecialCharsLike=Equals": "b"}},
                "spec": {"restartPolicy": "Always"},
            }
        ),
        None,
        "spec.template.metadata.labels",
    ),
    "H1-invalid-selector": (
        spec(selector={"matchLabels": {"a": "b", "c": "d"}}),
        None,
        "spec.template.metadata.labels",
    ),
    "H1-invalid-update-type": (spec(updateStrategy={"type": "Rolling"}), None, "spec.updateStrategy.type"),
    "H1-OnDelete-rejected": (spec(updateStrategy={"type": "OnDelete"}), None, "spec.updateStrategy.type"),
    "H1-invalid-partition": (spec(updateStrategy={"partition": -1}), None, "spec.updateStrategy.partition"),
    "H2-invalid-maxUnavailable": (
        spec(updateStrategy={"maxUnavailable": 0}),
        None,
        "spec.updateStrategy.maxUnavailable",
    ),
    "H2-invalid-maxSurge": (
        spec(updateStrategy={"maxUnavailable": 0, "maxSurge": 0}),
        None,
        "spec.updateStrategy.maxUnavailable",
    ),
    "H4-invalid-cloneset-maxSurge-create": (
        spec(updateStrategy={"type": "ReCreate", "maxSurge": "5", "maxUnavailable": 2}),
        None,
        "spec.updateStrategy.maxSurge",
    ),
    "H4-invalid-cloneset-maxSurge-update": (
        spec(updateStrategy={"type": "ReCreate", "maxSurge": "5", "maxUnavailable": 2}),
        spec(updateStrategy={"type": "ReCreate", "maxSurge": 5, "maxUnavailable": 2}),
        "spec.updateStrategy.maxSurge",
    ),
    "H4-invalid-cloneset-maxUnavailable-create": (
        spec(updateStrategy={"type": "ReCreate", "maxSurge": 2, "maxUnavailable": "5"}),
        None,
        "spec.updateStrategy.maxUnavailable",
    ),
    "H4-invalid-cloneset-maxUnavailable-update": (
        spec(updateStrategy={"type": "ReCreate", "maxSurge": 2, "maxUnavailable": "5"}),
        spec(updateStrategy={"type": "ReCreate", "maxSurge": 5}),
        "spec.updateStrategy.maxUnavailable",
    ),
    "H5-invalid-podsToDelete-1-duplicate": (
        spec(scaleStrategy={"podsToDelete": ["p0", "p0"]}),
        None,
        "spec.scaleStrategy.podsToDelete",
    ),
    "H5-invalid-podsToDelete-2-missing": (
        spec(scaleStrategy={"podsToDelete": ["p0", "p1"]}),
        None,
        "spec.scaleStrategy.podsToDelete",
    ),
    "H5-invalid-podsToDelete-3-missing": (
        spec(scaleStrategy={"podsToDelete": ["p1"]}),
        None,
        "spec.scaleStrategy.podsToDelete",
    ),
    "H5-podsToDelete-terminating": (
        spec(scaleStrategy={"podsToDelete": ["gone"]}),
        None,
        "spec.scaleStrategy.podsToDelete",
    ),
    "H5-podsToDelete-other-owner": (
        spec(scaleStrategy={"podsToDelete": ["foreign"]}),
        None,
        "spec.scaleStrategy.podsToDelete",
    ),
    "H5-podsToDelete-orphan": (
        spec(scaleStrategy={"podsToDelete": ["orphan"]}),
        None,
        "spec.scaleStrategy.podsToDelete",
    ),
    "H6-invalid-cloneset-update-1": (
        spec(updateStrategy={"type": "InPlaceOnly"}),
        spec(template=template("image2", pull="Always"), updateStrategy={"type": "InPlaceOnly"}),
        "spec",
    ),
    "H7-invalid-negative-progressDeadlineSeconds": (
        spec(updateStrategy={"type": "InPlaceOnly"}, progressDeadlineSeconds=-1),
        None,
        "spec.progressDeadlineSeconds",
    ),
    "H7-progressDeadlineSeconds-equals-minReadySeconds": (
        spec(updateStrategy={"type": "InPlaceOnly"}, progressDeadlineSeconds=10, minReadySeconds=10),
        spec(updateStrategy={"type": "ReCreate"}, progressDeadlineSeconds=10, minReadySeconds=5),
        "spec.progressDeadlineSeconds",
    ),
    "H7-progressDeadlineSeconds-less-than-minReadySeconds": (
        spec(updateStrategy={"type": "InPlaceOnly"}, progressDeadlineSeconds=10, minReadySeconds=15),
        spec(updateStrategy={"type": "ReCreate"}, progressDeadlineSeconds=10, minReadySeconds=5),
        "spec.progressDeadlineSeconds",
    ),
    "disallowed-field-modification": (
        spec(revisionHistoryLimit=1, updateStrategy={"type": "InPlaceOnly"}),
        spec(
            replicas=2,
            selector={"matchLabels": {"app": "webserver"}},
            template=template("image1"),
            updateStrategy={"type": "ReCreate"},
        ),
        "spec",
    ),
    # The examples.
    "issue-negative-replicas": (spec(replicas=-3), None, "spec.replicas"),
    "issue-partition-abc": (spec(updateStrategy={"partition": "abc"}), None, "spec.updateStrategy.partition"),
    "issue-maxUnavailable-5": (
        spec(updateStrategy={"maxUnavailable": "5"}),
        None,
        "spec.updateStrategy.maxUnavailable",
    ),
    "replicas-not-an-int": (spec(replicas="abc"), None, "spec.replicas"),
    "selector-missing": (spec(selector=None), None, "spec.selector"),
    "selector-empty": (spec(selector={}), None, "spec.selector"),
    "selector-bad-operator": (
        spec(selector={"matchExpressions": [{"key": "a", "operator": "Has"}]}),
        None,
        "spec.selector.matchExpressions[0].operator",
    ),
    "name-not-dns": (spec(), None, "metadata.name"),
    "restartPolicy-Never": (
        spec(template={**template(), "spec": {**template()["spec"], "restartPolicy": "Never"}}),
        None,
        "spec.template.spec.restartPolicy",
    ),
    "activeDeadlineSeconds": (
        spec(template={**template(), "spec": {**template()["spec"], "activeDeadlineSeconds": 5}}),
        None,
        "spec.template.spec.activeDeadlineSeconds",
    ),
    "no-containers": (
        spec(template={**template(), "spec": {"containers": []}}),
        None,
        "spec.template.spec.containers",
    ),
    "container-without-image": (
        spec(template={**template(), "spec": {"containers": [{"name": "c"}]}}),
        None,
        "spec.template.spec.containers[0].image",
    ),
    "container-without-name": (
        spec(template={**template(), "spec": {"containers": [{"image": "i"}]}}),
        None,
        "spec.template.spec.containers[0].name",
    ),
    "duplicate-container-names": (
        spec(
            template={
                **template(),
                "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "c", "image": "j"}]},
            }
        ),
        None,
        "spec.template.spec.containers[1].name",
    ),
    "InPlaceOnly-with-maxSurge": (
        spec(updateStrategy={"type": "InPlaceOnly", "maxSurge": 1}),
        None,
        "spec.updateStrategy.maxSurge",
    ),
    "both-priorities": (
        spec(
            updateStrategy={
                "priorityStrategy": {
                    "orderPriority": [{"orderedKey": "k"}],
                    "weightPriority": [{"weight": 1, "matchSelector": {"matchLabels": {"a": "b"}}}],
                }
            }
        ),
        None,
        "spec.updateStrategy.priorityStrategy",
    ),
    "weight-out-of-range": (
        spec(
            updateStrategy={
                "priorityStrategy": {
                    "weightPriority": [{"weight": 101, "matchSelector": {"matchLabels": {"a": "b"}}}]
                }
            }
        ),
        None,
        "spec.updateStrategy.priorityStrategy",
    ),
    "weight-empty-selector": (
        spec(updateStrategy={"priorityStrategy": {"weightPriority": [{"weight": 1}]}}),
        None,
        "spec.updateStrategy.priorityStrategy",
    ),
    "empty-ordered-key": (
        spec(updateStrategy={"priorityStrategy": {"orderPriority": [{"orderedKey": ""}]}}),
        None,
        "spec.updateStrategy.priorityStrategy",
    ),
    "scatter-empty-key": (
        spec(updateStrategy={"scatterStrategy": [{"key": "", "value": "x"}]}),
        None,
        "spec.updateStrategy.scatterStrategy",
    ),
    "scatter-duplicate": (
        spec(updateStrategy={"scatterStrategy": [{"key": "k", "value": "x"}, {"key": "k", "value": "x"}]}),
        None,
        "spec.updateStrategy.scatterStrategy",
    ),
}


@pytest.mark.parametrize(("s", "old", "field"), list(ERRORS.values()), ids=list(ERRORS))
def test_invalid(s: dict[str, Any], old: dict[str, Any] | None, field: str) -> None:
    if field == "metadata.name":
        errors = validate_cloneset(cs(s, name="Not_A_Name"), pods=PODS)
    else:
        errors = check(s, old)
    assert errors, "expected a rejection"
    assert field in {e.field for e in errors}, [str(e) for e in errors]


def test_error_rendering_matches_kubernetes() -> None:
    (err,) = check(spec(replicas=-1))
    assert str(err) == "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    errs = check(spec(updateStrategy={"partition": "abc"}))
    assert [str(e) for e in errs] == [
        'spec.updateStrategy.partition: Invalid value: "abc": failed GetScaledValueFromIntOrPercent for partition: '
        "invalid type: string is not a percentage"
    ]
    (err,) = check(spec(updateStrategy={"partition": "abc%"}))
    assert err.detail.endswith('strconv.ParseFloat: parsing "abc": invalid syntax')
    errs = check(spec(updateStrategy={"maxUnavailable": "5"}))
    assert str(errs[0]) == (
        'spec.updateStrategy.maxUnavailable: Invalid value: "5": failed GetScaledValueFromIntOrPercent for '
        "maxUnavailable: invalid type: string is not a percentage"
    )
    # the parse failure also leaves maxUnavailable at 0, so the "both < 1" rule fires too, as in Kruise
    assert "maxUnavailable and maxSurge should not both be less than 1" in errs[1].detail
    (err,) = check(spec(updateStrategy={"type": "OnDelete"}))
    assert str(err) == (
        "spec.updateStrategy.type: Invalid value: \"OnDelete\": must be 'ReCreate', InPlaceIfPossible or 'InPlaceOnly'"
    )
    (err,) = check(spec(selector=None))
    assert str(err) == "spec.selector: Required value"
    (err,) = check(spec(template={**template(), "spec": {**template()["spec"], "restartPolicy": "Never"}}))
    assert (
        str(err) == 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    )
    (err,) = check(spec(scaleStrategy={"podsToDelete": ["p1"]}))
    assert (
        str(err)
        == 'spec.scaleStrategy.podsToDelete: Invalid value: "p1": find pod p1 failed: pods "p1" not found'
    )
    (err,) = check(spec(scaleStrategy={"podsToDelete": ["p0", "p0"]}))
    assert err.detail == "duplicated items [p0]"
    assert errors_message([err]) == str(err)
    assert errors_message([err, err]).startswith("[") and errors_message([err, err]).endswith("]")


def test_inplace_only_message_names_the_patch() -> None:
    errs = check(
        spec(updateStrategy={"type": "InPlaceOnly"}),
        spec(template=template("image2", pull="Always"), updateStrategy={"type": "InPlaceOnly"}),
    )
    assert [e.detail for e in errs] == [
        "only allowed to update images in spec for InPlaceOnly, but found replace /containers/0/imagePullPolicy"
    ]
    assert errs[0].type == "Forbidden" and str(errs[0]).startswith("spec: Forbidden: only allowed")


def test_inplace_only_rule_ignores_other_strategies_and_metadata() -> None:
    old = spec(template=template("image2", pull="Always"), updateStrategy={"type": "ReCreate"})
    assert check(spec(updateStrategy={"type": "ReCreate"}), old) == []
    old_meta = spec(template=template(labels={"a": "b", "x": "y"}), updateStrategy={"type": "InPlaceOnly"})
    assert check(spec(updateStrategy={"type": "InPlaceOnly"}), old_meta) == []


@pytest.mark.parametrize(
    ("old", "new", "violation"),
    [
        ({"containers": [{"name": "a", "image": "x"}]}, {"containers": [{"name": "a", "image": "y"}]}, None),
        (
            {"containers": [{"name": "a", "image": "x"}]},
            {"containers": [{"name": "a", "image": "x", "env": []}]},
            None,
        ),  # empty values are omitted as Go's omitempty would
        (
            {"containers": [{"name": "a"}]},
            {"containers": [{"name": "a", "image": "y"}]},
            "add /containers/0/image",
        ),
        (
            {"containers": [{"name": "a", "image": "x"}]},
            {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
            "add /containers/1",
        ),
        (
            {"containers": [{"name": "a", "image": "x"}], "nodeSelector": {"k": "v"}},
            {"containers": [{"name": "a", "image": "x"}]},
            "remove /nodeSelector",
        ),
        (
            {"initContainers": [{"name": "i", "image": "x"}], "containers": []},
            {"initContainers": [{"name": "i", "image": "y"}], "containers": []},
            "replace /initContainers/0/image",
        ),
    ],
)
def test_inplace_only_violation(old: dict[str, Any], new: dict[str, Any], violation: str | None) -> None:
    assert inplace_only_violation(old, new) == violation


def test_json_patch_ops_escape_pointer() -> None:
    assert json_patch_ops({"a/b": 1}, {"a/b": 2}) == [("replace", "/a~1b")]
    assert json_patch_ops({"x": 1}, {"x": "1"}) == [("replace", "/x")]


def test_H1_empty_update_type_is_defaulted_like_the_mutating_webhook() -> None:
    """Kruise's validator unit test rejects type "", but through the API server the mutating webhook
    first defaults it (an empty Go string is "unset") to ReCreate; kruisebus is both webhooks."""
    assert validate_cloneset(cs(spec(updateStrategy={"type": ""}))) == []

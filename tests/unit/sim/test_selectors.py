"""Label and field selectors of the embedded API server."""

from __future__ import annotations

from typing import Any

import pytest

from sim.errors import ApiError
from sim.selectors import (
    match_label_selector_obj,
    parse_field_selector,
    parse_label_selector,
    selector_to_string,
)


def obj(labels: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels}, **fields}


@pytest.mark.parametrize(
    ("sel", "labels", "ok"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2),b", {"a": "2", "b": ""}, True),
        ("a in (1,2)", {}, False),
        ("a notin (1,2)", {}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("!a", {"a": "1"}, False),
        ("!a,b=x", {"b": "x"}, True),
        ("a", {"a": ""}, True),
    ],
)
def test_label_selector(sel: str, labels: dict[str, str], ok: bool) -> None:
    pred = parse_label_selector(sel)
    assert pred is not None and pred(obj(labels)) is ok


def test_empty_selectors_match_everything() -> None:
    assert parse_label_selector("") is None and parse_field_selector(None) is None


def test_bad_selector_is_400() -> None:
    with pytest.raises(ApiError) as e:
        parse_label_selector("a in 1,2)")
    assert e.value.code == 400


def test_field_selector() -> None:
    pod = obj({}, spec={"nodeName": "n1"}, status={"phase": "Running"})
    assert parse_field_selector("spec.nodeName=n1,status.phase=Running")(pod)  # type: ignore[misc]
    assert not parse_field_selector("spec.nodeName!=n1")(pod)  # type: ignore[misc]
    assert parse_field_selector("metadata.namespace=ns,metadata.name==n")(pod)  # type: ignore[misc]
    assert parse_field_selector("spec.nodeName=")(obj({}))  # type: ignore[misc]


def test_label_selector_objects() -> None:
    sel = {
        "matchLabels": {"app": "x"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a"]},
            {"key": "gone", "operator": "DoesNotExist"},
        ],
    }
    assert match_label_selector_obj(sel, {"app": "x", "tier": "a"})
    assert not match_label_selector_obj(sel, {"app": "x", "tier": "a", "gone": "1"})
    assert selector_to_string(sel) == "app=x,tier in (a),!gone"

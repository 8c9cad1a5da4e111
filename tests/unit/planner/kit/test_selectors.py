"""Label selectors: matching, Kubernetes string rendering, and validation messages."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.kube import LabelSelector
from services.planner.kit.selectors import (
    SelectorError,
    conversion_error,
    is_empty,
    label_value_errors,
    matches,
    qualified_name_errors,
    selector_errors,
    selector_issues,
    selector_to_string,
)


def sel(data: dict[str, Any]) -> LabelSelector:
    return msgspec.convert(data, type=LabelSelector)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({"matchLabels": {"app": "nginx"}}, {"app": "nginx", "x": "y"}, True),
        ({"matchLabels": {"app": "nginx"}}, {"app": "other"}, False),
        ({"matchLabels": {"app": "nginx"}}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}, {"a": "y"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {"a": "x"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {"a": "1"}, False),
        ({}, {"anything": "x"}, True),  # empty selector = everything
    ],
)
def test_matches(selector: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert matches(sel(selector), labels) is expected


def test_nil_selector_matches_nothing() -> None:
    assert not matches(None, {"a": "b"})
    assert not is_empty(None)
    assert is_empty(sel({}))


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"app": "nginx"}}, "app=nginx"),
        ({"matchLabels": {"c": "x", "a": "b"}}, "a=b,c=x"),
        (
            {
                "matchLabels": {"a": "b"},
                "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}],
            },
            "a=b,c in (x,y)",
        ),
        ({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["b", "a"]}]}, "k notin (a,b)"),
        ({"matchExpressions": [{"key": "k", "operator": "Exists"}]}, "k"),
        ({"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]}, "!k"),
        (
            {
                "matchLabels": {"z": "1"},
                "matchExpressions": [
                    {"key": "b", "operator": "Exists"},
                    {"key": "a", "operator": "In", "values": ["v"]},
                ],
            },
            "a in (v),b,z=1",
        ),
        ({}, ""),
    ],
)
def test_selector_to_string(selector: dict[str, Any], expected: str) -> None:
    assert selector_to_string(sel(selector)) == expected


def test_selector_to_string_none_and_invalid() -> None:
    assert selector_to_string(None) == ""
    with pytest.raises(SelectorError):
        selector_to_string(sel({"matchExpressions": [{"key": "a", "operator": "In"}]}))
    with pytest.raises(SelectorError):
        selector_to_string(sel({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}))


def test_selector_errors_valid() -> None:
    assert selector_errors(sel({"matchLabels": {"app.kubernetes.io/name": "web-1"}})) == []
    assert selector_errors(None) == []
    assert conversion_error(sel({"matchLabels": {"a": "b"}})) is None


def test_selector_errors_invalid() -> None:
    s = sel(
        {
            "matchLabels": {"bad key!": "v"},
            "matchExpressions": [
                {"key": "a", "operator": "In"},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Bogus"},
            ],
        }
    )
    errors = selector_errors(s)
    assert any(e.startswith("selector.matchLabels: Invalid value: 'bad key!'") for e in errors)
    assert (
        "selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        in errors
    )
    assert any(e.startswith("selector.matchExpressions[1].values: Forbidden") for e in errors)
    assert any(e.startswith("selector.matchExpressions[2].operator: Invalid value") for e in errors)
    issues = selector_issues(s, "spec.selector")
    assert {i.field for i in issues} >= {
        "spec.selector.matchLabels",
        "spec.selector.matchExpressions[0].values",
    }


def test_name_and_value_syntax_messages_match_kubernetes() -> None:
    assert qualified_name_errors("example.com/MyName") == []
    assert qualified_name_errors("NoUppercaseOrSpecialCharsLike=Equals") == [
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    ]
    assert qualified_name_errors("/x") == ["prefix part must be non-empty"]
    assert qualified_name_errors("a/b/c")[0].startswith("a qualified name must consist")
    assert label_value_errors("") == []
    assert label_value_errors("x" * 64)[0] == "must be no more than 63 characters"

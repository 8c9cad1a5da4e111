"""Field errors read as Kubernetes writes them: title per type, the value as Go prints it, aggregates."""

from __future__ import annotations

import pytest

from services.planner.kit.fielderrors import FieldError, errors_message, field_error, from_issue, nonnegative
from services.planner.kit.selectors import SelectorIssue


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            field_error("spec.replicas", "Invalid", -1, "must be greater than or equal to 0"),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (field_error("spec.selector", "Required", no_value=True), "spec.selector: Required value"),
        (field_error("spec", "Forbidden", detail="no", no_value=True), "spec: Forbidden: no"),
        (field_error("spec.x", "Duplicate", "a"), 'spec.x: Duplicate value: "a"'),
        (
            field_error("spec.p", "NotSupported", "Never", 'supported values: "Always"'),
            'spec.p: Unsupported value: "Never": supported values: "Always"',
        ),
        (
            field_error("spec.l", "Invalid", {"b": "2", "a": "1"}),
            'spec.l: Invalid value: map[string]string{"a":"1", "b":"2"}',
        ),
        (field_error("spec.n", "Invalid", ["x", "y"]), 'spec.n: Invalid value: []string{"x", "y"}'),
        (field_error("spec.s", "Invalid", None), "spec.s: Invalid value: null"),
        (field_error("spec.b", "Invalid", True), "spec.b: Invalid value: true"),
    ],
    ids=[
        "invalid-int",
        "required",
        "forbidden",
        "duplicate",
        "not-supported",
        "map",
        "string-list",
        "nil",
        "bool",
    ],
)
def test_message_format(error: FieldError, text: str) -> None:
    assert str(error) == text


def test_aggregate_and_helpers() -> None:
    a, b = field_error("a", "Required", no_value=True), field_error("b", "Invalid", 1)
    assert errors_message([a]) == "a: Required value"
    assert errors_message([a, b]) == "[a: Required value, b: Invalid value: 1]"
    assert nonnegative(0, "f") == []
    assert [str(e) for e in nonnegative(-2, "f")] == [
        "f: Invalid value: -2: must be greater than or equal to 0"
    ]
    assert from_issue(SelectorIssue("s", "Required", "ignored", "")) == FieldError(field="s", type="Required")

"""Validation findings shaped like Kubernetes' ``field.Error``, rendered with Kruise's messages.

Kruise's webhooks (and the planners, for objects admitted while no webhook checked them) report a bad
spec as apimachinery's field errors: ``spec.replicas: Invalid value: -1: must be greater than or equal
to 0``, several as ``[e1, e2]``. Every workload's validation builds them here, so `kubectl apply`, the
``InvalidSpec`` condition and the rollout log say the same thing in the same words for every kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

import msgspec

_TYPE_TITLES: Final = {
    "Invalid": "Invalid value",
    "Required": "Required value",
    "Forbidden": "Forbidden",
    "Duplicate": "Duplicate value",
    "NotSupported": "Unsupported value",
    "TooLong": "Too long",
    "NotFound": "Not found",
}
_NO_VALUE: Final = ("Required", "Forbidden", "TooLong")
MAX_VALUE_CHARS: Final = 256
"""A bad value longer than this is shown cut, with its size: a denial that echoed a 1 MB string would
itself be 1 MB (in the API server's answer, the InvalidSpec condition, the Event and the rollout log)."""
MAX_DETAIL_CHARS: Final = 1024


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One violation, shaped like Kubernetes' ``field.Error``.

    ``type`` is "Invalid" | "Required" | "Forbidden" | "Duplicate" | "NotSupported"; ``value`` is the
    offending value already rendered the way Go prints it (strings quoted, ints bare), "" when the
    type carries no value.
    """

    field: str
    type: str
    value: str = ""
    detail: str = ""

    def __str__(self) -> str:
        """``spec.replicas: Invalid value: -1: must be greater than or equal to 0`` (Kubernetes format)."""
        title = _TYPE_TITLES.get(self.type, self.type)
        text = f"{self.field}: {title}"
        if self.type not in _NO_VALUE:
            text += f": {self.value}"
        if self.detail:  # a detail may quote the value too (a cron parser's error): cut like a value
            text += f": {_cut(self.detail, MAX_DETAIL_CHARS)}"
        return text


def errors_message(errors: Sequence[FieldError]) -> str:
    """Kubernetes' aggregate rendering: one error as is, several as ``[e1, e2]``."""
    if len(errors) == 1:
        return str(errors[0])
    return "[" + ", ".join(str(e) for e in errors) + "]"


def go_value(value: object) -> str:
    """Render a bad value like ``field.Error`` does (``%q`` for strings, ``%v`` for numbers, null for nil),
    cut to `MAX_VALUE_CHARS` when longer."""
    text = _go_value(value)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]}...(truncated, {len(text.encode())} bytes)"


def _go_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "}"
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(value[k])}" for k in sorted(value))
        return "map[string]string{" + inner + "}"
    return msgspec.json.encode(value, order="sorted").decode()


def decode_error(err: msgspec.ValidationError) -> FieldError:
    """A body that does not decode into the kind's type (msgspec's "Expected int, got str - at
    $.spec.replicas"), as the field error of the path it names (``spec.replicas: Invalid value:
    ...``), like the API server's own type errors; `$` (the whole body) when it names none."""
    text = str(err)
    detail, sep, where = text.rpartition(" - at ")
    if not sep:
        detail, where = text, "$"
    field = where.strip("`").removeprefix("$").removeprefix(".") or "<body>"
    return FieldError(field=field, type="Invalid", value=_cut(detail), detail="")


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...(truncated)"


def field_error(
    field: str, type_: str, value: object = None, detail: str = "", *, no_value: bool = False
) -> FieldError:
    """A `FieldError` with ``value`` rendered as Go prints it (none with ``no_value``)."""
    return FieldError(field=field, type=type_, value="" if no_value else go_value(value), detail=detail)


class Issue(Protocol):
    """A finding of the kit's format checks (`kit.selectors.SelectorIssue`)."""

    @property
    def field(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def value(self) -> object: ...

    @property
    def detail(self) -> str: ...


def from_issue(issue: Issue) -> FieldError:
    """The `FieldError` of a format check's finding (Required and Forbidden carry no value)."""
    return field_error(issue.field, issue.type, issue.value, issue.detail, no_value=issue.type in _NO_VALUE)


def nonnegative(value: int, field: str) -> list[FieldError]:
    """apimachinery ``ValidateNonnegativeField``."""
    if value < 0:
        return [field_error(field, "Invalid", value, "must be greater than or equal to 0")]
    return []

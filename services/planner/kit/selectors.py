"""Kubernetes label selectors and label syntax checks, as apimachinery implements them.

The CloneSet controller uses selectors three ways and each must agree with Kubernetes exactly:
matching (adopting pods, listing revisions, weight priorities), rendering (``status.labelSelector`` is
the string the scale subresource hands to HPAs, so it must be byte-identical to
``LabelSelectorAsSelector(sel).String()``) and validation (the webhook's messages and field paths).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

from schemas.kube import LabelSelector, LabelSelectorRequirement

OP_IN: Final = "In"
OP_NOT_IN: Final = "NotIn"
OP_EXISTS: Final = "Exists"
OP_DOES_NOT_EXIST: Final = "DoesNotExist"
OPERATORS: Final = (OP_IN, OP_NOT_IN, OP_EXISTS, OP_DOES_NOT_EXIST)

_QNAME_CHAR: Final = "[A-Za-z0-9]"
_QNAME_EXT_CHAR: Final = "[-A-Za-z0-9_.]"
QUALIFIED_NAME_FMT: Final = f"({_QNAME_CHAR}{_QNAME_EXT_CHAR}*)?{_QNAME_CHAR}"
_QUALIFIED_NAME_RE: Final = re.compile(QUALIFIED_NAME_FMT)
_QUALIFIED_NAME_MSG: Final = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
LABEL_VALUE_FMT: Final = f"({QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE: Final = re.compile(LABEL_VALUE_FMT)
_LABEL_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_LABEL_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_FMT: Final = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def max_len_error(length: int) -> str:
    """apimachinery ``MaxLenError``."""
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery ``RegexError``, including its odd ``', ' + ' or '`` double space between examples."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{example}', "
    return out + f"regex used for validation is '{fmt}')"


def dns1123_subdomain_errors(value: str) -> list[str]:
    """apimachinery ``IsDNS1123Subdomain`` (object names, label-key prefixes)."""
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1123_label_errors(value: str) -> list[str]:
    """apimachinery ``IsDNS1123Label`` (container, volume and namespace names)."""
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """apimachinery ``IsQualifiedName``: label keys, optionally ``prefix/name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(
            "name part "
            + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """apimachinery ``IsValidLabelValue``."""
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


class SelectorIssue(NamedTuple):
    """One validation finding, shaped like a Kubernetes field.Error (validation turns it into FieldError)."""

    field: str
    type: str  # "Invalid" | "Required" | "Forbidden"
    value: object
    detail: str


def label_issues(labels: Mapping[str, str], path: str) -> list[SelectorIssue]:
    """apimachinery ``ValidateLabels``: every key a qualified name, every value a label value."""
    issues: list[SelectorIssue] = []
    for key in sorted(labels):
        issues.extend(SelectorIssue(path, "Invalid", key, m) for m in qualified_name_errors(key))
        issues.extend(SelectorIssue(path, "Invalid", labels[key], m) for m in label_value_errors(labels[key]))
    return issues


def selector_issues(selector: LabelSelector | None, path: str = "selector") -> list[SelectorIssue]:
    """apimachinery ``ValidateLabelSelector`` (with default options) under field path ``path``."""
    if selector is None:
        return []
    issues = label_issues(selector.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(selector.match_expressions):
        epath = f"{path}.matchExpressions[{i}]"
        if expr.operator in (OP_IN, OP_NOT_IN):
            if not expr.values:
                issues.append(
                    SelectorIssue(
                        f"{epath}.values",
                        "Required",
                        None,
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    )
                )
        elif expr.operator in (OP_EXISTS, OP_DOES_NOT_EXIST):
            if expr.values:
                issues.append(
                    SelectorIssue(
                        f"{epath}.values",
                        "Forbidden",
                        None,
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            issues.append(
                SelectorIssue(f"{epath}.operator", "Invalid", expr.operator, "not a valid selector operator")
            )
        issues.extend(
            SelectorIssue(f"{epath}.key", "Invalid", expr.key, m) for m in qualified_name_errors(expr.key)
        )
        for j, value in enumerate(expr.values):
            issues.extend(
                SelectorIssue(f"{epath}.values[{j}]", "Invalid", value, m) for m in label_value_errors(value)
            )
    return issues


def selector_errors(selector: LabelSelector | None) -> list[str]:
    """Human-readable validation errors ("selector.matchLabels: Invalid value: ...") — empty if valid."""
    out: list[str] = []
    for issue in selector_issues(selector):
        if issue.type == "Required":
            out.append(f"{issue.field}: Required value: {issue.detail}")
        elif issue.type == "Forbidden":
            out.append(f"{issue.field}: Forbidden: {issue.detail}")
        else:
            out.append(f"{issue.field}: Invalid value: {issue.value!r}: {issue.detail}")
    return out


class SelectorError(ValueError):
    """``LabelSelectorAsSelector`` failed (bad operator, bad key/value, wrong number of values)."""


class _Req(NamedTuple):
    key: str
    op: str  # "=", "in", "notin", "exists", "!"
    values: tuple[str, ...]


def _requirements(selector: LabelSelector) -> list[_Req]:
    """Requirements in Kubernetes' order: matchLabels then expressions, stably sorted by key."""
    reqs: list[_Req] = []
    for key, value in selector.match_labels.items():
        if qualified_name_errors(key) or label_value_errors(value):
            raise SelectorError(f"invalid label selector requirement {key}={value}")
        reqs.append(_Req(key, "=", (value,)))
    for expr in selector.match_expressions:
        reqs.append(_expression(expr))
    reqs.sort(key=lambda r: r.key)
    return reqs


def _expression(expr: LabelSelectorRequirement) -> _Req:
    op = {OP_IN: "in", OP_NOT_IN: "notin", OP_EXISTS: "exists", OP_DOES_NOT_EXIST: "!"}.get(expr.operator)
    if op is None:
        raise SelectorError(f'"{expr.operator}" is not a valid label selector operator')
    if qualified_name_errors(expr.key):
        raise SelectorError(f"invalid label key {expr.key!r}")
    if op in ("in", "notin") and not expr.values:
        raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
    if op in ("exists", "!") and expr.values:
        raise SelectorError("values set must be empty for exists and does not exist")
    for value in expr.values:
        if label_value_errors(value):
            raise SelectorError(f"invalid label value {value!r}")
    return _Req(expr.key, op, tuple(expr.values))


def conversion_error(selector: LabelSelector) -> str | None:
    """Why ``LabelSelectorAsSelector`` would fail for ``selector``, or None if it converts."""
    try:
        _requirements(selector)
    except SelectorError as exc:
        return str(exc)
    return None


def is_empty(selector: LabelSelector | None) -> bool:
    """True for a selector with no requirements (matches everything); None is "nothing", not empty."""
    return selector is not None and not selector.match_labels and not selector.match_expressions


def matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy ``selector`` (``LabelSelectorAsSelector(sel).Matches``).

    None selects nothing and an empty selector everything, as in Kubernetes. This is the hot path (run
    per pod), so the selector is not re-validated here: validation rejects bad selectors before the
    planner acts, and an unknown operator simply matches nothing.
    """
    if selector is None:
        return False
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in selector.match_expressions:
        has = expr.key in labels
        if expr.operator == OP_IN:
            if not has or labels[expr.key] not in expr.values:
                return False
        elif expr.operator == OP_NOT_IN:
            if has and labels[expr.key] in expr.values:
                return False
        elif expr.operator == OP_EXISTS:
            if not has:
                return False
        elif expr.operator == OP_DOES_NOT_EXIST:
            if has:
                return False
        else:
            return False
    return True


def selector_to_string(selector: LabelSelector | None) -> str:
    """``LabelSelectorAsSelector(sel).String()``: "app=nginx", "a=b,c in (x,y)", "!k", "k notin (a,b)".

    Requirements are sorted by key, and In/NotIn values are rendered sorted. None renders as "" (Nothing)
    and an empty selector as "" (Everything), which is what Kubernetes prints for both. Raises
    SelectorError for selectors Kubernetes would refuse to convert.
    """
    if selector is None:
        return ""
    parts: list[str] = []
    for req in _requirements(selector):
        if req.op == "exists":
            parts.append(req.key)
        elif req.op == "!":
            parts.append("!" + req.key)
        elif req.op == "=":
            parts.append(f"{req.key}={req.values[0]}")
        else:
            vals = req.values[0] if len(req.values) == 1 else ",".join(sorted(req.values))
            parts.append(f"{req.key} {req.op} ({vals})")
    return ",".join(parts)

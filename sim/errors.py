"""Kubernetes API errors as `metav1.Status` bodies (same messages, reasons and codes as kube-apiserver)."""

from __future__ import annotations

from typing import Any

from sim.resources import ResourceType


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.list_continue: str | None = None  # Status.metadata.continue (410 on an expired continue token)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {"continue": self.list_continue} if self.list_continue else {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(rt: ResourceType | None, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def namespace_not_found(ns: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name))


def generated_name_conflict(rt: ResourceType) -> ApiError:
    """What kube-apiserver answers for AlreadyExists when the body has a `generateName`, even beside an
    explicit `name` (apiserver registry/rest.CheckGeneratedNameError): a retryable 500, not a 409."""
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    details: dict[str, Any] = {"name": "POST"}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    return ApiError(
        500,
        "ServerTimeout",
        f"The POST operation against {qualified} could not be completed at this time, please try again.",
        details,
    )


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
        _details(rt, name),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(rt: ResourceType, name: str, causes: list[dict[str, str]], suffix: str = "") -> ApiError:
    """422 Invalid: `Kind "name" is invalid: field: Reason: detail` (several causes joined like k8s)."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(rt, name)
    details["kind"] = rt.kind
    details["causes"] = causes
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind  # schema.GroupKind's String()
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}{suffix}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, {})


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {}
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
        {},
    )


def gone(rv: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({oldest})")


def expired(message: str, cont: str | None = None) -> ApiError:
    e = ApiError(410, "Expired", message, {})
    if cont is not None:
        e.list_continue = cont
    return e


def too_large_rv(rv: int, current: int) -> ApiError:
    """What the watch cache answers when a requested resourceVersion does not arrive within 3 s."""
    return ApiError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {rv}, current: {current}",  # errors.NewTimeoutError's prefix
        {
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
        {"Retry-After": "1"},
    )


def invalid_list_options(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'ListOptions.meta.k8s.io "" is invalid: {field}: {message}',
        {
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": [
                {
                    "reason": "FieldValueForbidden"
                    if message.startswith("Forbidden")
                    else "FieldValueInvalid",
                    "field": field,
                    "message": message,
                }
            ],
        },
    )


def json_patch_failed() -> ApiError:
    """What kube-apiserver answers when a JSON patch does not apply (e.g. a failed `test` op).

    `applyJSPatch` wraps the json-patch library error with
    `errors.NewGenericServerResponse(422, "", schema.GroupResource{}, "", err.Error(), 0, false)`, which keeps
    only the generic 422 text: the library's "testing value /x failed" message is dropped
    (isUnexpectedResponse=false means no causes) and details stay empty.
    """
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})

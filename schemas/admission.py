"""`admission.k8s.io/v1` AdmissionReview and `admissionregistration.k8s.io/v1` webhook configurations.

Both ends of an admission call use these: kruisebus' webhook server decodes the request and encodes
the response, and the sim (acting as kube-apiserver) encodes the request, decodes the response and
reads Mutating/ValidatingWebhookConfiguration objects. One typed view keeps the two in step with
Kubernetes' wire format (camelCase, the JSON patch as base64 bytes, `allowed: false` with a Status).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

ADMISSION_API_VERSION: Final = "admission.k8s.io/v1"
REGISTRATION_GROUP: Final = "admissionregistration.k8s.io"
REGISTRATION_API_VERSION: Final = f"{REGISTRATION_GROUP}/v1"
KIND_MUTATING_CONFIG: Final = "MutatingWebhookConfiguration"
KIND_VALIDATING_CONFIG: Final = "ValidatingWebhookConfiguration"
PATCH_TYPE_JSON: Final = "JSONPatch"

OP_CREATE: Final = "CREATE"
OP_UPDATE: Final = "UPDATE"
OP_DELETE: Final = "DELETE"
OP_CONNECT: Final = "CONNECT"


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base: camelCase on the wire, defaults omitted."""


class GroupVersionKind(_Wire):
    group: str = ""
    version: str = ""
    kind: str = ""


class GroupVersionResource(_Wire):
    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Wire):
    username: str = ""
    uid: str = ""
    groups: list[str] = []


class AdmissionRequest(_Wire):
    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    operation: str
    sub_resource: str = ""
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str = ""
    name: str = ""
    namespace: str = ""
    user_info: UserInfo = msgspec.field(default_factory=UserInfo)
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    dry_run: bool | None = None
    options: dict[str, Any] | None = None


class StatusResult(_Wire):
    """The `metav1.Status` of a denial (`status.message` is what kubectl shows)."""

    code: int = 0
    message: str = ""
    reason: str = ""
    status: str = ""


class AdmissionResponse(_Wire):
    uid: str
    allowed: bool
    status: StatusResult | None = None
    patch: bytes | None = None  # base64 on the wire, as Go's []byte
    patch_type: str | None = None
    audit_annotations: dict[str, str] | None = None
    warnings: list[str] | None = None


class AdmissionReview(_Wire, omit_defaults=False):
    """Always written with its apiVersion and kind: kube-apiserver refuses a response without them
    ("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview")."""

    api_version: str = ADMISSION_API_VERSION
    kind: str = "AdmissionReview"
    request: AdmissionRequest | None = None
    response: AdmissionResponse | None = None


# --- admissionregistration.k8s.io/v1 -----------------------------------------------------------


class ServiceReference(_Wire):
    namespace: str
    name: str
    path: str | None = None
    port: int = 443


class WebhookClientConfig(_Wire):
    url: str | None = None
    service: ServiceReference | None = None
    ca_bundle: bytes | None = None  # PEM, base64 on the wire


class RuleWithOperations(_Wire):
    operations: list[str] = []
    api_groups: list[str] = []
    api_versions: list[str] = []
    resources: list[str] = []
    scope: str = "*"


class LabelSelector(_Wire):
    match_labels: dict[str, str] = {}
    match_expressions: list[dict[str, Any]] = []


class Webhook(_Wire):
    """One entry of `webhooks:` in either configuration kind (the mutating-only fields default off)."""

    name: str
    client_config: WebhookClientConfig
    admission_review_versions: list[str] = []
    side_effects: str = ""
    rules: list[RuleWithOperations] = []
    failure_policy: str = "Fail"
    match_policy: str = "Equivalent"
    namespace_selector: LabelSelector | None = None
    object_selector: LabelSelector | None = None
    timeout_seconds: int = 10
    reinvocation_policy: str = "Never"


class WebhookConfiguration(_Wire):
    metadata: dict[str, Any] = {}
    webhooks: list[Webhook] = []
    api_version: str = REGISTRATION_API_VERSION
    kind: str = ""


REVIEW_DECODER: Final = msgspec.json.Decoder(AdmissionReview)
REVIEW_ENCODER: Final = msgspec.json.Encoder()


# --- apiextensions.k8s.io/v1 ConversionReview (CRD conversion webhooks) ---------------------------

CONVERSION_API_VERSION: Final = "apiextensions.k8s.io/v1"
KIND_CONVERSION_REVIEW: Final = "ConversionReview"
CONVERSION_SUCCESS: Final = "Success"
CONVERSION_FAILURE: Final = "Failure"


class ConversionRequest(_Wire):
    uid: str
    desired_api_version: str = msgspec.field(name="desiredAPIVersion")
    objects: list[dict[str, Any]] = []


class ConversionResponse(_Wire, omit_defaults=False):
    """`convertedObjects` in the order of the request's objects; `result.status` Success or Failure
    (kube-apiserver reports `result.message` of a Failure as the conversion's error). kube-apiserver
    sends an empty one along with its request, hence every field optional."""

    uid: str = ""
    converted_objects: list[dict[str, Any]] | None = None  # kube-apiserver's request carries null here
    result: StatusResult = msgspec.field(default_factory=StatusResult)


class ConversionReview(_Wire, omit_defaults=False):
    api_version: str = CONVERSION_API_VERSION
    kind: str = KIND_CONVERSION_REVIEW
    request: ConversionRequest | None = None
    response: ConversionResponse | None = None


CONVERSION_DECODER: Final = msgspec.json.Decoder(ConversionReview)

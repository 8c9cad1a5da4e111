"""The CRD conversion webhook: ``apiextensions.k8s.io/v1`` ConversionReviews for the kinds kruisebus
serves in two versions.

kruisebus stores DaemonSets and SidecarSets as ``apps.kruise.io/v1alpha1`` (its planners read that
version) and also serves ``v1beta1``, OpenKruise's storage version, so manifests written for either
apply. The API server calls this webhook to turn a stored object into the version a client asked for,
and a write at v1beta1 into the stored form. The field mapping of each kind is a pure module of that
kind's planner (``services/planner/<kind>/conversion.py``); this module only routes by kind and version
and answers in the review's format.

``CONVERTED`` is also what the webhook registers: the CRDs it names get
``spec.conversion.webhook.clientConfig`` (with the current caBundle) pointing here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from schemas.admission import (
    CONVERSION_FAILURE,
    CONVERSION_SUCCESS,
    ConversionResponse,
    ConversionReview,
    StatusResult,
)
from schemas.constants import KIND_DAEMONSET, KIND_SIDECARSET
from schemas.messages import DAEMONSETS, SIDECARSETS, Resource
from services.planner.daemonset import conversion as daemonset
from services.planner.sidecarset import conversion as sidecarset

PATH: Final = "/convert"
CRDS: Final = Resource(group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions",
                       namespaced=False)

Convert = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Converted:
    """One kind served in two versions: its CRD, its storage version and the two directions."""

    group: str
    kind: str
    plural: str
    storage: str  # the apiVersion kruisebus stores and plans on
    other: str  # the apiVersion served through this webhook
    to_storage: Convert
    from_storage: Convert

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


CONVERTED: Final[tuple[Converted, ...]] = (
    Converted(DAEMONSETS.group, KIND_DAEMONSET, DAEMONSETS.plural, daemonset.V1ALPHA1, daemonset.V1BETA1,
              daemonset.to_v1alpha1, daemonset.to_v1beta1),
    Converted(SIDECARSETS.group, KIND_SIDECARSET, SIDECARSETS.plural, sidecarset.V1ALPHA1, sidecarset.V1BETA1,
              sidecarset.to_v1alpha1, sidecarset.to_v1beta1),
)
_BY_KIND: Final = {(c.group, c.kind): c for c in CONVERTED}


class ConversionError(ValueError):
    """An object this webhook cannot convert (unknown kind or version): the review answers Failure."""


def convert(obj: dict[str, Any], desired: str) -> dict[str, Any]:
    """`obj` at apiVersion `desired` (the object itself when it is already there)."""
    api_version = obj.get("apiVersion") or ""
    group = api_version.rpartition("/")[0]
    entry = _BY_KIND.get((group, obj.get("kind") or ""))
    if entry is None:
        raise ConversionError(f"unsupported kind {obj.get('kind')!r} in {api_version!r}")
    versions = (entry.storage, entry.other)
    if api_version not in versions:
        raise ConversionError(f"unsupported version {api_version!r} for {entry.kind}")
    if desired not in versions:
        raise ConversionError(f"unsupported desired version {desired!r} for {entry.kind}")
    if api_version == desired:
        return obj
    return entry.to_storage(obj) if desired == entry.storage else entry.from_storage(obj)


def answer(review: ConversionReview) -> ConversionReview:
    """The response to one review: every object converted, or Failure naming the first that is not."""
    request = review.request
    assert request is not None
    try:
        objects = [convert(o, request.desired_api_version) for o in request.objects]
    except ConversionError as e:
        response = ConversionResponse(uid=request.uid, result=StatusResult(status=CONVERSION_FAILURE,
                                                                           message=str(e)))
    except (AttributeError, KeyError, TypeError, ValueError) as e:  # a malformed object: say so, never a 500
        response = ConversionResponse(uid=request.uid, result=StatusResult(
            status=CONVERSION_FAILURE, message=f"malformed object: {type(e).__name__}: {e}"))
    else:
        response = ConversionResponse(uid=request.uid, converted_objects=objects,
                                      result=StatusResult(status=CONVERSION_SUCCESS))
    return ConversionReview(api_version=review.api_version, response=response)


def crd_conversion(client_config: dict[str, Any]) -> dict[str, Any]:
    """`spec.conversion` of a converted CRD for a webhook reached at `client_config` (url or service,
    with caBundle); the path is this module's."""
    cc = dict(client_config)
    if "service" in cc:
        cc["service"] = {**cc["service"], "path": PATH}
    else:
        cc["url"] = cc["url"] + PATH
    return {"strategy": "Webhook", "webhook": {"clientConfig": cc, "conversionReviewVersions": ["v1"]}}


__all__ = ["CONVERTED", "CRDS", "PATH", "ConversionError", "Converted", "answer", "convert", "crd_conversion"]

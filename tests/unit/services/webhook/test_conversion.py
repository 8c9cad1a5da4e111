"""The webhook's ConversionReview answers: every object to the desired version, in order, or Failure."""

from __future__ import annotations

import msgspec

from schemas.admission import CONVERSION_DECODER, ConversionRequest, ConversionReview
from services.webhook.conversion import answer, crd_conversion


def _review(desired: str, *objects: dict[str, object]) -> ConversionReview:
    return ConversionReview(request=ConversionRequest(uid="u1", desired_api_version=desired, objects=list(objects)))


DS = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet", "metadata": {"name": "a"},
      "status": {"daemonSetHash": "h"}}
SCS = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": "b"},
       "spec": {"namespace": "ns"}}


def test_objects_are_converted_in_order() -> None:
    out = answer(_review("apps.kruise.io/v1beta1", DS, SCS)).response
    assert out is not None and out.uid == "u1" and out.result.status == "Success"
    assert out.converted_objects == [
        {"apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet", "metadata": {"name": "a"},
         "status": {"updateRevision": "h"}},
        {"apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet", "metadata": {"name": "b"},
         "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ns"}}}},
    ]


def test_an_object_already_at_the_desired_version_is_returned_as_is() -> None:
    out = answer(_review("apps.kruise.io/v1alpha1", DS)).response
    assert out is not None and out.converted_objects == [DS]


def test_an_unknown_kind_or_version_fails_the_review() -> None:
    clone = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "c"}}
    out = answer(_review("apps.kruise.io/v1beta1", DS, clone)).response
    assert out is not None and out.result.status == "Failure"
    assert "CloneSet" in out.result.message
    out = answer(_review("apps.kruise.io/v2", DS)).response
    assert out is not None and out.result.status == "Failure" and "apps.kruise.io/v2" in out.result.message


def test_the_review_kube_apiserver_sends_decodes() -> None:
    # kube-apiserver sends an empty response block along with the request
    raw = (b'{"kind":"ConversionReview","apiVersion":"apiextensions.k8s.io/v1","request":{"uid":"x",'
           b'"desiredAPIVersion":"apps.kruise.io/v1beta1","objects":[]},"response":{"uid":"","convertedObjects":null,'
           b'"result":{"metadata":{}}}}')
    review = CONVERSION_DECODER.decode(raw)
    assert review.request is not None and review.request.desired_api_version == "apps.kruise.io/v1beta1"
    encoded = msgspec.json.decode(msgspec.json.encode(answer(review)))
    assert encoded["response"] == {"uid": "x", "convertedObjects": [], "result": {"status": "Success"}}


def test_crd_conversion_points_at_the_convert_path() -> None:
    svc = crd_conversion({"service": {"namespace": "ns", "name": "wh", "port": 443}, "caBundle": "Q0E="})
    assert svc == {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
        "service": {"namespace": "ns", "name": "wh", "port": 443, "path": "/convert"}, "caBundle": "Q0E="}}}
    url = crd_conversion({"url": "https://127.0.0.1:9443", "caBundle": "Q0E="})
    assert url["webhook"]["clientConfig"]["url"] == "https://127.0.0.1:9443/convert"

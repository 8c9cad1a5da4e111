"""CRD version conversion: a custom resource served in several versions is stored once, at the CRD's
storage version, and converted for every request at another version, as kube-apiserver does.

Why: kruisebus serves DaemonSet and SidecarSet as ``apps.kruise.io/v1alpha1`` (stored) and ``v1beta1``
(converted by its webhook), and a client must see the same object through both. What is emulated
(``k8s.io/apiextensions-apiserver/pkg/apiserver/conversion``), generally, by CRD:

* ``spec.conversion.strategy: None``: only ``apiVersion`` changes; ``Webhook``: a ConversionReview
  (``apiextensions.k8s.io/v1``) to ``webhook.clientConfig`` over HTTPS, verified against its
  ``caBundle``, with the admission chain's client (``url``, or ``service`` resolved as for admission
  webhooks); the converted objects' labels and annotations are kept, the rest of their metadata is the
  original's;
* reads: get and list (one review for the whole list; Tables use the request version's printer
  columns) and watch (each batch of events converted before it is sent);
* writes: the body is pruned by the request version's schema, converted to the storage version and
  then served as a write at the storage version (admission, validation, storage), and the result is
  converted back. kube-apiserver admits the request-version object and converts it for each webhook
  whose rules name another version (``matchPolicy: Equivalent``, the default), so a webhook registered
  for the storage version, like kruisebus', sees the same object either way. A patch is applied to the
  object converted to the request version, then written as an update with the resourceVersion it was
  applied to (retried on a conflict, like kube-apiserver's patch loop);
* a failed conversion answers 500 InternalError ``Internal error occurred: conversion webhook for
  <group/version, Kind=kind> failed: <why>``, the kind being the one converted from (the stored version
  on a read, the request's on a write); in a watch: an ERROR event, then the stream ends.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Final

import msgspec

from schemas.admission import (
    CONVERSION_API_VERSION,
    CONVERSION_DECODER,
    CONVERSION_SUCCESS,
    KIND_CONVERSION_REVIEW,
    WebhookClientConfig,
)
from schemas.jsonmerge import merge_patch
from sim import errors, schema
from sim.errors import ApiError
from sim.patch import PatchDecodeError, PatchError, json_patch
from sim.resources import ResourceType
from sim.store import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    WatchEvent,
    copy_obj,
    patch_failure,
    patched_object,
)

if TYPE_CHECKING:
    from sim.admission import Admission
    from sim.http import Request, Result
    from sim.server import ApiServer

TIMEOUT_SECONDS: Final = 30  # kube-apiserver's timeout for a conversion webhook call
_CC_DECODER: Final = msgspec.json.Decoder(WebhookClientConfig)
_RETRIES: Final = 5


class ConversionFailed(ApiError):
    """kube-apiserver's answer: a request body it cannot convert is an InternalError ("Internal error
    occurred: ..."); a stored object it cannot convert is a bare 500 with no reason (kubectl: "Error
    from server: conversion webhook for ...")."""

    def __init__(self, gvk: str, why: str, *, write: bool) -> None:
        message = f"conversion webhook for {gvk} failed: {why}"
        if write:
            message = f"Internal error occurred: {message}"
            super().__init__(500, "InternalError", message, {"causes": [{"message": message}]})
        else:
            super().__init__(500, "", message, None)


def _gvk(obj: dict[str, Any]) -> str:
    return f"{obj.get('apiVersion', '')}, Kind={obj.get('kind', '')}"


def _restore_meta(original: dict[str, Any], converted: dict[str, Any]) -> dict[str, Any]:
    """The converted object with the original's metadata, except its labels and annotations (which a
    conversion may change), as kube-apiserver keeps them."""
    meta = dict(original.get("metadata") or {})
    cmeta = converted.get("metadata") or {}
    for key in ("labels", "annotations"):
        if cmeta.get(key):
            meta[key] = cmeta[key]
        else:
            meta.pop(key, None)
    return {**converted, "metadata": meta}


class Conversion:
    """Converts between the versions of the CRDs in one sim's store."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.store = admission.store

    def storage(self, rt: ResourceType) -> ResourceType:
        stored = self.store.lookup(rt.group, rt.storage_version, rt.plural)
        if stored is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        return stored

    # --- converting objects ---------------------------------------------------------------------

    async def convert(
        self, rt: ResourceType, objects: list[dict[str, Any]], desired: str, *, write: bool = False
    ) -> list[dict[str, Any]]:
        """`objects` (of `rt`'s CRD) at apiVersion `desired`, by the CRD's conversion strategy (`write`:
        they are a request's body, which changes how a failure is reported)."""
        todo = [i for i, o in enumerate(objects) if o.get("apiVersion") != desired]
        if not todo:
            return objects
        crd_rt = self.store.rt("customresourcedefinitions", "apiextensions.k8s.io")
        crd = self.store.try_get(crd_rt, "", rt.group_resource)
        spec_conversion = ((crd or {}).get("spec") or {}).get("conversion") or {}
        out = list(objects)
        if spec_conversion.get("strategy", "None") != "Webhook":
            for i in todo:
                out[i] = {**objects[i], "apiVersion": desired}
            return out
        sent = [objects[i] for i in todo]
        got = await self._call(spec_conversion.get("webhook") or {}, sent, desired, write)
        for i, original, converted in zip(todo, sent, got, strict=True):
            out[i] = _restore_meta(original, converted)
        return out

    async def _call(
        self, webhook: dict[str, Any], objects: list[dict[str, Any]], desired: str, write: bool
    ) -> list[dict[str, Any]]:
        gvk = _gvk(objects[0])

        def failed(why: str) -> ConversionFailed:
            return ConversionFailed(gvk, why, write=write)

        try:
            cc = _CC_DECODER.decode(msgspec.json.encode(webhook.get("clientConfig") or {}))
        except msgspec.ValidationError as e:
            raise failed(f"invalid clientConfig: {e}") from None
        from sim.admission import WebhookCallError

        try:
            shown, url, server_name = self.admission.target(cc)
        except WebhookCallError as e:  # kube-apiserver fails in its dialer, after naming the request
            ref = cc.service
            where = f"https://{ref.name}.{ref.namespace}.svc:{ref.port}{ref.path or ''}" if ref else ""
            raise failed(f'Post "{where}?timeout={TIMEOUT_SECONDS}s": {e}' if ref else str(e)) from None
        uid = str(uuid.uuid4())
        body = msgspec.json.encode({"apiVersion": CONVERSION_API_VERSION, "kind": KIND_CONVERSION_REVIEW,
                                    "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects}})
        try:
            raw = await self.admission.post_review(url, body, shown=shown, ca_bundle=cc.ca_bundle,
                                                   server_name=server_name, timeout=TIMEOUT_SECONDS)
        except WebhookCallError as e:
            raise failed(str(e)) from None
        try:
            review = CONVERSION_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise failed(f"received invalid webhook response: {e}") from None
        response = review.response
        if response is None:
            raise failed("no response provided")
        if response.uid != uid:
            raise failed(f'expected response.uid="{uid}", got "{response.uid}"')
        if response.result.status != CONVERSION_SUCCESS:
            raise failed(response.result.message or "conversion failed")
        converted = response.converted_objects or []
        if len(converted) != len(objects):
            raise failed(f"returned {len(converted)} objects, expected {len(objects)}")
        for c in converted:
            if c.get("apiVersion") != desired:
                raise failed(f"invalid apiVersion {c.get('apiVersion')!r} in the response, expected {desired!r}")
        return converted

    async def events(self, rt: ResourceType, batch: list[WatchEvent]) -> list[WatchEvent]:
        """A watch batch (of stored objects) at `rt`'s version."""
        converted = await self.convert(rt, [ev.obj for ev in batch], rt.api_version)
        return [WatchEvent(ev.type, obj, None, ev.rv) for ev, obj in zip(batch, converted, strict=True)]

    # --- the request path -----------------------------------------------------------------------

    async def handle(
        self, server: ApiServer, request: Request, verb: str, rt: ResourceType, ns: str, name: str, sub: str
    ) -> Result:
        """Serve a request at a converted version (everything but watch) through the storage version."""
        from sim.http import Headers, Response
        from sim.http import Request as HttpRequest
        from sim.server import json_response

        stored = self.storage(rt)
        path = request.path.replace(f"/{rt.group}/{rt.version}/", f"/{rt.group}/{stored.version}/", 1)
        headers = Headers(request.headers)
        headers["accept"] = "application/json"
        body = b""
        pruned: list[str] = []
        method, out_verb = request.method, verb
        if verb in ("create", "update"):
            obj = server._body(request)
            body = await self._to_storage(rt, stored, obj, pruned, request.query.get("fieldValidation"), name=name)
        elif verb == "patch":
            return await self._patch(server, request, rt, ns, name, sub)
        else:
            body = request.body
        headers["content-type"] = "application/json" if body else headers.get("content-type", "")
        forwarded = HttpRequest(method, path, request.query_string, headers, body, None)
        result = await self._serve(server, forwarded, out_verb, stored, ns, name, sub)
        assert isinstance(result, Response)
        if result.status >= 300 or not result.body:
            return result
        doc = msgspec.json.decode(result.body)
        extra = [(k, v) for k, v in result.headers if k.lower() != "content-type"]
        if isinstance(doc, dict) and doc.get("kind") == rt.kind:
            (converted,) = await self.convert(rt, [doc], rt.api_version)
            if verb == "get":
                out = server._respond_objects(request, rt, [converted], single=True)
            else:
                out = json_response(converted, result.status)
        elif isinstance(doc, dict) and doc.get("kind") == rt.list_kind:
            items = await self.convert(rt, doc.get("items") or [], rt.api_version)
            meta = doc.get("metadata") or {}
            out = server._respond_objects(request, rt, items, rv=meta.get("resourceVersion", ""), list_meta=meta)
        else:
            return result
        out.status = result.status
        for k, v in extra:
            out.add_header(k, v)
        for w in pruned:
            out.add_header("Warning", _warning(w))
        return out

    @staticmethod
    async def _serve(
        server: ApiServer, request: Request, verb: str, rt: ResourceType, ns: str, name: str, sub: str
    ) -> Result:
        from sim.http import Response

        result = server._handle(request, verb, rt, ns, name, sub)
        return result if isinstance(result, Response) else await result

    async def _to_storage(
        self, rt: ResourceType, stored: ResourceType, obj: Any, pruned: list[str], field_validation: str | None,
        *, name: str = "",
    ) -> bytes:
        """A request body at `rt`'s version as the storage version's JSON: pruned by `rt`'s schema first
        (a field only the storage version has is not carried over), then converted."""
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be an object")
        obj = copy_obj(obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if name:
            obj.setdefault("metadata", {}).setdefault("name", name)
        if rt.schema:
            dropped = schema.prune(obj, rt.schema)
            fv = (field_validation or "").lower()
            if dropped and fv == "strict":
                raise errors.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                                         f"{rt.kind}: strict decoding error: "
                                         + ", ".join(f'unknown field "{p}"' for p in dropped))
            if fv != "ignore":
                pruned.extend(f'unknown field "{p}"' for p in dropped)
        (converted,) = await self.convert(rt, [obj], stored.api_version, write=True)
        return msgspec.json.encode(converted)

    async def _patch(
        self,
        server: ApiServer,
        request: Request,
        rt: ResourceType,
        ns: str,
        name: str,
        sub: str,
    ) -> Result:
        """A patch at `rt`'s version: applied to the current object at that version, written as an update
        of the storage version at the resourceVersion it was applied to."""
        from sim.http import Response

        ctype = request.content_type
        if ctype == STRATEGIC_PATCH or ctype not in (JSON_PATCH, MERGE_PATCH, APPLY_PATCH):
            raise errors.unsupported_media_type(ctype, [JSON_PATCH, MERGE_PATCH, APPLY_PATCH])
        patch = server._body(request)
        stored = self.storage(rt)
        for attempt in range(_RETRIES):
            current = self.store.try_get(stored, ns, name)
            if current is None:
                if ctype != APPLY_PATCH or sub:
                    raise errors.not_found(rt, name)
                if not isinstance(patch, dict):
                    raise errors.bad_request("the body of the request must be an object")
                body = {**patch, "metadata": {**(patch.get("metadata") or {}), "name": name}}
                create = _json_request(request, "POST", request.path.rsplit("/", 1)[0], body)
                return await self.handle(server, create, "create", rt, ns, "", sub)
            (at_version,) = await self.convert(rt, [current], rt.api_version)
            try:
                if ctype == JSON_PATCH:
                    new = json_patch(at_version, patch)
                else:
                    if not isinstance(patch, dict):
                        raise PatchDecodeError("patch must be an object")
                    new = merge_patch(at_version, patch)
            except (PatchError, PatchDecodeError) as e:
                raise patch_failure(e) from None
            new = copy_obj(patched_object(new))
            pinned = bool((new.get("metadata") or {}).get("resourceVersion")) and (
                new["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
            )
            new.setdefault("metadata", {})["resourceVersion"] = (
                new["metadata"].get("resourceVersion") or current["metadata"]["resourceVersion"]
            )
            update = _json_request(request, "PUT", request.path, new)
            result = await self.handle(server, update, "update", rt, ns, name, sub)
            if isinstance(result, Response) and result.status == 409 and not pinned and attempt < _RETRIES - 1:
                continue  # written meanwhile: apply the patch again to the new object
            return result
        raise AssertionError("unreachable")


def _json_request(request: Request, method: str, path: str, body: Any) -> Request:
    """`request` re-issued as `method path` with a JSON body (same query and other headers)."""
    from sim.http import Headers
    from sim.http import Request as HttpRequest

    headers = Headers(request.headers)
    headers["content-type"] = "application/json"
    return HttpRequest(method, path, request.query_string, headers, msgspec.json.encode(body), None)


def _warning(text: str) -> str:
    from sim.server import warning_header

    return warning_header(text)


__all__ = ["Conversion", "ConversionFailed"]

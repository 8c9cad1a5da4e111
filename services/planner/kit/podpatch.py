"""JSON-patch builder for pod writes that must be exact and guarded.

Every pod write the planner issues is a JSON patch (RFC 6902) whose first operations are ``test``
preconditions: the pod uid (a re-created pod with the same name is a different pod) and the labels the
decision was based on (typically ``controller-revision-hash``). The executor treats a failed ``test``
as "stale plan": the command is dropped and the planner re-plans from fresh state. So a duplicated
in-place update can never move a pod twice for one revision, and a decision taken on an old view can
never clobber a newer one.

JSON patch has sharp edges this builder hides: ``add`` to ``/metadata/annotations/<k>`` fails if the
pod has no annotations map, while ``add`` of the map itself would replace an existing one (so it is
guarded by a ``test`` for null); ``remove`` of a missing key fails (and would look like a stale plan);
keys need RFC 6901 escaping (``/`` -> ``~1``). The builder knows the pod's observed metadata and emits
only operations that apply cleanly to it.
"""

from __future__ import annotations

from typing import Any

from schemas.kube import JsonObject, Pod


def escape(key: str) -> str:
    """RFC 6901 escaping of one path segment."""
    return key.replace("~", "~0").replace("/", "~1")


class PodPatch:
    """Accumulates guarded JSON-patch operations against one observed pod."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.tests: list[JsonObject] = [{"op": "test", "path": "/metadata/uid", "value": pod.metadata.uid}]
        self.ops: list[JsonObject] = []
        self._had_labels = bool(pod.metadata.labels)
        self._had_annotations = bool(pod.metadata.annotations)
        self._finalizers: list[str] = list(pod.metadata.finalizers)
        self._label_ops: dict[str, JsonObject] = {}
        self._annotation_ops: dict[str, JsonObject] = {}

    # --- preconditions -------------------------------------------------------------------------

    def test_label(self, key: str) -> None:
        """Require the label's current value (as observed) to be unchanged; absent labels are not testable."""
        value = self.pod.metadata.labels.get(key)
        if value is not None:
            self.tests.append({"op": "test", "path": f"/metadata/labels/{escape(key)}", "value": value})

    def test_resource_version(self) -> None:
        """Require the pod to be exactly the version observed: any change since (a kubelet status
        update included) makes the write stale, so a decision that depends on the pod's status (a pod
        not Ready taken outside a budget) is not applied to a pod whose status has moved on."""
        if self.pod.metadata.resource_version:
            self.tests.append({"op": "test", "path": "/metadata/resourceVersion",
                               "value": self.pod.metadata.resource_version})

    def test_annotation(self, key: str) -> None:
        value = self.pod.metadata.annotations.get(key)
        if value is not None:
            self.tests.append({"op": "test", "path": f"/metadata/annotations/{escape(key)}", "value": value})

    # --- mutations -----------------------------------------------------------------------------

    def set_label(self, key: str, value: str) -> None:
        self._label_ops[key] = {"op": "add", "path": f"/metadata/labels/{escape(key)}", "value": value}

    def remove_label(self, key: str) -> None:
        if key in self.pod.metadata.labels:
            self._label_ops[key] = {"op": "remove", "path": f"/metadata/labels/{escape(key)}"}
        else:
            self._label_ops.pop(key, None)

    def set_annotation(self, key: str, value: str) -> None:
        self._annotation_ops[key] = {
            "op": "add",
            "path": f"/metadata/annotations/{escape(key)}",
            "value": value,
        }

    def remove_annotation(self, key: str) -> None:
        if key in self.pod.metadata.annotations:
            self._annotation_ops[key] = {"op": "remove", "path": f"/metadata/annotations/{escape(key)}"}
        else:
            self._annotation_ops.pop(key, None)

    def add_finalizer(self, name: str) -> None:
        if name not in self._finalizers:
            self._finalizers.append(name)

    def remove_finalizer(self, name: str) -> None:
        if name in self._finalizers:
            self._finalizers.remove(name)

    def set_container_image(self, index: int, image: str) -> None:
        self.ops.append({"op": "replace", "path": f"/spec/containers/{index}/image", "value": image})

    @property
    def empty(self) -> bool:
        return not (self.ops or self._label_ops or self._annotation_ops or self._finalizer_ops())

    def _finalizer_ops(self) -> list[JsonObject]:
        old = list(self.pod.metadata.finalizers)
        if old == self._finalizers:
            return []
        if not old:
            return [
                {"op": "test", "path": "/metadata/finalizers", "value": None},
                {"op": "add", "path": "/metadata/finalizers", "value": list(self._finalizers)},
            ]
        return [
            {"op": "test", "path": "/metadata/finalizers", "value": old},
            {"op": "replace", "path": "/metadata/finalizers", "value": list(self._finalizers)},
        ]

    def build(self) -> list[JsonObject]:
        out: list[JsonObject] = list(self.tests)
        label_ops = list(self._label_ops.values())
        if label_ops and not self._had_labels:
            out.extend(_create_map("/metadata/labels"))
        out.extend(label_ops)
        ann_ops = list(self._annotation_ops.values())
        if ann_ops and not self._had_annotations:
            out.extend(_create_map("/metadata/annotations"))
        out.extend(ann_ops)
        out.extend(self._finalizer_ops())
        out.extend(self.ops)
        return out


def _create_map(path: str) -> list[JsonObject]:
    """Create a missing map: ``add`` would *replace* an existing one, so first test that it is absent.

    Kubernetes' JSON patch (evanphx/json-patch) treats ``test`` with value null as passing for a missing
    member. If the view under-reported the map (a stripped watcher state), the test fails and the
    command is dropped as stale instead of wiping the pod's labels/annotations.
    """
    return [{"op": "test", "path": path, "value": None}, {"op": "add", "path": path, "value": {}}]


def status_conditions_patch(pod: Pod, conditions: list[dict[str, Any]]) -> JsonObject:
    """Strategic-merge body for the pod status subresource: conditions merge by type; uid guards it."""
    return {"metadata": {"uid": pod.metadata.uid}, "status": {"conditions": conditions}}


def status_metadata_patch(pod: Pod, *, labels: dict[str, str | None], annotations: dict[str, str | None],
                          conditions: list[dict[str, Any]]) -> JsonObject:
    """Strategic-merge body for the pod status subresource that also sets or removes (None) labels and
    annotations, as Kruise's NodePodProbe controller writes probe markers; the uid guards it, conditions
    merge by type (`{"type": T, "$patch": "delete"}` removes one)."""
    meta: JsonObject = {"uid": pod.metadata.uid}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    body: JsonObject = {"metadata": meta}
    if conditions:
        body["status"] = {"conditions": conditions}
    return body

"""What the end-to-end tests say to the cluster again and again: a CloneSet body, "settled", an image change."""

from __future__ import annotations

from typing import Any

from schemas.messages import CLONESETS
from services.kube import Kube
from services.observe import Snapshot, poll, snapshot

NS = "default"


def cloneset(name: str, *, replicas: int = 3, strategy: dict[str, Any] | None = None,
             labels: dict[str, str] | None = None, lifecycle: dict[str, Any] | None = None,
             image: str = "nginx:1.20") -> dict[str, Any]:
    template_labels = {"app": name, **(labels or {})}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "updateStrategy": strategy or {"type": "InPlaceIfPossible"},
        "template": {"metadata": {"labels": template_labels},
                     "spec": {"containers": [{"name": "main", "image": image}]}},
    }
    if lifecycle:
        spec["lifecycle"] = lifecycle
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


async def settled(kube: Kube, name: str, replicas: int, *, timeout: float = 60) -> Snapshot:
    """All pods ready and on the update revision, status caught up with the spec."""
    def done(s: Snapshot) -> bool:
        st = s.cloneset.status
        return (len(s.pods) == replicas and s.ready == replicas and st.updated_ready_replicas == replicas
                and st.observed_generation == s.cloneset.metadata.generation
                and st.current_revision == st.update_revision and len(s.updated()) == replicas)
    return await poll(lambda: snapshot(kube, NS, name), done, timeout=timeout, what=f"{name} to settle")


async def set_image(kube: Kube, name: str, image: str) -> None:
    await kube.patch(CLONESETS, NS, name, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": image}]}}}}, "merge")

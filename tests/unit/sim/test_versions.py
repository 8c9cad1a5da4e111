"""A CRD served in several versions: one set of objects at the storage version, and Kubernetes'
version priority in discovery (what makes kubectl read `apps.kruise.io` DaemonSets at v1beta1)."""

from __future__ import annotations

from sim.resources import version_priority
from sim.store import Store


def test_versions_sort_ga_then_beta_then_alpha_highest_first() -> None:
    names = ["v1alpha1", "foo", "v1", "v1beta1", "v2", "v1beta2", "v2alpha1"]
    assert sorted(names, key=version_priority) == ["v2", "v1", "v1beta2", "v1beta1", "v2alpha1", "v1alpha1", "foo"]


def test_versions_of_one_crd_share_the_storage_versions_objects() -> None:
    store = Store()
    crds = store.rt("customresourcedefinitions", "apiextensions.k8s.io")
    store.create(crds, "", {
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1beta1", "served": True, "storage": False},
                              {"name": "v1", "served": True, "storage": True}]}})
    beta, ga = store.lookup("example.com", "v1beta1", "widgets"), store.lookup("example.com", "v1", "widgets")
    assert beta is not None and ga is not None
    assert beta.converted and not ga.converted
    assert store.rt("widgets", "example.com") is ga  # no version asked: the storage version
    store.create(ga, "", {"metadata": {"name": "w"}})
    (only,), _ = store.list(beta)
    assert only["apiVersion"] == "example.com/v1"  # stored once, at the storage version
    store.delete(crds, "", "widgets.example.com")
    assert store.lookup("example.com", "v1beta1", "widgets") is None


def test_the_chart_serves_daemonsets_and_sidecarsets_in_two_versions() -> None:
    store = Store()
    for plural in ("daemonsets", "sidecarsets"):
        alpha = store.lookup("apps.kruise.io", "v1alpha1", plural)
        beta = store.lookup("apps.kruise.io", "v1beta1", plural)
        assert alpha is not None and beta is not None
        assert (alpha.storage_version, beta.converted) == ("v1alpha1", True)
    clonesets = store.lookup("apps.kruise.io", "v1alpha1", "clonesets")
    assert clonesets is not None and not clonesets.converted

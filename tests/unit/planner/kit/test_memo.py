"""kit.memo: facts are reused only for the same object at the same resourceVersion, and the positions
that changed are reported so a planner can patch what it derived."""

from __future__ import annotations

import msgspec

from schemas.kube import ObjectMeta, Pod
from services.planner.kit.memo import MemoRegistry, ObjectMemo


def _pod(name: str, rv: str = "1") -> Pod:
    return msgspec.convert({"metadata": {"name": name, "uid": name, "resourceVersion": rv}}, Pod)


def test_facts_are_computed_once_per_object_and_version() -> None:
    calls: list[str] = []

    def compute(p: Pod) -> str:
        calls.append(p.metadata.name)
        return f"{p.metadata.name}@{p.metadata.resource_version}"

    memo: ObjectMemo[Pod, str] = ObjectMemo(compute)
    a, b = _pod("a"), _pod("b")
    assert memo.facts([a, b]) == ["a@1", "b@1"]
    assert memo.facts([a, b]) == ["a@1", "b@1"] and calls == ["a", "b"]
    version = memo.version
    b2 = _pod("b", "2")  # a new version of b
    assert memo.facts([a, b2]) == ["a@1", "b@2"] and calls == ["a", "b", "b"]
    assert memo.version == version + 1 and memo.changes == [(1, "b@1", "b@2")]
    # the same object mutated in place under a new resourceVersion is recomputed too
    a.metadata = ObjectMeta(name="a", uid="a", resource_version="3")
    assert memo.facts([a, b2]) == ["a@3", "b@2"]
    # an equal but different object is not trusted
    assert memo.facts([_pod("a", "3"), b2]) == ["a@3", "b@2"] and calls.count("a") == 3
    # a different length: no position list
    assert memo.facts([b2]) == ["b@2"] and memo.changes is None


def test_the_registry_starts_afresh_for_another_key_and_keeps_a_bounded_number() -> None:
    reg: MemoRegistry[Pod, str] = MemoRegistry(limit=2)
    first = reg.get("ds-1", "k1", lambda p: p.metadata.name)
    assert reg.get("ds-1", "k1", lambda p: "other") is first
    assert reg.get("ds-1", "k2", lambda p: p.metadata.name) is not first
    reg.get("ds-2", None, lambda p: "")
    reg.get("ds-3", None, lambda p: "")
    assert reg.get("ds-1", "k2", lambda p: "") is not first  # evicted (least recently used)

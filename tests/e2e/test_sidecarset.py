"""SidecarSet end to end on the sim, every service a process (issue 13).

The webhook (with its pod hook) injects sidecars into a Deployment-style pod and a CloneSet's pods at
creation; the planner records revisions in Kruise's namespace and upgrades sidecar images in place;
the seed canary (partition 90% with customVersion) upgrades exactly one of five pods while new pods get
version 1; a non-image change makes pods not upgradable (condition and Event); a patchPodMetadata key
without a whitelist is refused at admission with Kruise's message.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import aiohttp
import msgspec
import pytest

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    LABEL_SIDECARSET_CUSTOM_VERSION,
    LABEL_SIDECARSET_NAME,
)
from schemas.kube import Pod
from schemas.messages import CLONESETS, CONTROLLER_REVISIONS, EVENTS, NAMESPACES, PODS, SIDECARSETS, Resource
from services.errors import KubeError
from services.kube import Kube
from services.observe import poll
from services.stack import Stack
from tests.e2e.helpers import NS, cloneset, settled

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]
POD_HOOK = [{"service_args": {"webhook": ("--pod-hook",)}}]
CONFIGMAPS = Resource(plural="configmaps")
KRUISE_NS = "kruise-system"


def sidecarset(name: str, image: str, *, version: str = "", **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if version:
        meta["labels"] = {LABEL_SIDECARSET_CUSTOM_VERSION: version}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": meta,
            "spec": {"selector": {"matchLabels": {"sidecar": "log"}},
                     "containers": [{"name": "log-agent", "image": image}], **spec}}


def bare_pod(name: str) -> dict[str, Any]:
    """A pod no CloneSet owns, as a Deployment's would be (the sim runs no ReplicaSet controller, and
    collects pods whose owner does not exist)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": NS, "labels": {"app": "deploy", "sidecar": "log"}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}


async def webhook_view(stack: Stack) -> dict[str, Any]:
    port = json.loads((stack.workdir / "webhook.ready").read_text())["port"]
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    async with aiohttp.ClientSession() as s, s.get(f"https://127.0.0.1:{port}/view", ssl=ctx) as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def known(stack: Stack, kube: Kube, name: str) -> None:
    """Until the webhook's view holds the SidecarSet as stored now, or later (the sim's resourceVersions
    are increasing integers)."""
    stored = msgspec.json.decode(await kube.get(SIDECARSETS, None, name))
    rv = stored["metadata"]["resourceVersion"]
    await poll(lambda: webhook_view(stack), lambda v: v["ready"] and int(v["sidecarsets"].get(name, 0)) >= int(rv),
               timeout=30, what=f"the webhook to see SidecarSet {name}")


async def web_pods(kube: Kube) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector="sidecar=log")
    return sorted((msgspec.json.decode(i, type=Pod) for i in items), key=lambda p: p.metadata.name)


def sidecar_image(pod: Pod) -> str:
    return next(c.image for c in pod.spec.containers if c.name == "log-agent")


async def status_of(kube: Kube, name: str) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.json.decode(await kube.get(SIDECARSETS, None, name)).get("status") or {}
    return result


@pytest.mark.parametrize("stack", POD_HOOK, indirect=True)
async def test_injection_revisions_and_seed_canary(stack: Stack, kube: Kube) -> None:
    await kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KRUISE_NS}})
    await kube.create(SIDECARSETS, None, sidecarset("log", "log-agent:v1", version="1",
                                                    updateStrategy={"type": "NotUpdate"}))
    stored = msgspec.json.decode(await kube.get(SIDECARSETS, None, "log"))
    assert stored["spec"]["containers"][0]["podInjectPolicy"] == "BeforeAppContainer"  # defaulted at admission
    assert len(stored["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH]) == 64
    await known(stack, kube, "log")

    # a Deployment-style pod and a CloneSet's pods get the sidecar at creation
    await kube.create(PODS, NS, bare_pod("web-deploy-1"))
    pod = msgspec.json.decode(await kube.get(PODS, NS, "web-deploy-1"), type=Pod)
    assert [c.name for c in pod.spec.containers] == ["log-agent", "main"]
    assert pod.metadata.annotations[ANNOTATION_SIDECARSET_INJECTED_LIST] == "log"
    await kube.create(CLONESETS, NS, cloneset("web", replicas=4, labels={"sidecar": "log"}))
    await settled(kube, "web", 4)
    pods = await web_pods(kube)
    assert len(pods) == 5 and all(sidecar_image(p) == "log-agent:v1" for p in pods)

    # the revision lives in Kruise's namespace with Kruise's labels; status counts the pods
    status = await poll(lambda: status_of(kube, "log"), lambda s: s.get("matchedPods") == 5
                        and s.get("readyPods") == 5 and s.get("latestRevision"), timeout=60,
                        what="SidecarSet status (5 matched and ready)")
    items, _ = await kube.list(CONTROLLER_REVISIONS, KRUISE_NS, label_selector=f"{LABEL_SIDECARSET_NAME}=log")
    revs = [msgspec.json.decode(i) for i in items]
    assert [r["metadata"]["name"] for r in revs] == [status["latestRevision"]]
    assert revs[0]["metadata"]["labels"][LABEL_SIDECARSET_CUSTOM_VERSION] == "1"
    v1_revision = status["latestRevision"]

    # the seed canary: version 2 on 10% of pods (partition 90% of 5 keeps 4), new pods get version 1
    await kube.patch(SIDECARSETS, None, "log", {
        "metadata": {"labels": {LABEL_SIDECARSET_CUSTOM_VERSION: "2"}},
        "spec": {"containers": [{"name": "log-agent", "image": "log-agent:v2"}],
                 "updateStrategy": {"type": "RollingUpdate", "partition": "90%"},
                 "injectionStrategy": {"revision": {"customVersion": "1", "policy": "Always"}}}}, "merge")
    status = await poll(lambda: status_of(kube, "log"), lambda s: s.get("updatedPods") == 1
                        and s.get("updatedReadyPods") == 1 and s.get("latestRevision") != v1_revision,
                        timeout=60, what="one pod upgraded to version 2")
    pods = await web_pods(kube)
    assert sorted(sidecar_image(p) for p in pods) == ["log-agent:v1"] * 4 + ["log-agent:v2"]
    upgraded = next(p for p in pods if sidecar_image(p) == "log-agent:v2")
    hashes = json.loads(upgraded.metadata.annotations[ANNOTATION_SIDECARSET_HASH])
    assert hashes["log"]["controllerRevision"] == status["latestRevision"]
    await known(stack, kube, "log")
    await kube.create(PODS, NS, bare_pod("web-deploy-2"))
    new = msgspec.json.decode(await kube.get(PODS, NS, "web-deploy-2"), type=Pod)
    assert sidecar_image(new) == "log-agent:v1"
    assert json.loads(new.metadata.annotations[ANNOTATION_SIDECARSET_HASH])["log"]["controllerRevision"] == v1_revision
    items, _ = await kube.list(CONTROLLER_REVISIONS, KRUISE_NS,
                               label_selector=f"{LABEL_SIDECARSET_NAME}=log,{LABEL_SIDECARSET_CUSTOM_VERSION}=2")
    assert [msgspec.json.decode(i)["metadata"]["name"] for i in items] == [status["latestRevision"]]

    # a non-image change: every existing pod is not upgradable, with the condition and the Event
    await kube.patch(SIDECARSETS, None, "log", {"spec": {"updateStrategy": {"partition": 0}, "containers": [
        {"name": "log-agent", "image": "log-agent:v2", "env": [{"name": "LEVEL", "value": "debug"}]}]}}, "merge")

    def condition_false(ps: list[Pod]) -> bool:
        conds = [p.status.condition("SidecarSetUpgradable") for p in ps if sidecar_image(p) == "log-agent:v1"]
        return bool(conds) and all(c is not None and c.status == "False" and c.reason == "UpdateImmutableField"
                                   for c in conds)

    await poll(lambda: web_pods(kube), condition_false, timeout=60, what="pods marked not upgradable")

    async def events() -> list[dict[str, Any]]:
        items, _ = await kube.list(EVENTS, "default")
        return [e for e in (msgspec.json.decode(i) for i in items) if e.get("reason") == "NotUpgradablePods"]

    found = await poll(events, bool, timeout=30, what="the NotUpgradablePods Event")
    assert found[0]["involvedObject"]["kind"] == "SidecarSet"
    assert "not upgradable pod(s) in this round, will skip them." in found[0]["message"]


@pytest.mark.parametrize("stack", POD_HOOK, indirect=True)
async def test_patch_metadata_whitelist(stack: Stack, kube: Kube) -> None:
    """No whitelist: refused with Kruise's message; once `kruise-configuration` allows `oom-*` keys, a
    SidecarSet patching `oom-score` is admitted and one patching another key is refused."""
    def body(name: str, key: str) -> dict[str, Any]:
        return sidecarset(name, "log-agent:v1", patchPodMetadata=[
            {"annotations": {key: '{"log-agent":1}'}, "patchPolicy": "MergePatchJson"}])

    with pytest.raises(KubeError) as refused:
        await kube.create(SIDECARSETS, None, body("meta", "oom-score"))
    assert 'admission webhook "vsidecarset.kb.io" denied the request' in str(refused.value)
    assert "spec.patchPodMetadata: Required value: SidecarSet patch metadata whitelist not found" in str(refused.value)
    await kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KRUISE_NS}})
    await kube.create(CONFIGMAPS, KRUISE_NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "kruise-configuration"},
                                              "data": {"SidecarSet_PatchPodMetadata_WhiteList": json.dumps(
                                                  {"rules": [{"allowedAnnotationKeyExprs": ["^oom-.*"]}]})}})

    async def create_meta() -> str:
        try:
            await kube.create(SIDECARSETS, None, body("meta", "oom-score"))
        except KubeError as e:
            return str(e)
        return "created"

    await poll(create_meta, lambda r: r == "created", timeout=30, what="the webhook to read the whitelist")
    assert (await webhook_view(stack))["whitelist"] is True
    with pytest.raises(KubeError) as refused:
        await kube.create(SIDECARSETS, None, body("other", "cpu-score"))
    assert "spec.patchPodMetadata: Required value: sidecarSet patch metadata annotation(cpu-score) is not allowed" \
        in str(refused.value)


@pytest.mark.parametrize(("stack", "policy"), [
    pytest.param({"service_args": {"webhook": ("--pod-hook", "--failure-policy", "Fail")}}, "Fail", id="Fail"),
    pytest.param({"service_args": {"webhook": ("--pod-hook", "--failure-policy", "Ignore")}}, "Ignore", id="Ignore"),
], indirect=["stack"])
async def test_webhook_killed(stack: Stack, kube: Kube, policy: str) -> None:
    """Killed -9: with Fail pod creation is refused in kube-apiserver's words and no pod exists; with
    Ignore the pod is created as written, without sidecars (as with Kruise's webhook down)."""
    await kube.create(SIDECARSETS, None, sidecarset("log", "log-agent:v1"))
    await known(stack, kube, "log")
    await stack.kill("webhook")
    if policy == "Fail":
        with pytest.raises(KubeError) as refused:
            await kube.create(PODS, NS, bare_pod("web-down"))
        assert 'Internal error occurred: failed calling webhook "mpod.kb.io"' in str(refused.value)
        items, _ = await kube.list(PODS, NS, label_selector="sidecar=log")
        assert items == []
    else:
        await kube.create(PODS, NS, bare_pod("web-down"))
        pod = msgspec.json.decode(await kube.get(PODS, NS, "web-down"), type=Pod)
        assert [c.name for c in pod.spec.containers] == ["main"]
        assert ANNOTATION_SIDECARSET_INJECTED_LIST not in pod.metadata.annotations


GATE = "SidecarSetPatchPodMetadataDefaultsAllowed=true"


@pytest.mark.parametrize("stack", [{"service_args": {"webhook": ("--pod-hook", "--feature-gates", GATE),
                                                     "planner": ("--feature-gates", GATE)}}], indirect=True)
async def test_merge_patch_json_into_an_existing_value(stack: Stack, kube: Kube) -> None:
    """With the gate on and no whitelist, patchPodMetadata is admitted; MergePatchJson merges into the
    pod's existing JSON value (sorted, compact), and a pod whose value is not JSON is refused."""
    await kube.create(SIDECARSETS, None, sidecarset("meta", "log-agent:v1", patchPodMetadata=[
        {"annotations": {"oom-score": '{"log-agent":1}'}, "patchPolicy": "MergePatchJson"}]))
    await known(stack, kube, "meta")
    body = bare_pod("merged")
    body["metadata"]["annotations"] = {"oom-score": '{"envoy":2}'}
    await kube.create(PODS, NS, body)
    pod = msgspec.json.decode(await kube.get(PODS, NS, "merged"), type=Pod)
    assert pod.metadata.annotations["oom-score"] == '{"envoy":2,"log-agent":1}'
    body = bare_pod("not-json")
    body["metadata"]["annotations"] = {"oom-score": "high"}
    with pytest.raises(KubeError) as refused:
        await kube.create(PODS, NS, body)
    assert 'admission webhook "mpod.kb.io" denied the request' in str(refused.value)


@pytest.mark.parametrize("stack", POD_HOOK, indirect=True)
async def test_namespace_selector_reads_namespace_labels(stack: Stack, kube: Kube) -> None:
    await kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": "prod", "labels": {"env": "prod"}}})
    await kube.create(SIDECARSETS, None, sidecarset("prod-only", "log-agent:v1",
                                                    namespaceSelector={"matchLabels": {"env": "prod"}}))
    await known(stack, kube, "prod-only")
    await poll(lambda: webhook_view(stack), lambda v: "prod" in v["namespaces"], timeout=30,
               what="the webhook to see Namespace prod")
    for ns in ("prod", NS):
        body = bare_pod("p")
        body["metadata"]["namespace"] = ns
        await kube.create(PODS, ns, body)
    prod = msgspec.json.decode(await kube.get(PODS, "prod", "p"), type=Pod)
    default = msgspec.json.decode(await kube.get(PODS, NS, "p"), type=Pod)
    assert [c.name for c in prod.spec.containers] == ["log-agent", "main"]
    assert [c.name for c in default.spec.containers] == ["main"]


def _k40_sidecarset(name: str, image: str, **spec: Any) -> dict[str, Any]:
    body = sidecarset(name, image, **spec)
    body["spec"]["selector"] = {"matchLabels": {"k40": name}}
    body["spec"]["containers"][0]["name"] = f"{name}-agent"
    return body


def _k40_pod(scenario: str, i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{scenario}-{i}", "namespace": NS, "labels": {"k40": scenario}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}


async def _k40_pods(kube: Kube, scenario: str) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector=f"k40={scenario}")
    return [msgspec.json.decode(i, type=Pod) for i in items]


def _tuple(s: dict[str, Any]) -> tuple[int, int, int, int]:
    return (s.get("matchedPods", 0), s.get("updatedPods", 0), s.get("readyPods", 0), s.get("updatedReadyPods", 0))


async def _k40_status(kube: Kube, name: str, want: tuple[int, int, int, int], what: str) -> dict[str, Any]:
    return await poll(lambda: status_of(kube, name), lambda s: _tuple(s) == want, timeout=20, what=what)


async def _k40_start(stack: Stack, kube: Kube, body: dict[str, Any], pods: int) -> None:
    name = body["metadata"]["name"]
    await kube.create(SIDECARSETS, None, body)
    await known(stack, kube, name)
    for i in range(pods):
        await kube.create(PODS, NS, _k40_pod(name, i))


async def _sidecar_ready(stack: Stack, pod: str, container: str, ready: bool) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{stack.sim_url}/sim/pods/{NS}/{pod}/probes",
                                                    json={"readiness": {container: ready}}) as resp:
        assert resp.status == 200, await resp.text()


async def _k40_max_unavailable(stack: Stack, kube: Kube) -> None:
    """4 pods, an image that cannot be pulled with maxUnavailable 50%: two pods take it, the others
    wait (4,2,2,0); a good image then reaches all four (4,4,4,4).

    The sim's kubelet keeps the old container running while a new image fails to pull; a real
    kubelet stops it first and shows it waiting in ErrImagePull, not ready, which is what lets Kruise
    upgrade those pods again. The test makes those sidecars not ready meanwhile, as a kubelet would."""
    await _k40_start(stack, kube, _k40_sidecarset("mu", "log-agent:v1", updateStrategy={"maxUnavailable": "50%"}), 4)
    await _k40_status(kube, "mu", (4, 4, 4, 4), "mu: 4 pods injected and ready")
    await kube.patch(SIDECARSETS, None, "mu", {"spec": {"containers": [
        {"name": "mu-agent", "image": "log-agent:does-not-exist"}]}}, "merge")
    await _k40_status(kube, "mu", (4, 2, 2, 0), "mu: two pods on the broken image, two kept")

    def agent(p: Pod) -> str:
        return next(c.image for c in p.spec.containers if c.name == "mu-agent")

    pods = await _k40_pods(kube, "mu")
    assert sorted(map(agent, pods)) == ["log-agent:does-not-exist"] * 2 + ["log-agent:v1"] * 2
    stuck = [p.metadata.name for p in pods if agent(p) == "log-agent:does-not-exist"]
    for name in stuck:
        await _sidecar_ready(stack, name, "mu-agent", False)
    await kube.patch(SIDECARSETS, None, "mu", {"spec": {"containers": [
        {"name": "mu-agent", "image": "log-agent:v2"}]}}, "merge")
    # the not-ready pods go first and free of the budget
    await poll(lambda: _k40_pods(kube, "mu"),
               lambda ps: all(agent(p) == "log-agent:v2" for p in ps if p.metadata.name in stuck),
               timeout=20, what="mu: the stuck pods upgraded again")
    for name in stuck:
        await _sidecar_ready(stack, name, "mu-agent", True)
    await _k40_status(kube, "mu", (4, 4, 4, 4), "mu: the good image on every pod")


async def _k40_partition(stack: Stack, kube: Kube) -> None:
    """2 pods, partition 50%: one pod upgraded (2,1,2,1); partition removed: both (2,2,2,2)."""
    await _k40_start(stack, kube, _k40_sidecarset("part", "log-agent:v1"), 2)
    await _k40_status(kube, "part", (2, 2, 2, 2), "part: 2 pods injected and ready")
    await kube.patch(SIDECARSETS, None, "part", {"spec": {"updateStrategy": {"partition": "50%"}, "containers": [
        {"name": "part-agent", "image": "log-agent:v2"}]}}, "merge")
    await _k40_status(kube, "part", (2, 1, 2, 1), "part: one pod upgraded under partition 50%")
    await kube.patch(SIDECARSETS, None, "part", {"spec": {"updateStrategy": {"partition": None}}}, "merge")
    await _k40_status(kube, "part", (2, 2, 2, 2), "part: both pods upgraded without a partition")


async def _k40_init_container(stack: Stack, kube: Kube) -> None:
    """An init container's image change makes a new revision but not a new hash: pods are not touched."""
    await _k40_start(stack, kube, _k40_sidecarset("init", "log-agent:v1", initContainers=[
        {"name": "init-setup", "image": "busybox:1"}]), 1)
    before = await _k40_status(kube, "init", (1, 1, 1, 1), "init: 1 pod injected and ready")
    (pod,) = await _k40_pods(kube, "init")
    hash_before = pod.metadata.annotations[ANNOTATION_SIDECARSET_HASH]
    await kube.patch(SIDECARSETS, None, "init", {"spec": {"initContainers": [
        {"name": "init-setup", "image": "busybox:2"}]}}, "merge")
    after = await poll(lambda: status_of(kube, "init"),
                       lambda s: s.get("latestRevision") not in (None, before["latestRevision"]), timeout=20,
                       what="init: the new revision")
    assert _tuple(after) == (1, 1, 1, 1)
    raw = msgspec.json.decode(await kube.get(PODS, NS, pod.metadata.name))
    assert raw["metadata"]["annotations"][ANNOTATION_SIDECARSET_HASH] == hash_before
    assert [c["image"] for c in raw["spec"]["initContainers"]] == ["busybox:1"]


@pytest.mark.parametrize("stack", POD_HOOK, indirect=True)
async def test_K40_max_unavailable_partition_init_container(stack: Stack, kube: Kube) -> None:
    """Kruise's e2e "maxUnavailable", "partition" and "init container" (row K40), run side by side on
    three SidecarSets with their own pods."""
    await kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KRUISE_NS}})
    await asyncio.gather(_k40_max_unavailable(stack, kube), _k40_partition(stack, kube),
                         _k40_init_container(stack, kube))

"""`kruisebus webhook` behind the sim's admission chain, driven with the real kubectl.

The webhook runs in-process on a random loopback port with its own TLS certificate and registers
itself through the Kubernetes API of the sim; the sim calls it over HTTPS (verifying the caBundle) the
way kube-apiserver would. The podsToDelete rule reads pods from KB_STATE, fed by the real watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from schemas.cloneset import CloneSet
from schemas.messages import CLONESETS, PODS
from services.bus import Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.observe import poll
from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
from services.planner.kit.revision import hash_revision, revision_bytes, template_patch_data
from services.watcher.service import run_watcher
from services.webhook.server import (
    MUTATING_CONFIG_NAME,
    MUTATING_CONFIGS,
    VALIDATING_CONFIG_NAME,
    VALIDATING_CONFIGS,
    WebhookOptions,
    WebhookServer,
    run_webhook,
)
from sim.cluster import SimCluster
from sim.testing import FAST

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")

DENIED = 'admission webhook "vcloneset.kb.io" denied the request: '


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Env:
    sim: SimCluster
    kube: Kube
    server: WebhookServer
    stop: asyncio.Event
    tmp: Path

    async def kubectl(self, *args: str, stdin: str | None = None) -> Result:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(self.sim.kubeconfig_path), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def apply(self, obj: dict[str, Any]) -> Result:
        return await self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))

    async def get(self, name: str) -> dict[str, Any]:
        r = await self.kubectl("get", "clone", name, "-o", "yaml")
        assert r.code == 0, r.stderr
        doc: dict[str, Any] = yaml.safe_load(r.stdout)
        return doc


def cloneset(name: str = "web", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}},
    }
    base.update(spec)
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": name, "namespace": "default"}, "spec": base}


@contextlib.asynccontextmanager
async def webhook_env(tmp_path: Path, nats_server: NatsServer | None, uid: str, *,
                      validity: dt.timedelta = dt.timedelta(days=1), failure_policy: str = "Fail",
                      start_webhook: bool = True, gates: str = "") -> AsyncIterator[Env]:
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as sim:  # type: ignore[arg-type]
        kube = await Kube.connect(str(sim.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name=f"wh-{uid}", prefix=f"w{uid}") if nats_server else None
        stop = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        server = WebhookServer(WebhookOptions(url_host="127.0.0.1", cert_validity=validity,
                                              failure_policy=failure_policy,
                                              gates=parse_feature_gates(gates) if gates else DEFAULT_GATES))
        try:
            if bus is not None:
                await bus.ensure_streams()
                tasks.append(asyncio.create_task(run_watcher(kube, bus)))
            env = Env(sim, kube, server, stop, tmp_path)
            if start_webhook:
                tasks.append(asyncio.create_task(run_webhook(bus, kube, server.opts, stop=stop, server=server)))
                await poll(lambda: _configs(kube), lambda n: n == 2, timeout=20, interval=0.05,
                           what="webhook configurations registered")
                await poll(_value(lambda: server.view.ready), bool, timeout=20, interval=0.05, what="state replayed")
            yield env
        finally:
            stop.set()  # run_webhook returns on stop; the watcher runs until cancelled
            for t in tasks:
                if t.get_coro().__name__ == "run_watcher":  # type: ignore[union-attr]
                    t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(t, 10)
            if bus is not None:
                await bus.close()
            await kube.close()


def _value(read: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """`read` as the async fetch `poll` wants (a callable, so each poll reads the value afresh)."""
    async def fetch() -> Any:
        return read()
    return fetch


async def _configs(kube: Kube) -> int:
    n = 0
    for res, name in ((MUTATING_CONFIGS, MUTATING_CONFIG_NAME), (VALIDATING_CONFIGS, VALIDATING_CONFIG_NAME)):
        with contextlib.suppress(Exception):
            await kube.get(res, None, name)
            n += 1
    return n


@pytest.fixture
async def env(tmp_path: Path, nats_server: NatsServer, uid: str) -> AsyncIterator[Env]:
    async with webhook_env(tmp_path, nats_server, uid) as e:
        yield e


async def test_defaults_visible_in_kubectl_get(env: Env) -> None:
    r = await env.apply(cloneset())
    assert r.code == 0, r.stderr
    spec = (await env.get("web"))["spec"]
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert spec["scaleStrategy"] == {}
    assert spec["updateStrategy"] == {"type": "ReCreate", "partition": 0, "maxUnavailable": "20%", "maxSurge": 0}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["dnsPolicy"] == "ClusterFirst"
    assert pod["schedulerName"] == "default-scheduler"
    assert pod["securityContext"] == {}
    assert pod["terminationGracePeriodSeconds"] == 30
    c = pod["containers"][0]
    assert c["imagePullPolicy"] == "Always"  # Kruise: Always for regular containers
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"


async def test_in_place_strategy_gets_in_place_update_strategy(env: Env) -> None:
    r = await env.apply(cloneset(updateStrategy={"type": "InPlaceIfPossible"}))
    assert r.code == 0, r.stderr
    strategy = (await env.get("web"))["spec"]["updateStrategy"]
    assert strategy["inPlaceUpdateStrategy"] == {}
    assert strategy["type"] == "InPlaceIfPossible"


INVALID = [
    # H1
    # (a negative replicas never reaches a validating webhook: kube-apiserver checks the scale
    # subresource's replicas path itself, after the mutating webhooks; see the test below)
    ("invalid-selector", {"selector": {"matchLabels": {"app": "other"}}},
     "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: "
     "`selector` does not match template `labels`"),
    ("invalid-update-type", {"updateStrategy": {"type": "OnDelete"}},
     "spec.updateStrategy.type: Invalid value: \"OnDelete\""),
    ("invalid-partition", {"updateStrategy": {"partition": -1}},
     "spec.updateStrategy.partition: Invalid value: -1: must be greater than or equal to 0"),
    # H2
    ("invalid-maxUnavailable", {"updateStrategy": {"maxUnavailable": 0}},
     "maxUnavailable and maxSurge should not both be less than 1"),
    ("invalid-maxSurge", {"updateStrategy": {"maxUnavailable": 0, "maxSurge": 0}},
     "maxUnavailable and maxSurge should not both be less than 1"),
    # H4
    ("invalid-cloneset-maxSurge-create", {"updateStrategy": {"maxSurge": "5"}},
     "spec.updateStrategy.maxSurge: Invalid value: \"5\""),
    ("invalid-cloneset-maxUnavailable-create", {"updateStrategy": {"maxUnavailable": "5"}},
     "spec.updateStrategy.maxUnavailable: Invalid value: \"5\""),
    # H7
    ("invalid-negative-progressDeadlineSeconds", {"progressDeadlineSeconds": -1},
     "spec.progressDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0"),
    ("invalid-progressDeadlineSeconds-le-minReady", {"progressDeadlineSeconds": 5, "minReadySeconds": 5},
     "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"),
    # template rules
    ("invalid-restartPolicy", {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "nginx"}]}}},
     "spec.template.spec.restartPolicy: Unsupported value: \"Never\""),
]


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_cloneset_rejected_at_apply(env: Env, case: str, spec: dict[str, Any], message: str) -> None:
    r = await env.apply(cloneset(**spec))
    assert r.code != 0
    assert DENIED in r.stderr, r.stderr
    assert message in r.stderr, r.stderr
    assert (await env.kubectl("get", "clone", "web")).code != 0  # nothing was stored


async def test_negative_replicas_are_refused_by_the_api_server_itself(env: Env) -> None:
    """Kruise's rule H1 `replicas: -1` is checked by kube-apiserver before any validating webhook (the
    CRD's scale subresource names spec.replicas), so the user reads the API server's message."""
    r = await env.apply(cloneset(replicas=-1))
    assert r.code != 0 and DENIED not in r.stderr
    assert "spec.replicas: Invalid value: -1: should be a non-negative integer" in r.stderr, r.stderr


VALID = [
    ("mu0-ms1", {"updateStrategy": {"maxUnavailable": 0, "maxSurge": 1}}),
    ("mu-120%", {"updateStrategy": {"maxUnavailable": "120%"}}),
]


@pytest.mark.parametrize(("case", "spec"), VALID, ids=[c[0] for c in VALID])
async def test_valid_cloneset_accepted(env: Env, case: str, spec: dict[str, Any]) -> None:
    r = await env.apply(cloneset(**spec))
    assert r.code == 0, r.stderr


async def test_in_place_only_update_limited_to_images(env: Env) -> None:
    """H3 (image-only change accepted) and H6 (anything else rejected) for InPlaceOnly."""
    obj = cloneset(updateStrategy={"type": "InPlaceOnly", "maxUnavailable": 1})
    assert (r := await env.apply(obj)).code == 0, r.stderr
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.21"
    assert (r := await env.apply(obj)).code == 0, r.stderr
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    r = await env.apply(obj)
    assert r.code != 0
    assert DENIED + "spec: Forbidden: only allowed to update images in spec for InPlaceOnly" in r.stderr, r.stderr


async def test_invalid_max_surge_on_update_rejected(env: Env) -> None:
    """H4 "invalid-cloneset-maxSurge-update": a valid CloneSet updated to a non-percent string."""
    obj = cloneset()
    assert (r := await env.apply(obj)).code == 0, r.stderr
    obj["spec"]["updateStrategy"] = {"maxSurge": "5"}
    r = await env.apply(obj)
    assert r.code != 0
    assert DENIED in r.stderr and 'spec.updateStrategy.maxSurge: Invalid value: "5"' in r.stderr, r.stderr
    assert (await env.get("web"))["spec"]["updateStrategy"]["maxSurge"] == 0  # unchanged


async def test_empty_update_type_is_defaulted_not_rejected(env: Env) -> None:
    """H1 "invalid-update-type" calls the validator with type "": through the API the mutating
    webhook has already made it ReCreate, as on a Kruise cluster."""
    r = await env.apply(cloneset(updateStrategy={"type": ""}))
    assert r.code == 0, r.stderr
    assert (await env.get("web"))["spec"]["updateStrategy"]["type"] == "ReCreate"


async def test_selector_is_immutable(env: Env) -> None:
    obj = cloneset()
    assert (r := await env.apply(obj)).code == 0, r.stderr
    obj["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    obj["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    r = await env.apply(obj)
    assert r.code != 0
    assert DENIED + "spec: Forbidden: updates to cloneset spec for fields other than" in r.stderr, r.stderr


async def _create_pod(env: Env, name: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                    "controller": True}]
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}
    out: dict[str, Any] = msgspec.json.decode(await env.kube.create(PODS, "default", body))
    return out


async def test_pods_to_delete_must_exist_live_and_be_owned(env: Env) -> None:
    """H5: a missing pod, a terminating pod, a pod of another CloneSet -> rejected; an own pod -> ok."""
    assert (r := await env.apply(cloneset(replicas=0))).code == 0, r.stderr
    assert (r := await env.apply(cloneset("other", replicas=0))).code == 0, r.stderr
    web = msgspec.json.decode(await env.kube.get(CLONESETS, "default", "web"))
    other = msgspec.json.decode(await env.kube.get(CLONESETS, "default", "other"))
    await _create_pod(env, "mine", web)
    await _create_pod(env, "theirs", other)
    await _create_pod(env, "leaving", web)
    pod = env.sim.store.get(env.sim.store.rt("pods"), "default", "leaving")
    pod.setdefault("metadata", {})
    await env.kube.patch(PODS, "default", "leaving", {"metadata": {"finalizers": ["test/hold"]}}, "merge")
    await env.kube.delete(PODS, "default", "leaving", grace_period_seconds=0)
    names = {"mine", "theirs", "leaving"}
    await poll(_value(lambda: {n for n in names if ("default", n) in env.server.view.pods
                               and (n != "leaving" or env.server.view.pods[("default", n)].metadata.deletion_timestamp)}),
               lambda seen: seen == names, timeout=20, interval=0.05, what="pods in the webhook's view")
    for name, detail in (("ghost", 'find pod ghost failed: pods "ghost" not found'),
                         ("leaving", "find pod leaving already terminating"),
                         ("theirs", "find pod theirs owner is not this CloneSet")):
        r = await env.apply(cloneset(replicas=0, scaleStrategy={"podsToDelete": [name]}))
        assert r.code != 0
        assert DENIED + f'spec.scaleStrategy.podsToDelete: Invalid value: "{name}": {detail}' in r.stderr, r.stderr
    r = await env.apply(cloneset(replicas=0, scaleStrategy={"podsToDelete": ["mine", "mine"]}))
    assert "duplicated items" in r.stderr
    r = await env.apply(cloneset(replicas=0, scaleStrategy={"podsToDelete": ["mine"]}))
    assert r.code == 0, r.stderr
    await env.kube.patch(PODS, "default", "leaving", {"metadata": {"finalizers": None}}, "merge")


def _revision(obj: dict[str, Any]) -> str:
    cs = msgspec.convert(obj, CloneSet)
    return hash_revision(revision_bytes(template_patch_data(cs.spec.template)), None)


async def test_existing_cloneset_readmitted_keeps_its_revision(tmp_path: Path, nats_server: NatsServer,
                                                               uid: str) -> None:
    """Created while no webhook existed, written again unchanged once it is installed: same template and
    revision hash (no rollout), though the non-template defaults are filled in."""
    async with webhook_env(tmp_path, None, uid, start_webhook=False) as env:
        obj = cloneset()
        assert (r := await env.apply(obj)).code == 0, r.stderr
        before = await env.get("web")
        assert "replicas" not in before["spec"]  # no webhook: stored as written
        task = asyncio.create_task(run_webhook(None, env.kube, env.server.opts, stop=env.stop, server=env.server))
        try:
            await poll(lambda: _configs(env.kube), lambda n: n == 2, timeout=20, interval=0.05,
                       what="webhook configurations registered")
            # `kubectl apply` of an unchanged file sends nothing; `replace` writes it again (an UPDATE)
            r = await env.kubectl("replace", "-f", "-", stdin=yaml.safe_dump(obj))
            assert r.code == 0, r.stderr
            after = await env.get("web")
            assert after["spec"]["replicas"] == 1  # defaulted on this update
            assert after["spec"]["template"] == before["spec"]["template"]
            assert _revision(after) == _revision(before)
            # a template change on the other hand is defaulted
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.21"
            assert (r := await env.apply(obj)).code == 0, r.stderr
            changed = await env.get("web")
            assert changed["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
        finally:
            env.stop.set()
            await task


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_failure_policy_with_webhook_down(tmp_path: Path, uid: str, policy: str) -> None:
    async with webhook_env(tmp_path, None, uid, failure_policy=policy) as env:
        assert (r := await env.apply(cloneset("up"))).code == 0, r.stderr
        env.stop.set()  # the webhook stops serving; its configurations stay registered
        await poll(_value(lambda: _refused(env.server.port)), bool, timeout=10, interval=0.05,
                   what="webhook down")
        r = await env.apply(cloneset("down", updateStrategy={"maxSurge": "5"}))
        if policy == "Fail":
            assert r.code != 0
            assert ('Internal error occurred: failed calling webhook "mcloneset.kb.io": failed to call webhook: '
                    f'Post "https://127.0.0.1:{env.server.port}/mutate-apps-kruise-io-v1alpha1-cloneset?timeout=10s"'
                    in r.stderr), r.stderr
        else:
            assert r.code == 0, r.stderr  # admitted unchecked and undefaulted; the planner rejects it later
            spec = (await env.get("down"))["spec"]
            assert spec["updateStrategy"] == {"maxSurge": "5"} and "replicas" not in spec


def _refused(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_certificate_rotation_repatches_ca_bundle(tmp_path: Path, uid: str) -> None:
    validity = dt.timedelta(seconds=3)
    async with webhook_env(tmp_path, None, uid, validity=validity) as env:
        first = await _ca_bundle(env.kube)
        assert first == env.server.ca_bundle()
        await poll(_value(lambda: env.server.rotations), lambda n: n >= 2, timeout=20, interval=0.1,
                   what="two renewals")
        bundle = await _ca_bundle(env.kube)
        assert bundle != first
        assert env.server.bundle is not None and env.server.bundle.ca_pem in bundle
        # the sim still trusts the (renewed) serving certificate
        assert (r := await env.apply(cloneset())).code == 0, r.stderr
        assert (await env.get("web"))["spec"]["replicas"] == 1
        r = await env.apply(cloneset("bad", updateStrategy={"maxSurge": "5"}))
        assert DENIED in r.stderr


async def _ca_bundle(kube: Kube) -> bytes:
    import base64

    raw = json.loads(await kube.get(VALIDATING_CONFIGS, None, VALIDATING_CONFIG_NAME))
    return base64.b64decode(raw["webhooks"][0]["clientConfig"]["caBundle"])


async def test_deletion_protection(tmp_path: Path, uid: str) -> None:
    async with webhook_env(tmp_path, None, uid, gates="ResourcesDeletionProtection=true") as env:
        obj = cloneset(replicas=0)
        obj["metadata"]["labels"] = {"policy.kruise.io/delete-protection": "Always"}
        assert (r := await env.apply(obj)).code == 0, r.stderr
        r = await env.kubectl("delete", "clone", "web")
        assert r.code != 0
        assert (DENIED + "forbidden by ResourcesProtectionDeletion for policy.kruise.io/delete-protection=Always"
                in r.stderr), r.stderr
        assert (await env.kubectl("label", "clone", "web", "policy.kruise.io/delete-protection-")).code == 0
        assert (r := await env.kubectl("delete", "clone", "web")).code == 0, r.stderr


async def test_registration_reconciles_a_stale_configuration(tmp_path: Path, uid: str) -> None:
    """A configuration an older install left (CloneSet DELETE missing, another failure policy, a pod
    hook no longer wanted) is rewritten whole from the endpoint table; somebody else's entry stays."""
    async with webhook_env(tmp_path, None, uid, start_webhook=False) as env:
        foreign = {"name": "other.example.com", "clientConfig": {"url": "https://127.0.0.1:1/x"},
                   "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["configmaps"]}],
                   "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]}
        stale = {**foreign, "name": "vcloneset.kb.io",
                 "rules": [{"apiGroups": ["apps.kruise.io"], "apiVersions": ["v1alpha1"],
                            "operations": ["CREATE", "UPDATE"], "resources": ["clonesets"]}]}
        stale_pod = {**foreign, "name": "mpod.kb.io", "rules": [{**foreign["rules"][0], "resources": ["pods"]}]}
        for res, name, hooks in ((VALIDATING_CONFIGS, VALIDATING_CONFIG_NAME, [stale, foreign]),
                                 (MUTATING_CONFIGS, MUTATING_CONFIG_NAME, [stale_pod])):
            kind = "ValidatingWebhookConfiguration" if res is VALIDATING_CONFIGS else "MutatingWebhookConfiguration"
            await env.kube.create(res, None, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                                              "metadata": {"name": name}, "webhooks": hooks})
        task = asyncio.create_task(run_webhook(None, env.kube, env.server.opts, stop=env.stop, server=env.server))

        async def validating() -> dict[str, dict[str, Any]]:
            raw = json.loads(await env.kube.get(VALIDATING_CONFIGS, None, VALIDATING_CONFIG_NAME))
            return {w["name"]: w for w in raw["webhooks"]}

        try:
            hooks = await poll(validating, lambda h: "vimagepulljob.kb.io" in h, timeout=20, interval=0.05,
                               what="the validating configuration reconciled")
            assert hooks["vcloneset.kb.io"]["rules"][0]["operations"] == ["CREATE", "UPDATE", "DELETE"]
            assert hooks["vcloneset.kb.io"]["failurePolicy"] == "Fail"
            assert hooks["vcloneset.kb.io"]["clientConfig"]["url"].startswith(f"https://127.0.0.1:{env.server.port}/")
            assert hooks["other.example.com"]["clientConfig"] == foreign["clientConfig"]
            mutating = json.loads(await env.kube.get(MUTATING_CONFIGS, None, MUTATING_CONFIG_NAME))
            names = [w["name"] for w in mutating["webhooks"]]
            assert "mpod.kb.io" not in names and "mcloneset.kb.io" in names  # --pod-hook is off
            # the DELETE rule reaches the webhook: a protected CloneSet's delete is answered (here
            # allowed: the gate is off, as by default)
            obj = cloneset(replicas=0)
            obj["metadata"]["labels"] = {"policy.kruise.io/delete-protection": "Always"}
            assert (r := await env.apply(obj)).code == 0, r.stderr
            reviews = env.server.stats.count
            assert (r := await env.kubectl("delete", "clone", "web")).code == 0, r.stderr
            assert env.server.stats.count == reviews + 1
        finally:
            env.stop.set()
            await task


async def test_serves_while_nats_is_unavailable(tmp_path: Path, uid: str) -> None:
    """The webhook admits with NATS down; only the podsToDelete view waits (a warning meanwhile)."""
    from services.bus import Bus

    async def connect() -> Bus:
        return await Bus.connect("nats://127.0.0.1:1", name=f"wh-{uid}", prefix=f"w{uid}")

    async with webhook_env(tmp_path, None, uid, start_webhook=False) as env:
        task = asyncio.create_task(run_webhook(None, env.kube, env.server.opts, stop=env.stop, server=env.server,
                                               connect_bus=connect))
        try:
            await poll(lambda: _configs(env.kube), lambda n: n == 2, timeout=20, interval=0.05,
                       what="webhook configurations registered")
            r = await env.apply(cloneset(updateStrategy={"maxSurge": "5"}))
            assert r.code != 0 and DENIED in r.stderr
            r = await env.apply(cloneset(replicas=0, scaleStrategy={"podsToDelete": ["ghost"]}))
            assert r.code == 0, r.stderr
            assert "Warning: spec.scaleStrategy.podsToDelete: pods not checked" in r.stderr
            assert not env.server.view.ready
        finally:
            env.stop.set()
            await task


# --- ImagePullJob (mimagepulljob.kb.io / vimagepulljob.kb.io) ------------------------------------------


def image_pull_job(name: str = "pull", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"image": "nginx:1.21", **spec}}


JOB_DENIED = 'admission webhook "vimagepulljob.kb.io" denied the request: '

INVALID_JOBS = [
    ("percent-parallelism", {"parallelism": "50%"}, "parallelism does not support percentage value"),
    ("never-with-ttl", {"completionPolicy": {"type": "Never", "ttlSecondsAfterFinished": 60}},
     "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType"),
    ("deadline-below-timeout", {"completionPolicy": {"type": "Always", "activeDeadlineSeconds": 60}},
     "completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default 600)"),
    ("names-and-pod-selector", {"selector": {"names": ["a"]}, "podSelector": {"matchLabels": {"a": "b"}}},
     "can not set both selector and podSelector"),
]


async def test_image_pull_job_defaults_and_rules_at_apply(tmp_path: Path, uid: str) -> None:
    async with webhook_env(tmp_path, None, uid, gates="ImagePullJobGate=true") as env:
        r = await env.apply(image_pull_job())  # no completionPolicy: the mutating webhook adds its type
        assert r.code == 0, r.stderr
        r = await env.kubectl("get", "imagepulljobs", "pull", "-o", "yaml")
        assert r.code == 0, r.stderr
        doc = yaml.safe_load(r.stdout)
        assert doc["spec"]["completionPolicy"] == {"type": "Always"}
        assert doc["spec"]["pullPolicy"] == {"timeoutSeconds": 600, "backoffLimit": 3}
        assert doc["spec"]["imagePullPolicy"] == "IfNotPresent"
        assert doc["metadata"]["finalizers"] == ["apps.kruise.io/deletion-protection"]
        for case, spec, message in INVALID_JOBS:
            r = await env.apply(image_pull_job(f"bad-{case}", **spec))
            assert r.code != 0, case
            assert JOB_DENIED + message in r.stderr, (case, r.stderr)
            assert (await env.kubectl("get", "imagepulljob", f"bad-{case}")).code != 0
        r = await env.kubectl("get", "imagepulljobs")
        assert r.code == 0 and "pull" in r.stdout and "TOTAL" in r.stdout, r.stdout + r.stderr


async def test_image_pull_job_forbidden_while_its_gate_is_off(tmp_path: Path, uid: str) -> None:
    async with webhook_env(tmp_path, None, uid) as env:
        r = await env.apply(image_pull_job(completionPolicy={"type": "Always"}))
        assert r.code != 0
        assert JOB_DENIED + "feature-gate ImagePullJobGate is not enabled" in r.stderr, r.stderr


async def test_node_image_defaults_and_rules_at_apply(tmp_path: Path, uid: str) -> None:
    async with webhook_env(tmp_path, None, uid) as env:
        empty = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "NodeImage",
                 "metadata": {"name": "sim-node-0", "labels": {"kubernetes.io/hostname": "sim-node-0"}}, "spec": {}}
        assert (r := await env.apply(empty)).code == 0, r.stderr  # what the planner creates for a node
        tagged = copy.deepcopy(empty)
        tagged["spec"] = {"images": {"nginx": {"tags": [{"tag": "1.21", "pullPolicy": {"ttlSecondsAfterFinished": 60}}]}}}
        assert (r := await env.apply(tagged)).code == 0, r.stderr
        doc = yaml.safe_load((await env.kubectl("get", "nodeimage", "sim-node-0", "-o", "yaml")).stdout)
        tag = doc["spec"]["images"]["nginx"]["tags"][0]
        assert tag["createdAt"] and tag["pullPolicy"] == {"ttlSecondsAfterFinished": 60, "timeoutSeconds": 600,
                                                          "backoffLimit": 3}
        tagged["spec"]["images"]["nginx"]["tags"][0]["pullPolicy"] = {}
        r = await env.apply(tagged)
        assert r.code != 0
        assert ('admission webhook "vnodeimage.kb.io" denied the request: '
                "pullPolicy.ttlSecondsAfterFinished for nginx/1.21 must set") in r.stderr, r.stderr

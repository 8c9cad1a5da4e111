"""`kubectl kruisebus rollout ...`: the real kubectl finding the installed `kubectl-kruisebus` plugin on
PATH, against the sim's API server (and a real nats-server for the rollout log).

The sim runs no workload controller, so the test plays the CloneSet controller's part where a command
reads what a controller writes: it writes the CloneSet's status and ControllerRevisions itself (the
e2e test `tests/e2e/test_kubectl_plugin.py` runs the same commands against the real services).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from schemas.kube import OwnerReference, PodTemplateSpec
from schemas.messages import CLONESETS, CONTROLLER_REVISIONS, RolloutEvent
from services.bus import Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.planner.kit.revision import new_revision, template_patch_data
from sim.cluster import SimCluster
from sim.testing import FAST

KUBECTL = shutil.which("kubectl")
BIN = Path(sys.executable).parent  # the venv's bin: where the package installed kubectl-kruisebus
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (make test installs it)")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Env:
    sim: SimCluster
    kube: Kube
    home: Path

    def env(self) -> dict[str, str]:
        # only the venv's bin and the system's: kubectl must find the plugin the package installed
        return {"PATH": f"{BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home),
                "KUBECONFIG": str(self.sim.kubeconfig_path)}

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        assert KUBECTL is not None
        return await asyncio.create_subprocess_exec(KUBECTL, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=self.env())

    async def kubectl(self, *args: str, stdin: str | None = None) -> Result:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(KUBECTL, *args, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=self.env())
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), 60)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def cloneset(self, name: str = "demo") -> dict[str, Any]:
        doc: dict[str, Any] = msgspec.json.decode(await self.kube.get(CLONESETS, "default", name))
        return doc

    async def set_status(self, name: str, **status: Any) -> None:
        """Write status fields as the controller would (the CRD requires its counters once there is one)."""
        if not (await self.cloneset(name)).get("status"):
            status = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "updatedReplicas": 0,
                      "updatedReadyReplicas": 0, **status}
        await self.kube.patch(CLONESETS, "default", name, {"status": status}, "merge", "status")


def cloneset(name: str, image: str, **strategy: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}},
                     "updateStrategy": {"type": "InPlaceIfPossible", **strategy}}}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    if not (BIN / "kubectl-kruisebus").exists():
        pytest.fail(f"{BIN}/kubectl-kruisebus is missing: the package's console scripts are not installed "
                    "(make .venv/.installed)")
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as sim:  # type: ignore[arg-type]
        kube = await Kube.connect(str(sim.kubeconfig_path))
        try:
            yield Env(sim, kube, tmp_path)
        finally:
            await kube.close()


async def apply(env: Env, obj: dict[str, Any]) -> None:
    r = await env.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))
    assert r.code == 0, r.err


async def revisions(env: Env, name: str, images: list[str]) -> list[str]:
    """ControllerRevisions 1..n of the CloneSet, one per image, as its controller writes them."""
    cs = await env.cloneset(name)
    owner = OwnerReference(api_version="apps.kruise.io/v1alpha1", kind="CloneSet", name=name,
                           uid=cs["metadata"]["uid"], controller=True, block_owner_deletion=True)
    names = []
    for number, image in enumerate(images, 1):
        template = msgspec.convert({**cs["spec"]["template"], "spec": {"containers": [{"name": "main", "image": image}]}},
                                   PodTemplateSpec)
        rev = new_revision(owner, "default", template_patch_data(template), number, None,
                           labels={"app": name}, annotations={})
        await env.kube.create(CONTROLLER_REVISIONS, "default", msgspec.to_builtins(rev))
        names.append(rev.metadata.name)
    return names


async def test_plugin_is_found_by_kubectl(env: Env) -> None:
    r = await env.kubectl("plugin", "list")
    assert f"{BIN}/kubectl-kruisebus" in r.out, r.out + r.err
    r = await env.kubectl("kruisebus", "rollout", "--help")
    assert r.code == 0 and all(c in r.out for c in ("status", "history", "pause", "resume", "undo")), r.out


async def test_pause_and_resume_set_the_update_strategy(env: Env) -> None:
    await apply(env, cloneset("demo", "nginx:1.20"))
    r = await env.kubectl("kruisebus", "rollout", "pause", "cloneset/demo")
    assert (r.code, r.out.strip()) == (0, "cloneset.apps.kruise.io/demo paused"), r.err
    assert (await env.cloneset())["spec"]["updateStrategy"]["paused"] is True
    r = await env.kubectl("kruisebus", "rollout", "pause", "demo")
    assert (r.code, r.out.strip()) == (0, "cloneset.apps.kruise.io/demo already paused"), r.err
    r = await env.kubectl("kruisebus", "rollout", "resume", "clone", "demo")
    assert (r.code, r.out.strip()) == (0, "cloneset.apps.kruise.io/demo resumed"), r.err
    assert (await env.cloneset())["spec"]["updateStrategy"]["paused"] is False
    r = await env.kubectl("kruisebus", "rollout", "resume", "demo")
    assert (r.code, r.out.strip()) == (0, "cloneset.apps.kruise.io/demo already resumed"), r.err


async def test_status_waits_and_prints_progress_until_complete(env: Env) -> None:
    await apply(env, cloneset("demo", "nginx:1.21"))
    proc = await env.start("kruisebus", "rollout", "status", "cloneset/demo", "--timeout", "60s")
    assert proc.stdout is not None

    async def line() -> str:
        return (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()  # type: ignore[union-attr]

    try:
        assert await line() == "Waiting for CloneSet spec update to be observed..."
        generation = (await env.cloneset())["metadata"]["generation"]
        await env.set_status("demo", observedGeneration=generation, replicas=4, updatedReplicas=1,
                             updatedReadyReplicas=0, expectedUpdatedReplicas=4, updateRevision="demo-b",
                             currentRevision="demo-a")
        assert await line() == 'Waiting for clone "demo" rollout to finish: 1 out of 4 new pods have been updated...'
        await env.set_status("demo", updatedReplicas=4, updatedReadyReplicas=3)
        assert await line() == 'Waiting for clone "demo" rollout to finish: 3 of 4 updated pods are ready...'
        await env.set_status("demo", updatedReadyReplicas=4, currentRevision="demo-b")
        assert await line() == 'clone "demo" successfully rolled out: 4 pods at revision demo-b'
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_status_of_a_partitioned_rollout_and_without_watch(env: Env) -> None:
    await apply(env, cloneset("demo", "nginx:1.21", partition=3))
    generation = (await env.cloneset())["metadata"]["generation"]
    await env.set_status("demo", observedGeneration=generation, replicas=4, updatedReplicas=0,
                         expectedUpdatedReplicas=1, updateRevision="demo-b", currentRevision="demo-a")
    r = await env.kubectl("kruisebus", "rollout", "status", "demo", "--watch=false")
    assert (r.code, r.out.strip()) == (
        0, "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated..."), r.err
    await env.set_status("demo", updatedReplicas=1, updatedReadyReplicas=1)
    r = await env.kubectl("kruisebus", "rollout", "status", "demo")
    assert (r.code, r.out.strip()) == (0, "partitioned roll out complete: 1 new pods have been updated..."), r.err


async def test_status_times_out_with_an_error(env: Env) -> None:
    await apply(env, cloneset("demo", "nginx:1.21"))
    r = await env.kubectl("kruisebus", "rollout", "status", "demo", "--timeout", "1s")
    assert r.code == 1 and "error: timed out waiting for the condition" in r.err, r.out + r.err
    assert "Waiting for CloneSet spec update to be observed..." in r.out


async def test_undo_goes_back_to_the_previous_revisions_template(env: Env) -> None:
    await apply(env, cloneset("demo", "nginx:1.21"))
    await revisions(env, "demo", ["nginx:1.20", "nginx:1.21"])
    r = await env.kubectl("kruisebus", "rollout", "undo", "cloneset/demo")
    assert (r.code, r.out.strip()) == (0, "cloneset.apps.kruise.io/demo rolled back"), r.err
    spec = (await env.cloneset())["spec"]
    (container,) = spec["template"]["spec"]["containers"]  # as the revision stores it (Go's JSON: resources {})
    assert (container["name"], container["image"]) == ("main", "nginx:1.20")
    assert spec["template"]["metadata"]["labels"] == {"app": "demo"}
    # no controller ran, so revision 1 is still "the previous one": the template already matches it
    r = await env.kubectl("kruisebus", "rollout", "undo", "demo")
    assert r.out.strip() == ("cloneset.apps.kruise.io/demo skipped rollback "
                             "(current template already matches revision 1)"), r.err
    r = await env.kubectl("kruisebus", "rollout", "undo", "demo", "--to-revision", "2")
    assert (r.code, r.out.strip()) == (0, "cloneset.apps.kruise.io/demo rolled back"), r.err
    assert (await env.cloneset())["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.21"


async def test_history_lists_revisions_and_joins_the_rollout_log(env: Env, nats_server: NatsServer,
                                                                 uid: str) -> None:
    await apply(env, cloneset("demo", "nginx:1.21"))
    first, second = await revisions(env, "demo", ["nginx:1.20", "nginx:1.21"])
    generation = (await env.cloneset())["metadata"]["generation"]
    await env.set_status("demo", observedGeneration=generation, updateRevision=second, currentRevision=first)
    r = await env.kubectl("kruisebus", "rollout", "history", "cloneset/demo")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "cloneset.apps.kruise.io/demo"
    assert lines[1].split() == ["REVISION", "NAME", "IMAGES", "CHANGE-CAUSE"]
    assert lines[2].split() == ["1", first, "nginx:1.20", "<none>", "(current)"]
    assert lines[3].split() == ["2", second, "nginx:1.21", "<none>", "(update)"]

    r = await env.kubectl("kruisebus", "rollout", "history", "demo", "--revision", "1")
    assert r.code == 0, r.err
    assert r.out.startswith("cloneset.apps.kruise.io/demo with revision #1\nPod Template:\n")
    assert "image: nginx:1.20" in r.out

    prefix = f"h{uid}"
    bus = await Bus.connect(nats_server.url, name=f"hist-{uid}", prefix=prefix)
    try:
        await bus.ensure_streams()
        log = [("create", "demo-a", first, "2026-01-01T00:00:01Z"), ("create", "demo-b", first, "2026-01-01T00:00:02Z"),
               ("rollout-completed", "", first, "2026-01-01T00:00:03Z"),
               ("update-in-place", "demo-a", second, "2026-01-01T00:01:00Z")]
        for i, (type_, pod, rev, time) in enumerate(log):
            ev = RolloutEvent(type=type_, namespace="default", workload="demo", message="m", time=time,
                              pod=pod, revision=rev)
            await bus.publish_event(ev, msg_id=f"{uid}-{i}")
        other = RolloutEvent(type="create", namespace="default", workload="other", message="m",
                             time="2026-01-01T00:00:05Z", pod="other-a", revision=first)
        await bus.publish_event(other, msg_id=f"{uid}-other")
    finally:
        await bus.close()
    r = await env.kubectl("kruisebus", "rollout", "history", "demo", "--nats", nats_server.url, "--prefix", prefix)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[1].split() == ["REVISION", "NAME", "IMAGES", "STARTED", "PODS", "COMPLETED", "CHANGE-CAUSE"]
    assert lines[2].split() == ["1", first, "nginx:1.20", "2026-01-01T00:00:01Z", "2", "2026-01-01T00:00:03Z",
                                "<none>", "(current)"]
    assert lines[3].split() == ["2", second, "nginx:1.21", "2026-01-01T00:01:00Z", "1", "<none>", "<none>",
                                "(update)"]


BAD_INPUT = [
    ("unknown-name", ["status", "nope"], 'Error from server (NotFound): clonesets.apps.kruise.io "nope" not found'),
    ("unknown-name-pause", ["pause", "cloneset/nope"], 'clonesets.apps.kruise.io "nope" not found'),
    ("unknown-name-undo", ["undo", "nope"], 'clonesets.apps.kruise.io "nope" not found'),
    ("not-a-cloneset", ["status", "deployment/web"], "error: kruisebus rollout supports CloneSets only"),
    ("no-name", ["history"], "error: required resource not specified"),
    ("bad-timeout", ["status", "demo", "--timeout", "soon"], "invalid argument 'soon' for '--timeout' flag"),
    ("unknown-revision", ["undo", "demo", "--to-revision", "9"], "error: unable to find specified revision 9 in history"),
    ("no-previous-revision", ["undo", "demo"], "error: no last revision to roll back to"),
    ("unknown-history-revision", ["history", "demo", "--revision", "4"],
     "error: unable to find specified revision 4 in history"),
    ("nats-unreachable", ["history", "demo", "--nats", "nats://127.0.0.1:1"],
     "error: --nats: cannot read the rollout log at nats://127.0.0.1:1"),
]


@pytest.mark.parametrize(("args", "message"), [(a, m) for _, a, m in BAD_INPUT], ids=[i for i, _, _ in BAD_INPUT])
async def test_bad_input_is_a_clear_error_and_exit_1(env: Env, args: list[str], message: str) -> None:
    await apply(env, cloneset("demo", "nginx:1.21"))
    r = await env.kubectl("kruisebus", "rollout", *args)
    assert r.code == 1, (r.out, r.err)
    assert message in r.err, r.err


async def test_namespace_from_flag_and_from_the_kubeconfig_context(env: Env) -> None:
    r = await env.kubectl("create", "namespace", "team")
    assert r.code == 0, r.err
    obj = cloneset("web", "nginx:1.20")
    obj["metadata"]["namespace"] = "team"
    await apply(env, obj)
    r = await env.kubectl("kruisebus", "rollout", "pause", "web")
    assert r.code == 1 and 'clonesets.apps.kruise.io "web" not found' in r.err  # looked in default
    r = await env.kubectl("kruisebus", "rollout", "pause", "web", "-n", "team")
    assert r.out.strip() == "cloneset.apps.kruise.io/web paused", r.err
    r = await env.kubectl("config", "set-context", "--current", "--namespace", "team")
    assert r.code == 0, r.err
    r = await env.kubectl("kruisebus", "rollout", "resume", "web")
    assert r.out.strip() == "cloneset.apps.kruise.io/web resumed", r.err

"""`kubectl kruisebus rollout ...` against the running services: the real kubectl finds the installed
plugin on PATH; status follows a real in-place rollout to its end, pause holds it, resume lets it go
on, history joins the ControllerRevisions with the rollout log (read as the `viewer` NATS user), and
undo rolls the CloneSet back to the previous template, which the planner rolls out like any edit."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import msgspec
import pytest

from schemas.messages import CLONESETS
from services.kube import Kube
from services.observe import poll, snapshot
from services.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

KUBECTL = shutil.which("kubectl")
BIN = Path(sys.executable).parent

SAMPLE = """
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: nginx:1.20
  updateStrategy:
    type: InPlaceIfPossible
    maxUnavailable: 1
"""


async def kubectl(stack: Stack, *args: str, stdin: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
    assert KUBECTL is not None
    env = {"PATH": f"{BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "HOME": str(stack.workdir),
           "KUBECONFIG": stack.kubeconfig}
    proc = await asyncio.create_subprocess_exec(KUBECTL, *args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def images(kube: Kube) -> list[str]:
    snap = await snapshot(kube, "default", "web")
    return sorted(c.image for p in snap.pods for c in p.spec.containers)


async def test_rollout_status_pause_resume_history_undo(stack: Stack, kube: Kube) -> None:
    if KUBECTL is None:
        pytest.skip("kubectl not installed (make test installs Debian's kubernetes-client)")
    assert (BIN / "kubectl-kruisebus").exists(), "the package's console scripts are not installed"
    code, out, err = await kubectl(stack, "apply", "-f", "-", stdin=SAMPLE)
    assert code == 0, err
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "status", "cloneset/web", "--timeout", "90s")
    assert code == 0, out + err
    assert out.splitlines()[-1].startswith('clone "web" successfully rolled out: 3 pods at revision web-')

    # paused: the new template is observed, no pod moves to it
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "pause", "web")
    assert (code, out.strip()) == (0, "cloneset.apps.kruise.io/web paused"), err
    code, _, err = await kubectl(stack, "patch", "clone", "web", "--type", "merge", "-p",
                                 '{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:1.21"}]}}}}')
    assert code == 0, err

    async def status() -> dict[str, object]:
        doc: dict[str, object] = msgspec.json.decode(await kube.get(CLONESETS, "default", "web"))
        return doc

    def observed(doc: dict[str, object]) -> bool:
        st, meta = doc["status"], doc["metadata"]
        assert isinstance(st, dict) and isinstance(meta, dict)
        return bool(st["observedGeneration"] == meta["generation"] and st["updateRevision"] != st["currentRevision"])

    await poll(status, observed, timeout=30, what="the paused template change observed")
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "status", "web", "--watch=false")
    assert (code, out.strip()) == (0, 'Waiting for clone "web" rollout to finish: 0 out of 3 new pods have been '
                                      "updated..."), err
    assert await images(kube) == ["nginx:1.20"] * 3

    code, out, err = await kubectl(stack, "kruisebus", "rollout", "resume", "web")
    assert (code, out.strip()) == (0, "cloneset.apps.kruise.io/web resumed"), err
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "status", "web", "--timeout", "90s")
    assert code == 0 and "successfully rolled out" in out, out + err
    assert await images(kube) == ["nginx:1.21"] * 3

    viewer = stack.password_file("viewer")
    login = ("--nats-user", "viewer", "--nats-password-file", str(viewer)) if viewer else ()
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "history", "web", "--nats", stack.nats_url,
                                   "--prefix", stack.prefix, *login)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [(r[0], r[2], r[4]) for r in rows] == [("1", "nginx:1.20", "3"), ("2", "nginx:1.21", "3")], out
    assert rows[1][5] != "<none>", out  # revision 2 completed (its time from the log)
    assert out.splitlines()[3].endswith("<none> (update, current)"), out

    code, out, err = await kubectl(stack, "kruisebus", "rollout", "undo", "web")
    assert (code, out.strip()) == (0, "cloneset.apps.kruise.io/web rolled back"), err
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "status", "web", "--timeout", "90s")
    assert code == 0 and "successfully rolled out" in out, out + err
    assert await images(kube) == ["nginx:1.20"] * 3
    # the old template is the old revision again, its number raised (Kruise's history)
    code, out, err = await kubectl(stack, "kruisebus", "rollout", "history", "web")
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [(r[0], r[2]) for r in rows] == [("2", "nginx:1.21"), ("3", "nginx:1.20")], out

    code, out, err = await kubectl(stack, "kruisebus", "rollout", "status", "absent")
    assert code == 1 and 'Error from server (NotFound): clonesets.apps.kruise.io "absent" not found' in err, err

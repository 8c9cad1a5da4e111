"""`kruisebus up`'s stack admits CloneSets through `kruisebus webhook`, a process like the others.

An invalid CloneSet is refused at `kubectl apply` with Kruise's message; a valid one is stored with
Kruise's defaults and rolls out as before; restarting the webhook (new port, new certificate)
re-registers it, so admission goes on.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
import yaml

from services.demo import load_sample
from services.kube import Kube
from services.observe import poll, snapshot
from services.stack import Stack

KUBECTL = shutil.which("kubectl")
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180),
              pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")]


async def apply(stack: Stack, obj: object) -> tuple[int, str]:
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", stack.kubeconfig, "apply", "-f", "-", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(yaml.safe_dump(obj).encode())
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_stack_admits_through_the_webhook(stack: Stack, kube: Kube) -> None:
    bad: Any = load_sample()
    bad["metadata"] = {"name": "bad"}
    bad["spec"]["updateStrategy"]["maxUnavailable"] = "5"
    code, err = await apply(stack, bad)
    assert code != 0
    assert 'admission webhook "vcloneset.kb.io" denied the request: ' in err
    assert 'spec.updateStrategy.maxUnavailable: Invalid value: "5"' in err

    good: Any = load_sample()
    good["spec"]["replicas"] = 2
    del good["spec"]["updateStrategy"]["partition"]
    code, err = await apply(stack, good)
    assert code == 0, err
    snap = await poll(lambda: snapshot(kube, "default", "sample"), lambda s: s.ready == 2, timeout=60,
                      what="2 ready pods")
    assert snap.cloneset.spec.update_strategy.partition == 0  # defaulted by the webhook
    assert snap.cloneset.spec.revision_history_limit == 10

    await stack.restart("webhook")  # new port and certificate; it re-registers both
    code, err = await apply(stack, bad)
    assert code != 0 and "denied the request" in err

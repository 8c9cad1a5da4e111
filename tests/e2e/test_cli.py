"""The CLI as a user runs it: `kruisebus up`, kubectl against it, `rollout status`, `events`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest

from services.demo import SAMPLE

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

KRUISEBUS = [sys.executable, "-m", "services.cli"]


async def run(*args: str, timeout: float = 120) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT,
                                                env={**os.environ, "COLUMNS": "200"})
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode()


async def test_up_serves_kubectl_rollout_status_and_events(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed (make test installs Debian's kubernetes-client)")
    up = await asyncio.create_subprocess_exec(*KRUISEBUS, "up", stdout=asyncio.subprocess.PIPE,
                                              stderr=asyncio.subprocess.STDOUT,
                                              env={**os.environ, "COLUMNS": "300"})
    assert up.stdout is not None
    try:
        banner = ""
        while "Ctrl-C" not in banner:
            line = await asyncio.wait_for(up.stdout.readline(), 60)
            assert line, f"kruisebus up exited early:\n{banner}"
            banner += line.decode()
        kubeconfig = re.search(r"kubeconfig: (\S+)", banner)
        nats_url = re.search(r"NATS:\s+(\S+.*)$", banner, re.MULTILINE)
        assert kubeconfig and nats_url, banner
        kc = kubeconfig.group(1)

        code, out = await run("kubectl", "--kubeconfig", kc, "apply", "-f", str(SAMPLE))
        assert code == 0 and "cloneset.apps.kruise.io/sample created" in out, out

        code, out = await run(*KRUISEBUS, "rollout", "status", "sample", "--kubeconfig", kc, "--timeout", "90")
        assert code == 0, out
        assert 'clone "sample" successfully rolled out' in out

        code, out = await run("kubectl", "--kubeconfig", kc, "get", "pods", "-L", "controller-revision-hash")
        assert code == 0, out
        rows = [r for r in out.splitlines()[1:] if r.startswith("sample-")]
        assert len(rows) == 5 and all("Running" in r and "sample-" in r.split()[-1] for r in rows), out

        nats_args = nats_url.group(1).split()  # the URL, and the viewer user's login
        code, out = await run(*KRUISEBUS, "events", "--nats", *nats_args, "-n", "default",
                              "--workload", "sample")
        assert code == 0, out
        created = [line for line in out.splitlines() if " default/sample create " in line]
        assert len(created) == 5, out
        # a filter that matches nothing prints nothing and returns (it used to wait forever)
        code, out = await run(*KRUISEBUS, "events", "--nats", *nats_args, "--workload", "absent",
                              timeout=30)
        assert code == 0 and " create " not in out, out

        code, out = await run("kubectl", "--kubeconfig", kc, "describe", "clone", "sample")
        assert code == 0 and "SuccessfulCreate" in out, out
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(up.communicate(), 30)
    assert up.returncode == 0, rest.decode()


async def test_plan_previews_without_a_cluster(tmp_path: Path) -> None:
    code, out = await run(*KRUISEBUS, "plan", str(tmp_path / "missing.yaml"))
    assert code != 0 and "missing.yaml" in out

"""`make demo` runs `kruisebus demo`: the README's main command must keep working."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]


async def test_kruisebus_demo_exits_zero_and_reports_the_rollout() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "demo", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    out, _ = await asyncio.wait_for(proc.communicate(), 280)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "2 pods updated in place under partition 3, then all 5" in text
    assert "at most 1 pod unavailable at a time" in text
    assert "ImagePullJob pre-downloaded nginx:1.22 on all 3 nodes, at most 2 at a time; the in-place update " \
           "to it waited for no pull." in text
    assert "DaemonSet node-agent pre-downloaded fluentd:v1.17 on its 3 nodes, at most 3 at a time, then updated " \
           "every pod in place; no update waited for a pull." in text
    # the rollout's trace id, and where to open it in the compose stack's Grafana
    import re

    from services.demo import TRACE_DASHBOARD_UID

    match = re.search(r"Rollout trace: ([0-9a-f]{32})\s+open (\S+)", text)
    assert match, text
    assert match.group(2) == f"http://localhost:3000/d/{TRACE_DASHBOARD_UID}?var-workload=sample&var-traceId={match.group(1)}"
    assert "the 2 idle game servers were marked and deleted first on scale-in" in text
    assert "SidecarSet log-agent: 1 of 10 pods upgraded in place to version 2, the new pod injected with version 1" \
        in text
    # the AdvancedCronJob step: next runs in both zones (Shanghai is UTC+8), and the Job that ran for the first
    from datetime import datetime, timedelta

    runs = re.findall(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\s+│?\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00)", text)
    assert len(runs) >= 3, text
    for utc, zone in runs:
        assert datetime.fromisoformat(utc.replace("Z", "+00:00")) == datetime.fromisoformat(zone)
    # every minute on Shanghai's clock: on the minute, a minute apart
    assert all(zone.endswith(":00+08:00") for _, zone in runs), runs
    assert [(datetime.fromisoformat(b[0].replace("Z", "+00:00")) - datetime.fromisoformat(a[0].replace("Z", "+00:00")))
            for a, b in zip(runs, runs[1:3], strict=False)] == [timedelta(minutes=1)] * 2
    match = re.search(r"AdvancedCronJob shanghai-tick created Job (shanghai-tick-(\d+)) for its first run (\S+) "
                      r"\((\S+) in Asia/Shanghai\); it ran to completion on the sim in \d+s \(1 pod succeeded, "
                      r"Complete at \S+\)\.", text)
    assert match, text
    assert (match.group(3), match.group(4)) == runs[0]  # the Job is the first run the preview predicted
    assert int(match.group(2)) == int(datetime.fromisoformat(match.group(3).replace("Z", "+00:00")).timestamp())

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

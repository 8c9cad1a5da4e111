"""The chart's generated files (RBAC, NATS users, webhook configurations) are each rendered from the
one table in code that owns the fact; this is their shared `python -m ... [--write]` entry point, so
that regenerating any of them works the same way and a test can compare the file with the code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

CHART_DIR = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "kruisebus"


def generate(argv: list[str] | None, *, prog: str, description: str, path: Path, render: Callable[[], str]) -> int:
    """Print the rendered file, or with `--write` write it to its place in the chart."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--write", action="store_true", help=f"write {path.relative_to(CHART_DIR.parents[2])}")
    args = p.parse_args(argv)
    if args.write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())
    else:
        sys.stdout.write(render())
    return 0

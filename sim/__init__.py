"""The embedded cluster: a Kubernetes API server emulator, simulated kubelets, a scheduler and the
controller-manager parts kruisebus relies on (garbage collection, Jobs, NoExecute eviction, pod GC).

Entry points: `python -m sim` / `sim.cli_main(argv)` (a process), `SimCluster` (in-process, async).
See docs/sim.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.cluster import SimCluster
    from sim.faults import Faults
    from sim.nodes import NodeConfig

__all__ = ["SimCluster", "Faults", "NodeConfig", "cli_main"]


def cli_main(argv: list[str] | None = None, prog: str = "python -m sim") -> int:
    from sim.cli import cli_main as _main

    return _main(argv, prog)


def __getattr__(name: str) -> Any:
    if name == "SimCluster":
        from sim.cluster import SimCluster

        return SimCluster
    if name == "Faults":
        from sim.faults import Faults

        return Faults
    if name == "NodeConfig":
        from sim.nodes import NodeConfig

        return NodeConfig
    raise AttributeError(name)

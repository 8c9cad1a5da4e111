"""The kruisebus services by name: one table that the RBAC roles (`services.rbac`), the NATS users
(`services.natsauth`), the chart's ServiceAccounts and values keys, and the local stack all key on.

A service's name is what an operator sees everywhere: its ClusterRole, its ServiceAccount, its NATS
user and the key of its entry under the chart's `bus.auth.users`. Keeping the names in one place means
a new service (or a renamed one) cannot get a Role under one name and NATS permissions under another.
"""

from __future__ import annotations

from typing import Final

WATCHER: Final = "watcher"
PLANNER: Final = "planner"
EXECUTOR: Final = "executor"
WEBHOOK: Final = "webhook"
NODE_AGENT: Final = "node-agent"  # `kruisebus executor --node N`: one per node (a DaemonSet)
PROBER: Final = "prober"  # `kruisebus prober --node N`: one per node (a DaemonSet)

SERVICES: Final[tuple[str, ...]] = (WATCHER, PLANNER, EXECUTOR, WEBHOOK, NODE_AGENT, PROBER)
"""Every service, in the order the chart and the docs list them."""

__all__ = ["EXECUTOR", "NODE_AGENT", "PLANNER", "PROBER", "SERVICES", "WATCHER", "WEBHOOK"]

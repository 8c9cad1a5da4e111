"""NATS stream names, subject layout and the reversible token encoding (docs/bus.md).

A subject token must never carry a raw Kubernetes name: node and pod names may contain `.`, which NATS
reads as a token separator. `encode_token` maps every name to a token that is safe, readable for the
common case and decodes back to the exact name; `_` stands for "none" (cluster-scoped, no owner).
Subjects are built here and only here.
"""

from __future__ import annotations

from typing import Final

DEFAULT_PREFIX: Final = "kb"
NONE_TOKEN: Final = "_"

# Stream base names; with a prefix other than "kb" they become e.g. "MYPFX_STATE".
STREAM_STATE: Final = "STATE"
STREAM_CMD: Final = "CMD"
STREAM_NODE: Final = "NODE"
STREAM_PROBE: Final = "PROBE"
STREAM_EVENTS: Final = "EVENTS"

# The <kind> tokens of kb.state subjects are the state messages' tags (schemas.kinds).

# Rollout event types (the <event> token of kb.events subjects).
EVENT_REJECTED: Final = "rejected"
EVENT_PULL: Final = "pull"  # a node agent's pull progress (kruisebus events --type pull)
EVENT_DROPPED: Final = "events-dropped"  # events of a workload dropped over the per-workload rate limit
# a stream was lost (deleted or replaced) under the running services; for KB_EVENTS: the log before is gone
EVENT_STREAM_LOST: Final = "stream-lost"
# The `reason` of a rejected create whose name is held by an object of another owner (or of none):
# for a ControllerRevision, the planner then takes the name as taken and hashes again (collisionCount).
REASON_NAME_TAKEN: Final = "name-taken"

# Characters kept as they are in a token. Everything else (including '.', '%', '*', '>', '_' and
# whitespace) is written as '%XX', so decoding is unambiguous.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def encode_token(name: str | None) -> str:
    """Encode a Kubernetes name (or None / "") as one NATS subject token."""
    if not name:
        return NONE_TOKEN
    out: list[str] = []
    for ch in name:
        if ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert `encode_token`; `_` decodes to "" (none). Raises ValueError on a malformed token."""
    if token == NONE_TOKEN:
        return ""
    raw = bytearray()
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "%":
            hexpart = token[i + 1 : i + 3]
            if len(hexpart) != 2:
                raise ValueError(f"malformed subject token {token!r}: truncated escape")
            raw.append(int(hexpart, 16))
            i += 3
        elif ch in _SAFE:
            raw.extend(ch.encode())
            i += 1
        else:
            raise ValueError(f"malformed subject token {token!r}: unexpected {ch!r}")
    return raw.decode("utf-8")


class Subjects:
    """Subject and stream names under one configurable prefix (default `kb`)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix or any(c not in _SAFE for c in prefix):
            raise ValueError(f"invalid subject prefix {prefix!r}: use letters, digits and '-'")
        self.prefix = prefix

    # --- streams -------------------------------------------------------------------------------
    def stream(self, base: str) -> str:
        return f"{self.prefix.upper().replace('-', '_')}_{base}"

    # --- state ---------------------------------------------------------------------------------
    def state(self, namespace: str | None, owner_uid: str | None, kind: str, uid: str) -> str:
        return (
            f"{self.prefix}.state.{encode_token(namespace)}.{encode_token(owner_uid)}"
            f".{kind}.{encode_token(uid)}"
        )

    def state_all(self) -> str:
        return f"{self.prefix}.state.>"

    def state_sync(self) -> str:
        """The watcher's core-NATS request subject (not a stream): "is the state stream current?".

        A planner asks before its first pass (and before planning partitions taken over); the active
        watcher answers with a `StateSynced` once everything it has listed and watched is on the stream.
        """
        return f"{self.prefix}.sync.state"

    def state_of_kind(self, kind: str) -> str:
        """Filter for every state subject of one kind, in every namespace and under every owner."""
        return f"{self.prefix}.state.*.*.{kind}.*"

    # --- commands ------------------------------------------------------------------------------
    def command(self, namespace: str, owner_uid: str, verb: str) -> str:
        return f"{self.prefix}.cmd.{encode_token(namespace)}.{encode_token(owner_uid)}.{encode_token(verb)}"

    def command_all(self) -> str:
        return f"{self.prefix}.cmd.>"

    # --- per-node work -------------------------------------------------------------------------
    def node(self, node_name: str, verb: str) -> str:
        return f"{self.prefix}.node.{encode_token(node_name)}.{encode_token(verb)}"

    def node_all(self, node_name: str | None = None) -> str:
        return f"{self.prefix}.node.{encode_token(node_name)}.>" if node_name else f"{self.prefix}.node.>"

    # --- probes --------------------------------------------------------------------------------
    def probe(self, namespace: str, pod_uid: str, probe: str) -> str:
        return f"{self.prefix}.probe.{encode_token(namespace)}.{encode_token(pod_uid)}.{encode_token(probe)}"

    def probes_of_pod(self, namespace: str, pod_uid: str) -> str:
        """Filter for every probe result of one pod."""
        return f"{self.prefix}.probe.{encode_token(namespace)}.{encode_token(pod_uid)}.*"

    def probe_all(self) -> str:
        return f"{self.prefix}.probe.>"

    # --- rollout events ------------------------------------------------------------------------
    def event(self, namespace: str | None, workload: str | None, event: str) -> str:
        return f"{self.prefix}.events.{encode_token(namespace)}.{encode_token(workload)}.{encode_token(event)}"

    def events_all(self) -> str:
        return f"{self.prefix}.events.>"

    def events_of_type(self, event: str) -> str:
        """Filter for one event type across all namespaces and workloads."""
        return f"{self.prefix}.events.*.*.{encode_token(event)}"

    def events_of_workload(self, namespace: str, workload: str) -> str:
        return f"{self.prefix}.events.{encode_token(namespace)}.{encode_token(workload)}.>"

    def parse(self, subject: str) -> list[str]:
        """Split a kruisebus subject into decoded tokens after the prefix and family.

        `kb.state.default._.node.abc` -> ["state", "default", "", "node", "abc"].
        Raises ValueError when the subject is not ours or a token is malformed.
        """
        parts = subject.split(".")
        if len(parts) < 2 or parts[0] != self.prefix:
            raise ValueError(f"subject {subject!r} is not under prefix {self.prefix!r}")
        return [parts[1], *(decode_token(t) for t in parts[2:])]


# The KV bucket of leases (the watcher's single active instance, the planner's partition claims).
LEASE_BUCKET: Final = "LEASES"
LEASE_WATCHER: Final = "watcher"
LEASE_PARTITION: Final = "planner.partition"  # planner.partition.<p>
LEASE_MEMBER: Final = "planner.member"  # planner.member.<holder>: a live planner replica


def lease_bucket(prefix: str = DEFAULT_PREFIX) -> str:
    """The lease bucket of an install (`kb` -> `KB_LEASES`, stream `KV_KB_LEASES`, subjects `$KV.KB_LEASES.>`)."""
    return Subjects(prefix).stream(LEASE_BUCKET)


# Durable consumers (every other consumer is an ordered, ephemeral one).
EXECUTOR_DURABLE: Final = "executor"
"""The executors' shared durable pull consumer on the command stream."""
NODE_AGENT_DURABLE_PREFIX: Final = "nodeagent-"
"""A node agent's durable on the node stream is this prefix and its node's token (`node_agent_durable`)."""


def node_agent_durable(node: str) -> str:
    """The durable consumer of one node's agent (a restarted agent resumes where it stopped)."""
    return f"{NODE_AGENT_DURABLE_PREFIX}{encode_token(node)}"[:250]


def inbox_prefix(user: str) -> str:
    """A NATS user's own reply-subject prefix (`_INBOX_<user>`): its permissions let it read only these."""
    return f"_INBOX_{user}"

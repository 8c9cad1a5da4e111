"""NATS security: one account per install, one user per service, subject permissions for exactly what
each service publishes and subscribes, no anonymous user.

The permissions are derived here from the subject layout (`schemas.subjects`) and from what each
service does through `services.bus` and `services.lease`, so there is one table, and the embedded
server (`services.natsd`, used by `kruisebus demo|up` and the tests), the docs
(docs/operations.md, checked by a test) and the Helm chart's values all come from it.

What each service needs, beside its own subjects:

- every JetStream call is a request whose reply comes to the client's inbox; each user has its own
  inbox prefix (`_INBOX_<user>`), so no service can read another's replies;
- an ordered consumer (the state view, the rejection feed, a one-shot read) is created with
  `$JS.API.CONSUMER.CREATE.<stream>[.<name>.<filter>]`, pushes to the inbox and gets flow-control
  requests it answers on `$JS.FC.<stream>.>`;
- a durable pull consumer (the executor's, each node agent's) is created with `CONSUMER.DURABLE.CREATE`, pulled with
  `CONSUMER.MSG.NEXT` and acknowledged on `$JS.ACK.<stream>.<durable>.>`;
- a lease is a compare-and-set publish to `$KV.<bucket>.<key>` and a direct get of that key;
- the state barrier (`kb.sync.state`) is a core request: the planner publishes it, the watcher subscribes
  and may answer to the asker's inbox (`allow_responses`: only the reply subject of a request it got).

Creating and updating streams and the lease bucket is the `admin` user's (`kruisebus nats-init`, the
chart's init job, the local stack before it starts the services). The one exception is a stream lost
under the running services: the service that writes it may create it again (the watcher KB_STATE, the
planner KB_CMD, KB_NODE and KB_EVENTS; never update or delete), with the config it last saw.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Mapping

import msgspec
import yaml

from schemas.kinds import PULL_RESULT
from schemas.subjects import (
    DEFAULT_PREFIX,
    EVENT_REJECTED,
    EXECUTOR_DURABLE,
    LEASE_MEMBER,
    LEASE_PARTITION,
    LEASE_WATCHER,
    STREAM_CMD,
    STREAM_EVENTS,
    STREAM_NODE,
    STREAM_PROBE,
    STREAM_STATE,
    Subjects,
    inbox_prefix,
    lease_bucket,
)
from services import chartfiles
from services.names import EXECUTOR, NODE_AGENT, PLANNER, PROBER, SERVICES, WATCHER, WEBHOOK

JS_API = "$JS.API"
# A node agent's durable is `schemas.subjects.node_agent_durable(<node>)`, one token per node: a subject
# wildcard is a whole token, so the permission names any consumer of KB_NODE (only node agents' exist there)
NODE_AGENT_DURABLES = "*"

# The service users are the services of `services.names` (the same names as their ClusterRoles);
# the admin and the viewer are the operators'.
ADMIN = "admin"
VIEWER = "viewer"
SERVICE_USERS: tuple[str, ...] = SERVICES
USERS: tuple[str, ...] = (ADMIN, *SERVICE_USERS, VIEWER)

USER_PURPOSE = {
    ADMIN: "creates and updates the streams and the lease bucket (`kruisebus nats-init`); operators' tools",
    WATCHER: "publishes the cluster's state; reads it back on relist; the watcher lease",
    PLANNER: "reads state, probe results and rejections, publishes commands, node work and rollout events; "
    "partition leases",
    EXECUTOR: "consumes commands (durable `executor`), publishes rollout events",
    WEBHOOK: "reads the state view (podsToDelete); reports a malformed state message",
    NODE_AGENT: "`kruisebus executor --node`: consumes its node's work (durable `nodeagent-<node>`), "
    "publishes pull results and pull events",
    PROBER: "`kruisebus prober --node`: reads markers and pods from the state view, reads back and publishes "
    "its node's probe results, purges the results of pods that are gone, recreates KB_PROBE when it is lost",
    VIEWER: "reads the rollout event log (`kruisebus events`, dashboards, users' subscribers)",
}


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """One user's allow lists (everything else is denied)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False  # may publish to the reply subject of a request it received


def _ordered_consumer(stream: str) -> list[str]:
    """Creating, inspecting and deleting an ordered (ephemeral) consumer on `stream`, and answering
    its flow control."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _lease(bucket: str, key: str) -> list[str]:
    """Compare-and-set writes of one lease key (or keys: `planner.>`) and direct gets of it."""
    return [
        f"$KV.{bucket}.{key}",
        f"{JS_API}.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{key}",
        f"{JS_API}.STREAM.INFO.KV_{bucket}",
    ]


def permissions(user: str, prefix: str = DEFAULT_PREFIX) -> Permissions:
    """The allow lists of one user of the install with this subject prefix."""
    s = Subjects(prefix)
    state, cmd, events = s.stream(STREAM_STATE), s.stream(STREAM_CMD), s.stream(STREAM_EVENTS)
    probes = s.stream(STREAM_PROBE)
    bucket = lease_bucket(prefix)
    inbox = f"{inbox_prefix(user)}.>"
    rejected = s.events_of_type(EVENT_REJECTED)
    if user == ADMIN:
        return Permissions(publish=(">",), subscribe=(">",))
    node, pull = s.stream(STREAM_NODE), s.state(None, None, PULL_RESULT.token, "x").rsplit(".", 1)[0]
    if user == WATCHER:
        pub = [
            s.state_all(),
            f"{JS_API}.STREAM.INFO.{state}",
            f"{JS_API}.STREAM.CREATE.{state}",  # recreates KB_STATE when it is lost (services.bus.guard_stream)
            *_ordered_consumer(state),
            *_lease(bucket, LEASE_WATCHER),
            f"{JS_API}.STREAM.CREATE.KV_{bucket}",  # recreates the lease bucket when it is lost (LeaseStore.guard)
        ]
    elif user == PLANNER:
        pub = [
            s.command_all(),
            s.node_all(),
            s.events_all(),
            s.state_sync(),  # asks the watcher whether the state stream is current
            f"{JS_API}.STREAM.INFO.{state}",
            *_ordered_consumer(state),
            f"{JS_API}.STREAM.INFO.{events}",
            *_ordered_consumer(events),
            f"{JS_API}.STREAM.INFO.{probes}",
            *_ordered_consumer(probes),
            # recover_in_flight reads the queued commands and node work with message gets (no consumer)
            f"{JS_API}.STREAM.INFO.{cmd}",
            f"{JS_API}.STREAM.MSG.GET.{cmd}",
            f"{JS_API}.STREAM.INFO.{node}",
            f"{JS_API}.STREAM.MSG.GET.{node}",
            # recreates the streams it writes when they are lost (services.bus.guard_stream)
            f"{JS_API}.STREAM.CREATE.{cmd}",
            f"{JS_API}.STREAM.CREATE.{node}",
            f"{JS_API}.STREAM.CREATE.{events}",
            *_lease(bucket, f"{LEASE_PARTITION}.*"),
            *_lease(bucket, f"{LEASE_MEMBER}.*"),
            f"{JS_API}.DIRECT.GET.KV_{bucket}",  # listing the live members (filter in the request)
            f"{JS_API}.STREAM.CREATE.KV_{bucket}",  # recreates the lease bucket when it is lost (LeaseStore.guard)
        ]
    elif user == EXECUTOR:
        durable = EXECUTOR_DURABLE
        pub = [
            s.events_all(),
            f"{JS_API}.STREAM.INFO.{cmd}",
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{cmd}.{durable}",
            f"{JS_API}.CONSUMER.INFO.{cmd}.{durable}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{cmd}.{durable}",
            f"$JS.ACK.{cmd}.{durable}.>",
        ]
    elif user == NODE_AGENT:
        # one user for every node's agent (a DaemonSet shares one Secret): each binds only its own
        # node's durable, but the permissions cannot tell one node from another
        durable = NODE_AGENT_DURABLES
        pub = [
            f"{pull}.*",
            s.events_all(),
            f"{JS_API}.STREAM.INFO.{node}",
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{node}.{durable}",
            f"{JS_API}.CONSUMER.INFO.{node}.{durable}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{node}.{durable}",
            f"$JS.ACK.{node}.{durable}.>",
        ]
    elif user == PROBER:
        pub = [
            s.probe_all(),
            rejected,  # a malformed state message it reads is reported, as by every consumer
            f"{JS_API}.STREAM.INFO.{state}",
            *_ordered_consumer(state),
            f"{JS_API}.STREAM.INFO.{probes}",
            *_ordered_consumer(probes),
            f"{JS_API}.STREAM.PURGE.{probes}",
            f"{JS_API}.STREAM.CREATE.{probes}",  # recreates KB_PROBE when it is lost (services.bus.guard_stream)
        ]
    elif user == WEBHOOK:
        pub = [rejected, f"{JS_API}.STREAM.INFO.{state}", *_ordered_consumer(state)]
    elif user == VIEWER:
        pub = [
            f"{JS_API}.STREAM.INFO.{events}",
            *_ordered_consumer(events),
            f"{JS_API}.STREAM.MSG.GET.{events}",
        ]
    else:
        raise ValueError(f"unknown NATS user {user!r}: one of {', '.join(USERS)}")
    # the viewer also gets the default inbox, so stock clients (`nats sub`, nats-py) read the log as it
    # without an inbox-prefix setting; only other viewers' replies come there
    sub = (inbox, "_INBOX.>") if user == VIEWER else (inbox, s.state_sync()) if user == WATCHER else (inbox,)
    return Permissions(publish=tuple(dict.fromkeys(pub)), subscribe=sub, allow_responses=user == WATCHER)


def generate_passwords(users: tuple[str, ...] = USERS) -> dict[str, str]:
    """A random password per user (the local stack's; a cluster install keeps them in Secrets)."""
    return {u: secrets.token_urlsafe(18) for u in users}


def account_name(prefix: str = DEFAULT_PREFIX) -> str:
    """The install's NATS account (`kb` -> `KRUISEBUS_KB`)."""
    return f"KRUISEBUS_{Subjects(prefix).stream('')[:-1]}"


def server_config(
    passwords: Mapping[str, str], *, prefix: str = DEFAULT_PREFIX, store_dir: str | None = None
) -> str:
    """A nats-server configuration: one account for the install with every user in it, JetStream on
    for it, no anonymous access (no `no_auth_user`). JSON is valid nats-server config syntax.
    `store_dir`: also turn JetStream on for the server (else its `-js -sd` flags do)."""
    users = []
    for user, password in passwords.items():
        perms = permissions(user, prefix)
        allowed: dict[str, object] = {
            "publish": {"allow": list(perms.publish)},
            "subscribe": {"allow": list(perms.subscribe)},
        }
        if perms.allow_responses:
            allowed["allow_responses"] = True
        users.append({"user": user, "password": password, "permissions": allowed})
    config: dict[str, object] = {"accounts": {account_name(prefix): {"jetstream": "enabled", "users": users}}}
    if store_dir is not None:
        config["jetstream"] = {"store_dir": store_dir}
    return json.dumps(config, indent=2)


CHART_FILE = chartfiles.CHART_DIR / "files" / "nats-users.yaml"
PREFIX_PLACEHOLDER = "kbprefixplaceholder"
"""The chart's file is written for this prefix; the chart puts `bus.prefix` in its place (subjects) and
its upper-case form in place of `STREAMS_PLACEHOLDER` (streams, the lease bucket, the account)."""
STREAMS_PLACEHOLDER = Subjects(PREFIX_PLACEHOLDER).stream("")[:-1]
USER_PLACEHOLDER = "userplaceholder"
"""Stands for the user's login name in its inbox prefix (`_INBOX_<login>`): the chart's logins are
`bus.auth.users.<service>.user`, which need not be the service's name."""


def chart_file() -> str:
    """The chart's files/nats-users.yaml: every user's permissions with the prefix and the login left
    for the chart to fill in (`templates/nats-accounts.yaml` renders the nats-server accounts from it)."""
    login = f"{inbox_prefix(USER_PLACEHOLDER)}.>"
    users: dict[str, dict[str, object]] = {}
    for user in USERS:
        p = permissions(user, PREFIX_PLACEHOLDER)
        own = f"{inbox_prefix(user)}.>"
        users[user] = {"publish": list(p.publish), "subscribe": [login if x == own else x for x in p.subscribe]}
        if p.allow_responses:
            users[user]["allow_responses"] = True
    doc = {"account": account_name(PREFIX_PLACEHOLDER),
           "placeholders": {"prefix": PREFIX_PLACEHOLDER, "streams": STREAMS_PLACEHOLDER, "login": USER_PLACEHOLDER},
           "users": users}
    head = ("# Generated by `python -m services.natsauth --write` from services/natsauth.py. Do not edit.\n"
            "# Every NATS user's subject permissions; templates/nats-accounts.yaml fills in bus.prefix and the logins.\n")
    return head + yaml.safe_dump(doc, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    return chartfiles.generate(argv, prog="python -m services.natsauth", description=__doc__.splitlines()[0],
                               path=CHART_FILE, render=chart_file)


def permissions_table(prefix: str = DEFAULT_PREFIX) -> str:
    """The users and their permissions as a Markdown table (docs/operations.md carries it verbatim)."""
    rows = ["| user | purpose | publish | subscribe |", "|---|---|---|---|"]
    for user in USERS:
        p = permissions(user, prefix)
        rows.append(
            f"| `{user}` | {USER_PURPOSE[user]} | {'<br>'.join(f'`{x}`' for x in p.publish)} | "
            f"{'<br>'.join(f'`{x}`' for x in p.subscribe)}"
            f"{'<br>(and answers requests it receives: `allow_responses`)' if p.allow_responses else ''} |"
        )
    return "\n".join(rows)


__all__ = [
    "ADMIN",
    "CHART_FILE",
    "EXECUTOR",
    "NODE_AGENT",
    "PLANNER",
    "PROBER",
    "Permissions",
    "SERVICE_USERS",
    "USERS",
    "VIEWER",
    "WATCHER",
    "WEBHOOK",
    "account_name",
    "chart_file",
    "generate_passwords",
    "inbox_prefix",
    "permissions",
    "permissions_table",
    "server_config",
]

if __name__ == "__main__":
    sys.exit(main())

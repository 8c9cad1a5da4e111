"""JSON Schema and AsyncAPI export of the bus contract.

`python -m schemas.jsonschema` writes `docs/schemas/*.json` (one JSON Schema per message family) and
`docs/asyncapi.yaml` (AsyncAPI 3.0: channels with their subject parameters, messages, operations and
the JetStream stream behind each channel). `--check` writes nothing and exits 1 when the checked-in
files differ from what the schemas generate, so a test keeps the docs in step with the code.

The generator functions are pure (they return text); only `main` touches the file system. The stream
table below is documentation of what `services.bus.stream_configs` creates (schemas/ must not import
NATS); a component test checks that the two agree.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any, Final

import msgspec
import yaml

from schemas.kinds import KINDS
from schemas.messages import SCHEMA_VERSION, Command, ProbeResult, RolloutEvent, StateEvent
from schemas.subjects import (
    DEFAULT_PREFIX,
    EVENT_REJECTED,
    STREAM_CMD,
    STREAM_EVENTS,
    STREAM_NODE,
    STREAM_PROBE,
    STREAM_STATE,
    Subjects,
)

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILES: Final[dict[str, tuple[str, Any]]] = {
    "state-event.json": ("StateEvent", StateEvent),
    "command.json": ("Command", Command),
    "rollout-event.json": ("RolloutEvent", RolloutEvent),
    "probe-result.json": ("ProbeResult", ProbeResult),
}

TOKEN_NOTE: Final = (
    "A name encoded as one subject token: letters, digits and '-' as they are, every other byte of "
    "its UTF-8 form as %XX (so '.' is %2E); '_' means none."
)

# Stream behind each channel (names without the prefix). Mirrors services.bus.stream_configs.
STREAMS: Final[dict[str, dict[str, Any]]] = {
    "state": {
        "stream": STREAM_STATE,
        "retention": "limits",
        "maxMsgsPerSubject": 1,
        "allowMsgTTL": True,
        "allowDirect": True,
        "duplicateWindow": "2m",
        "note": "compacted: the latest message per object; tombstones carry a Nats-TTL and expire",
    },
    "cmd": {
        "stream": STREAM_CMD,
        "retention": "workqueue",
        "duplicateWindow": "2m",
        "note": "each command is delivered to one executor; removed on ack or term",
    },
    "node": {
        "stream": STREAM_NODE,
        "retention": "workqueue",
        "duplicateWindow": "2m",
        "note": "per-node work, consumed by the node's own agent",
    },
    "probe": {
        "stream": STREAM_PROBE,
        "retention": "limits",
        "maxMsgsPerSubject": 1,
        "allowDirect": True,
        "duplicateWindow": "2m",
        "note": "latest probe result per pod and probe",
    },
    "events": {
        "stream": STREAM_EVENTS,
        "retention": "limits",
        "maxAge": "7d (configurable)",
        "maxBytes": "1GiB (configurable)",
        "duplicateWindow": "2m",
        "note": "user-facing rollout log: subscribe with wildcards, replay from a time or sequence",
    },
}


def json_schema(name: str, typ: Any) -> dict[str, Any]:
    """The standalone JSON Schema (2020-12) of one message type."""
    schema = msgspec.json.schema(typ)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:kruisebus:schema:v{SCHEMA_VERSION}:{name}",
        "title": name,
        **schema,
    }


def _param(description: str, *, enum: list[str] | None = None, examples: list[str] | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"description": description}
    if enum:
        p["enum"] = enum
    if examples:
        p["examples"] = examples
    return p


def _message(name: str, title: str, summary: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/NatsHeaders"},
        "payload": {"$ref": f"#/components/schemas/{name}"},
    }
    if example is not None:
        msg["examples"] = [{"payload": example}]
    return msg


HEADERS_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "Deterministic de-duplication id: <uid>@<resourceVersion> for state, "
            "<uid>@deleted@<resourceVersion> for tombstones, the command id for commands.",
        },
        "traceparent": {"type": "string", "description": "W3C trace context of the send span."},
        "tracestate": {"type": "string", "description": "W3C trace state, when present."},
        "Nats-TTL": {"type": "string", "description": "Per-message TTL in seconds (state tombstones)."},
    },
    "required": ["Nats-Msg-Id"],
}


def asyncapi(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus under `prefix`."""
    s = Subjects(prefix)
    ns = _param(f"Namespace. {TOKEN_NOTE}", examples=["default"])
    schemas_list: list[Any] = [StateEvent, Command, RolloutEvent, ProbeResult]
    _, components = msgspec.json.schema_components(schemas_list, ref_template="#/components/schemas/{name}")
    state_messages = [k.state.__name__ for k in KINDS]
    channels: dict[str, Any] = {
        "state": {
            "address": f"{prefix}.state.{{namespace}}.{{owner}}.{{kind}}.{{uid}}",
            "title": "Cluster state",
            "description": "Latest observed state of each object the watcher tracks. `owner` is the "
            "controlling workload's uid (the workload's own uid for the workload itself), so a workload "
            "and its pods share a routing key. When an object's owner changes, the old subject is "
            "tombstoned in the same step.",
            "parameters": {
                "namespace": ns,
                "owner": _param(f"Owner workload uid. {TOKEN_NOTE}"),
                "kind": _param("Object kind.", enum=[k.token for k in KINDS]),
                "uid": _param(f"Object uid. {TOKEN_NOTE}"),
            },
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in state_messages},
        },
        "cmd": {
            "address": f"{prefix}.cmd.{{namespace}}.{{owner}}.{{verb}}",
            "title": "Commands",
            "description": "Planner decisions, each handled by exactly one executor.",
            "parameters": {
                "namespace": ns,
                "owner": _param(f"Workload uid. {TOKEN_NOTE}"),
                "verb": _param("What the command does.", examples=["update-in-place", "create", "delete"]),
            },
            "messages": {"Command": {"$ref": "#/components/messages/Command"}},
        },
        "node": {
            "address": f"{prefix}.node.{{node}}.{{verb}}",
            "title": "Per-node work",
            "description": "Work for one node's agent (image pre-pull): a Command with `node` set and "
            "its `node_ops`. The agent reports back as PullResultState on the state channel.",
            "parameters": {
                "node": _param(f"Node name. {TOKEN_NOTE}", examples=["node-1%2Eexample%2Ecom"]),
                "verb": _param("What to do.", examples=["pull"]),
            },
            "messages": {"Command": {"$ref": "#/components/messages/Command"}},
        },
        "probe": {
            "address": f"{prefix}.probe.{{namespace}}.{{pod}}.{{probe}}",
            "title": "Probe results",
            "description": "Latest PodProbeMarker probe result per pod and probe.",
            "parameters": {
                "namespace": ns,
                "pod": _param(f"Pod uid. {TOKEN_NOTE}"),
                "probe": _param(f"Probe name `<ppm>#<probe>`. {TOKEN_NOTE}"),
            },
            "messages": {"ProbeResult": {"$ref": "#/components/messages/ProbeResult"}},
        },
        "events": {
            "address": f"{prefix}.events.{{namespace}}.{{workload}}.{{event}}",
            "title": "Rollout events",
            "description": "The user-facing rollout log. `rejected` entries explain every message "
            "that was dropped (malformed, stale precondition, too many deliveries).",
            "parameters": {
                "namespace": ns,
                "workload": _param(f"Workload name. {TOKEN_NOTE}", examples=["web"]),
                "event": _param("Event type.", examples=[EVENT_REJECTED, "pod-updated-in-place"]),
            },
            "messages": {"RolloutEvent": {"$ref": "#/components/messages/RolloutEvent"}},
        },
    }
    for key, chan in channels.items():
        stream = dict(STREAMS[key])
        stream["stream"] = s.stream(stream["stream"])
        chan["x-nats-stream"] = stream

    def op(action: str, channel: str, summary: str, messages: list[str] | None = None) -> dict[str, Any]:
        o: dict[str, Any] = {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}
        if messages:
            o["messages"] = [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages]
        return o

    operations = {
        "publishState": op("send", "state", "The watcher publishes object state.", state_messages),
        "replayState": op("receive", "state", "The planner replays then follows state.", state_messages),
        "sendCommand": op("send", "cmd", "The planner sends commands.", ["Command"]),
        "executeCommand": op("receive", "cmd", "An executor handles each command once.", ["Command"]),
        "sendNodeWork": op("send", "node", "The planner sends per-node work."),
        "executeNodeWork": op("receive", "node", "A node agent handles its node's work."),
        "publishProbe": op("send", "probe", "A prober publishes probe results.", ["ProbeResult"]),
        "readProbe": op("receive", "probe", "The planner reads probe results.", ["ProbeResult"]),
        "publishEvent": op("send", "events", "Services append to the rollout log.", ["RolloutEvent"]),
        "subscribeEvents": op("receive", "events", "Users subscribe to and replay the rollout log.",
                              ["RolloutEvent"]),
    }
    messages = {
        "CloneSetState": _message("CloneSetState", "CloneSet state", "Latest CloneSet spec and status."),
        "PodState": _message("PodState", "Pod state", "Latest pod state, or a tombstone (deleted=true)."),
        "NodeState": _message("NodeState", "Node state", "Latest node state."),
        "RevisionState": _message("RevisionState", "ControllerRevision state", "A CloneSet revision."),
        "PvcState": _message(
            "PvcState", "PersistentVolumeClaim state", "A claim a CloneSet made from its volumeClaimTemplates."
        ),
        "ImagePullJobState": _message("ImagePullJobState", "ImagePullJob state",
                                      "Latest ImagePullJob spec and status."),
        "NodeImageState": _message("NodeImageState", "NodeImage state",
                                   "Latest NodeImage of one node (cluster-scoped, named after the node)."),
        "Command": _message(
            "Command", "Command", "The exact Kubernetes operations of one planner decision.",
            {
                "schema": SCHEMA_VERSION, "id": "w-uid@rev2@p-uid@update-in-place", "verb": "update-in-place",
                "workload": {"api_version": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                             "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "plural": "clonesets"},
                             "namespace": "default", "name": "web", "uid": "w-uid"},
                "pod": "web-x7k2p",
                "pod_uid": "p-uid", "revision": "web-6d5f8c", "ops": [], "rollout_trace_id": "",
            },
        ),
        "PodProbeMarkerState": _message("PodProbeMarkerState", "PodProbeMarker state",
                                        "Latest PodProbeMarker spec and status."),
        "ProbeResult": _message(
            "ProbeResult", "Probe result", "The latest result of one marker probe on one pod.",
            {
                "schema": SCHEMA_VERSION, "namespace": "default", "pod": "game-x7k2p", "pod_uid": "p-uid",
                "probe": "game-idle#Idle", "state": "Succeeded", "message": "idle",
                "time": "2026-01-01T00:00:00Z", "last_transition_time": "2026-01-01T00:00:00Z",
                "node": "sim-node-0", "container_id": "sim://0f3c",
            },
        ),
        "RolloutEvent": _message(
            "RolloutEvent", "Rollout event", "One entry of the rollout log.",
            {
                "schema": SCHEMA_VERSION, "type": "rejected", "namespace": "default", "workload": "web",
                "message": "precondition failed: pod web-x7k2p changed since the plan",
                "time": "2026-01-01T00:00:00Z", "reason": "stale",
                "subject": f"{prefix}.cmd.default.w-uid.update-in-place",
            },
        ),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "kruisebus bus contract",
            "version": str(SCHEMA_VERSION),
            "description": "Subjects, streams and messages of kruisebus on NATS JetStream. Payloads are "
            "JSON; every message carries a `schema` version. See docs/bus.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:4222", "protocol": "nats", "description": "kruisebus demo/up"},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"NatsHeaders": HEADERS_SCHEMA, **components},
        },
    }


class _NoAliases(yaml.SafeDumper):
    """Write repeated values out in full (no &id001 anchors) so the YAML reads plainly."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> dict[str, str]:
    """Every generated file: relative path under docs/ -> content."""
    out = {
        f"schemas/{fname}": json.dumps(json_schema(name, typ), indent=2) + "\n"
        for fname, (name, typ) in SCHEMA_FILES.items()
    }
    header = "# Generated by `python -m schemas.jsonschema` from schemas/; do not edit.\n"
    out["asyncapi.yaml"] = header + yaml.dump(
        asyncapi(), Dumper=_NoAliases, sort_keys=False, width=110, allow_unicode=True
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.jsonschema", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are out of date")
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for rel, content in render().items():
        path = args.docs / rel
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        if args.check:
            stale.append(rel)
            diff = difflib.unified_diff(
                (current or "").splitlines(), content.splitlines(), f"{rel} (checked in)", f"{rel} (generated)",
                lineterm="", n=1,
            )
            print("\n".join(list(diff)[:40]))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python -m schemas.jsonschema`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

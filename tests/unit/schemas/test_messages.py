"""Bus message round trips and decode errors (docs/bus.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from schemas.cloneset import CloneSet, CloneSetSpec
from schemas.kinds import CLONESET
from schemas.kube import ControllerRevision, Node, ObjectMeta, OwnerReference, Pod
from schemas.messages import (
    CLONESETS,
    COMMAND_DECODER,
    ENCODER,
    EVENT_DECODER,
    PODS,
    STATE_DECODER,
    CloneSetState,
    Command,
    CreateOp,
    DeleteOp,
    KubeEvent,
    NodeState,
    PatchOp,
    PodState,
    RevisionState,
    RolloutEvent,
    StateEvent,
)

ROOT = Path(__file__).resolve().parents[3]
OWNER = OwnerReference(api_version="apps.kruise.io/v1alpha1", kind="CloneSet", name="web", uid="w", controller=True)

STATES: list[StateEvent] = [
    CloneSetState(object=CloneSet(metadata=ObjectMeta(name="web", namespace="default", uid="w",
                                                      resource_version="7"),
                                  spec=CloneSetSpec(replicas=5))),
    PodState(object=Pod(metadata=ObjectMeta(name="web-a", namespace="default", uid="p",
                                            owner_references=[OWNER])), deleted=True),
    NodeState(object=Node(metadata=ObjectMeta(name="node-1.example.com", uid="n"))),
    RevisionState(object=ControllerRevision(metadata=ObjectMeta(name="web-abc", namespace="default", uid="r"),
                                            revision=2, data={"spec": {"template": {}}})),
]


@pytest.mark.parametrize("state", STATES, ids=lambda s: type(s).__name__)
def test_state_round_trip(state: StateEvent) -> None:
    data = ENCODER.encode(state)
    assert STATE_DECODER.decode(data) == state
    raw = msgspec.json.decode(data)
    assert raw["schema"] == 1 and raw["kind"] == type(state).__struct_config__.tag


def test_command_round_trip_with_every_op() -> None:
    cmd = Command(
        id="w@rev2@p@update", verb="update-in-place",
        workload=CLONESET.ref(ObjectMeta(name="web", namespace="default", uid="w")),
        pod="web-a", pod_uid="p", revision="rev2", rollout_trace_id="ab" * 16,
        ops=[
            CreateOp(resource=PODS, namespace="default", body={"metadata": {"name": "web-b"}}),
            PatchOp(resource=PODS, namespace="default", name="web-a", patch_type="json",
                    patch=[{"op": "test", "path": "/metadata/uid", "value": "p"}]),
            PatchOp(resource=CLONESETS, namespace="default", name="web", patch_type="merge",
                    patch={"status": {"updatedReplicas": 1}}, subresource="status"),
            DeleteOp(resource=PODS, namespace="default", name="web-c", uid="c", grace_period_seconds=0),
        ],
        on_success=KubeEvent(reason="SuccessfulUpdatePodInPlace", message="updated web-a in place"),
        on_failure=KubeEvent(type="Warning", reason="FailedUpdatePodInPlace", message="x"),
    )
    data = ENCODER.encode(cmd)
    assert COMMAND_DECODER.decode(data) == cmd
    assert [op["op"] for op in msgspec.json.decode(data)["ops"]] == ["create", "patch", "patch", "delete"]


def test_rollout_event_round_trip() -> None:
    ev = RolloutEvent(type="rejected", namespace="default", workload="web", message="stale",
                      time="2026-01-01T00:00:00Z", reason="stale", subject="kb.cmd.default.w.x",
                      data={"attempt": 2, "pod": "web-a"})
    assert EVENT_DECODER.decode(ENCODER.encode(ev)) == ev


def test_unknown_fields_are_ignored() -> None:
    data = b'{"type":"x","namespace":"n","workload":"w","message":"m","time":"t","new_field":[1]}'
    assert EVENT_DECODER.decode(data).type == "x"


REF = (b'{"api_version":"apps.kruise.io/v1alpha1","kind":"CloneSet","resource":{"plural":"clonesets"},'
       b'"namespace":"n","name":"w","uid":"u"}')


@pytest.mark.parametrize(
    ("decoder", "payload", "where"),
    [
        (COMMAND_DECODER, b'{"id": 7, "verb": "x", "workload": ' + REF + b'}', "$.id"),
        (COMMAND_DECODER, b'{"verb": "x", "workload": ' + REF + b'}', "`id`"),
        (COMMAND_DECODER, b'{"id":"i","verb":"x","workload":' + REF + b',"ops":[{"op":"explode"}]}', "$.ops[0].op"),
        (COMMAND_DECODER, b'{"id":"i","verb":"x","workload":"web"}', "$.workload"),
        (STATE_DECODER, b'{"kind": "secret", "object": {}}', "$.kind"),
        (STATE_DECODER, b'{"kind": "pod", "object": {"metadata": {"uid": 5}}}', "$.object.metadata.uid"),
        (EVENT_DECODER, b'{"type":"x","namespace":"n","workload":"w","message":"m","time":"t","data":{"a":[]}}',
         "$.data"),
    ],
)
def test_malformed_decode_errors_name_the_field(
    decoder: msgspec.json.Decoder[object], payload: bytes, where: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as exc:
        decoder.decode(payload)
    assert where in str(exc.value)


def test_invalid_json_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        COMMAND_DECODER.decode(b"{not json")


def test_schema_export_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "schemas.jsonschema", "--check"], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr

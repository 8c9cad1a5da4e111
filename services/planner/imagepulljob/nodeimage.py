"""NodeImages: one per Ready node, the pulls they ask of their node, and their status folded from the
node agent's results.

Three jobs Kruise spreads over the nodeimage controller (`pkg/controller/nodeimage`) and kruise-daemon
(`pkg/daemon/imagepuller`), as pure decisions:

* lifecycle: a NodeImage is created (with the Node's labels) once the Node has been Ready for 30 s,
  keeps mirroring its labels, and is deleted with the Node (unless labelled
  `apps.kruise.io/fake-nodeimage`);
* spec upkeep: tags without `createdAt` are dropped, owner references to ImagePullJobs that are gone
  (or were re-created under another uid) are dropped, a tag without owners is dropped, a finished tag
  past its `ttlSecondsAfterFinished` is dropped, an image without tags is dropped;
* pulls and status (kruise-daemon's workers): `fold_results` sends each unfinished tag's pull to the
  node as node work (`PullOp`), one attempt per command, retried after kruise-daemon's backoff until
  `backoffLimit` + 1 attempts failed, and turns the agent's `PullResult`s into tag statuses. Only a
  *finished* pull is written, so a node costs one status write per tag per completed pull, whatever
  the number of results; a tag with neither a status nor a result 10 minutes after `createdAt` fails
  with "node has not responded for a long time", one still unfinished `activeDeadlineSeconds` + 10
  minutes after it with "pulling exceeds the activeDeadlineSeconds".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from schemas.constants import (
    CONDITION_READY,
    DEFAULT_PULL_BACKOFF_LIMIT,
    DEFAULT_PULL_TIMEOUT_SECONDS,
    EVENT_PULL_IMAGE_FAILED,
    EVENT_PULL_IMAGE_SUCCEED,
    GROUP,
    KIND_IMAGE_PULL_JOB,
    LABEL_FAKE_NODE_IMAGE,
    MESSAGE_NODE_NOT_RESPONDED,
    MESSAGE_PULL_DEADLINE_EXCEEDED,
    NODE_IMAGE_CREATION_DELAY_SECONDS,
    NODE_IMAGE_RESPONSE_TIMEOUT_SECONDS,
    PHASE_FAILED,
    PHASE_PULLING,
    PHASE_SUCCEEDED,
    PULL_ALWAYS,
    PULL_RETRY_MAX_SECONDS,
    PULL_START_DEADLINE_SECONDS,
)
from schemas.kinds import NODE, NODE_IMAGE
from schemas.kube import Node
from schemas.messages import (
    IMAGE_PULL_JOBS,
    NODE_IMAGES,
    VERB_EVENT,
    VERB_NODE_IMAGE_CREATE,
    VERB_NODE_IMAGE_DELETE,
    VERB_NODE_IMAGE_SPEC,
    VERB_NODE_IMAGE_STATUS,
    VERB_PULL,
    Command,
    Expectation,
    RolloutEvent,
    WorkloadRef,
)
from schemas.nodeimage import ImageSpec, ImageStatus, ImageTagSpec, ImageTagStatus, NodeImage, NodeImageStatus
from schemas.nodework import PullOp, PullResult, SecretRef, pull_result_uid
from services.planner.imagepulljob import imageref, ops
from services.planner.kit.builder import Builder, kube_event, short_digest
from services.planner.kit.plan import Revisionless
from services.planner.kit.timeutil import format_time, parse_time, seconds_between

TagKey = tuple[str, str, int]  # (image name, tag, version)
JobKey = tuple[str, str]  # (namespace, name)

FINISHED = frozenset({PHASE_SUCCEEDED, PHASE_FAILED})


@dataclass
class NodeImagePlan(Revisionless):
    """One pass over one node's NodeImage."""

    name: str
    commands: list[Command] = field(default_factory=list)
    events: list[RolloutEvent] = field(default_factory=list)
    requeue_after: float | None = None
    status: NodeImageStatus | None = None  # the status written this pass (None: no status write)
    in_flight: dict[TagKey, PullResult] = field(default_factory=dict)  # pulls under way
    expectations: list[Expectation] = field(default_factory=list)  # (the PlanResult protocol: none)

    @property
    def accepted(self) -> bool:
        return True


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _soonest(current: float | None, value: float) -> float:
    return value if current is None else min(current, value)


def ready_since(node: Node) -> str | None:
    """The Ready condition's lastTransitionTime ("" if unknown) when the node is Ready, else None."""
    for c in node.status.conditions:
        if c.type == CONDITION_READY:
            return (c.last_transition_time or "") if c.status == "True" else None
    return None


# --- status ------------------------------------------------------------------------------------------


def counters(
    spec: Mapping[str, ImageSpec],
    statuses: Mapping[str, ImageStatus],
    in_flight: Mapping[TagKey, PullResult] | None = None,
) -> tuple[int, int, int, int, int]:
    """(desired, succeeded, failed, pulling, waiting) over the spec's tags: a tag counts by its status for
    its current version, else by its live result (pulling), else it is waiting. They always add up."""
    desired = succeeded = failed = pulling = 0
    live = in_flight or {}
    for image, ispec in spec.items():
        by_tag = {t.tag: t for t in (statuses.get(image) or ImageStatus()).tags}
        for t in ispec.tags:
            desired += 1
            st = by_tag.get(t.tag)
            phase = st.phase if st is not None and st.version == t.version else ""
            report = live.get((image, t.tag, t.version))
            if phase == PHASE_SUCCEEDED:
                succeeded += 1
            elif phase == PHASE_FAILED:
                failed += 1
            elif phase == PHASE_PULLING or (report is not None and report.phase == "pulling"):
                pulling += 1
    return desired, succeeded, failed, pulling, desired - succeeded - failed - pulling


def _set_tag(statuses: dict[str, ImageStatus], image: str, new: ImageTagStatus) -> None:
    current = statuses.get(image) or ImageStatus()
    tags = [t for t in current.tags if t.tag != new.tag] + [new]
    tags.sort(key=lambda t: t.tag)
    statuses[image] = ImageStatus(tags=tags)


def pull_reference(image: str, tag: str) -> str:
    """The reference a node pulls for a NodeImage entry: `name:tag`, or `name@digest`."""
    return f"{image}@{tag}" if ":" in tag else f"{image}:{tag}"


def attempts_of(tag: ImageTagSpec) -> int:
    """kruise-daemon's attempts per round: backoffLimit + 1 (default limit 3; a negative one means 3)."""
    backoff = tag.pull_policy.backoff_limit if tag.pull_policy is not None else None
    if backoff is None:
        backoff = DEFAULT_PULL_BACKOFF_LIMIT
    return backoff + 1 if backoff >= 0 else 3


def retry_delay(failed_attempt: int) -> float:
    """The pause before the next attempt: 1 s, doubling, at most 30 s (kruise-daemon's backoff)."""
    return float(min(2**failed_attempt, PULL_RETRY_MAX_SECONDS))


def pull_command_id(ni: NodeImage, image: str, tag: str, version: int, attempt: int) -> str:
    return f"nodeimage/{ni.metadata.uid}/pull/{image}:{tag}/{version}/{attempt}"


def attempt_of(ni: NodeImage, image: str, tag: str, version: int, result: PullResult) -> int:
    """Which attempt a result answers (its command id ends in the attempt number); 0 if unknown."""
    prefix = pull_command_id(ni, image, tag, version, 0)[:-1]
    if result.command_id.startswith(prefix) and result.command_id[len(prefix):].isdigit():
        return int(result.command_id[len(prefix):])
    return 0


@dataclass
class Fold:
    """The node's pull results folded into its NodeImage."""

    statuses: dict[str, ImageStatus]  # image statuses after the fold
    finished: list[tuple[str, ImageTagSpec, PullResult]] = field(default_factory=list)  # newly final
    live: dict[TagKey, PullResult] = field(default_factory=dict)  # pulls under way (or between attempts)
    pulls: list[tuple[str, ImageTagSpec, int]] = field(default_factory=list)  # (image, tag, attempt) to send
    wait: float | None = None  # when the next retry is due


def fold_results(ni: NodeImage, results: Sequence[PullResult], now: datetime) -> Fold:
    """Fold a node's latest pull results into its tag statuses, and say which pulls to send.

    Per tag (with `createdAt`) whose status for the spec's `version` is not final: no result for that
    version -> pull (attempt 0); a `pulling`/`waiting` result -> under way, nothing written; `succeeded`
    -> the tag's final status; `failed` -> the next attempt after the backoff while attempts are left,
    else the tag's final status with the reason. Only final statuses change the object, so a pull costs
    one status write however many results it produced.
    """
    now = _utc(now)
    by_ref: dict[tuple[str, str], PullResult] = {}
    for result in results:
        if result.node != ni.metadata.name:
            continue
        try:
            by_ref[imageref.name_tag(result.image)] = result
        except imageref.ImageRefError:
            continue
    fold = Fold(statuses=dict(ni.status.image_statuses))
    for image, ispec in ni.spec.images.items():
        for t in ispec.tags:
            if t.created_at is None:
                continue
            st = ni.tag_status(image, t.tag)
            if st is not None and st.version == t.version and st.completion_time is not None:
                continue
            r = by_ref.get((image, t.tag))
            if r is None or r.version != t.version:
                fold.pulls.append((image, t, 0))
                continue
            key = (image, t.tag, t.version)
            if not r.done:
                fold.live[key] = r
                continue
            if r.phase == "failed":
                attempt = attempt_of(ni, image, t.tag, t.version, r)
                if attempt + 1 < attempts_of(t):
                    fold.live[key] = r
                    ended = parse_time(r.completion_time) or now
                    left = retry_delay(attempt) - seconds_between(now, ended)
                    if left > 0:
                        fold.wait = _soonest(fold.wait, left)
                    else:
                        fold.pulls.append((image, t, attempt + 1))
                    continue
            stamp = r.completion_time or format_time(now)
            succeeded = r.phase == "succeeded"
            _set_tag(fold.statuses, image, ImageTagStatus(
                tag=t.tag, phase=PHASE_SUCCEEDED if succeeded else PHASE_FAILED,
                progress=100 if succeeded else r.progress, start_time=r.start_time or stamp,
                completion_time=stamp, version=t.version, image_id=r.image_id if succeeded else "",
                message="" if succeeded else (r.message or r.reason)))
            fold.finished.append((image, t, r))
    return fold


def pull_command(ni: NodeImage, image: str, tag: ImageTagSpec, attempt: int, now: datetime,
                 start_deadline: float = PULL_START_DEADLINE_SECONDS) -> Command:
    """The node work for one attempt of one tag: a `PullOp` for the node's agent (`kb.node.<node>.pull`).

    It must be started within `start_deadline` seconds (and before the tag's `activeDeadlineSeconds`
    ends): that is its `not_after`, after which the agent reports it expired instead of pulling. It
    expects the agent's report (`reported`): until one answers it, or `not_after` passes, the engine
    does not send it again; after that it is re-issued.
    """
    spec = ni.spec.images.get(image) or ImageSpec()
    pp = tag.pull_policy
    ref = WorkloadRef(api_version=NODE_IMAGE.api_version, kind=NODE_IMAGE.kind, resource=NODE_IMAGES,
                      namespace="", name=ni.metadata.name, uid=ni.metadata.uid)
    expires = _utc(now) + timedelta(seconds=start_deadline)
    created = parse_time(tag.created_at)
    if pp is not None and pp.active_deadline_seconds is not None and created is not None:
        expires = min(expires, created + timedelta(seconds=pp.active_deadline_seconds))
    reference = pull_reference(image, tag.tag)
    op = PullOp(image=reference, version=tag.version,
                timeout_seconds=pp.timeout_seconds if pp is not None and pp.timeout_seconds is not None
                else DEFAULT_PULL_TIMEOUT_SECONDS,
                always=tag.image_pull_policy == PULL_ALWAYS,
                secrets=[SecretRef(namespace=s.namespace, name=s.name) for s in spec.pull_secrets])
    cid = pull_command_id(ni, image, tag.tag, tag.version, attempt)
    return Command(id=cid, verb=VERB_PULL, workload=ref, node=ni.metadata.name, node_ops=[op],
                   not_after=format_time(expires),
                   expects=[Expectation(pod="", kind="reported", key=pull_result_uid(ni.metadata.name, reference),
                                        value=cid)])


def _timeouts(
    ni: NodeImage, statuses: dict[str, ImageStatus], live: Collection[TagKey], now: datetime
) -> tuple[list[tuple[str, ImageTagSpec, str]], float | None]:
    """`updateNodeImageStatus`'s timeouts: (image, tag spec, message) of tags that fail now, and when to
    look again. A live report counts as the node having responded."""
    failed: list[tuple[str, ImageTagSpec, str]] = []
    wait: float | None = None
    stamp = format_time(now)
    for image, ispec in ni.spec.images.items():
        for t in ispec.tags:
            created = parse_time(t.created_at)
            if created is None:
                continue
            st = next((s for s in (statuses.get(image) or ImageStatus()).tags if s.tag == t.tag), None)
            responded = st is not None and st.version == t.version
            if not responded and (image, t.tag, t.version) not in live:
                left = NODE_IMAGE_RESPONSE_TIMEOUT_SECONDS - seconds_between(now, created)
                if left > 0:
                    wait = _soonest(wait, left)
                    continue
                _set_tag(
                    statuses,
                    image,
                    ImageTagStatus(
                        tag=t.tag,
                        phase=PHASE_FAILED,
                        completion_time=stamp,
                        version=t.version,
                        message=MESSAGE_NODE_NOT_RESPONDED,
                    ),
                )
                failed.append((image, t, MESSAGE_NODE_NOT_RESPONDED))
                continue
            deadline = t.pull_policy.active_deadline_seconds if t.pull_policy is not None else None
            current = st if responded else None  # a status of an older version says nothing about this pull
            if (current is None or current.completion_time is None) and deadline is not None:
                left = deadline + NODE_IMAGE_RESPONSE_TIMEOUT_SECONDS - seconds_between(now, created)
                if left > 0:
                    wait = _soonest(wait, left)
                    continue
                base = current if current is not None else ImageTagStatus(tag=t.tag, phase="")
                _set_tag(
                    statuses,
                    image,
                    msgspec.structs.replace(
                        base,
                        phase=PHASE_FAILED,
                        completion_time=stamp,
                        version=t.version,
                        message=MESSAGE_PULL_DEADLINE_EXCEEDED,
                    ),
                )
                failed.append((image, t, MESSAGE_PULL_DEADLINE_EXCEEDED))
    return failed, wait


def _owner_events(b: Builder, ni: NodeImage, tag: ImageTagSpec, reason: str, message: str, key: str) -> None:
    """The pull's outcome on each owner job's rollout log; a failure also as a Warning Event on the job
    (`kubectl describe imagepulljob`). Successes get no Kubernetes Event: one per node per image would
    double the API writes a pull costs."""
    failed = reason == EVENT_PULL_IMAGE_FAILED
    for owner in tag.owner_references:
        b.events.append(
            RolloutEvent(
                type="pull-failed" if failed else "pull-succeeded",
                namespace=owner.namespace,
                workload=owner.name,
                message=message,
                time=format_time(b.now),
                reason=reason,
                data={"node": ni.metadata.name},
            )
        )
        if failed and owner.kind == KIND_IMAGE_PULL_JOB:
            ref = WorkloadRef(
                api_version=owner.api_version,
                kind=owner.kind,
                resource=IMAGE_PULL_JOBS,
                namespace=owner.namespace,
                name=owner.name,
                uid=owner.uid,
            )
            b.commands.append(
                Command(
                    id=f"nodeimage/{ni.metadata.uid}/event/{key}/{owner.uid}",
                    verb=VERB_EVENT,
                    workload=ref,
                    on_success=kube_event(reason, message, warning=True),
                )
            )


def status_after(
    ni: NodeImage, statuses: dict[str, ImageStatus], live: Mapping[TagKey, PullResult]
) -> NodeImageStatus:
    """The status to write: statuses of tags no longer in the spec dropped, counters recomputed."""
    kept: dict[str, ImageStatus] = {}
    for image, st in statuses.items():
        ispec = ni.spec.images.get(image)
        if ispec is None:
            continue
        names = {t.tag for t in ispec.tags}
        tags = [t for t in st.tags if t.tag in names]
        if tags:
            kept[image] = ImageStatus(tags=tags)
    desired, succeeded, failed, pulling, waiting = counters(ni.spec.images, kept, live)
    return msgspec.structs.replace(
        ni.status,
        image_statuses=kept,
        desired=desired,
        succeeded=succeeded,
        failed=failed,
        pulling=pulling,
        waiting=waiting,
    )


# --- the pass ----------------------------------------------------------------------------------------


def _spec_upkeep(
    ni: NodeImage, node: Node | None, jobs: Mapping[JobKey, str], now: datetime
) -> tuple[dict[str, str] | None, dict[str, ImageSpec | None], float | None, list[str]]:
    """`doUpdateNodeImage`: (labels to set or None, image entries to change (None = remove), requeue, why)."""
    labels = (
        dict(node.metadata.labels)
        if node is not None and node.metadata.labels != ni.metadata.labels
        else None
    )
    why = ["node labels changed"] if labels is not None else []
    changes: dict[str, ImageSpec | None] = {}
    wait: float | None = None
    for image, ispec in ni.spec.images.items():
        tags: list[ImageTagSpec] = []
        changed = False
        for t in ispec.tags:
            full = f"{image}:{t.tag}"
            if t.created_at is None:
                changed = True
                why.append(f"image {full} has no createAt field")
                continue
            refs = []
            for ref in t.owner_references:
                is_job = ref.kind == KIND_IMAGE_PULL_JOB and ref.api_version.split("/", 1)[0] == GROUP
                if not is_job or jobs.get((ref.namespace, ref.name)) == ref.uid:
                    refs.append(ref)
            if len(refs) != len(t.owner_references):
                changed = True
                if not refs:
                    why.append(f"image {full} owners is cleared")
                    continue
                why.append(f"image {full} owners changed")
                t = msgspec.structs.replace(t, owner_references=refs)
            ttl = t.pull_policy.ttl_seconds_after_finished if t.pull_policy is not None else None
            st = ni.tag_status(image, t.tag)
            done = parse_time(st.completion_time) if st is not None and st.version == t.version else None
            if ttl is not None and done is not None:
                left = ttl - seconds_between(now, done)
                if left <= 0:
                    changed = True
                    why.append(f"image {full} has exceeded TTL ({ttl})s")
                    continue
                wait = _soonest(wait, left)
            tags.append(t)
        if changed:
            changes[image] = msgspec.structs.replace(ispec, tags=tags) if tags else None
    return labels, changes, wait, why


def plan_node_image(
    node: Node | None,
    ni: NodeImage | None,
    jobs: Mapping[JobKey, str],
    now: datetime,
    results: Sequence[PullResult] = (),
    *,
    creation_delay: float = NODE_IMAGE_CREATION_DELAY_SECONDS,
    pull_start_deadline: float = PULL_START_DEADLINE_SECONDS,
) -> NodeImagePlan:
    """One pass for one node name. `node`/`ni`: the Node and its NodeImage (None: absent); `jobs`: every
    ImagePullJob's uid by (namespace, name); `results`: the node agent's latest `PullResult`s;
    `creation_delay`: how long a Node must have been Ready before its NodeImage is created;
    `pull_start_deadline`: seconds a pull may wait for the node's agent (`pull_command`)."""
    now = _utc(now)
    name = (ni or node).metadata.name if (ni or node) is not None else ""  # type: ignore[union-attr]
    plan = NodeImagePlan(name=name)
    node_gone = node is None or node.metadata.deletion_timestamp is not None
    if node_gone and (ni is None or LABEL_FAKE_NODE_IMAGE not in ni.metadata.labels):
        if ni is not None and ni.metadata.deletion_timestamp is None:
            b = Builder.of(NODE_IMAGE, ni, now)
            b.command(
                f"nodeimage/{ni.metadata.uid}/delete", VERB_NODE_IMAGE_DELETE, [ops.node_image_delete(ni)]
            )
            plan.commands = b.commands
        return plan
    if ni is None:
        assert node is not None
        since = ready_since(node)
        if since is None:
            return plan
        ready_at = parse_time(since)
        delay = (
            creation_delay - seconds_between(now, ready_at)
            if ready_at is not None
            else 0.0
        )
        if delay > 0:
            plan.requeue_after = delay
            return plan
        b = Builder.of(NODE, node, now)
        b.command(
            f"nodeimage/{node.metadata.uid or node.metadata.name}/create",
            VERB_NODE_IMAGE_CREATE,
            [ops.node_image_create(node)],
        )
        plan.commands = b.commands
        return plan
    if ni.metadata.deletion_timestamp is not None:
        return plan
    b = Builder.of(NODE_IMAGE, ni, now)
    # a fake NodeImage (no Node) still gets its spec upkeep and status, without label mirroring
    labels, changes, wait, why = _spec_upkeep(ni, None if node_gone else node, jobs, now)
    if labels is not None or changes:
        op = ops.node_image_spec_patch(ni, changes, labels)
        b.command(
            f"nodeimage/{ni.metadata.uid}/spec/{ni.metadata.resource_version}", VERB_NODE_IMAGE_SPEC, [op]
        )
        b.event("nodeimage-updated", "; ".join(why))
        plan.commands, plan.events = b.commands, b.events
        return plan  # Kruise: a spec change ends the pass
    fold = fold_results(ni, results, now)
    statuses, live = fold.statuses, fold.live
    plan.in_flight = live
    failed, timeout_wait = _timeouts(ni, statuses, live.keys(), now)
    timed_out = {(image, tag.tag) for image, tag, _ in failed}
    for image, tag, result in fold.finished:
        key = f"{image}:{tag.tag}/{tag.version}"
        if result.phase == "succeeded":
            msg = f"Image {image}:{tag.tag}, ecalpsedTime {_elapsed(result)}"
            _owner_events(b, ni, tag, EVENT_PULL_IMAGE_SUCCEED, msg, key)
        else:
            _owner_events(b, ni, tag, EVENT_PULL_IMAGE_FAILED,
                          f"Image {image}:{tag.tag} {result.message or result.reason}", key)
    for image, tag, message in failed:
        _owner_events(
            b,
            ni,
            tag,
            EVENT_PULL_IMAGE_FAILED,
            f"Failed to pull image {image}:{tag.tag} on node {ni.metadata.name} for {message}",
            f"{image}:{tag.tag}/{tag.version}",
        )
    finished = fold.finished
    if finished or failed or _stale(ni):
        status = status_after(ni, statuses, live)
        body = ops.node_image_status_json(status, ni.status)
        # first in the pass: the Events above only follow a status that was written
        b.commands.insert(
            0,
            Command(
                id=f"nodeimage/{ni.metadata.uid}/status/{ni.metadata.resource_version}/{short_digest(body)}",
                verb=VERB_NODE_IMAGE_STATUS,
                workload=b.ref,
                ops=[ops.node_image_status_patch(ni, status)],
            ),
        )
        plan.status = status
    for image, tag, attempt in fold.pulls:
        if (image, tag.tag) not in timed_out:
            b.commands.append(pull_command(ni, image, tag, attempt, now, pull_start_deadline))
    plan.commands, plan.events = b.commands, b.events
    for w in (wait, timeout_wait, fold.wait):
        if w is not None:
            plan.requeue_after = _soonest(plan.requeue_after, w)
    return plan


def _stale(ni: NodeImage) -> bool:
    """The stored status still counts or lists tags the spec dropped (TTL, owner gone): worth one write.
    A tag added to the spec is not (its status comes with its finished pull), nor is live progress."""
    fresh = status_after(ni, dict(ni.status.image_statuses), {})
    kept = sum(len(v.tags) for v in fresh.image_statuses.values())
    listed = sum(len(v.tags) for v in ni.status.image_statuses.values())
    return kept < listed or ni.status.desired > fresh.desired


def _elapsed(r: PullResult) -> str:
    start, end = parse_time(r.start_time), parse_time(r.completion_time)
    if start is None or end is None:
        return "0s"
    return f"{seconds_between(end, start):g}s"


def plan_node_images(
    nodes: Sequence[Node],
    node_images: Sequence[NodeImage],
    jobs: Mapping[JobKey, str],
    now: datetime,
    results: Sequence[PullResult] = (),
) -> list[NodeImagePlan]:
    """`plan_node_image` for every node name seen in `nodes` or `node_images`, in name order."""
    by_node = {n.metadata.name: n for n in nodes}
    by_ni = {n.metadata.name: n for n in node_images}
    per_node: dict[str, list[PullResult]] = {}
    for r in results:
        per_node.setdefault(r.node, []).append(r)
    return [
        plan_node_image(by_node.get(name), by_ni.get(name), jobs, now, per_node.get(name, ()))
        for name in sorted(set(by_node) | set(by_ni))
    ]


__all__ = [
    "Fold",
    "NodeImagePlan",
    "attempt_of",
    "attempts_of",
    "counters",
    "fold_results",
    "plan_node_image",
    "plan_node_images",
    "pull_command",
    "pull_command_id",
    "pull_reference",
    "ready_since",
    "retry_delay",
    "status_after",
]

"""`rollout history|pause|resume|undo` of a CloneSet, as `kubectl kruise rollout` does them.

These are a user's writes to the CloneSet's spec (the planner then acts on them like on any other spec
change), and reads of its history:

- pause/resume set `spec.updateStrategy.paused` (kruise-tools' `objectpauser.go`/`objectresumer.go`);
- history lists the CloneSet's ControllerRevisions (its revision numbers and pod templates) and,
  when a NATS URL is given, joins them with the rollout log on KB_EVENTS: when each revision started
  rolling out, how many pods were moved to it, when it last completed;
- undo writes the pod template of the previous revision (or `--to-revision N`) back into the spec
  (kruise-tools' `rollback.go`), which the planner rolls out as it would an edit: to Kruise an old
  template is the old revision again, its number raised.

The revisions a CloneSet owns are chosen as its controller does (`kit.revision.owned_revisions`), so
`history` shows what the planner reasons about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import yaml

from schemas.cloneset import CloneSet, decode_cloneset
from schemas.kube import ControllerRevision
from schemas.messages import (
    CLONESETS,
    CONTROLLER_REVISIONS,
    EVENT_DECODER,
    VERB_CREATE,
    VERB_UPDATE_IN_PLACE,
    VERB_UPDATE_RECREATE,
    RolloutEvent,
)
from services.kube import Kube
from services.planner.kit.gojson import PATCH_KEY
from services.planner.kit.revision import comparable_bytes, owned_revisions, template_of, template_patch_data

KIND = "cloneset.apps.kruise.io"  # how kubectl names the object in its messages
CHANGE_CAUSE = "kubernetes.io/change-cause"
ROLLOUT_COMPLETED = "rollout-completed"  # the planner's event once every pod is on the update revision
POD_MOVES = (VERB_CREATE, VERB_UPDATE_IN_PLACE, VERB_UPDATE_RECREATE)
_REVISION = msgspec.json.Decoder(ControllerRevision)


class RolloutError(Exception):
    """A request the CloneSet's state refuses (no revision to go back to, an unknown revision)."""


async def get_cloneset(kube: Kube, namespace: str, name: str) -> CloneSet:
    return decode_cloneset(await kube.get(CLONESETS, namespace, name))


async def history(kube: Kube, cs: CloneSet) -> list[ControllerRevision]:
    """The CloneSet's ControllerRevisions, oldest first."""
    items, _ = await kube.list(CONTROLLER_REVISIONS, cs.metadata.namespace)
    revisions = [_REVISION.decode(raw) for raw in items]
    return owned_revisions(revisions, namespace=cs.metadata.namespace, selector=cs.spec.selector,
                           owner_uid=cs.metadata.uid)


async def set_paused(kube: Kube, namespace: str, name: str, paused: bool) -> str:
    """Pause or resume; the line kubectl prints (`... paused`, `... already paused`)."""
    cs = await get_cloneset(kube, namespace, name)
    verb = "paused" if paused else "resumed"
    if cs.spec.update_strategy.paused == paused:
        return f"{KIND}/{name} already {verb}"
    patch = {"metadata": {"resourceVersion": cs.metadata.resource_version},
             "spec": {"updateStrategy": {"paused": paused}}}
    await kube.patch(CLONESETS, namespace, name, patch, "merge")
    return f"{KIND}/{name} {verb}"


def _images(rev: ControllerRevision) -> str:
    try:
        template = template_of(rev)
    except ValueError:
        return "<unknown>"
    return ",".join(c.image for c in template.containers())


@dataclass(frozen=True)
class RevisionEvents:
    """What the rollout log says of one revision."""

    started: str = ""  # time of its first event
    pods: int = 0  # pods created or updated to it
    completed: str = ""  # time it last completed


def events_per_revision(events: list[RolloutEvent]) -> dict[str, RevisionEvents]:
    """The rollout log of one CloneSet summed up per revision name."""
    started: dict[str, str] = {}
    pods: dict[str, set[str]] = {}
    completed: dict[str, str] = {}
    for ev in events:
        if not ev.revision:
            continue
        started.setdefault(ev.revision, ev.time)
        if ev.type in POD_MOVES and ev.pod:
            pods.setdefault(ev.revision, set()).add(ev.pod)
        if ev.type == ROLLOUT_COMPLETED:
            completed[ev.revision] = ev.time
    return {r: RevisionEvents(started[r], len(pods.get(r, ())), completed.get(r, "")) for r in started}


async def rollout_events(url: str, *, prefix: str, user: str | None, password: str, cs: CloneSet) -> list[RolloutEvent]:
    """The CloneSet's events on KB_EVENTS since it was created (a namesake deleted before is not it)."""
    from schemas.timefmt import parse_time
    from services.bus import Bus
    from services.events_cli import event_filter

    bus = await Bus.connect(url, name="kubectl-kruisebus", prefix=prefix, user=user, password=password,
                            max_reconnect_attempts=2)
    try:
        since = parse_time(cs.metadata.creation_timestamp) or datetime.fromtimestamp(0, UTC)
        subject = event_filter(prefix, cs.metadata.namespace, cs.metadata.name, None)
        return await bus.read_since(subject, EVENT_DECODER, since)
    finally:
        await bus.close()


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def history_table(cs: CloneSet, revisions: list[ControllerRevision],
                  per_revision: dict[str, RevisionEvents] | None) -> str:
    """kubectl's history overview (REVISION, CHANGE-CAUSE) with the revision's name and images, and
    with the rollout log's columns when it was read."""
    if not revisions:
        return f"{KIND}/{cs.metadata.name}\nNo rollout history found."
    head = ["REVISION", "NAME", "IMAGES"]
    if per_revision is not None:
        head += ["STARTED", "PODS", "COMPLETED"]
    rows = [[*head, "CHANGE-CAUSE"]]
    for rev in revisions:
        row = [str(rev.revision), rev.metadata.name, _images(rev)]
        if per_revision is not None:
            ev = per_revision.get(rev.metadata.name, RevisionEvents())
            row += [ev.started or "<none>", str(ev.pods), ev.completed or "<none>"]
        marks = []
        if rev.metadata.name == cs.status.update_revision:
            marks.append("update")
        if rev.metadata.name == cs.status.current_revision:
            marks.append("current")
        cause = rev.metadata.annotations.get(CHANGE_CAUSE) or "<none>"
        rows.append([*row, cause + (f" ({', '.join(marks)})" if marks else "")])
    return f"{KIND}/{cs.metadata.name}\n{_table(rows)}"


def find_revision(revisions: list[ControllerRevision], to_revision: int) -> ControllerRevision:
    """kruise-tools' `findHistory`: revision `to_revision`, or with 0 the one before the newest."""
    if to_revision < 0:
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    if to_revision == 0:
        if len(revisions) <= 1:
            raise RolloutError("no last revision to roll back to")
        return sorted(revisions, key=lambda r: r.revision)[-2]
    for rev in revisions:
        if rev.revision == to_revision:
            return rev
    raise RolloutError(f"unable to find specified revision {to_revision} in history")


def revision_detail(cs: CloneSet, rev: ControllerRevision) -> str:
    """`history --revision N`: the pod template stored in revision N."""
    return (f"{KIND}/{cs.metadata.name} with revision #{rev.revision}\nPod Template:\n"
            + yaml.safe_dump(_stored_template(rev), sort_keys=False))


def _stored_template(rev: ControllerRevision) -> dict[str, Any]:
    spec = rev.data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    if not isinstance(template, dict):
        raise RolloutError(f"unable to parse history {rev.metadata.name}: it holds no spec.template")
    clean = {k: v for k, v in template.items() if k != PATCH_KEY}
    meta = clean.get("metadata")
    if isinstance(meta, dict):
        clean["metadata"] = {k: v for k, v in meta.items() if k != "creationTimestamp"}
    return clean


async def undo(kube: Kube, namespace: str, name: str, to_revision: int) -> str:
    """Write the template of the previous revision (or `to_revision`) back; the line kubectl prints."""
    cs = await get_cloneset(kube, namespace, name)
    revisions = await history(kube, cs)
    target = find_revision(revisions, to_revision)
    template = _stored_template(target)
    if comparable_bytes(template_patch_data(cs.spec.template)) == comparable_bytes(target.data):
        return f"{KIND}/{name} skipped rollback (current template already matches revision {target.revision})"
    # a JSON patch replaces the template whole (a merge patch would keep labels only the newer template
    # has); the test fails it if the CloneSet changed since it was read
    patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": cs.metadata.resource_version},
             {"op": "replace", "path": "/spec/template", "value": template}]
    await kube.patch(CLONESETS, namespace, name, patch, "json")
    return f"{KIND}/{name} rolled back"


__all__ = ["KIND", "RolloutError", "events_per_revision", "find_revision", "get_cloneset", "history",
           "history_table", "revision_detail", "rollout_events", "set_paused", "undo"]

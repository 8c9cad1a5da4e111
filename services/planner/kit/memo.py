"""Per-object facts kept between planner passes, so a pass pays only for the objects that changed.

A workload's pass asks the same questions of thousands of objects (is this pod ready, which node does it
target, should this node run a daemon pod) and almost none of them changed since the previous pass: the
planner service keeps its decoded objects and replaces one only when a new version arrives. An
:class:`ObjectMemo` remembers the answer per object and reuses it while the object is the *same one*
(identity) at the *same resourceVersion*: identity alone would trust an object a caller mutated in
place, a resourceVersion alone would trust two different objects that claim the same version (hand-made
views do). The facts must be a function of the object alone (plus whatever the caller keys the memo by,
see :class:`MemoRegistry`); nothing here reads a clock or does I/O.

Memory: the memo holds the objects of the latest pass only (three aligned lists: objects,
resourceVersions, facts), and a :class:`MemoRegistry` keeps at most ``limit`` memos per registry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter, is_, is_not, ne, or_
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["MemoRegistry", "ObjectMemo", "true_positions"]


def true_positions(flags: list[bool], limit: int) -> list[int] | None:
    """The positions of the True flags (found by C-level `list.index` scans), or None when there are
    more than `limit` of them: the caller then recomputes everything instead of patching."""
    out: list[int] = []
    i = -1
    try:
        while len(out) <= limit:
            i = flags.index(True, i + 1)
            out.append(i)
    except ValueError:
        return out
    return None


class _Meta(Protocol):
    @property
    def resource_version(self) -> str: ...


class _Object(Protocol):
    @property
    def metadata(self) -> _Meta: ...


T = TypeVar("T", bound=_Object)
V = TypeVar("V")


_RV = attrgetter("metadata.resource_version")


class ObjectMemo(Generic[T, V]):
    """``compute(obj)`` per object, reused while the object is the same one at the same resourceVersion.

    ``version`` changes whenever :meth:`facts` returns a different list than the previous call, and
    ``changes`` then lists the positions whose facts changed as (position, old facts, new facts) when
    the list kept its length and only a few changed (None: anything may have changed). Whatever a caller
    derives from the list may be kept in ``derived``, tagged with the version it was derived for: a
    caller finding it one version behind may patch it from ``changes``."""

    __slots__ = ("_compute", "_objects", "_out", "_rvs", "changes", "derived", "key", "version")

    def __init__(self, compute: Callable[[T], V], key: Hashable = None) -> None:
        self._compute = compute
        # the previous call's objects, their resourceVersions and their facts, aligned (three lists of
        # references: about 24 bytes an object besides the facts)
        self._objects: list[T] = []
        self._rvs: list[str] = []
        self._out: list[V] = []
        self.key = key  # what the facts also depend on (MemoRegistry.get starts afresh when it differs)
        self.version = 0
        self.changes: list[tuple[int, V, V]] | None = None
        self.derived: Any = None

    def facts(self, objects: Sequence[T]) -> list[V]:
        """The facts of each object, in order.

        The same objects at the same resourceVersions as the previous call (C-level comparisons, no
        per-object Python code) return the previous list itself: callers must not mutate it."""
        rvs = list(map(_RV, objects))
        if len(objects) == len(self._objects):
            if rvs == self._rvs and all(map(is_, objects, self._objects)):
                return self._out
            patched = self._patch(objects, rvs)
            if patched is not None:
                return patched
        prev_objects, prev_rvs, prev_out = self._objects, self._rvs, self._out
        where = {id(o): i for i, o in enumerate(prev_objects)}
        seen: dict[int, int] = {}  # the same object twice in the view: the same facts
        out: list[V] = []
        append = out.append
        compute = self._compute
        for j, (obj, rv) in enumerate(zip(objects, rvs, strict=True)):
            k = id(obj)
            i = where.get(k)
            if i is not None and prev_objects[i] is obj and prev_rvs[i] == rv:
                append(prev_out[i])
            elif (i := seen.get(k, -1)) >= 0 and objects[i] is obj and rvs[i] == rv:
                append(out[i])
            else:
                append(compute(obj))
            seen[k] = j
        self._objects = list(objects)
        self._rvs = rvs
        self._out = out
        self.version += 1
        self.changes = None
        return out

    def _patch(self, objects: Sequence[T], rvs: list[str]) -> list[V] | None:
        """A few positions changed (C-level scans find them): recompute those only."""
        differs = list(map(or_, map(is_not, objects, self._objects), map(ne, rvs, self._rvs)))
        positions = true_positions(differs, max(64, len(objects) // 16))
        if positions is None:
            return None
        before = self._out
        out = list(before)
        changes: list[tuple[int, V, V]] = []
        for i in positions:
            out[i] = self._compute(objects[i])
            changes.append((i, before[i], out[i]))
        self._objects = list(objects)
        self._rvs = rvs
        self._out = out
        self.version += 1
        self.changes = changes
        return out

    def __len__(self) -> int:
        return len(self._objects)


class MemoRegistry(Generic[T, V]):
    """At most ``limit`` memos by owner (least recently used dropped first)."""

    __slots__ = ("_memos", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self._memos: OrderedDict[Hashable, ObjectMemo[T, V]] = OrderedDict()
        self.limit = limit

    def get(self, owner: Hashable, key: Hashable, compute: Callable[[T], V]) -> ObjectMemo[T, V]:
        """The owner's memo for ``key`` (a fresh one when the owner had none or one for another key)."""
        memo = self._memos.pop(owner, None)
        if memo is None or memo.key != key:
            memo = ObjectMemo(compute, key)
        self._memos[owner] = memo
        while len(self._memos) > self.limit:
            self._memos.popitem(last=False)
        return memo

    def clear(self) -> None:
        self._memos.clear()


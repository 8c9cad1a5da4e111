"""The control API of the simulated nodes: add and remove nodes, end a pod's containers, at run time.

Tests and the demo change the cluster's shape while workloads run (a node joins mid-rollout, a node
goes away, a batch container exits with a chosen code). The same routes serve the embedded cluster
(next to its API server) and `python -m sim nodes --control-port` (nodes for a real API server):

- `GET /sim/nodes`: the simulated nodes (images, pod counts, pulls);
- `POST /sim/nodes {"name", "labels", "taints"}`: a new kubelet registers the node (201, the Node);
- `DELETE /sim/nodes/{node}`: its kubelet stops and the Node is deleted;
- `POST /sim/pods/{ns}/{name}/exit {"exitCode", "container"}`: the pod's containers exit now;
- `GET /sim/nodes/{node}/images`, `POST /sim/nodes/{node}/images {"image", ...}`: the node's images, and
  a pull on it (what the node agent's `sim` runtime calls, also against a real API server);
- `GET/POST /sim/pods/{ns}/{name}/exec-outcomes`, `POST /sim/pods/{ns}/{name}/exec`: what exec in the
  pod's containers answers, and an exec (the prober's `sim` runtime), also against a real API server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sim.http import Handler, Request, Response
from sim.nodes import Kubelet, NodeFleet, PodState, PullFailed
from sim.server import json_response

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def parse_node_body(body: Any) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    """name, labels, taints of a POST /sim/nodes body; ValueError naming the bad field."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise ValueError('expected {"name": "...", "labels": {...}, "taints": [...]}: name is required')
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ValueError("labels: expected an object of strings")
    taints = body.get("taints") or []
    if not isinstance(taints, list) or not all(
        isinstance(t, dict) and t.get("key") and t.get("effect") in TAINT_EFFECTS for t in taints
    ):
        raise ValueError(
            "taints: expected a list of {key, value, effect} with effect one of " + ", ".join(TAINT_EFFECTS)
        )
    return body["name"], labels, taints


def _kubelet_of(fleet: NodeFleet, ns: str, name: str) -> Kubelet | None:
    for k in fleet.kubelets.values():
        if any(p.ns == ns and p.name == name for p in k.pods.values()):
            return k
    return None


def exec_routes(
    locate: Callable[[str, str], tuple[Kubelet, PodState] | None],
) -> list[tuple[str, str, Handler]]:
    """What a container runtime answers for a pod's containers: the outcomes tests and benchmarks set,
    and the exec calls (exec probes) the `sim` runtime makes. `locate`: the kubelet running a pod and
    its state there, None when no simulated node runs it."""

    def not_running(ns: str, name: str) -> Response:
        return json_response(
            {"reason": "NotFound", "message": f"pod {ns}/{name} is not running on a simulated node"}, 404
        )

    def exec_outcomes(request: Request) -> Response:
        """GET: the exec outcomes set and the exec calls run; POST {container | "*": {exitCode, stdout,
        stderr, hang, delay}} sets what exec in those containers answers (default: exit 0)."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        found = locate(ns, name)
        if found is None:
            return not_running(ns, name)
        k, ps = found
        if request.method == "POST":
            try:
                body = request.json()
                if not isinstance(body, dict) or not all(isinstance(v, dict) for v in body.values()):
                    raise ValueError(
                        'expected an object {container or "*": {exitCode, stdout, stderr, hang, delay}}'
                    )
                for c, v in body.items():
                    unknown = set(v) - {"exitCode", "stdout", "stderr", "hang", "delay"}
                    if unknown:
                        raise ValueError(f"{c}: unknown fields {sorted(unknown)}")
                    if not isinstance(v.get("exitCode", 0), int):
                        raise ValueError(f"{c}.exitCode: expected an integer")
            except ValueError as e:
                return json_response({"reason": "BadRequest", "message": str(e)}, 400)
            k.set_exec_outcomes(ns, name, body)
        calls = [c for c in k.exec_calls if c["namespace"] == ns and c["pod"] == name]
        return json_response({"outcomes": k.exec_outcomes.get(ps.uid) or {}, "calls": calls})

    def exec_run(request: Request) -> Response | Awaitable[Response]:
        """Body {container, command: [...], timeout}: {exitCode, stdout, stderr, timedOut}."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        found = locate(ns, name)
        if found is None:
            return not_running(ns, name)
        k, _ = found
        try:
            body = request.json()
            if not isinstance(body, dict) or not isinstance(body.get("container"), str):
                raise ValueError("expected an object with a string field container")
            command = body.get("command") or []
            if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
                raise ValueError("command: expected a list of strings")
            timeout = float(body.get("timeout", 1.0))
        except (ValueError, TypeError) as e:
            return json_response({"reason": "BadRequest", "message": str(e)}, 400)

        async def run() -> Response:
            try:
                return json_response(
                    await k.exec_sync(ns, name, str(body["container"]), command, timeout)
                )
            except LookupError as e:
                return json_response({"reason": "NotFound", "message": str(e)}, 404)

        return run()

    return [
        ("GET", "/sim/pods/{ns}/{name}/exec-outcomes", exec_outcomes),
        ("POST", "/sim/pods/{ns}/{name}/exec-outcomes", exec_outcomes),
        ("POST", "/sim/pods/{ns}/{name}/exec", exec_run),
    ]


def fleet_locator(fleet: NodeFleet) -> Callable[[str, str], tuple[Kubelet, PodState] | None]:
    """Finds a pod's kubelet in `fleet`, remembering where each pod was (an exec probe per pod and
    period: a scan of every node's pods for each would be quadratic in the pods)."""
    where: dict[tuple[str, str], Kubelet] = {}

    def locate(ns: str, name: str) -> tuple[Kubelet, PodState] | None:
        k = where.get((ns, name))
        ps = k.pod(ns, name) if k is not None and fleet.kubelets.get(k.name) is k else None
        if k is None or ps is None:
            k = _kubelet_of(fleet, ns, name)
            ps = k.pod(ns, name) if k is not None else None
            if k is None or ps is None:
                where.pop((ns, name), None)
                return None
            where[(ns, name)] = k
        return k, ps

    return locate


def node_control_routes(
    fleet: NodeFleet, node_exists: Callable[[str], bool] | None = None
) -> list[tuple[str, str, Handler]]:
    """The routes above for `fleet`; `node_exists` also refuses names of Nodes the fleet does not run."""
    locate = fleet_locator(fleet)

    def list_nodes(request: Request) -> Response:
        return json_response(
            [
                {
                    "name": k.name,
                    "images": sorted(k.images),
                    "pods": len(k.pods),
                    "pulls": k.pull_count,
                    "pullsActive": k.pulls_active,
                    "pullsWaiting": k.pulls_waiting,
                    # the kubelet's own record: pulls (image, start, end; seconds on one clock shared by
                    # every simulated node) and container starts that waited for an image
                    "pullLog": [{"image": i, "start": round(a, 4), "end": round(b, 4)} for i, a, b in k.pull_log],
                    "pullWaits": [{"pod": p, "container": c, "image": i, "seconds": round(w, 4)}
                                  for p, c, i, w in k.pull_waits],
                }
                for k in fleet.kubelets.values()
            ]
        )

    def add_node(request: Request) -> Response | Awaitable[Response]:
        try:
            name, labels, taints = parse_node_body(request.json())
        except ValueError as e:
            return json_response({"message": str(e)}, 400)
        if name in fleet.kubelets or (node_exists is not None and node_exists(name)):
            return json_response({"message": f"node {name} already exists"}, 409)

        async def added() -> Response:
            k = await fleet.add_node(name, labels, taints)
            return json_response(k.node_object(), 201)

        return added()

    def remove_node(request: Request) -> Response | Awaitable[Response]:
        name = request.match_info["node"]
        if name not in fleet.kubelets:
            return json_response({"message": f"no simulated node {name}"}, 404)

        async def removed() -> Response:
            await fleet.remove_node(name)
            return json_response({"name": name, "removed": True})

        return removed()

    def exit_pod(request: Request) -> Response | Awaitable[Response]:
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            body = request.json() or {}
            code = body.get("exitCode", 0) if isinstance(body, dict) else None
            if not isinstance(code, int) or isinstance(code, bool):
                raise ValueError('expected {"exitCode": <int>, "container": "<name>" (optional)}')
            container = body.get("container")
        except ValueError as e:
            return json_response({"message": str(e)}, 400)
        found = locate(ns, name)
        if found is None:
            return json_response({"message": f"pod {ns}/{name} is not running on a simulated node"}, 404)
        k, exit_code = found[0], code

        async def exited() -> Response:
            done = await k.exit_pod(ns, name, exit_code, container)
            if done is None:
                return json_response({"message": f"pod {ns}/{name} is not running on a simulated node"}, 404)
            return json_response({"exited": done, "exitCode": exit_code})

        return exited()

    def no_node(name: str) -> Response:
        return json_response({"reason": "NodeNotFound", "message": f"no simulated node {name!r}"}, 404)

    def images(request: Request) -> Response:
        k = fleet.kubelets.get(request.match_info["node"])
        if k is None:
            return no_node(request.match_info["node"])
        return json_response(
            {
                "images": {img: iid for img, iid in sorted(k.images.items())},
                "sizes": {img: fleet.cfg.image_size_bytes(img) for img in sorted(k.images)},
                "pulling": {
                    img: pct for img in k.pulls_in_progress() if (pct := k.pull_percent(img)) is not None
                },
                "queued": [img for img in k.pulls_in_progress() if k.pull_percent(img) is None],
            }
        )

    def pull(request: Request) -> Response | Awaitable[Response]:
        """Body {"image", "username"?, "password"?}: 200 {image, imageID, sizeBytes} once present, or
        404/401 {reason: not-found|unauthorized, message} when the simulated registry refuses it."""
        k = fleet.kubelets.get(request.match_info["node"])
        if k is None:
            return no_node(request.match_info["node"])
        try:
            body = request.json()
            if not isinstance(body, dict) or not isinstance(body.get("image"), str) or not body["image"]:
                raise ValueError("expected an object with a non-empty string field image")
        except ValueError as e:
            return json_response({"reason": "BadRequest", "message": str(e)}, 400)
        image = str(body["image"])
        creds = f"{body.get('username', '')}:{body.get('password', '')}" if "username" in body else None

        async def pulled() -> Response:
            try:
                iid = await k.pull_image(image, creds, check_auth=True)
            except PullFailed as e:
                return json_response(
                    {"reason": e.reason, "message": e.message}, 401 if e.reason == "unauthorized" else 404
                )
            return json_response(
                {"image": image, "imageID": iid, "sizeBytes": fleet.cfg.image_size_bytes(image)}
            )

        return pulled()

    return [
        ("GET", "/sim/nodes", list_nodes),
        ("POST", "/sim/nodes", add_node),
        ("DELETE", "/sim/nodes/{node}", remove_node),
        ("POST", "/sim/pods/{ns}/{name}/exit", exit_pod),
        ("GET", "/sim/nodes/{node}/images", images),
        ("POST", "/sim/nodes/{node}/images", pull),
        *exec_routes(locate),
    ]

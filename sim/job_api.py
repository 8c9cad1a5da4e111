"""batch/v1 Job as kube-apiserver 1.20 stores it: defaults, the generated selector, validation, printing.

The sim serves Jobs because kruisebus's cron-style workloads create them and a user watches them with
`kubectl get jobs`; the pods come from `sim/job_controller.py`. What is here is what kube-apiserver does
before a Job reaches etcd (`pkg/apis/batch/v1/defaults.go`, `pkg/registry/batch/job/strategy.go`,
`pkg/apis/batch/validation/validation.go`) and what its printer shows (`pkg/printers/internalversion`).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sim.pods import default_pod_spec, validate_pod_create

# labels kube-apiserver puts on a Job's pod template (and selects on) unless spec.manualSelector
LABEL_CONTROLLER_UID = "controller-uid"
LABEL_JOB_NAME = "job-name"

DEFAULT_BACKOFF_LIMIT = 6
POD_ONLY_DEFAULTS = frozenset({"priority", "preemptionPolicy"})
RESTART_POLICIES = ("OnFailure", "Never")  # the order of 1.20's "valid values" message


def _cause(field: str, reason: str, message: str) -> dict[str, str]:
    return {"field": field, "reason": reason, "message": message}


def _nonneg(spec: dict[str, Any], key: str, causes: list[dict[str, str]]) -> None:
    v = spec.get(key)
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool):
        causes.append(
            _cause(f"spec.{key}", "FieldValueTypeInvalid", f"Invalid value: {v!r}: must be an integer")
        )
    elif v < 0:
        causes.append(
            _cause(
                f"spec.{key}", "FieldValueInvalid", f"Invalid value: {v}: must be greater than or equal to 0"
            )
        )


def default_job(obj: dict[str, Any]) -> None:
    """SetDefaults_Job + the pod template's PodSpec defaults, in place."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = DEFAULT_BACKOFF_LIMIT
    template = spec.get("template")
    if isinstance(template, dict):
        tmeta = template.setdefault("metadata", {})
        labels = tmeta.get("labels") if isinstance(tmeta, dict) else None
        meta = obj["metadata"]
        if labels and not meta.get("labels"):
            meta["labels"] = dict(labels)
        pod_spec = template.get("spec")
        if isinstance(pod_spec, dict):
            admitted = {k for k in POD_ONLY_DEFAULTS if k in pod_spec}
            default_pod_spec(pod_spec, creating=False)
            for k in POD_ONLY_DEFAULTS - admitted:  # the Priority admission plugin's, on pods only
                pod_spec.pop(k, None)


def _generate_selector(obj: dict[str, Any]) -> None:
    """The registry's generateSelector: `controller-uid` and `job-name` on the template, and a
    selector on `controller-uid` (kept where the user set them: validation then catches a conflict)."""
    meta, spec = obj["metadata"], obj["spec"]
    tmeta = spec["template"].setdefault("metadata", {})
    labels = tmeta.setdefault("labels", {})
    labels.setdefault(LABEL_JOB_NAME, meta["name"])
    labels.setdefault(LABEL_CONTROLLER_UID, meta["uid"])
    sel = spec.get("selector") or {}
    spec["selector"] = sel
    sel.setdefault("matchLabels", {}).setdefault(LABEL_CONTROLLER_UID, meta["uid"])


def _selector_matches(sel: dict[str, Any], labels: dict[str, str]) -> bool:
    from sim.selectors import match_label_selector_obj

    return bool(match_label_selector_obj(sel, labels))


def validate_job(obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [_cause("spec", "FieldValueRequired", "Required value")]
    causes: list[dict[str, str]] = []
    for key in ("parallelism", "completions", "backoffLimit"):
        _nonneg(spec, key, causes)
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or isinstance(ads, bool) or ads <= 0):
        causes.append(
            _cause(
                "spec.activeDeadlineSeconds",
                "FieldValueInvalid",
                f"Invalid value: {ads}: must be greater than 0",
            )
        )
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        causes.append(_cause("spec.template.spec", "FieldValueRequired", "Required value"))
        return causes
    for c in validate_pod_create({"spec": template["spec"]}):
        causes.append(dict(c, field=f"spec.template.{c['field']}"))
    policy = template["spec"].get("restartPolicy")
    if policy not in RESTART_POLICIES:
        # 1.20 words it as a Required error (newer servers: NotSupported)
        causes.append(
            _cause(
                "spec.template.spec.restartPolicy",
                "FieldValueRequired",
                "Required value: valid values: " + ", ".join(f'"{p}"' for p in RESTART_POLICIES),
            )
        )
    sel = spec.get("selector")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not sel:
        causes.append(_cause("spec.selector", "FieldValueRequired", "Required value"))
    elif not _selector_matches(sel, labels):
        causes.append(
            _cause(
                "spec.template.metadata.labels",
                "FieldValueInvalid",
                f"Invalid value: {labels!r}: `selector` does not match template `labels`",
            )
        )
    if not spec.get("manualSelector") and sel:
        # ValidateGeneratedSelector: without manualSelector the selector is exactly the generated one
        if sel != {"matchLabels": {LABEL_CONTROLLER_UID: obj["metadata"].get("uid")}}:
            causes.append(
                _cause("spec.selector", "FieldValueInvalid", "Invalid value: `selector` not auto-generated")
            )
    return causes


def prepare_create(obj: dict[str, Any]) -> list[dict[str, str]]:
    """Defaults, selector generation, an empty status; returns the validation causes (empty: valid)."""
    had_labels = bool((obj.get("metadata") or {}).get("labels"))
    default_job(obj)
    spec = obj.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("template"), dict) and not spec.get("manualSelector"):
        _generate_selector(obj)
        labels = (spec["template"].get("metadata") or {}).get("labels")
        if not had_labels and labels:
            # kube-apiserver defaults again when it reads the Job back from etcd: a Job without labels
            # of its own gets the template's, generated ones included (`controller-uid`, `job-name`)
            obj["metadata"]["labels"] = dict(labels)
    obj["status"] = {}
    return validate_job(obj)


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, str]]:
    """Defaults, then ValidateJobUpdate: the selector, the template and completions are immutable in 1.20."""
    default_job(new)
    causes = validate_job(new)
    ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
    for key in ("selector", "template", "completions"):
        if ospec.get(key) != nspec.get(key):
            causes.append(
                _cause(
                    f"spec.{key}",
                    "FieldValueInvalid",
                    "Invalid value: " + _short(nspec.get(key)) + ": field is immutable",
                )
            )
    return causes


def _short(v: Any) -> str:
    return str(v) if not isinstance(v, dict) else "core.PodTemplateSpec{...}" if "spec" in v else str(v)


def template_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The pod the Job controller creates (GetPodFromTemplate): the template's labels, annotations,
    finalizers and spec, `generateName: <job>-` and a controller reference to the Job."""
    meta = job["metadata"]
    tmpl = job["spec"]["template"]
    tmeta = tmpl.get("metadata") or {}
    pmeta: dict[str, Any] = {
        "generateName": meta["name"] + "-",
        "namespace": meta.get("namespace", ""),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if tmeta.get("annotations"):
        pmeta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pmeta["finalizers"] = list(tmeta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pmeta,
        "spec": copy.deepcopy(tmpl.get("spec") or {}),
    }


# ---------------------------------------------------------------- printing (kubectl get jobs)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def completions_cell(job: dict[str, Any]) -> str:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = int(spec.get("parallelism") or 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def duration_seconds(job: dict[str, Any], now: datetime) -> float | None:
    status = job.get("status") or {}
    start = _parse(status.get("startTime"))
    if start is None:
        return None
    end = _parse(status.get("completionTime")) or now
    return (end - start).total_seconds()

"""Generate the ActiveLearningRun CRD from the pydantic models (never edit crds/ by hand).

Pydantic writes JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema: no
$ref, no anyOf for nullability, boolean exclusive bounds, no `additionalProperties: false`. The
selection block keeps LightlyOne's own schema, which a structural schema cannot express (its
discriminated unions), so it is preserved as-is there and validated by the operator with the
same pydantic model.
"""

from __future__ import annotations

from typing import Any

import yaml

from framesift.api.models import GROUP, KIND, PLURAL, VERSION, RunSpec, RunStatus

_DROP = {"title", "default", "discriminator", "examples"}


def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
            return _resolve(merged, defs)
        return {k: _resolve(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_resolve(v, defs) for v in schema]
    return schema


def _structural(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants is not None:
        non_null = [v for v in variants if v.get("type") != "null"]
        nullable = len(non_null) != len(variants)
        # A real union (any-typed values) keeps whatever is given; int | str is Kubernetes' own.
        if {v.get("type") for v in non_null} == {"integer", "string"}:
            out = {"x-kubernetes-int-or-string": True}
        elif len(non_null) == 1:
            out = _structural(non_null[0])
        else:
            out = {"x-kubernetes-preserve-unknown-fields": True}
        if nullable:
            out["nullable"] = True
        if "description" in schema:
            out["description"] = schema["description"]
        return out
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key == "properties":
            out["properties"] = {k: _structural(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = _structural(value)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _structural(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if not out.get("type") and "enum" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def model_schema(model: type) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)  # type: ignore[attr-defined]
    return _structural(_resolve(raw, raw.get("$defs", {})))


def spec_schema() -> dict[str, Any]:
    schema = model_schema(RunSpec)
    schema["properties"]["selection"] = {
        "type": "object",
        "nullable": True,
        "description": "LightlyOne selection_config, verbatim (snake_case); validated by the operator",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    return schema


def _crd(
    kind: str,
    plural: str,
    short_name: str,
    columns: list[dict[str, str]],
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any],
) -> dict[str, Any]:
    """A namespaced framesift.dev CRD with a status subresource (one served version)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["framesift"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd() -> dict[str, Any]:
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Videos", "type": "integer", "jsonPath": ".status.videos.total"},
        {"name": "Selected", "type": "integer", "jsonPath": ".status.selected"},
        {"name": "LightlyOne", "type": "string", "jsonPath": ".status.lightlyone.state"},
    ]
    description = (
        "A batch run: infer every frame of every video, select the N frames most worth labelling, "
        "export them with a report."
    )
    return _crd(KIND, PLURAL, "alr", columns, description, spec_schema(), model_schema(RunStatus))


HEADER = "# Generated by `framesift crd` from framesift/api/models.py: do not edit by hand.\n"


def crd_yaml() -> str:
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=120)


def schedule_crd() -> dict[str, Any]:
    """The ActiveLearningSchedule CRD: a CronJob-like spec whose runTemplate is a run's spec."""
    from framesift.api.schedule import SCHEDULE_KIND, SCHEDULE_PLURAL, ScheduleSpec, ScheduleStatus

    spec = model_schema(ScheduleSpec)
    spec["properties"]["runTemplate"] = spec_schema()
    columns = [
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
        {"name": "Timezone", "type": "string", "jsonPath": ".spec.timeZone"},
        {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
        {"name": "Active", "type": "string", "jsonPath": ".status.active"},
        {"name": "Last Schedule", "type": "date", "jsonPath": ".status.lastScheduleTime"},
        {"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime"},
    ]
    description = "Runs an ActiveLearningRun on a cron schedule, over the new videos only."
    return _crd(SCHEDULE_KIND, SCHEDULE_PLURAL, "als", columns, description, spec, model_schema(ScheduleStatus))


def schedule_crd_yaml() -> str:
    return HEADER.replace("models.py", "models.py and schedule.py") + yaml.safe_dump(
        schedule_crd(), sort_keys=False, width=120
    )


CRD_FILES = {  # what `framesift crd` writes under crds/ (and the chart's crds/)
    "framesift.dev_activelearningruns.yaml": crd_yaml,
    "framesift.dev_activelearningschedules.yaml": schedule_crd_yaml,
}

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from framesift.api.crd import crd, crd_yaml

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "crds" / "framesift.dev_activelearningruns.yaml"


def test_committed_crd_matches_the_models() -> None:
    assert COMMITTED.read_text() == crd_yaml(), "crds/ drifted from the models: run `framesift crd`"


def _walk(schema: dict, path: str = "") -> list[str]:
    """Places where the schema is not structural (Kubernetes rejects those)."""
    bad = []
    for key in ("$ref", "anyOf", "oneOf", "allOf", "const", "$defs"):
        if key in schema:
            bad.append(f"{path}:{key}")
    if "properties" in schema and schema.get("additionalProperties") is False:
        bad.append(f"{path}:additionalProperties")
    untyped_ok = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    if not schema.get("type") and not untyped_ok and "enum" not in schema:
        bad.append(f"{path}:no type")
    for name, sub in schema.get("properties", {}).items():
        bad += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        bad += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        bad += _walk(schema["additionalProperties"], f"{path}{{}}")
    return bad


def test_schema_is_structural() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []


def test_examples_validate_against_the_crd_schema() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    checked = []
    for example in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(example.read_text()):
            if doc and doc.get("kind") == "ActiveLearningRun":
                jsonschema.validate(doc, schema)
                checked.append(example.name)
    assert {"demo.yaml", "pedestrians.yaml"} <= set(checked), checked  # a test that checks nothing fails


def test_printer_columns_and_short_name() -> None:
    version = crd()["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Videos",
        "Selected",
        "LightlyOne",
        "Age",
    ]
    assert crd()["spec"]["names"]["shortNames"] == ["alr"]
    assert version["subresources"] == {"status": {}}


def test_schedule_crd_is_committed_structural_and_takes_the_example() -> None:
    from framesift.api.crd import CRD_FILES, schedule_crd

    for name, render in CRD_FILES.items():
        for folder in (REPO / "crds", REPO / "charts" / "framesift" / "crds"):
            assert (folder / name).read_text() == render(), f"{folder / name} drifted: run `framesift crd`"
    version = schedule_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    assert schedule_crd()["spec"]["names"]["shortNames"] == ["als"]
    assert [c["name"] for c in version["additionalPrinterColumns"]][:3] == ["Schedule", "Timezone", "Suspend"]
    example = yaml.safe_load((REPO / "examples" / "nightly-schedule.yaml").read_text())
    jsonschema.validate(example, schema)
    bad = {**example, "spec": {**example["spec"], "concurrencyPolicy": "Sometimes"}}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError as err:
        assert "Sometimes" in str(err)
    else:
        raise AssertionError("the schema let concurrencyPolicy: Sometimes through")

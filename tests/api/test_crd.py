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

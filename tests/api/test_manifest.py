from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from framesift.api.errors import ManifestError
from framesift.api.manifest import load_run, parse_run

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pedestrians.yaml"


@pytest.fixture
def doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def problems(document: dict) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_run(document, "run.yaml")
    return info.value.problems


def test_seed_manifest_loads_with_selection_verbatim() -> None:
    run = load_run(EXAMPLE)
    assert run.metadata.name == "pedestrians"
    assert run.spec.model.classes == {"person": 0, "bicycle": 1, "car": 2}
    assert run.spec.input.credentials is not None and run.spec.input.credentials.secret_name == "s3-credentials"
    assert run.spec.selection is not None and run.spec.selection.n_samples == 100
    kinds = [(s.input.type, s.strategy.type) for s in run.spec.selection.strategies]
    assert kinds[0] == ("EMBEDDINGS", "DIVERSITY") and kinds[-1] == ("METADATA", "BALANCE")
    assert run.spec.quality.corruption_threshold == 0.1


def test_typo_names_the_field_and_the_closest_key(doc: dict) -> None:
    doc["spec"]["model"]["wieghts"] = doc["spec"]["model"].pop("weights")
    found = problems(doc)
    assert any(p.startswith("spec.model.wieghts: unknown field; did you mean 'weights'") for p in found)
    assert any(p.startswith("spec.model.weights: required field is missing") for p in found)


def test_wrong_type_and_range_name_the_path(doc: dict) -> None:
    doc["spec"]["model"]["conf"] = 3
    doc["spec"]["model"]["batch"] = "many"
    found = problems(doc)
    assert any(p.startswith("spec.model.conf:") and "less than or equal to 1" in p for p in found)
    assert any(p.startswith("spec.model.batch:") for p in found)


def test_inline_credentials_are_rejected(doc: dict) -> None:
    doc["spec"]["output"]["credentials"] = {"accessKeyId": "AKIA", "secretAccessKey": "s3cr3t"}
    found = problems(doc)
    assert any("spec.output.credentials.accessKeyId: unknown field" in p for p in found)
    assert all("s3cr3t" not in p for p in found)


def test_selection_errors_name_the_strategy_index(doc: dict) -> None:
    bad = copy.deepcopy(doc)
    bad["spec"]["selection"]["strategies"][2]["strategy"] = {"type": "BALANCE", "target": {"a": 1.0}}
    bad["spec"]["selection"]["strategies"][0]["strategy"]["stoping_condition_minimum_distance"] = 0.1
    found = problems(bad)
    assert any(p.startswith("spec.selection.strategies[2]: strategy BALANCE cannot use input SCORES") for p in found)
    assert any(
        "strategies[0].strategy.stoping_condition_minimum_distance: unknown field; "
        "did you mean 'stopping_condition_minimum_distance'" in p
        for p in found
    )


def test_both_or_neither_sample_counts_rejected(doc: dict) -> None:
    doc["spec"]["selection"]["proportion_samples"] = 0.5
    assert any("exactly one of n_samples" in p for p in problems(doc))
    del doc["spec"]["selection"]["proportion_samples"], doc["spec"]["selection"]["n_samples"]
    assert any("exactly one of n_samples" in p for p in problems(doc))


def test_bad_name_scheme_and_kind(doc: dict) -> None:
    doc["metadata"]["name"] = "Pedestrians_1"
    doc["spec"]["input"]["uri"] = "gs://bucket/x/"
    doc["kind"] = "Run"
    found = problems(doc)
    assert any(p.startswith("metadata.name: must be a DNS label") for p in found)
    assert any(p.startswith("spec.input.uri: unsupported URI scheme") for p in found)
    assert any(p.startswith("kind:") for p in found)


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the file"):
        load_run(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_run(bad)


def test_manifests_that_would_be_misread_are_refused(doc: dict, tmp_path: Path) -> None:
    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text(yaml.safe_dump(doc, sort_keys=False) + "metadata: {name: other}\n")
    with pytest.raises(ManifestError, match=r"the key 'metadata' is given twice"):
        load_run(duplicated)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(yaml.safe_dump(doc, sort_keys=False).encode() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="not UTF-8 text"):
        load_run(latin1)
    for bad in (True, "4", 4.0):
        document = copy.deepcopy(doc)
        document["spec"]["selection"]["n_samples"] = bad
        assert any("n_samples" in p for p in problems(document)), bad
    document = copy.deepcopy(doc)
    document["spec"].setdefault("selector", {})["labeled"] = "https://labels.example.com/export.json"
    assert any("unsupported scheme https://" in p for p in problems(document))

"""Load a run manifest (the same YAML `kubectl apply` takes) from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from framesift.api.errors import ManifestError, validate_or_raise
from framesift.api.models import KIND, ActiveLearningRun


def parse_run(document: Any, source: str) -> ActiveLearningRun:
    if not isinstance(document, dict):
        raise ManifestError(source, ["(top level): expected a mapping with apiVersion, kind, metadata, spec"])
    run: ActiveLearningRun = validate_or_raise(ActiveLearningRun, document, source)
    return run


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors' aliases: a 1 KB manifest of nested aliases expands to millions of
    entries (gigabytes, minutes). Manifests never need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "YAML aliases (*name) are not allowed in framesift manifests: write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """Refuse a key given twice in one mapping: YAML's last-wins hides typos and merges gone
        wrong, and kubectl refuses the same file."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"the key {key!r} is given twice (first at line {seen[key].line + 1}): keep one",
                        key_node.start_mark,
                    )
                if isinstance(key, (str, int, float, bool)):
                    seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def safe_load_all(text: str) -> list[Any]:
    """Every YAML document in the text, refusing aliases."""
    return list(yaml.load_all(text, Loader=_NoAliasLoader))


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_NoAliasLoader)


def load_run(path: str | Path) -> ActiveLearningRun:
    """Read the one ActiveLearningRun in a YAML file (other documents are ignored)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ManifestError(source, [f"cannot read the file: {err.strerror}"]) from None
    except UnicodeDecodeError as err:
        raise ManifestError(
            source, [f"not UTF-8 text (byte {err.start}: {err.object[err.start : err.start + 1]!r}): save it as UTF-8"]
        ) from None
    try:
        documents = [d for d in safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise ManifestError(source, [f"not valid YAML: {err}"]) from None
    runs = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
    if len(runs) > 1:
        raise ManifestError(source, [f"holds {len(runs)} {KIND} documents; give one per file"])
    if not runs:
        if len(documents) == 1:
            return parse_run(documents[0], source)  # reports what is wrong with its kind
        raise ManifestError(source, [f"holds no document of kind {KIND}"])
    return parse_run(runs[0], source)


def run_to_document(run: ActiveLearningRun) -> dict[str, Any]:
    """The manifest as YAML-ready data (camelCase; the selection block stays snake_case)."""
    doc: dict[str, Any] = run.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc.pop("status", None)
    return doc

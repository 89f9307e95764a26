"""What LightlyOne's own client (lightly==1.5.26) accepts, checked at admission.

The operator validates `spec.selector` for `engine: lightlyone` with the client's models, so a
typo in `workerConfig` or a region LightlyOne does not list is refused when the run is applied,
not after hours of inference. The client is imported lazily: runs with the builtin engine never
load it.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any

# The client's rule for dataset and worker names (`create_dataset`, `register_compute_worker`).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9 _-]+$")
ROLE_ARN_PATTERN = re.compile(r"^arn:aws:iam::[0-9]{12}:role.+$")
EXTERNAL_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_+=,.@:\/-]{10,}$")
ENDPOINT_PATTERN = re.compile(r"^https?://.+$")
PRIORITIES = ("LOW", "MID", "HIGH", "CRITICAL")


def _models() -> Any:
    os.environ.setdefault("LIGHTLY_DID_VERSION_CHECK", "True")  # no call home at import
    from lightly.openapi_generated.swagger_client import models

    return models


def s3_regions() -> list[str]:
    return [region.value for region in _models().S3Region]


def to_camel(cfg: dict[str, Any]) -> dict[str, Any]:
    """snake_case keys → camelCase, nested, as the client converts worker and lightly configs."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        head, *rest = key.split("_")
        camel = head + "".join(part.title() for part in rest)
        out[camel] = to_camel(value) if isinstance(value, dict) else value
    return out


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return " ".join(line.strip() for line in text[:3]) if text else type(err).__name__


def _config_problem(model: str, cfg: dict[str, Any]) -> str | None:
    fields = list(getattr(getattr(_models(), model), "__fields__", {}))
    unknown = [key for key in cfg if fields and key not in fields]
    if unknown:  # said in the manifest's own snake_case, with the nearest valid key
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}"
    try:
        getattr(_models(), model).from_dict(to_camel(cfg))
    except (ValueError, TypeError) as err:
        return _first_line(err)
    return None


def worker_config_problem(cfg: dict[str, Any]) -> str | None:
    """None when the client accepts `workerConfig` (DockerWorkerConfigV4Docker), else why not."""
    return _config_problem("DockerWorkerConfigV4Docker", cfg)


def lightly_config_problem(cfg: dict[str, Any]) -> str | None:
    """None when the client accepts `lightlyConfig` (DockerWorkerConfigV3Lightly), else why not."""
    return _config_problem("DockerWorkerConfigV3Lightly", cfg)


def selection_config_problem(cfg: dict[str, Any]) -> str | None:
    """None when the client's `selection_config_from_dict` accepts the selection_config."""
    os.environ.setdefault("LIGHTLY_DID_VERSION_CHECK", "True")
    from lightly.api.api_workflow_compute_worker import selection_config_from_dict

    try:
        selection_config_from_dict(cfg)
    except (ValueError, TypeError) as err:
        return _first_line(err)
    return None

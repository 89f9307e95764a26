"""One class per selection strategy: each gives every frame a score g(x) in (0, 1].

Scores are arrays over ALL frames; the engine masks frames that are not candidates (or already
picked) by writing a stand-in value into them (`dead`), so no million-row array is ever copied
per pick. Constant strategies compute once; DIVERSITY and BALANCE update after each pick with
only the newest pick's contribution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = 1e-6


def minmax_unit(values: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Min–max over the alive frames into [ε, 1]; all equal → 1."""
    if not alive.any():
        return np.ones_like(values, dtype=np.float64)
    # min and max over the alive frames without copying them out; then the same arithmetic as
    # EPS + (1 − EPS)·(v − lo)/(hi − lo), in place (one array, not five: ten million frames)
    lo = float(np.min(values, where=alive, initial=np.inf))
    hi = float(np.max(values, where=alive, initial=-np.inf))
    if hi - lo <= 0:
        return np.ones_like(values, dtype=np.float64)
    out = values - lo
    out *= 1.0 - EPS
    out /= hi - lo
    out += EPS
    return np.clip(out, EPS, 1.0, out=out)


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
        if self.x.dtype == np.float32:
            return self._to_distance(self.x @ row)
        out = np.empty(len(self.x), np.float32)
        for start in range(0, len(self.x), self.BLOCK):
            out[start : start + self.BLOCK] = self.x[start : start + self.BLOCK].astype(np.float32) @ row
        return self._to_distance(out)

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
            top = np.argpartition(values, len(values) - size)[-size:] if size < len(values) else np.arange(len(values))
            stale = top[self.seen[top] < self.n_picks]
            self.refresh(stale)
            values[stale] = bound_at(stale)
            size *= 4

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

        best = self._exact_top(bound_at(slice(None)), bound_at)
        return best, float(max(self.d[best] / top, EPS)) if top > 0 else EPS

    def picked(self, index: int) -> None:
        if self.n_picks == len(self.picks):
            self.picks = np.concatenate([self.picks, np.empty_like(self.picks)])
        self.picks[self.n_picks] = self.x[index]
        self.n_picks += 1
        self.d[index] = -1.0


class ObjectDiversity:
    """Object-level DIVERSITY (EMBEDDINGS with a task): how new a frame's objects are.

    d_o: distance from object o to the nearest object of the selected frames ∪ datapool (2 when
    there is none), on unit-length object embeddings. A frame's d(x) = max over its objects of
    d_o; a frame without objects of the task has d(x) = 0, so g = ε. g = max(d / max d, ε) over
    the candidates. After a pick every object of the picked frame joins the set.
    """

    def __init__(
        self, box_frame: np.ndarray, embeddings: np.ndarray, n_frames: int, dead: np.ndarray, datapool: np.ndarray
    ):
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
        if has.any():
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


class Balance:
    """L(x): L1 distance between the target and the class shares of selected ∪ {x}; g is the
    min–max of −L over the candidates. `c` holds one row per class (K, n)."""

    def __init__(self, c: np.ndarray, target: np.ndarray, start: np.ndarray):
        self.c = c
        self.target = target
        self.totals = c.sum(axis=0)
        self.s = start.astype(np.float64)  # class mass of selected ∪ datapool
        # Frames whose vectors are identical score identically: with few distinct vectors
        # (categorical metadata, one-hot counts) compute per group and gather.
        self.groups: tuple[np.ndarray, np.ndarray] | None = None
        if c.shape[1] > 64:
            probe = c[:, :: max(1, c.shape[1] // 4096)]
            if np.unique(probe.T, axis=0).shape[0] <= 64:
                uniq, inverse = np.unique(c.T, axis=0, return_inverse=True)
                if len(uniq) <= 256:
                    self.groups = (uniq.T.copy(), inverse.reshape(-1))

    def distance(self, c: np.ndarray, totals: np.ndarray) -> np.ndarray:
        mass = self.s.sum() + totals
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(mass > 0, 1.0 / mass, 0.0)
        loss = np.zeros(c.shape[1], np.float64)
        share = np.empty(c.shape[1], np.float64)
        for k in range(len(self.target)):  # in place: one scratch array for every class
            np.add(c[k], self.s[k], out=share)
            share *= inv
            share -= self.target[k]
            np.abs(share, out=share)
            loss += share
        return loss

    def losses(self) -> np.ndarray:
        if self.groups is not None:
            uniq, inverse = self.groups
            return self.distance(uniq, uniq.sum(axis=0))[inverse]
        return self.distance(self.c, self.totals)

    def scores(self, alive: np.ndarray) -> np.ndarray:
        return minmax_unit(-self.losses(), alive)

    def picked(self, index: int) -> None:
        self.s += self.c[:, index]


def balance_matrix(
    c: np.ndarray, names: list[str], target: dict[str, float] | None, distribution: str, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The class rows and target vector of a BALANCE strategy.

    TARGET: classes the target does not name pool into one "other" class whose target is
    max(0, 1 − Σ target). UNIFORM: 1/K over the classes present in the input. INPUT: the
    input's own shares. `present` marks the input frames (candidates) used for the last two.
    """
    if distribution == "TARGET":
        assert target is not None
        named = [n for n in target if n in names]
        rows = [c[names.index(n)] for n in named]
        wanted = [target[n] for n in named]
        others = [i for i, n in enumerate(names) if n not in target]
        other_target = max(0.0, 1.0 - sum(target.values()))
        if others or other_target > 0:
            rows.append(c[others].sum(axis=0) if others else np.zeros(c.shape[1]))
            wanted.append(other_target)
            named.append("other")
        return np.vstack(rows), np.asarray(wanted, np.float64), named
    mass = c[:, present].sum(axis=1)
    keep = mass > 0
    rows = c[keep]
    kept_names = [n for n, k in zip(names, keep, strict=True) if k]
    if distribution == "UNIFORM":
        shares = np.full(len(kept_names), 1.0 / max(1, len(kept_names)))
    else:  # INPUT
        shares = mass[keep] / mass[keep].sum()
    return rows, shares, kept_names


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

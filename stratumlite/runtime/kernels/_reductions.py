"""Column reductions that reproduce numpy's summation order bit for bit.

``np.sum(X, axis=0)`` on a float64 array is not one algorithm but two, chosen
by memory layout:

* when a column is contiguous (``X`` F-ordered, or a single column), numpy's
  inner loop gets the whole column and runs its *pairwise* summation
  (``pairwise_sum_DOUBLE`` in ``loops_utils.h.src``: blocks of at most 128
  values summed with 8 interleaved accumulators combined as
  ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))``, larger ranges split in two halves
  rounded down to a multiple of 8);
* when ``X`` is C-ordered with several columns, the reduction walks rows and
  does ``out[j] += X[i, j]`` sequentially.

:func:`column_sums` implements both, so the statistics computed by the kernels
(``StandardScaler.mean_``/``var_``, ``SimpleImputer`` means) equal
scikit-learn's bitwise, not just to a tolerance.  ``np.nansum`` is the same
summation on a copy where NaN became 0, which the kernels reproduce by reading
NaN as 0.

Parallelism never changes the order of additions: for the pairwise layout the
recursion tree is cut at a fixed depth into leaves summed in a ``prange`` and
recombined in the same tree order; for the sequential layout the work is split
by columns.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import NJIT, NJIT_PAR, n_threads

PW_BLOCKSIZE = 128
#: depth at which the pairwise recursion tree is cut into parallel leaves
SPLIT_DEPTH = 3
#: rows per tile in the row-major (sequential) reductions
ROW_TILE = 256


@njit(**NJIT)
def _z(v):
    return v if v == v else 0.0


# The pairwise recursion is evaluated with an explicit task stack: numba's
# on-disk cache cannot reload self-recursive functions, and (numba 0.68) a
# cached caller of a cached block-summing helper crashed on reload, so each
# tree walker below is self-contained.  Tasks: ``lo >= 0`` evaluates the range
# ``[lo, lo + n)``; ``lo == -1`` adds the two values on top of the value stack
# (left pushed first), i.e. exactly numpy's ``left + right``.
_STACK = 256


@njit(**NJIT)
def pairwise_sum(a, lo, n):
    """numpy's ``pairwise_sum_DOUBLE`` over ``a[lo:lo+n]``, NaN read as 0."""
    t_lo = np.empty(_STACK, dtype=np.int64)
    t_n = np.empty(_STACK, dtype=np.int64)
    vals = np.empty(_STACK, dtype=np.float64)
    vp = 0
    t_lo[0] = lo
    t_n[0] = n
    tp = 1
    while tp > 0:
        tp -= 1
        tl = t_lo[tp]
        tn = t_n[tp]
        if tl < 0:
            vp -= 1
            vals[vp - 1] = vals[vp - 1] + vals[vp]
        elif tn < 8:
            res = 0.0
            for i in range(tn):
                res += _z(a[tl + i])
            vals[vp] = res
            vp += 1
        elif tn <= PW_BLOCKSIZE:
            r0 = _z(a[tl])
            r1 = _z(a[tl + 1])
            r2 = _z(a[tl + 2])
            r3 = _z(a[tl + 3])
            r4 = _z(a[tl + 4])
            r5 = _z(a[tl + 5])
            r6 = _z(a[tl + 6])
            r7 = _z(a[tl + 7])
            m = (tn - (tn % 8)) // 8
            for k in range(1, m):
                b = tl + 8 * k
                r0 += _z(a[b])
                r1 += _z(a[b + 1])
                r2 += _z(a[b + 2])
                r3 += _z(a[b + 3])
                r4 += _z(a[b + 4])
                r5 += _z(a[b + 5])
                r6 += _z(a[b + 6])
                r7 += _z(a[b + 7])
            res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
            for i in range(8 * m, tn):
                res += _z(a[tl + i])
            vals[vp] = res
            vp += 1
        else:
            n2 = tn // 2
            n2 -= n2 % 8
            t_lo[tp] = -1
            t_lo[tp + 1] = tl + n2
            t_n[tp + 1] = tn - n2
            t_lo[tp + 2] = tl
            t_n[tp + 2] = n2
            tp += 3
    return vals[0]


@njit(**NJIT)
def _zd(v, t):
    d = v - t
    return d if d == d else 0.0


@njit(**NJIT)
def pairwise_sum_centered(a, lo, n, t):
    """Pairwise sums of ``a - t`` and ``(a - t)**2`` in numpy's order.

    Matches ``np.nansum(X - T)`` and ``np.nansum((X - T) ** 2)`` on a
    contiguous column (``np.sum`` too whenever ``X - T`` holds no NaN).
    """
    t_lo = np.empty(_STACK, dtype=np.int64)
    t_n = np.empty(_STACK, dtype=np.int64)
    vs = np.empty(_STACK, dtype=np.float64)
    vq = np.empty(_STACK, dtype=np.float64)
    vp = 0
    t_lo[0] = lo
    t_n[0] = n
    tp = 1
    while tp > 0:
        tp -= 1
        tl = t_lo[tp]
        tn = t_n[tp]
        if tl < 0:
            vp -= 1
            vs[vp - 1] = vs[vp - 1] + vs[vp]
            vq[vp - 1] = vq[vp - 1] + vq[vp]
        elif tn < 8:
            s = 0.0
            q = 0.0
            for i in range(tn):
                d = _zd(a[tl + i], t)
                s += d
                q += d * d
            vs[vp] = s
            vq[vp] = q
            vp += 1
        elif tn <= PW_BLOCKSIZE:
            d0 = _zd(a[tl], t)
            d1 = _zd(a[tl + 1], t)
            d2 = _zd(a[tl + 2], t)
            d3 = _zd(a[tl + 3], t)
            d4 = _zd(a[tl + 4], t)
            d5 = _zd(a[tl + 5], t)
            d6 = _zd(a[tl + 6], t)
            d7 = _zd(a[tl + 7], t)
            s0, s1, s2, s3, s4, s5, s6, s7 = d0, d1, d2, d3, d4, d5, d6, d7
            q0 = d0 * d0
            q1 = d1 * d1
            q2 = d2 * d2
            q3 = d3 * d3
            q4 = d4 * d4
            q5 = d5 * d5
            q6 = d6 * d6
            q7 = d7 * d7
            m = (tn - (tn % 8)) // 8
            for k in range(1, m):
                b = tl + 8 * k
                d0 = _zd(a[b], t)
                d1 = _zd(a[b + 1], t)
                d2 = _zd(a[b + 2], t)
                d3 = _zd(a[b + 3], t)
                d4 = _zd(a[b + 4], t)
                d5 = _zd(a[b + 5], t)
                d6 = _zd(a[b + 6], t)
                d7 = _zd(a[b + 7], t)
                s0 += d0
                s1 += d1
                s2 += d2
                s3 += d3
                s4 += d4
                s5 += d5
                s6 += d6
                s7 += d7
                q0 += d0 * d0
                q1 += d1 * d1
                q2 += d2 * d2
                q3 += d3 * d3
                q4 += d4 * d4
                q5 += d5 * d5
                q6 += d6 * d6
                q7 += d7 * d7
            s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
            q = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7))
            for i in range(8 * m, tn):
                d = _zd(a[tl + i], t)
                s += d
                q += d * d
            vs[vp] = s
            vq[vp] = q
            vp += 1
        else:
            n2 = tn // 2
            n2 -= n2 % 8
            t_lo[tp] = -1
            t_lo[tp + 1] = tl + n2
            t_n[tp + 1] = tn - n2
            t_lo[tp + 2] = tl
            t_n[tp + 2] = n2
            tp += 3
    return vs[0], vq[0]


@njit(**NJIT)
def pairwise_leaves(n, depth):
    """Cut the pairwise recursion over ``n`` values at ``depth``: leaf ranges.

    Leaves come out left to right; a range of at most ``PW_BLOCKSIZE`` values
    is never split (numpy does not split it either).
    """
    cap = 1 << depth
    out_lo = np.empty(cap, dtype=np.int64)
    out_n = np.empty(cap, dtype=np.int64)
    s_lo = np.empty(_STACK, dtype=np.int64)
    s_n = np.empty(_STACK, dtype=np.int64)
    s_d = np.empty(_STACK, dtype=np.int64)
    s_lo[0] = 0
    s_n[0] = n
    s_d[0] = depth
    sp = 1
    k = 0
    while sp > 0:
        sp -= 1
        lo = s_lo[sp]
        m = s_n[sp]
        dd = s_d[sp]
        if m > PW_BLOCKSIZE and dd > 0:
            n2 = m // 2
            n2 -= n2 % 8
            s_lo[sp] = lo + n2
            s_n[sp] = m - n2
            s_d[sp] = dd - 1
            s_lo[sp + 1] = lo
            s_n[sp + 1] = n2
            s_d[sp + 1] = dd - 1
            sp += 2
        else:
            out_lo[k] = lo
            out_n[k] = m
            k += 1
    return out_lo[:k], out_n[:k]


@njit(**NJIT)
def combine_leaves(leafvals, n, depth):
    """Add leaf sums back in the pairwise tree order (exact recombination)."""
    t_n = np.empty(_STACK, dtype=np.int64)
    t_d = np.empty(_STACK, dtype=np.int64)
    t_add = np.zeros(_STACK, dtype=np.bool_)
    vals = np.empty(_STACK, dtype=np.float64)
    t_n[0] = n
    t_d[0] = depth
    t_add[0] = False
    tp = 1
    vp = 0
    k = 0
    while tp > 0:
        tp -= 1
        if t_add[tp]:
            vp -= 1
            vals[vp - 1] = vals[vp - 1] + vals[vp]
            continue
        m = t_n[tp]
        dd = t_d[tp]
        if m > PW_BLOCKSIZE and dd > 0:
            n2 = m // 2
            n2 -= n2 % 8
            t_add[tp] = True
            t_n[tp + 1] = m - n2
            t_d[tp + 1] = dd - 1
            t_add[tp + 1] = False
            t_n[tp + 2] = n2
            t_d[tp + 2] = dd - 1
            t_add[tp + 2] = False
            tp += 3
        else:
            vals[vp] = leafvals[k]
            vp += 1
            k += 1
    return vals[0]


@njit(**NJIT_PAR)
def _sum_count_pairwise(X, depth):
    n, d = X.shape
    los, lns = pairwise_leaves(n, depth)
    L = los.shape[0]
    leaf = np.empty((d, L), dtype=np.float64)
    cnt = np.zeros((d, L), dtype=np.int64)
    for t in prange(d * L):
        j = t // L
        k = t - j * L
        col = X[:, j]
        leaf[j, k] = pairwise_sum(col, los[k], lns[k])
        c = 0
        for i in range(los[k], los[k] + lns[k]):
            c += col[i] != col[i]
        cnt[j, k] = c
    sums = np.empty(d, dtype=np.float64)
    nans = np.empty(d, dtype=np.int64)
    for j in range(d):
        sums[j] = combine_leaves(leaf[j], n, depth)
        nans[j] = cnt[j].sum()
    return sums, nans


#: row-major data is split between threads by columns (each column's order
#: of additions must stay sequential); a block narrower than this many
#: columns shares its cache lines with the next block, so every thread would
#: stream the whole array: below it, one thread does all the columns
MIN_BLOCK_COLUMNS = 16


def _column_blocks(d: int, n_blocks: int) -> np.ndarray:
    n_blocks = max(1, min(int(n_blocks), d // MIN_BLOCK_COLUMNS))
    return np.linspace(0, d, n_blocks + 1).astype(np.int64)


@njit(**NJIT_PAR)
def _sum_count_sequential(X, bounds):
    # row-major: numpy adds row after row (out[j] += X[i, j]); each block of
    # columns is reduced by one thread in that same order.
    n, d = X.shape
    sums = np.zeros(d, dtype=np.float64)
    nans = np.zeros(d, dtype=np.int64)
    for b in prange(bounds.shape[0] - 1):
        j0 = bounds[b]
        j1 = bounds[b + 1]
        # tiles of rows, column by column inside a tile: each column still
        # sees its values in row order, but the accumulator stays in a register
        for r0 in range(0, n, ROW_TILE):
            r1 = min(n, r0 + ROW_TILE)
            for j in range(j0, j1):
                a = sums[j]
                c = nans[j]
                for i in range(r0, r1):
                    v = X[i, j]
                    a += _z(v)
                    c += v != v
                sums[j] = a
                nans[j] = c
    return sums, nans


@njit(**NJIT_PAR)
def _centered_pairwise(X, T, depth):
    n, d = X.shape
    los, lns = pairwise_leaves(n, depth)
    L = los.shape[0]
    leaf_s = np.empty((d, L), dtype=np.float64)
    leaf_q = np.empty((d, L), dtype=np.float64)
    for t in prange(d * L):
        j = t // L
        k = t - j * L
        s, q = pairwise_sum_centered(X[:, j], los[k], lns[k], T[j])
        leaf_s[j, k] = s
        leaf_q[j, k] = q
    corr = np.empty(d, dtype=np.float64)
    sq = np.empty(d, dtype=np.float64)
    for j in range(d):
        corr[j] = combine_leaves(leaf_s[j], n, depth)
        sq[j] = combine_leaves(leaf_q[j], n, depth)
    return corr, sq


@njit(**NJIT_PAR)
def _centered_sequential(X, T, bounds):
    n, d = X.shape
    corr = np.zeros(d, dtype=np.float64)
    sq = np.zeros(d, dtype=np.float64)
    for b in prange(bounds.shape[0] - 1):
        j0 = bounds[b]
        j1 = bounds[b + 1]
        for r0 in range(0, n, ROW_TILE):
            r1 = min(n, r0 + ROW_TILE)
            for j in range(j0, j1):
                s = corr[j]
                q = sq[j]
                t = T[j]
                for i in range(r0, r1):
                    dd = _zd(X[i, j], t)
                    s += dd
                    q += dd * dd
                corr[j] = s
                sq[j] = q
    return corr, sq


def summation_layout(X: np.ndarray) -> str | None:
    """'pairwise', 'sequential' or None (a layout whose order is not modelled)."""
    if X.ndim != 2:
        return None
    if X.flags.f_contiguous:
        return "pairwise"
    if X.flags.c_contiguous:
        return "sequential"
    return None


def column_sums(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``np.nansum(X, axis=0)`` (bitwise) and NaN counts."""
    layout = summation_layout(X)
    if layout == "pairwise":
        return _sum_count_pairwise(X, SPLIT_DEPTH)
    if layout == "sequential":
        return _sum_count_sequential(X, _column_blocks(X.shape[1], n_threads()))
    raise ValueError("unsupported memory layout")


def centered_sums(X: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``np.nansum(X - T)`` and ``np.nansum((X - T)**2)``, bitwise.

    Equal to ``np.sum`` as well whenever ``X - T`` holds no NaN, which the
    caller guarantees before using it in place of ``np.sum``.
    """
    layout = summation_layout(X)
    T = np.ascontiguousarray(T, dtype=np.float64)
    if layout == "pairwise":
        return _centered_pairwise(X, T, SPLIT_DEPTH)
    if layout == "sequential":
        return _centered_sequential(X, T, _column_blocks(X.shape[1], n_threads()))
    raise ValueError("unsupported memory layout")


@njit(**NJIT_PAR)
def _nanminmax_pairwise(X):
    # column-contiguous: parallel over columns, scanning each column
    n, d = X.shape
    mins = np.empty(d, dtype=np.float64)
    maxs = np.empty(d, dtype=np.float64)
    for j in prange(d):
        lo = np.inf
        hi = -np.inf
        seen = False
        for i in range(n):
            v = X[i, j]
            if v == v:
                seen = True
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
        if seen:
            mins[j] = lo
            maxs[j] = hi
        else:
            mins[j] = np.nan
            maxs[j] = np.nan
    return mins, maxs


@njit(**NJIT_PAR)
def _nanminmax_rows(X, n_chunks):
    # row-major: each chunk of rows reduces all columns, then chunks are merged
    n, d = X.shape
    cmins = np.full((n_chunks, d), np.inf)
    cmaxs = np.full((n_chunks, d), -np.inf)
    cseen = np.zeros((n_chunks, d), dtype=np.bool_)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        start = c * step
        stop = min(n, start + step)
        for i in range(start, stop):
            for j in range(d):
                v = X[i, j]
                if v == v:
                    cseen[c, j] = True
                    if v < cmins[c, j]:
                        cmins[c, j] = v
                    if v > cmaxs[c, j]:
                        cmaxs[c, j] = v
    mins = np.empty(d, dtype=np.float64)
    maxs = np.empty(d, dtype=np.float64)
    for j in range(d):
        lo = np.inf
        hi = -np.inf
        seen = False
        for c in range(n_chunks):
            if cseen[c, j]:
                seen = True
                if cmins[c, j] < lo:
                    lo = cmins[c, j]
                if cmaxs[c, j] > hi:
                    hi = cmaxs[c, j]
        if seen:
            mins[j] = lo
            maxs[j] = hi
        else:
            mins[j] = np.nan
            maxs[j] = np.nan
    return mins, maxs


def column_nanminmax(X: np.ndarray, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``np.nanmin`` / ``np.nanmax`` (NaN for all-NaN columns)."""
    if X.flags.f_contiguous:
        return _nanminmax_pairwise(X)
    return _nanminmax_rows(X, max(1, int(n_chunks)))

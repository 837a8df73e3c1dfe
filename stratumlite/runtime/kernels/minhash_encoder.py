"""skrub ``MinHashEncoder`` kernel: the "fast" n-gram min-hash in one numba pass.

skrub computes, for each distinct string and each of ``n_components`` seeds, a
Python call to ``ngram_min_hash``: for every n-gram length ``n`` in
``ngram_range`` it correlates the string's bytes (``int8``) with a random
``int32`` vector ``gen_atom(n, seed)`` (``np.correlate``, int32 arithmetic that
wraps around) and keeps the minimum. That is ``n_components x (max_n - min_n + 1)``
numpy calls per distinct string, each on a few dozen bytes.

The kernel packs the distinct strings into one byte buffer and computes the same
sums in a ``prange`` over strings (int64 accumulation, then wrapped to int32:
equal modulo 2**32 to numpy's wrapping int32 arithmetic, and the products are far
from overflowing int64). Details reproduced exactly (and tested against skrub):

* the bytes are the first ``len(string)`` bytes of its UTF-8 encoding
  (``np.frombuffer(string.encode(), "int8", count=len(string))``);
* a string shorter than the n-gram is correlated the way ``np.correlate`` does it
  in ``"valid"`` mode with the longer vector second (the windows slide over the
  atom instead);
* the empty string and nulls (which skrub maps to ``""``) hash to 0;
* values are int32, stored in float64, then cast to float32 (the same rounding).

Fallbacks (skrub runs): ``minmax_hash=True``, ``hashing="murmur"``, anything that
is not a pandas/polars string or categorical column. The fitted ``hash_dict_`` (an
LRU cache of skrub's per-string results) is left empty: it only saves skrub's own
recomputation and has no effect on values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange
from sklearn.utils.validation import check_is_fitted
from skrub import MinHashEncoder
from skrub import _dataframe as sbd
from skrub._fast_hash import gen_atom
from skrub._utils import unique_strings

from ._base import KernelMixin, params_of
from ._common import NJIT_PAR

_MAXINT32 = 2**31 - 1


def supports_minhash_encoder(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    """Static check: options the kernel reproduces exactly."""
    p = params_of(estimator_or_params)
    if p.get("hashing", "fast") != "fast":
        return False, f"hashing={p.get('hashing')!r} (only 'fast' has a kernel)"
    if p.get("minmax_hash", False):
        return False, "minmax_hash=True"
    lo, hi = p.get("ngram_range", (2, 4))
    if not (1 <= lo <= hi <= 64):
        return False, f"ngram_range={p.get('ngram_range')!r}"
    n = p.get("n_components", 30)
    if not isinstance(n, int | np.integer) or n < 1:
        return False, f"n_components={n!r}"
    return True, "ok"


@njit(**NJIT_PAR)
def _min_hashes(buf, offsets, atoms, lo, hi, out):
    """out[i, s] = min-hash of string i under seed s (see module docstring)."""
    n_strings = offsets.shape[0] - 1
    n_seeds = atoms.shape[0]
    for i in prange(n_strings):
        start = offsets[i]
        length = offsets[i + 1] - start
        for s in range(n_seeds):
            if length == 0:
                out[i, s] = 0.0
                continue
            best = _MAXINT32
            for n in range(lo, hi + 1):
                atom = atoms[s, n - lo]
                if length >= n:
                    for k in range(length - n + 1):
                        acc = 0
                        for m in range(n):
                            acc += np.int64(buf[start + k + m]) * np.int64(atom[m])
                        v = ((acc + 2147483648) % 4294967296) - 2147483648
                        if v < best:
                            best = v
                else:
                    for k in range(n - length + 1):
                        acc = 0
                        for m in range(length):
                            acc += np.int64(buf[start + m]) * np.int64(atom[m + k])
                        v = ((acc + 2147483648) % 4294967296) - 2147483648
                        if v < best:
                            best = v
            out[i, s] = best


def _atoms(n_components: int, lo: int, hi: int) -> np.ndarray:
    """``atoms[seed, n - lo, :n] = gen_atom(n, seed)`` (skrub's own generator)."""
    atoms = np.zeros((n_components, hi - lo + 1, hi), dtype=np.int32)
    for seed in range(n_components):
        for n in range(lo, hi + 1):
            atoms[seed, n - lo, :n] = gen_atom(n, seed=seed)
    return atoms


def min_hash_matrix(strings, n_components: int, ngram_range=(2, 4)) -> np.ndarray:
    """float64 ``(len(strings), n_components)`` min-hashes of Python strings."""
    lo, hi = int(ngram_range[0]), int(ngram_range[1])
    encoded = [s.encode()[: len(s)] for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buf = np.frombuffer(b"".join(encoded), dtype=np.int8)
    out = np.empty((len(encoded), n_components), dtype=np.float64)
    _min_hashes(buf, offsets, _atoms(n_components, lo, hi), lo, hi, out)
    return out


class FastMinHashEncoder(KernelMixin, MinHashEncoder):
    """``skrub.MinHashEncoder`` with the numba min-hash (see module docstring)."""

    def transform(self, X):
        ok, reason = supports_minhash_encoder(self)
        if ok and not (sbd.is_categorical(X) or sbd.is_string(X)):
            ok, reason = False, "not a string column"
        self._record_path("transform", ok, reason)
        if not ok:
            return MinHashEncoder.transform(self, X)
        check_is_fitted(self, "hash_dict_")
        values = sbd.to_numpy(X)
        is_null = sbd.to_numpy(sbd.is_null(X))
        unique_x, indices_x = unique_strings(values, is_null)
        hashes = min_hash_matrix(unique_x, self.n_components, self.ngram_range)
        X_out = hashes.astype("float32")[indices_x]
        names = self.get_feature_names_out()
        result = sbd.make_dataframe_like(X, dict(zip(names, X_out.T)))
        return sbd.copy_index(X, result)

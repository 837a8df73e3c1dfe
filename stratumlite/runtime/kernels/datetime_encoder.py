"""skrub ``DatetimeEncoder`` kernel: every feature from one pass over the ticks.

skrub extracts each feature with its own pandas/polars accessor
(``dt.year``, ``dt.month``, ... one full pass and one temporary each), casts
each to float32, concatenates them and finally masks null rows with
``where``.  The kernel reads the column's int64 physical values once and, in
a ``prange`` over rows, converts ticks to a civil date (Howard Hinnant's
``civil_from_days``) and time of day, writing all requested float32 features
at once; null rows get NaN (pandas) or null (polars) directly.

Backend details reproduced exactly (and tested against skrub):

* pandas ``dt.microsecond`` is the microsecond part, ``dt.nanosecond`` the
  remaining 0-999 ns; polars ``dt.nanosecond()`` is the whole sub-second part
  in nanoseconds;
* ``total_seconds``: pandas divides the timedelta to the epoch (in the
  column's unit) by one second in float64, polars floors to milliseconds
  and divides by 1000; both then round to float32;
* ``weekday`` is 1 (Monday) to 7, ``day_of_year`` 1 to 366;
* ``fit`` only checks whether every value is at midnight (skrub's
  ``_is_date``, which caps the resolution at "day").

Fallbacks (skrub runs): ``periodic_encoding`` (circular/spline), time zones,
date (not datetime) columns, non-datetime columns (skrub rejects them),
anything that is not a single pandas/polars column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange
from skrub import DatetimeEncoder

from ._base import KernelMixin, params_of
from ._common import (
    NJIT_PAR,
    is_pandas_frame,
    is_pandas_series,
    is_polars_frame,
    is_polars_series,
    work_scope,
)

_TIME_LEVELS = [
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "microsecond",
    "nanosecond",
]
_FEATURE_CODES = {
    name: i
    for i, name in enumerate(_TIME_LEVELS + ["total_seconds", "weekday", "day_of_year"])
}
_UNIT_TPS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_SEC_PER_DAY = 86_400


@njit(**NJIT_PAR)
def _all_midnight(ticks, nulls, tpd):
    n = ticks.shape[0]
    bad = 0
    for i in prange(n):
        if not nulls[i]:
            r = ticks[i] % tpd
            if r != 0:
                bad += 1
    return bad == 0


@njit(**NJIT_PAR)
def _encode(ticks, nulls, tps, codes, polars, out):
    n = ticks.shape[0]
    nf = codes.shape[0]
    tpd = tps * 86400
    for i in prange(n):
        if nulls[i]:
            for k in range(nf):
                out[k, i] = np.nan
            continue
        t = ticks[i]
        days = t // tpd
        rem = t - days * tpd
        secs_of_day = rem // tps
        frac = rem - secs_of_day * tps
        # civil_from_days (proleptic Gregorian)
        z = days + 719468
        era = (z if z >= 0 else z - 146096) // 146097
        doe = z - era * 146097
        yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
        y = yoe + era * 400
        doy_mar = doe - (365 * yoe + yoe // 4 - yoe // 100)
        mp = (5 * doy_mar + 2) // 153
        d = doy_mar - (153 * mp + 2) // 5 + 1
        m = mp + 3 if mp < 10 else mp - 9
        if m <= 2:
            y += 1
        for k in range(nf):
            c = codes[k]
            if c == 0:
                v = np.float32(y)
            elif c == 1:
                v = np.float32(m)
            elif c == 2:
                v = np.float32(d)
            elif c == 3:
                v = np.float32(secs_of_day // 3600)
            elif c == 4:
                v = np.float32((secs_of_day // 60) % 60)
            elif c == 5:
                v = np.float32(secs_of_day % 60)
            elif c == 6:
                if tps >= 1_000_000:
                    v = np.float32(frac // (tps // 1_000_000))
                else:
                    v = np.float32(frac * (1_000_000 // tps))
            elif c == 7:
                if polars:
                    v = np.float32(frac * (1_000_000_000 // tps))
                elif tps == 1_000_000_000:
                    v = np.float32(frac % 1000)
                else:
                    v = np.float32(0)
            elif c == 8:
                if polars:
                    ms = t // (tps // 1000)
                    v = np.float32(np.float64(ms) / 1000.0)
                else:
                    v = np.float32(np.float64(t) / np.float64(tps))
            elif c == 9:
                wd = (days + 3) % 7
                v = np.float32(wd + 1)
            else:
                # day of year: days since Jan 1 of year y, plus one
                yy = y - 1
                jan1 = (
                    365 * yy + yy // 4 - yy // 100 + yy // 400 - 719162
                )
                v = np.float32(days - jan1 + 1)
            out[k, i] = v


def _column_info(col: Any) -> tuple[bool, str, Any]:
    """(ok, reason, (backend, ticks, nulls, tps)) for a single datetime column."""
    if is_pandas_frame(col) or is_polars_frame(col):
        if col.shape[1] != 1:
            return False, "not a single column", None
        col = col.iloc[:, 0] if is_pandas_frame(col) else col.to_series(0)
    if is_pandas_series(col):
        dtype = col.dtype
        if not (isinstance(dtype, np.dtype) and dtype.kind == "M"):
            return False, f"dtype {dtype} (time zone, date or not a datetime)", None
        unit = np.datetime_data(dtype)[0]
        if unit not in _UNIT_TPS:
            return False, f"datetime unit {unit}", None
        values = col.to_numpy()
        nulls = np.isnat(values)
        return True, "ok", ("pandas", col, values.view(np.int64), nulls, _UNIT_TPS[unit])
    if is_polars_series(col):
        import polars as pl

        dtype = col.dtype
        if not isinstance(dtype, pl.Datetime):
            return False, f"dtype {dtype} (not a polars Datetime)", None
        if dtype.time_zone is not None:
            return False, "time zone", None
        tps = _UNIT_TPS.get(dtype.time_unit)
        if tps is None or tps < 1000:
            return False, f"time unit {dtype.time_unit}", None
        ticks = col.to_physical().fill_null(0).to_numpy()
        nulls = col.is_null().to_numpy()
        return True, "ok", ("polars", col, np.ascontiguousarray(ticks, np.int64),
                            np.ascontiguousarray(nulls), tps)
    return False, f"input type {type(col).__name__} is not a column", None


def supports_datetime_encoder(estimator_or_params: Any, X: Any = None) -> tuple[bool, str]:
    p = params_of(estimator_or_params)
    if p.get("periodic_encoding") is not None:
        return False, "periodic_encoding (circular/spline) not supported"
    if p.get("resolution", "hour") not in _TIME_LEVELS + [None]:
        return False, "invalid resolution (skrub raises)"
    if X is None:
        return True, "ok"
    ok, reason, _ = _column_info(X)
    return ok, reason


class FastDatetimeEncoder(KernelMixin, DatetimeEncoder):
    """:class:`skrub.DatetimeEncoder` with a fused numba kernel."""

    @classmethod
    def supports(cls, params: Any, X: Any = None) -> tuple[bool, str]:
        return supports_datetime_encoder(params, X)

    def _fast_fit(self, info) -> None:
        backend, col, ticks, nulls, tps = info
        self._check_params()
        if self.resolution is None:
            self.extracted_features_ = []
        else:
            idx_level = _TIME_LEVELS.index(self.resolution)
            with work_scope(ticks.shape[0]):
                midnight = _all_midnight(ticks, nulls, tps * _SEC_PER_DAY)
            if midnight:
                idx_level = min(idx_level, _TIME_LEVELS.index("day"))
            self.extracted_features_ = _TIME_LEVELS[: idx_level + 1]
        if self.add_total_seconds:
            self.extracted_features_.append("total_seconds")
        if self.add_weekday:
            self.extracted_features_.append("weekday")
        if self.add_day_of_year:
            self.extracted_features_.append("day_of_year")
        self._periodic_encoders = {}
        name = col.name
        self.all_outputs_ = [f"{name}_{f}" for f in self.extracted_features_]

    def _fast_transform(self, info):
        import skrub._dataframe as sbd

        backend, col, ticks, nulls, tps = info
        codes = np.array(
            [_FEATURE_CODES[f] for f in self.extracted_features_], dtype=np.int64
        )
        out = np.empty((codes.shape[0], ticks.shape[0]), dtype=np.float32)
        if codes.shape[0]:
            with work_scope(ticks.shape[0] * codes.shape[0]):
                _encode(
                    np.ascontiguousarray(ticks), np.ascontiguousarray(nulls), tps,
                    codes, backend == "polars", out,
                )
        name = col.name
        names = [f"{name}_{f}" for f in self.extracted_features_]
        if backend == "pandas":
            import pandas as pd

            series = [
                pd.Series(out[k], index=col.index, name=nm, copy=False)
                for k, nm in enumerate(names)
            ]
        else:
            import polars as pl

            series = [
                pl.Series(nm, out[k], dtype=pl.Float32).fill_nan(None)
                for k, nm in enumerate(names)
            ]
        X_out = sbd.copy_index(col, sbd.make_dataframe_like(col, series))
        self.all_outputs_ = sbd.column_names(X_out)
        return X_out

    def fit(self, column, y=None, **kwargs):
        ok, reason = supports_datetime_encoder(self, column)
        if ok and not kwargs:
            ok, reason, info = _column_info(column)
            if ok:
                self._fast_fit(info)
                self._record_path("fit", True, "ok")
                return self
        self._record_path("fit", False, reason)
        return super().fit(column, y=y, **kwargs)

    def fit_transform(self, column, y=None):
        ok, reason = supports_datetime_encoder(self, column)
        if ok:
            ok, reason, info = _column_info(column)
            if ok:
                self._fast_fit(info)
                self._record_path("fit", True, "ok")
                return self.transform(column)
        self._record_path("fit", False, reason)
        return super().fit_transform(column, y=y)

    def transform(self, column):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "all_outputs_")
        ok, reason = supports_datetime_encoder(self, column)
        if ok and self._periodic_encoders:
            ok, reason = False, "fitted with periodic encoders"
        if ok and not self.extracted_features_:
            ok, reason = False, "no feature to extract"
        if ok:
            ok, reason, info = _column_info(column)
            if ok:
                out = self._fast_transform(info)
                self._record_path("transform", True, "ok")
                return out
        self._record_path("transform", False, reason)
        return super().transform(column)

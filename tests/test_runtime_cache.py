"""The persistent cache: a conformance suite for every ``ResultStore``.

What is checked, for each implementation in ``STORES``:

* exact round trip of every value format (Hypothesis-generated pandas and
  polars frames and series, numpy arrays, pickled objects), and the fallback to
  pickle for what parquet would change;
* atomic writes: a writer killed with SIGKILL leaves no torn entry;
* corruption (a flipped byte, a truncated file): one warning, a miss, the
  scheduler recomputes and the entry is replaced;
* two processes writing the same keys at once;
* eviction by value ``uses * seconds / bytes`` under a size cap;
* end to end: a warm rerun of a search hits, unseeded randomness and
  ``no_cache=True`` never do.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import time
import warnings

import _cache_workers
import numpy as np
import pandas as pd
import polars as pl
import polars.testing
import pytest
import skrub
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from polars.testing.parametric import dataframes as pl_dataframes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

import stratumlite
from stratumlite.frontend import to_plan
from stratumlite.runtime import serialization
from stratumlite.runtime.cache import CacheCorruptionWarning, PersistentCache
from stratumlite.runtime.session import Session

STORES = [PersistentCache]
SLOW = 10.0  # seconds: always worth storing

HYPOTHESIS = settings(max_examples=40, deadline=None,
                      suppress_health_check=list(HealthCheck))


@pytest.fixture(params=STORES, ids=lambda c: c.__name__)
def store_factory(request, tmp_path):
    def make(**kwargs):
        return request.param(tmp_path / "cache", **kwargs)
    return make


@pytest.fixture
def store(store_factory):
    return store_factory()


# --------------------------------------------------------------------------
# exact comparison


def assert_identical(a, b):
    """``a`` is ``b`` exactly: type, dtypes, index, names, bits of floats."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(b, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True,
                                      check_column_type=True, check_flags=True,
                                      check_freq=True)
        assert a.columns.dtype == b.columns.dtype and type(a.index) is type(b.index)
        assert a.index.dtype == b.index.dtype and a.attrs == b.attrs
    elif isinstance(b, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True, check_index_type=True,
                                       check_flags=True, check_freq=True)
        assert type(a.name) is type(b.name) and a.name == b.name
        assert type(a.index) is type(b.index) and a.index.dtype == b.index.dtype
    elif isinstance(b, pl.DataFrame):
        polars.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.schema == b.schema
    elif isinstance(b, pl.Series):
        polars.testing.assert_series_equal(a, b, check_exact=True)
        assert a.dtype == b.dtype and a.name == b.name
    elif isinstance(b, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.flags.f_contiguous == b.flags.f_contiguous or b.ndim <= 1 or not b.size
        assert a.tobytes(order="A") == b.tobytes(order="A")
    else:
        assert a == b


def round_trip(store, key, value, state=None):
    assert store.put(key, (value, state or {}), SLOW)
    found, (out, out_state) = store.get(key)
    assert found
    return out, out_state


# --------------------------------------------------------------------------
# Hypothesis strategies


def _pandas_columns(n):
    """(strategy of a column of length n, whether parquet restores it exactly)."""
    ints = st.integers(-(2**31), 2**31 - 1)
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
    texts = st.text(max_size=5)
    base = st.lists
    return st.one_of(
        base(ints, min_size=n, max_size=n).map(lambda v: (np.array(v, dtype="int64"), True)),
        base(ints, min_size=n, max_size=n).map(lambda v: (np.array(v).astype("int8"), True)),
        base(st.integers(0, 2**40), min_size=n, max_size=n).map(
            lambda v: (np.array(v, dtype="uint64"), True)),
        base(floats, min_size=n, max_size=n).map(lambda v: (np.array(v, dtype="float64"), True)),
        base(st.floats(width=32), min_size=n, max_size=n).map(
            lambda v: (np.array(v, dtype="float32"), True)),
        base(st.booleans(), min_size=n, max_size=n).map(lambda v: (np.array(v, dtype=bool), True)),
        base(st.one_of(st.none(), texts), min_size=n, max_size=n).map(
            lambda v: (pd.array(v, dtype="str"), True)),
        base(st.one_of(st.none(), texts), min_size=n, max_size=n).map(
            lambda v: (pd.array(v, dtype="string"), True)),
        base(st.one_of(st.none(), ints), min_size=n, max_size=n).map(
            lambda v: (pd.array(v, dtype="Int64"), True)),
        base(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n).map(
            lambda v: (pd.array(v, dtype="boolean"), True)),
        base(st.integers(0, 2**40), min_size=n, max_size=n).map(
            lambda v: (pd.to_datetime(np.array(v), unit="ms").astype("datetime64[us]"), True)),
        base(st.integers(0, 2**40), min_size=n, max_size=n).map(
            lambda v: (pd.to_datetime(np.array(v), unit="ms").tz_localize("UTC")
                       .astype("datetime64[ns, UTC]"), True)),
        base(st.integers(-(2**40), 2**40), min_size=n, max_size=n).map(
            lambda v: (pd.to_timedelta(np.array(v), unit="us"), True)),
        base(st.sampled_from(["x", "y", "z"]), min_size=n, max_size=n).map(
            # without rows the categories would be lost: stored as pickle
            lambda v: (pd.Categorical(v, categories=["z", "x", "y", "w"]), n > 0)),
        # not restored exactly by parquet: must fall back to pickle
        base(st.integers(0, 2**30), min_size=n, max_size=n).map(
            lambda v: (np.array(v, dtype="datetime64[s]"), False)),
        base(st.one_of(texts, ints, st.none()), min_size=n, max_size=n).map(
            lambda v: (np.array(v, dtype=object), False)),
        base(texts, min_size=n, max_size=n).map(lambda v: (np.array(v, dtype=object), False)),
        base(st.integers(1, 3), min_size=n, max_size=n).map(
            lambda v: (pd.Categorical(v), False)),
        base(ints, min_size=n, max_size=n).map(
            lambda v: (pd.array(v, dtype="int64[pyarrow]"), False)),
        base(st.integers(0, 1000), min_size=n, max_size=n).map(
            lambda v: (pd.PeriodIndex.from_ordinals(v, freq="D").array, False)),
        base(floats, min_size=n, max_size=n).map(
            lambda v: (np.array(v, dtype="float64").astype("float16"), False)),
        base(floats, min_size=n, max_size=n).map(
            lambda v: (np.array(v, dtype="complex128"), False)),
    )


def _pandas_index(n):
    ints = st.lists(st.integers(-1000, 1000), min_size=n, max_size=n)
    return st.one_of(
        st.tuples(st.integers(-5, 5), st.integers(1, 3), st.sampled_from([None, "i"])).map(
            lambda a: (pd.RangeIndex(a[0], a[0] + n * a[1], a[1], name=a[2]), True)),
        ints.map(lambda v: (pd.Index(v, dtype="int64", name="k"), True)),
        st.lists(st.text(max_size=3), min_size=n, max_size=n).map(
            lambda v: (pd.Index(v, dtype="str"), True)),
        ints.map(lambda v: (pd.MultiIndex.from_arrays([v, v]), False)),
        st.just((pd.date_range("2020-01-01", periods=n, freq="D"), False)),
    )


@st.composite
def pandas_frames(draw):
    """(frame, expected format)."""
    n = draw(st.integers(0, 6))
    ncols = draw(st.integers(0, 4))
    columns = [draw(_pandas_columns(n)) for _ in range(ncols)]
    index, index_ok = draw(_pandas_index(n))
    labels_kind = draw(st.sampled_from(["str", "str", "int"]))
    labels = [f"c{i}" for i in range(ncols)] if labels_kind == "str" else list(range(ncols))
    frame = pd.DataFrame({lab: col for lab, (col, _) in zip(labels, columns)},
                         index=index)
    # keep object columns object (pandas would infer the ``str`` dtype)
    frame = frame.astype({lab: object for lab, (col, _) in zip(labels, columns)
                          if getattr(col, "dtype", None) == np.dtype(object)})
    if labels_kind == "str" and ncols == 0:
        frame.columns = pd.Index([], dtype="str")
    ok = index_ok and labels_kind == "str" and ncols > 0 and all(ok for _, ok in columns)
    return frame, "pandas" if ok else "pickle"


@given(pandas_frames())
@HYPOTHESIS
def test_pandas_frames_round_trip_exactly(tmp_path_factory, case):
    frame, expected = case
    store = PersistentCache(tmp_path_factory.mktemp("c"))
    out, _ = round_trip(store, "k" * 32, frame)
    assert_identical(out, frame)
    if expected == "pandas":  # what parquet (or npy) restores exactly is not pickled
        assert serialization.choose_format(frame) in ("pandas", "pandas-npy")


def test_a_numeric_frame_is_stored_as_matrices(store):
    """A frame of numpy numbers with a range or numeric index (a model's
    features) is written as one matrix per dtype (no per-column conversion),
    bits, labels, index and column order exact."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 4)).astype("float32")
    values[3, 1] = np.nan
    frame = pd.DataFrame(values, columns=pd.Index(list("abcd"), name="features"),
                         index=pd.RangeIndex(10, 110, 2, name="row"))
    cases = {
        "one block": frame,
        "two blocks of one dtype": pd.concat([frame[["a"]], frame[["b"]]], axis=1),
        "dtypes interleaved": frame.assign(e=np.arange(50), f=True, g=rng.normal(size=50))
                                   [["e", "a", "f", "b", "g", "c", "d"]],
        "a fold's rows": frame.set_axis(pd.Index(rng.permutation(50), dtype="int64",
                                                 name="row"), axis=0),
        "float index": frame.set_axis(pd.Index(rng.normal(size=50)), axis=0),
        "no rows": frame.iloc[:0],
    }
    for i, (name, case) in enumerate(cases.items()):
        assert serialization.choose_format(case) == "pandas-npy", name
        out, _ = round_trip(store, f"{i:032x}", case)
        assert_identical(out, case)
    # a text column or a text index: parquet
    assert serialization.choose_format(frame.assign(e="x")) == "pandas"
    assert serialization.choose_format(frame.set_axis(pd.Index(
        [str(i) for i in range(50)]), axis=0)) == "pandas"


_ROWS = 3
_FALLBACKS = {
    "object mixed": pd.DataFrame({"a": pd.Series(["x", 1, None], dtype=object)}),
    "object str": pd.DataFrame({"a": pd.Series(["x", "y", "z"], dtype=object)}),
    "datetime64[s]": pd.DataFrame({"a": np.array([0, 1, 2], dtype="datetime64[s]")}),
    "int categories": pd.DataFrame({"a": pd.Categorical([1, 2, 1])}),
    "period": pd.DataFrame({"a": pd.period_range("2020", periods=_ROWS, freq="D")}),
    "interval": pd.DataFrame({"a": pd.interval_range(0, _ROWS)}),
    "pyarrow int": pd.DataFrame({"a": pd.array([1, None, 3], dtype="int64[pyarrow]")}),
    "float16": pd.DataFrame({"a": np.ones(_ROWS, dtype="float16")}),
    "complex": pd.DataFrame({"a": np.ones(_ROWS, dtype="complex128")}),
    "int labels": pd.DataFrame({0: np.arange(_ROWS)}),
    "duplicate labels": pd.DataFrame(np.ones((_ROWS, 2)), columns=["a", "a"]),
    "multiindex": pd.DataFrame({"a": np.arange(_ROWS)},
                               index=pd.MultiIndex.from_arrays([[1, 1, 2], [1, 2, 1]])),
    "datetime index": pd.DataFrame({"a": np.arange(_ROWS)},
                                   index=pd.date_range("2020", periods=_ROWS)),
    "attrs": pd.DataFrame({"a": np.arange(_ROWS)}).pipe(
        lambda d: (d.attrs.update(source="x"), d)[1]),
    "no columns": pd.DataFrame(index=range(_ROWS)),
}


@pytest.mark.parametrize("name", list(_FALLBACKS))
def test_pandas_fallbacks_to_pickle(store, name):
    frame = _FALLBACKS[name]
    assert serialization.choose_format(frame) == "pickle"
    out, _ = round_trip(store, "f" * 32, frame)
    assert_identical(out, frame)


@given(pandas_frames(), st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5),
                                  st.just(("a", 1))))
@HYPOTHESIS
def test_pandas_series_round_trip_exactly(tmp_path_factory, case, name):
    frame, _ = case
    if frame.shape[1] == 0:
        return
    series = frame.iloc[:, 0].rename(name)
    store = PersistentCache(tmp_path_factory.mktemp("c"))
    out, _ = round_trip(store, "s" * 32, series)
    assert_identical(out, series)


@given(pl_dataframes(max_cols=4, max_size=6, allow_null=True))
@HYPOTHESIS
def test_polars_round_trip_exactly(tmp_path_factory, frame):
    store = PersistentCache(tmp_path_factory.mktemp("c"))
    out, _ = round_trip(store, "p" * 32, frame)
    assert_identical(out, frame)
    if frame.width:
        series = frame.to_series(0)
        out, _ = round_trip(store, "q" * 32, series)
        assert_identical(out, series)


_NUMPY_DTYPES = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                          hnp.floating_dtypes(), hnp.complex_number_dtypes(),
                          hnp.boolean_dtypes(), hnp.datetime64_dtypes(),
                          hnp.byte_string_dtypes(), hnp.unicode_string_dtypes(),
                          st.just(np.dtype([("a", "<i4"), ("b", "<f8")])))


@given(hnp.arrays(_NUMPY_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                  max_side=4)),
       st.booleans())
@HYPOTHESIS
def test_numpy_round_trip_exactly(tmp_path_factory, array, fortran):
    if fortran:
        array = np.asfortranarray(array)
    store = PersistentCache(tmp_path_factory.mktemp("c"))
    out, _ = round_trip(store, "n" * 32, array)
    assert_identical(out, array)
    assert serialization.choose_format(array) == "npy"


def test_other_values_and_state_are_pickled(store):
    import scipy.sparse

    value = {"f": lambda x: x + 1, "m": scipy.sparse.random(5, 5, density=0.3,
                                                             random_state=0, format="csr")}
    state = {"node": RandomForestRegressor(n_estimators=2, random_state=0).fit(
        np.eye(4), np.arange(4.0))}
    out, out_state = round_trip(store, "o" * 32, value, state)
    assert out["f"](1) == 2 and (out["m"] != value["m"]).nnz == 0
    np.testing.assert_array_equal(out_state["node"].predict(np.eye(4)),
                                  state["node"].predict(np.eye(4)))
    assert serialization.choose_format(np.array([1, "a"], dtype=object)) == "pickle"


def test_layout_and_manifest(store):
    key = "ab" + "0" * 30
    round_trip(store, key, pd.DataFrame({"a": [1.5], "b": ["x"]}))
    entry = store.directory / "ab" / key
    names = sorted(p.name for p in entry.iterdir())
    assert names == ["manifest.json", "state.pkl", "value.parquet"]
    import json

    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["format"] == "pandas" and manifest["seconds"] == SLOW
    assert set(manifest["files"]) == {"value.parquet", "state.pkl"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert manifest["uses"] == 1 and manifest["created"] <= time.time()


def test_cost_rule(store):
    small = pd.DataFrame({"a": np.arange(10.0)})
    assert not store.put("c" * 32, (small, {}), 1e-5)  # instant: never worth a file
    assert not store.contains("c" * 32)
    big = np.zeros(50_000_000 // 8)  # 50 MB: ~0.1 s to read back
    assert not store.put("d" * 32, (big, {}), 0.02)
    assert store.put("d" * 32, (big, {}), 5.0)
    s = store.stats()
    assert s["stores"] == 1 and s["entries"] == 1 and s["bytes"] > 50_000_000


# --------------------------------------------------------------------------
# atomic writes: kill a writer mid-write


def test_killed_writer_leaves_no_torn_entry(store_factory):
    store = store_factory()
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Queue()
    keys = [f"{i:02d}" + "w" * 30 for i in range(20)]
    proc = ctx.Process(target=_cache_workers.writer,
                       args=(store.directory, keys, started, 6_000_000))
    proc.start()
    started.get(timeout=120)
    started.get(timeout=120)  # the second put has begun
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        results = [store.get(k) for k in keys]
    assert results[0][0]  # the first write had completed
    for found, payload in results:
        if found:
            value, state = payload
            assert value.shape == (6_000_000,) and value[-1] == 6_000_000 - 1
    assert any(store.directory.joinpath(".tmp").iterdir())  # the torn write, invisible
    # a later writer works and sweeps the dead writer's leftovers
    fresh = store_factory()
    out, _ = round_trip(fresh, keys[-1], np.arange(3.0))
    assert_identical(out, np.arange(3.0))
    assert not any(fresh.directory.joinpath(".tmp").iterdir())


# --------------------------------------------------------------------------
# corruption


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: max(0, path.stat().st_size // 2)])


def _delete(path):
    path.unlink()


@pytest.mark.parametrize("damage", [_flip_byte, _truncate, _delete],
                         ids=["flip", "truncate", "delete"])
@pytest.mark.parametrize("target", ["value", "state.pkl", "manifest.json"])
@pytest.mark.parametrize("value", [pd.DataFrame({"a": np.arange(100.0)}),
                                   np.arange(100.0), {"x": list(range(100))}],
                         ids=["parquet", "npy", "pickle"])
def test_corrupt_entry_is_reported_once_and_dropped(store, damage, target, value):
    key = "e" * 32
    assert store.put(key, (value, {"fitted": list(range(50))}), SLOW)
    entry = store.directory / key[:2] / key
    name = target if target != "value" else next(p.name for p in entry.iterdir()
                                                  if p.name.startswith("value"))
    damage(entry / name)
    with pytest.warns(CacheCorruptionWarning, match=key) as caught:
        assert store.get(key) == (False, None)
    assert len(caught) == 1
    assert not store.contains(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        assert store.get(key) == (False, None)  # reported once
    assert store.stats()["corruptions"] == 1
    out, _ = round_trip(store, key, value)  # stored again
    if isinstance(value, dict):
        assert out == value
    else:
        assert_identical(out, value)


def _slow_plan():
    @skrub.deferred
    def slow_double(x):
        time.sleep(0.05)
        return x * 2

    return to_plan(slow_double(skrub.var("x")) + 1)


def test_scheduler_recomputes_a_corrupt_entry(tmp_path):
    config = stratumlite.Config(cache=True, state_dir=tmp_path, executor="sequential")
    plan = _slow_plan()

    def run():
        with Session(config) as s:
            (value,) = s.run([s.request(plan.output, "fit_transform", s.bind({"x": 20}))])
            return value, {r.task.node.op.label: r.status for r in s.records
                           if "slow_double" in r.task.node.op.label}

    assert run() == (41, {"Call 'slow_double'": "stored"})
    entries = [p for p in (tmp_path / "cache").glob("??/*") if p.is_dir()]
    assert len(entries) == 1  # the instant '+ 1' is not worth storing
    _flip_byte(entries[0] / "state.pkl")
    with pytest.warns(CacheCorruptionWarning) as caught:
        assert run() == (41, {"Call 'slow_double'": "stored"})  # recomputed, stored again
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        assert run() == (41, {"Call 'slow_double'": "hit"})  # replaced: valid again


# --------------------------------------------------------------------------
# two processes writing the same keys


def test_concurrent_writers_same_keys(store):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    keys = [f"{i:02d}" + "r" * 30 for i in range(16)]
    procs = [ctx.Process(target=_cache_workers.race_writer, args=(store.directory, order, barrier))
             for order in (keys, keys[::-1])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        for k in keys:
            found, (value, state) = store.get(k)
            assert found and state == {"k": k}
            assert_identical(value, _cache_workers.race_value(k))
    assert store.stats()["entries"] == len(keys)
    assert not any((store.directory / ".tmp").iterdir())


# --------------------------------------------------------------------------
# eviction


def test_eviction_by_value(store_factory):
    value = np.zeros(12_500)  # 100 kB each
    probe = store_factory()
    probe.put("0" * 32, (value, {}), SLOW)
    entry_bytes = probe.stats()["bytes"]
    probe.clear()
    store = store_factory(max_bytes=int(3.5 * entry_bytes))
    store.put("a" * 32, (value, {}), 9.0)  # valuable: slow to compute
    store.put("b" * 32, (value, {}), 1.0)  # cheap
    store.put("c" * 32, (value, {}), 2.0)
    for _ in range(9):  # c is used a lot: 10 x 2 s
        assert store.get("c" * 32)[0]
    store.put("d" * 32, (value, {}), 3.0)  # over the cap: the least valuable goes
    assert not store.contains("b" * 32)
    assert all(store.contains(k * 32) for k in "acd")
    store.put("e" * 32, (value, {}), 4.0)  # next lowest value: d (3 s, used once)
    assert not store.contains("d" * 32)
    assert all(store.contains(k * 32) for k in "ace")
    s = store.stats()
    assert s["evictions"] == 2 and s["entries"] == 3 and s["bytes"] <= store.max_bytes
    assert not store.put("f" * 32, (np.zeros(100_000), {}), SLOW)  # bigger than the cap


def test_picklable_and_clear(store):
    import pickle

    round_trip(store, "g" * 32, np.arange(4))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.get("g" * 32)[0]
    store.clear()
    assert store.stats()["entries"] == 0 and not copy.contains("g" * 32)


# --------------------------------------------------------------------------
# end to end through searches


def _search(tmp_path, model, pre=None):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80),
                       "c": rng.choice(["u", "v", "w"], size=80)})
    y = df["a"] * 2 + rng.normal(size=80)
    # seeded all the way down (an unseeded nested encoder would make every
    # downstream node non-reusable)
    vectorizer = skrub.TableVectorizer(high_cardinality=skrub.StringEncoder(random_state=0))
    X = skrub.X(df).skb.apply(vectorizer)
    if pre is not None:
        X = pre(X)
    op = X.skb.apply(skrub.choose_from({"ridge": Ridge(random_state=0), "other": model},
                                       name="m"), y=skrub.y(y))
    config = stratumlite.Config(cache=True, state_dir=tmp_path, n_workers=2, verbose=0)
    return stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0, config=config)


def test_warm_rerun_hits(tmp_path):
    model = RandomForestRegressor(n_estimators=5, random_state=0)
    first = _search(tmp_path, model)
    second = _search(tmp_path, model)
    pd.testing.assert_frame_equal(first.results_, second.results_, check_exact=True)
    statuses = collections.Counter(r.status for r in second.records_)
    assert statuses["hit"] >= 0.8 * len(second.records_), statuses
    assert sum(r.status == "stored" for r in first.records_) >= 6
    # a fit read from the cache is not a fit executed
    assert first.stats_["fits_from_cache"] == 0
    assert second.stats_["fits_from_cache"] >= 6
    assert second.stats_["fits_executed"] < first.stats_["fits_executed"]
    computed = sum(1 for r in second.records_ if r.status != "hit" and r.task.fitting
                   and r.task.node.op.is_estimator())
    assert second.stats_["fits_executed"] == computed - second.stats_["speculative_fits"]


def test_unseeded_randomness_is_never_reused(tmp_path):
    @skrub.deferred
    def add_noise(df):
        return df.assign(noise=np.random.rand(len(df)))

    model = RandomForestRegressor(n_estimators=5, random_state=None)
    _search(tmp_path, model)
    second = _search(tmp_path, model)

    def uses_forest(record):  # the Apply node whose estimator input is the forest
        return any("RandomForest" in i.op.label for i in record.task.node.inputs)

    forests = [r for r in second.records_ if uses_forest(r)]
    assert len(forests) == 6 and not any(r.status == "hit" for r in forests)  # 3 fits, 3 scores
    assert any(r.status == "hit" for r in second.records_ if not uses_forest(r))

    noisy_first = _search(tmp_path / "noise", Ridge(alpha=2.0, random_state=0), add_noise)
    noisy_second = _search(tmp_path / "noise", Ridge(alpha=2.0, random_state=0), add_noise)
    assert not any(r.status in ("hit", "stored") for r in noisy_second.records_
                   if "add_noise" in r.task.node.op.label)
    downstream = [r for r in noisy_second.records_ if "Ridge" in r.task.node.op.label
                  and r.task.fitting and r.task.node.op.kind != "value"]
    assert downstream and not any(r.status == "hit" for r in downstream)
    assert len(noisy_first.records_) and "hit" not in {r.status for r in noisy_first.records_}


def test_no_cache_is_honoured(tmp_path):
    @skrub.deferred(no_cache=True)
    def slow_copy(df):
        time.sleep(0.02)
        return df.copy()

    def pre(X):
        X = slow_copy(X)
        return X.skb.apply_func(lambda d: (time.sleep(0.02), d)[1], no_cache=True)

    model = RandomForestRegressor(n_estimators=5, random_state=0)
    _search(tmp_path, model, pre)
    second = _search(tmp_path, model, pre)
    calls = [r for r in second.records_ if r.task.node.op.kind == "Call"]
    assert calls and all(r.status == "computed" for r in calls)
    assert any(r.status == "hit" for r in second.records_)  # the vectorizer upstream


def test_warm_fit_carries_every_fitted_state(tmp_path):
    """A fit found in the cache brings its upstream transformers' states too
    (read without their outputs): the learner, and a warm search's best
    learner, predict after the cache directory is gone."""
    import shutil

    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    y = 2 * df["a"] - df["b"] + rng.normal(scale=0.1, size=120)
    X = skrub.X(df).skb.apply(StandardScaler())
    op = X.skb.apply(Ridge(alpha=skrub.choose_from([0.5, 5.0], name="alpha")), y=skrub.y(y))
    fixed = X.skb.apply(Ridge(alpha=0.5), y=skrub.y(y))
    new = {"X": df.iloc[:7] * 3}
    expected = fixed.skb.make_learner().fit({"X": df, "y": y}).predict(new)
    expected_search = op.skb.make_grid_search(fitted=True, cv=3).predict(new)

    config = stratumlite.Config(cache=True, state_dir=tmp_path / "state", verbose=0)
    learners, searches = [], []
    for _ in range(2):  # cold, then warm
        learners.append(stratumlite.make_learner(fixed, config=config).fit({"X": df, "y": y}))
        searches.append(stratumlite.make_grid_search(op, fitted=True, cv=3, verbose=0,
                                                     config=config))
    assert sorted(learners[1].state_) == sorted(learners[0].state_)
    assert len(learners[0].state_) == 2  # scaler and ridge
    assert sorted(searches[1].best_learner_.state_) == sorted(searches[0].best_learner_.state_)
    shutil.rmtree(tmp_path / "state")
    for learner in learners:
        np.testing.assert_array_equal(learner.predict(new), expected)
    for search in searches:
        np.testing.assert_array_equal(search.predict(new), expected_search)

"""The buffer pool: a dict that spills to disk, conformance and equality.

* dict semantics: a Hypothesis state machine drives a pool and a ``dict``
  with the same operations (set, get, ``in``, ``pop``, ``del``, ``len``,
  iteration) under a tiny budget, so values go back and forth to disk;
* values come back exactly (the cache's serialization);
* a search under a budget of a few KB equals the unbudgeted one, and the pool
  reports its spills.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse
import skrub
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor

import stratumlite
from stratumlite.runtime import session as session_module
from stratumlite.runtime.bufferpool import BufferPool
from stratumlite.runtime.serialization import estimate_nbytes


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, pd.DataFrame):
        return a.equals(b) and (a.dtypes == b.dtypes).all() and a.index.equals(b.index)
    if isinstance(a, pl.DataFrame):
        return a.equals(b) and a.schema == b.schema
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


_values = st.one_of(
    st.integers(0, 5000).map(lambda n: np.arange(n, dtype=np.float64)),
    st.integers(0, 300).map(lambda n: pd.DataFrame({"a": np.arange(n), "b": ["x"] * n})),
    st.integers(0, 300).map(lambda n: pl.DataFrame({"a": list(range(n))})),
    st.lists(st.integers(), max_size=20),
    st.text(max_size=50),
    st.none(),
)


class PoolMatchesDict(RuleBasedStateMachine):
    """A BufferPool with a 4 kB budget behaves like a dict."""

    keys = Bundle("keys")

    def __init__(self):
        super().__init__()
        self.pool = BufferPool(4_000)
        self.model: dict = {}

    @rule(target=keys, key=st.text(min_size=1, max_size=4))
    def new_key(self, key):
        return key

    @rule(key=keys, value=_values)
    def set(self, key, value):
        self.pool[key] = value
        self.model[key] = value

    @rule(key=keys)
    def get(self, key):
        if key in self.model:
            assert _same(self.pool[key], self.model[key])
        else:
            with pytest.raises(KeyError):
                self.pool[key]

    @rule(key=keys)
    def pop(self, key):
        assert _same(self.pool.pop(key, "missing"), self.model.pop(key, "missing"))

    @rule(key=keys)
    def delete(self, key):
        if key in self.model:
            del self.pool[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.pool[key]

    @rule(key=keys)
    def discard(self, key):
        self.pool.discard(key)
        self.model.pop(key, None)

    @invariant()
    def same_keys(self):
        assert len(self.pool) == len(self.model)
        assert set(self.pool) == set(self.model)
        assert all(k in self.pool for k in self.model)

    @invariant()
    def within_budget(self):
        # only the buffer touched last may exceed the budget on its own
        over = self.pool.nbytes - self.pool.budget_bytes
        assert over <= 0 or len(self.pool._mem) == 1

    @invariant()
    def sizes_known_in_memory_and_spilled(self):
        # the scheduler's memory admission reads sizes of spilled buffers too.
        # Exact until a buffer is read back: that one is estimated again (an
        # object column may come back with another string dtype). A str is left
        # out: writing it caches its UTF-8 form, which sys.getsizeof then counts
        if self.pool.events["reloaded"] == 0:
            for key, value in self.model.items():
                if not isinstance(value, str):
                    assert self.pool.size_of(key) == estimate_nbytes(value)
        assert self.pool.nbytes == sum(self.pool.size_of(k) for k in self.pool._mem)
        assert self.pool.size_of(("absent",)) == 0

    def teardown(self):
        self.pool.close()


TestPoolMatchesDict = PoolMatchesDict.TestCase
TestPoolMatchesDict.settings = settings(max_examples=30, stateful_step_count=25,
                                        deadline=None,
                                        suppress_health_check=list(HealthCheck))


def test_lru_policy_and_events(tmp_path):
    pool = BufferPool(2_500, spill_dir=tmp_path)
    for k in "abc":
        pool[k] = np.full(125, ord(k), dtype=np.float64)  # 1000 bytes each
    assert pool.is_spilled("a") and not pool.is_spilled("b")  # a: least recent
    pool["b"]  # noqa: B018 - b becomes most recent
    pool["d"] = np.zeros(125)
    assert pool.is_spilled("c") and not pool.is_spilled("b")
    assert pool["a"][0] == ord("a")  # reloaded; now the least recent spills
    stats = pool.stats()
    assert stats["spilled"] == 3 and stats["reloaded"] == 1
    assert stats["spilled_bytes"] == 3000 and stats["reloaded_bytes"] == 1000
    assert stats["peak_bytes"] == 3000 and pool.nbytes <= 2_500
    del pool["c"]  # a spilled buffer is deleted without being read back
    assert pool.stats()["reloaded"] == 1
    pool.close()
    assert not any(tmp_path.glob("pool-*/*"))


def test_unserializable_values_stay_in_memory(tmp_path):
    pool = BufferPool(100, spill_dir=tmp_path)
    lock = threading.Lock()
    pool["lock"] = [lock, np.zeros(50)]
    pool["x"] = np.zeros(50)  # over budget: "lock" cannot be spilled, "x" is in use
    assert not pool.is_spilled("lock") and not pool.is_spilled("x")
    pool["y"] = np.zeros(50)  # now "x" can go
    assert pool.is_spilled("x") and not pool.is_spilled("lock")
    assert pool["lock"][0] is lock and _same(pool["x"], np.zeros(50))


def test_exact_reload_of_every_format(tmp_path):
    values = {
        "pandas": pd.DataFrame({"a": [1, 2], "s": ["x", None]}, index=[5, 7]),
        "series": pd.Series([1.5, 2.5], name=3, index=["u", "v"]),
        "polars": pl.DataFrame({"a": [1, None]}),
        "numpy": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "sparse": scipy.sparse.csr_matrix(np.eye(3)),
        "object": {"k": [1, "a", None]},
    }
    pool = BufferPool(1, spill_dir=tmp_path)  # everything but the last spills
    for k, v in values.items():
        pool[k] = v
    pool["last"] = 0
    for k, v in values.items():
        assert pool.is_spilled(k)
        out = pool[k]
        if k == "series":
            pd.testing.assert_series_equal(out, v, check_exact=True)
        elif k == "sparse":
            assert type(out) is type(v) and (out != v).nnz == 0
        elif k == "numpy":
            assert out.flags.f_contiguous and _same(out, v)
        else:
            assert _same(out, v)


def test_sizes():
    assert estimate_nbytes(np.zeros(100)) == 800
    df = pd.DataFrame({"s": ["a" * 100] * 10})
    assert estimate_nbytes(df) >= 1000  # deep: the strings count
    assert estimate_nbytes(pl.DataFrame({"a": [1] * 100})) == 800
    m = scipy.sparse.csr_matrix(np.eye(100))
    assert estimate_nbytes(m) == m.data.nbytes + m.indices.nbytes + m.indptr.nbytes


def test_thread_safety(tmp_path):
    pool = BufferPool(20_000, spill_dir=tmp_path)
    errors = []

    def worker(i):
        try:
            for j in range(30):
                key = (i, j % 7)
                pool[key] = np.full(500, i * 100 + j)
                assert pool[key][0] == i * 100 + j
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(pool) == 28 and pool.stats()["spilled"] > 0


# --------------------------------------------------------------------------
# a search under a budget of a few KB equals the unbudgeted one


def _search_op():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120),
                       "c": rng.choice(["u", "v"], size=120)})
    y = df["a"] - 2 * df["b"] + rng.normal(scale=0.1, size=120)
    X = skrub.X(df).skb.apply(skrub.TableVectorizer())
    X = skrub.deferred(lambda d: d * 1.0)(X)
    model = skrub.choose_from({"ridge": Ridge(random_state=0),
                               "tree": DecisionTreeRegressor(max_depth=3, random_state=0)},
                              name="m")
    return X.skb.apply(model, y=skrub.y(y))


@pytest.mark.parametrize("executor", ["sequential", "threads"])
def test_search_under_tiny_budget_equals_unbudgeted(tmp_path, monkeypatch, executor):
    pools = []
    make_pool = session_module._default_pool

    def capturing(config):
        pool = make_pool(config)
        if isinstance(pool, BufferPool):
            pools.append(pool)
        return pool

    monkeypatch.setattr(session_module, "_default_pool", capturing)
    base = stratumlite.Config(executor=executor, n_workers=2, state_dir=tmp_path, verbose=0)
    free = stratumlite.make_grid_search(_search_op(), fitted=True, cv=3, verbose=0,
                                        config=base)
    tight = stratumlite.make_grid_search(_search_op(), fitted=True, cv=3, verbose=0,
                                         config=base.replace(memory_budget="3KB"))
    pd.testing.assert_frame_equal(tight.results_, free.results_, check_exact=True)
    assert pools, "the budgeted search did not use a BufferPool"
    stats = pools[-1].stats()
    assert stats["spilled"] > 0 and stats["reloaded"] > 0, stats
    np.testing.assert_array_equal(tight.best_learner_.predict({"X": _search_df()}),
                                  free.best_learner_.predict({"X": _search_df()}))


def _search_df():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=5), "b": rng.normal(size=5),
                         "c": rng.choice(["u", "v"], size=5)})


def test_memory_budget_covers_the_operator_memo(tmp_path):
    """One budget for the runtime: the operator memo takes at most a quarter
    of it, the buffer pool the rest; without a budget the pool is unbounded."""
    from stratumlite.runtime.bufferpool import BufferPool
    from stratumlite.runtime.session import Session

    session = Session(stratumlite.Config(memory_budget="100MB", state_dir=tmp_path,
                                         operator_memo_bytes="256MB"))
    assert isinstance(session.values, BufferPool)
    assert session.values.budget_bytes + session.memo.max_bytes == 100_000_000
    assert session.memo.max_bytes == 25_000_000
    small_memo = Session(stratumlite.Config(memory_budget="100MB", state_dir=tmp_path,
                                            operator_memo_bytes="1MB"))
    assert small_memo.memo.max_bytes == 1_000_000
    assert small_memo.values.budget_bytes == 99_000_000
    unbounded = Session(stratumlite.Config(state_dir=tmp_path, operator_memo_bytes="1MB"))
    assert not isinstance(unbounded.values, BufferPool)
    assert unbounded.memo.max_bytes == 1_000_000

"""Column-level reuse inside column-wise transformers (``frontend/column_memo.py``)
and the operator memo it lives in (``runtime/memo.py``).

Two plan nodes that vectorize tables sharing columns fit each shared column's
transformer once per fold; outputs and scores stay equal to skrub's.
"""

from __future__ import annotations

import os
import pickle
import tempfile

import numpy as np
import pandas as pd
import polars as pl
import pytest
import skrub
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

import stratumlite
import stratumlite.frontend  # noqa: F401  (installs the column memo, as to_plan does)
from stratumlite.runtime.memo import OperatorMemo, current_memo, memo_scope

# Fits are logged to a file: a lock or a list referenced by the method would make
# the encoder impossible to tokenize (mutable global state), hence never reused.
_LOG = os.path.join(tempfile.gettempdir(), f"stratumlite-column-memo-{os.getpid()}.log")


class CountingStringEncoder(skrub.StringEncoder):
    """A StringEncoder that logs its fits (rows seen)."""

    def fit_transform(self, X, y=None):
        with open(_LOG, "a") as f:
            f.write(f"{len(X)}\n")
        return super().fit_transform(X, y)


def clear_fits() -> None:
    with open(_LOG, "w"):
        pass


def logged_fits() -> list[int]:
    with open(_LOG) as f:
        return [int(line) for line in f if line.strip()]


def frame(n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["data engineer", "nurse", "teacher", "driver", "chef", "Data Analyst",
                      "manager", "clerk", "sales rep", "lawyer", "pilot", "baker"])
    df = pd.DataFrame({
        "title": rng.choice(words, n) + " " + rng.choice(words, n),
        "amount": rng.normal(100, 20, n).round(2),
        "income": rng.normal(50, 10, n).round(2),
        "grade": rng.choice(["a", "b", "c"], n),
        "when": pd.date_range("2020-01-01", periods=n, freq="D"),
    })
    df["target"] = df["amount"] / 10 + (df["grade"] == "a") + rng.normal(0, 0.1, n)
    return df


def vectorizer(encoder=None):
    return skrub.TableVectorizer(
        high_cardinality=encoder if encoder is not None
        else CountingStringEncoder(n_components=3, random_state=0),
        cardinality_threshold=5)


def _with_ratio(X):
    return X.assign(ratio=X["amount"] / X["income"])


def pipelines(df, encoder_factory=None, variant=_with_ratio):
    """Two agents' pipelines: the plain table, and the table changed by
    ``variant`` (by default, with a ratio column)."""
    ops = []
    for changed in (False, True):
        data = skrub.var("data", df)
        X = data.drop(columns="target").skb.mark_as_X()
        y = data["target"].skb.mark_as_y()
        if changed:
            X = variant(X)
        enc = encoder_factory() if encoder_factory else None
        ops.append(X.skb.apply(vectorizer(enc)).skb.apply(Ridge(alpha=10.0), y=y))
    return ops


CV = KFold(n_splits=3, shuffle=True, random_state=0)


def run_many(ops, memo_bytes):
    config = stratumlite.Config(verbose=0, operator_memo_bytes=memo_bytes)
    clear_fits()
    tables = stratumlite.cross_validate_many(ops, cv=CV, scoring="r2", config=config,
                                             verbose=0)
    return tables, logged_fits()


# ---------------------------------------------------------------- OperatorMemo


def test_memo_keeps_the_most_valuable_entries_within_budget():
    memo = OperatorMemo(max_bytes=300, min_seconds=0.0)
    assert memo.put("cheap", 1, nbytes=200, seconds=0.1)  # 0.0005 s/byte
    assert memo.put("dear", 2, nbytes=200, seconds=10.0)  # evicts "cheap"
    assert memo.get("cheap") == (False, None)
    assert memo.get("dear") == (True, 2)
    assert memo.bytes == 200 and memo.stats["evicted"] == 1
    assert not memo.put("huge", 3, nbytes=301, seconds=100.0)


def test_memo_skips_pieces_cheaper_than_min_seconds():
    memo = OperatorMemo(max_bytes=10_000, min_seconds=0.01)
    assert not memo.put("k", 1, nbytes=10, seconds=0.001)
    assert memo.get("k") == (False, None)


def test_memo_pickles_to_the_same_process_memo():
    memo = OperatorMemo(max_bytes=1000)
    a = pickle.loads(pickle.dumps(memo))
    b = pickle.loads(pickle.dumps(memo))
    assert a is b and a.id == memo.id and a.max_bytes == 1000


def test_worker_processes_share_the_memo_budget(tmp_path):
    """Each local worker process keeps its own memo and may write as much to the
    directory they share: together they stay within ``operator_memo_bytes``
    (threads share the one memo of the session)."""
    from stratumlite.runtime.memo import _PROCESS_MEMOS
    from stratumlite.runtime.session import Session

    config = stratumlite.Config(state_dir=tmp_path, lineage=False,
                                operator_memo_bytes=1_000_000)
    processes = Session(config.replace(executor="processes", n_workers=4))
    threads = Session(config.replace(executor="threads", n_workers=4))
    assert processes.memo.max_bytes == threads.memo.max_bytes == 1_000_000
    in_worker = pickle.loads(pickle.dumps(processes.memo))  # what a worker builds
    assert in_worker.id == processes.memo.id and in_worker.max_bytes == 125_000
    _PROCESS_MEMOS.clear()
    assert pickle.loads(pickle.dumps(threads.memo)).max_bytes == 1_000_000
    _PROCESS_MEMOS.clear()


def test_memo_scope_is_restored():
    memo = OperatorMemo(100)
    with memo_scope(memo):
        assert current_memo() is memo
        with memo_scope(None):
            assert current_memo() is None
        assert current_memo() is memo
    assert current_memo() is None


def test_negative_budget_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        OperatorMemo(-1)


# ---------------------------------------------------------------- column reuse


@pytest.mark.parametrize("lib", ["pandas", "polars"])
def test_vectorizer_outputs_equal_with_and_without_memo(lib):
    df = frame().drop(columns="target")
    other = df.assign(ratio=df["amount"] / df["income"])
    if lib == "polars":
        df, other = pl.from_pandas(df), pl.from_pandas(other)
    plain = [vectorizer().fit(t) for t in (df, other)]
    expected = [(tv.transform(t), tv.fit_transform(t)) for tv, t in zip(plain, (df, other))]
    memo = OperatorMemo(10_000_000, min_seconds=0.0)
    with memo_scope(memo):
        got = []
        for t in (df, other):
            tv = vectorizer()
            fitted_out = tv.fit_transform(t)
            got.append((tv.transform(t), fitted_out))
    assert memo.stats["hits"] > 0
    for (exp_t, exp_f), (got_t, got_f) in zip(expected, got):
        if lib == "pandas":
            pd.testing.assert_frame_equal(exp_t, got_t)
            pd.testing.assert_frame_equal(exp_f, got_f)
        else:
            assert exp_t.equals(got_t) and exp_f.equals(got_f)
            assert exp_t.columns == got_t.columns


def test_shared_column_fitted_once_per_fold_and_scores_equal_skrub():
    df = frame()
    ops = pipelines(df)
    with_memo, memo_fits = run_many(ops, 256_000_000)
    without, plain_fits = run_many(pipelines(df), 0)
    # the title column is the same in both tables: one fit per fold with the memo
    assert len(memo_fits) == 3
    assert len(plain_fits) == 6
    for op, a, b in zip(ops, with_memo, without):
        expected = op.skb.cross_validate(cv=CV, scoring="r2")["test_score"]
        np.testing.assert_allclose(a["test_score"], expected, rtol=1e-12)
        np.testing.assert_allclose(b["test_score"], expected, rtol=1e-12)


def test_different_column_values_are_not_shared():
    df = frame()
    other = df.assign(title=df["title"].str.upper())
    ops = [pipelines(df)[0], pipelines(other)[0]]
    _, fits = run_many(ops, 256_000_000)
    assert len(fits) == 6


def test_unseeded_encoder_is_never_reused():
    df = frame()
    ops = pipelines(df, lambda: CountingStringEncoder(n_components=3))
    _, fits = run_many(ops, 256_000_000)
    assert len(fits) == 6


def test_no_memo_outside_a_stratumlite_task():
    df = frame().drop(columns="target")
    clear_fits()
    vectorizer().fit(df)
    vectorizer().fit(df)
    assert len(logged_fits()) == 2


class IndexBlindStringEncoder(CountingStringEncoder):
    """Declares that it never reads the pandas index (as skrub's own do)."""

    stratumlite_index_blind = True


def _vectorize_twice(tables, encoder_factory):
    memo = OperatorMemo(10_000_000, min_seconds=0.0)
    clear_fits()
    with memo_scope(memo):
        got = []
        for t in tables:
            tv = vectorizer(encoder_factory())
            tv.fit_transform(t)
            got.append(tv.transform(t))
    return got, logged_fits(), memo


def test_tables_that_differ_only_in_their_index_share_columns():
    """A merge numbers rows afresh: the same fold's columns before and after a
    join differ in their pandas index only. They are fitted once; each table
    gets outputs carrying its own index, equal to skrub's."""
    df = frame().drop(columns="target").iloc[::2]  # row labels 0, 2, 4, ...
    renumbered = df.reset_index(drop=True)
    expected = [vectorizer().fit(t).transform(t) for t in (df, renumbered)]
    got, fits, memo = _vectorize_twice(
        (df, renumbered), lambda: IndexBlindStringEncoder(n_components=3, random_state=0))
    assert fits == [len(df)]
    assert memo.stats["hits"] > 0
    for exp, out in zip(expected, got):
        pd.testing.assert_frame_equal(exp, out)
    assert not got[0].index.equals(got[1].index)


def test_a_user_transformer_keeps_the_index_in_its_key():
    """A transformer from outside skrub and scikit-learn might read the index:
    the same values under another index are fitted again (skrub's own cleaning
    steps are still shared)."""
    df = frame().drop(columns="target").iloc[::2]
    got, fits, memo = _vectorize_twice(
        (df, df.reset_index(drop=True)),
        lambda: CountingStringEncoder(n_components=3, random_state=0))
    assert fits == [len(df), len(df)]
    assert memo.stats["hits"] > 0


def test_joined_variant_reuses_the_plain_variant_columns_per_fold():
    """Two feature variants, one of them joined to a side table (a left merge
    resets the index): the shared title column is fitted once per fold, and
    the cross-validation scores equal skrub's."""
    df = frame()
    side = pd.DataFrame({"grade": ["a", "b", "c"], "grade_rank": [1.0, 2.0, 3.0]})
    ops = pipelines(
        df, lambda: IndexBlindStringEncoder(n_components=3, random_state=0),
        variant=lambda X: X.merge(skrub.var("side", side), on="grade", how="left"))
    with_memo, memo_fits = run_many(ops, 256_000_000)
    _, plain_fits = run_many(ops, 0)
    assert len(plain_fits) == 6
    assert len(memo_fits) == 3
    for op, table in zip(ops, with_memo):
        expected = op.skb.cross_validate(cv=CV, scoring="r2")["test_score"]
        np.testing.assert_allclose(table["test_score"], expected, rtol=1e-12)


def test_outputs_not_aligned_with_their_column_are_not_memoized():
    from stratumlite.frontend.column_memo import _aligned

    col = pd.Series([1.0, 2.0, 3.0], index=[5, 6, 7], name="x")
    assert _aligned([col * 2], col)
    assert not _aligned([col.reset_index(drop=True)], col)
    assert not _aligned([col.iloc[:2]], col)


def test_cheap_pieces_are_never_fingerprinted_and_outputs_stay_equal():
    """With every piece cheaper than ``min_seconds``, no encoder column is ever
    fingerprinted or looked up (nothing of its kind can be in the memo; only the
    vectorizer's preprocessing, whose keys cost nothing, is); the outputs still
    equal skrub's."""
    df = frame().drop(columns="target")
    expected = vectorizer().fit_transform(df)
    memo = RecordingMemo(10_000_000, min_seconds=1e9)  # nothing is worth storing
    with memo_scope(memo):
        outputs = [vectorizer().fit_transform(df) for _ in range(5)]
    assert _other_lookups(memo) == []
    assert memo.stats["skipped"] >= 5  # the encoders' columns, every fit
    # the first fit's column steps; the next four find the whole table
    assert _column_lookups(memo, "fit") == [False] * 7 * df.shape[1]
    assert _preprocessing_lookups(memo, "fit") == [False, True, True, True, True]
    for out in outputs:
        pd.testing.assert_frame_equal(out, expected)


def test_a_kind_is_looked_up_from_its_second_piece_once_one_was_costly(monkeypatch):
    """The first piece of a kind is computed without a lookup (it could only
    miss) and stored when costly; the next piece of that kind on the same
    column is found. Outputs equal skrub's."""
    df = frame().drop(columns="target")
    expected = vectorizer().fit_transform(df)
    memo = RecordingMemo(100_000_000, min_seconds=0.0)  # every piece is costly
    with memo_scope(memo):
        first = vectorizer().fit_transform(df)
        lookups_after_first = _other_lookups(memo)
        second = vectorizer().fit_transform(df)
    assert lookups_after_first == [] and memo.stats["stored"] > 0
    assert _other_lookups(memo) and all(_other_lookups(memo))
    pd.testing.assert_frame_equal(first, expected)
    pd.testing.assert_frame_equal(second, expected)


# ------------------------------------------- pieces shared by worker processes


def _put_in_process(memo, key, value, seconds):
    """Runs in another process: ``memo`` arrives as that process's memo."""
    memo.put(key, value, nbytes=8_000, seconds=seconds)
    return memo.stats["shared_written"]


def _get_in_process(memo, key):
    found, value = memo.get(key)
    return found, value, memo.stats["shared_hits"]


def test_a_costly_piece_stored_in_one_process_is_found_in_another(tmp_path):
    """Two worker processes, each with its own memo: a piece the first stored is
    found by the second through the shared directory, if it took long enough
    to be worth reading back; no temporary file is left."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    memo = OperatorMemo(10_000_000, min_seconds=0.0)
    memo.share(str(tmp_path), 1_000_000)
    value = pd.Series(np.arange(1000.0), name="amount")
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=ctx) as first:
        assert first.submit(_put_in_process, memo, ("fit", "costly"), value, 1.0).result() == 1
        # cheaper than SHARE_MIN_SECONDS: kept in that process only
        assert first.submit(_put_in_process, memo, ("fit", "cheap"), value, 0.001).result() == 1
    with ProcessPoolExecutor(1, mp_context=ctx) as second:
        found, got, shared_hits = second.submit(_get_in_process, memo, ("fit", "costly")).result()
        assert found and shared_hits == 1
        pd.testing.assert_series_equal(got, value)
        assert not second.submit(_get_in_process, memo, ("fit", "cheap")).result()[0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_shared_pieces_respect_the_quota_and_unreadable_files_are_misses(tmp_path):
    """Two memos on one directory stand for two processes."""
    a = OperatorMemo(10_000_000, min_seconds=0.0)
    b = OperatorMemo(10_000_000, min_seconds=0.0)
    for memo in (a, b):
        memo.share(str(tmp_path), 2_000)  # bytes each may write
    a.put("k1", np.zeros(100), nbytes=800, seconds=1.0)  # ~1 KB pickled: written
    a.put("k2", np.zeros(1000), nbytes=8_000, seconds=1.0)  # over a's quota
    assert a.stats["shared_written"] == 1
    assert b.get("k1")[0] and not b.get("k2")[0]
    # a kind one process found costly is looked up by the other
    a.observe(("fit", "StringEncoder", "title"), 1.0)
    assert b.worth_looking_up(("fit", "StringEncoder", "title"))
    assert not b.worth_looking_up(("fit", "ToFloat", "amount"))
    # a torn or foreign file is a miss, never an error
    with open(a._shared_path("k3"), "wb") as f:
        f.write(b"not a pickle")
    assert b.get("k3") == (False, None)


def test_process_executor_shares_columns_and_scores_equal_skrub(tmp_path):
    """The process executor with the shared memo directory: scores equal
    skrub's, and the directory goes with the session."""
    from stratumlite.runtime.session import Session

    df = frame()
    ops = pipelines(df, lambda: skrub.StringEncoder(n_components=3, random_state=0))
    config = stratumlite.Config(verbose=0, executor="processes", n_workers=2,
                                state_dir=tmp_path, lineage=False)
    tables = stratumlite.cross_validate_many(ops, cv=CV, scoring="r2", config=config,
                                             verbose=0)
    for op, table in zip(ops, tables):
        expected = op.skb.cross_validate(cv=CV, scoring="r2")["test_score"]
        np.testing.assert_allclose(table["test_score"], expected, rtol=1e-12)
    with Session(config) as session:
        shared = session.memo.shared_dir
        assert shared is not None and os.path.isdir(shared)
    assert not os.path.exists(shared)


def test_a_fitted_vectorizer_shipped_to_another_process_finds_its_transforms():
    """The fit key travels with each fitted column transformer (pickled with
    it): a copy of the fitted vectorizer, as a worker process receives it for
    its predictions, finds the column transforms the original stored."""
    df = frame().drop(columns="target")
    memo = OperatorMemo(100_000_000, min_seconds=0.0)
    with memo_scope(memo):
        fitted = vectorizer().fit(df)
        expected = fitted.transform(df)
        hits = memo.stats["hits"]
        shipped = pickle.loads(pickle.dumps(fitted))
        got = shipped.transform(df)
    assert memo.stats["hits"] - hits >= df.shape[1]  # every column's transform
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(got, vectorizer().fit(df).transform(df))


# ------------------------------------- the vectorizer's preprocessing, reused whole


class RecordingMemo(OperatorMemo):
    """An operator memo that records, per lookup, the piece's kind and whether
    it was found."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookups: list[tuple] = []

    def get(self, key):
        found, value = super().get(key)
        self.lookups.append((key[0], key[1], found))
        return found, value


def _preprocessing_lookups(memo, phase, start=0):
    """Whether each lookup of a whole table's preprocessing was found."""
    from stratumlite.frontend.column_memo import _PREPROCESSING

    return [found for kind, what, found in memo.lookups[start:]
            if kind == phase and what == _PREPROCESSING]


def _column_lookups(memo, phase, start=0):
    """Whether each lookup of one column's preprocessing step was found."""
    from stratumlite.frontend.column_memo import _PREPROCESSING_COLUMN

    return [found for kind, what, found in memo.lookups[start:]
            if kind == phase and what == _PREPROCESSING_COLUMN]


def _other_lookups(memo):
    """Whether each lookup of a piece other than the preprocessing's was found."""
    from stratumlite.frontend.column_memo import _PREPROCESSING, _PREPROCESSING_COLUMN

    return [found for _, what, found in memo.lookups
            if what not in (_PREPROCESSING, _PREPROCESSING_COLUMN)]


def _fitted_state(tv):
    return (tv.all_outputs_, tv.feature_names_in_, tv.n_features_in_,
            {k: list(v) for k, v in tv.kind_to_columns_.items()}, tv.column_to_kind_,
            tv.input_to_outputs_, tv.output_to_input_,
            {c: [repr(t) for t in steps] for c, steps in tv.all_processing_steps_.items()},
            [name for name, _ in tv._pipeline.steps])


def _column_transformers(tv):
    """Per preprocessing step: its fitted column transformers (column steps)."""
    return [dict(getattr(step, "transformers_", {})) for step in tv._preprocessors]


@pytest.mark.parametrize("lib", ["pandas", "polars"])
def test_vectorizers_differing_in_encoders_share_their_preprocessing(lib):
    """Two vectorizers that differ in their encoders only run their
    preprocessing once on a table: the second finds the first's whole output
    and fitted steps in the memo (fitting, and transforming a new table). Each
    vectorizer's outputs and fitted state equal skrub's; its pipeline stays a
    plain scikit-learn Pipeline that pickles and transforms alike."""
    import pickle as _pickle

    from sklearn.pipeline import Pipeline

    df = frame().drop(columns="target")
    train, test = df.iloc[:60], df.iloc[60:]
    if lib == "polars":
        train, test = pl.from_pandas(train), pl.from_pandas(test)
    encoders = [lambda: skrub.StringEncoder(n_components=3, random_state=0),
                lambda: skrub.MinHashEncoder(n_components=4)]
    expected = []
    for enc in encoders:
        tv = vectorizer(enc())
        expected.append((tv, tv.fit_transform(train), tv.transform(test)))
    memo = RecordingMemo(100_000_000, min_seconds=0.0)
    got = []
    with memo_scope(memo):
        for enc in encoders:
            tv = vectorizer(enc())
            fitted = tv.fit_transform(train)
            fit_lookups = _preprocessing_lookups(memo, "fit")
            transformed = tv.transform(test)
            got.append((tv, fitted, transformed, fit_lookups,
                        _preprocessing_lookups(memo, "transform")))
    # the whole table's preprocessing: computed (column by column), then found
    assert got[1][3] == [False, True] and got[1][4] == [False, True]
    first, second = got[0][0], got[1][0]
    assert all(a is b for a, b in zip(first._preprocessors, second._preprocessors))
    for (exp_tv, exp_fit, exp_test), (tv, out_fit, out_test, _, _) in zip(expected, got):
        for exp, out in ((exp_fit, out_fit), (exp_test, out_test)):
            if lib == "pandas":
                pd.testing.assert_frame_equal(exp, out)
            else:
                assert exp.equals(out) and exp.columns == out.columns
        assert _fitted_state(tv) == _fitted_state(exp_tv)
        assert type(tv._pipeline) is Pipeline and "fit_transform" not in vars(tv._pipeline)
        # pickled (a worker process, a saved learner) and used outside any memo
        copy = _pickle.loads(_pickle.dumps(tv))
        if lib == "pandas":
            pd.testing.assert_frame_equal(copy.transform(test), exp_test)
        else:
            assert copy.transform(test).equals(exp_test)


@pytest.mark.parametrize("lib", ["pandas", "polars"])
def test_tables_sharing_columns_share_those_columns_preprocessing(lib):
    """The same table with a column added, one dropped, one changed, and other
    row labels: each shared column's preprocessing is found (every column step
    of it), the others' computed; outputs and fitted state equal skrub's."""
    df = frame().drop(columns="target")
    tables = [df, df.assign(ratio=df["amount"] / (df["income"] + 1)),
              df.drop(columns="title"), df.assign(title=df["title"].str.lower()),
              df.set_axis(np.arange(len(df)) + 1000)]
    new_columns = [set(df.columns), {"ratio"}, set(), {"title"}, set()]
    if lib == "polars":  # no row labels: the last table would be the first
        tables = [pl.from_pandas(t) for t in tables[:-1]]
    memo = RecordingMemo(100_000_000, min_seconds=0.0)
    first = None
    with memo_scope(memo):
        for table, new in zip(tables, new_columns):
            before = len(memo.lookups)
            tv = vectorizer()
            out = tv.fit_transform(table)
            lookups = _column_lookups(memo, "fit", before)
            assert _preprocessing_lookups(memo, "fit", before) == [False]
            n_steps = sum(1 for s in tv._preprocessors if hasattr(s, "transformers_"))
            n_cols = len(table.columns)
            assert len(lookups) == n_steps * n_cols
            assert lookups.count(False) == n_steps * len(new)
            expected_tv = vectorizer()
            expected = expected_tv.fit_transform(table)
            if lib == "pandas":
                pd.testing.assert_frame_equal(out, expected)
            else:
                assert out.equals(expected) and out.columns == expected.columns
            assert _fitted_state(tv) == _fitted_state(expected_tv)
            # a shared column's fitted transformers are the first fit's objects
            first = first or tv
            for a, b in zip(_column_transformers(first), _column_transformers(tv)):
                for column in (a.keys() & b.keys()) - new:
                    assert a[column] is b[column]


def test_other_preprocessing_parameters_are_not_shared():
    """A step with other parameters misses on every column (here the first,
    ``CleanNullStrings``, with other ``null_strings``); outputs equal skrub's."""
    df = frame().drop(columns="target")
    memo = RecordingMemo(100_000_000, min_seconds=0.0)
    cases = [vectorizer(),
             skrub.TableVectorizer(high_cardinality=skrub.StringEncoder(
                 n_components=3, random_state=0), cardinality_threshold=5,
                 null_strings=["n/a"])]
    with memo_scope(memo):
        first = cases[0].fit_transform(df)
        start = len(memo.lookups)
        second = cases[1].fit_transform(df)
    lookups = _column_lookups(memo, "fit", start)
    assert len(lookups) >= df.shape[1] and not any(lookups[:df.shape[1]])
    for tv, out in zip(cases, (first, second)):
        pd.testing.assert_frame_equal(out, clone(tv).fit_transform(df))


def test_vectorizer_search_scores_equal_skrub_when_preprocessing_is_shared():
    """Pipelines over the same table that differ in their high-cardinality
    encoder (an agent's batch): scores equal skrub's, threads and processes."""
    df = frame()

    def build(encoder):
        data = skrub.var("data", df)
        X = data.drop(columns="target").skb.mark_as_X()
        y = data["target"].skb.mark_as_y()
        return X.skb.apply(vectorizer(encoder)).skb.apply(Ridge(alpha=10.0), y=y)

    ops = [build(skrub.StringEncoder(n_components=3, random_state=0)),
           build(skrub.MinHashEncoder(n_components=4)),
           build(skrub.StringEncoder(n_components=2, random_state=0))]
    for executor in ("threads", "processes"):
        config = stratumlite.Config(verbose=0, executor=executor, n_workers=2)
        tables = stratumlite.cross_validate_many(ops, cv=CV, scoring="r2", config=config,
                                                 verbose=0)
        for op, table in zip(ops, tables):
            expected = op.skb.cross_validate(cv=CV, scoring="r2")["test_score"]
            np.testing.assert_allclose(table["test_score"], expected, rtol=1e-12)


def test_a_vectorizer_refitted_outside_the_memo_does_not_reuse_its_old_preprocessing():
    """Fitted through the memo, then fitted again on another table outside any
    stratumlite task: its transforms under a memo are those of the new fit
    (here the first fit dropped a constant column that the second keeps)."""
    df = frame().drop(columns="target").assign(flag=1.0)
    other = frame(seed=3).drop(columns="target")
    other = other.assign(flag=np.arange(len(other)) % 2 * 1.0)

    def make():
        return skrub.TableVectorizer(
            high_cardinality=skrub.StringEncoder(n_components=3, random_state=0),
            cardinality_threshold=5, drop_if_constant=True)

    memo = OperatorMemo(100_000_000, min_seconds=0.0)
    tv = make()
    with memo_scope(memo):
        tv.fit_transform(df)
        assert "flag" not in tv.transform(other).columns  # stored: the first fit's
    tv.fit(other)  # no memo: an ordinary fit
    expected = make().fit(other).transform(other)
    assert "flag" in expected.columns
    with memo_scope(memo):
        got = tv.transform(other)
    pd.testing.assert_frame_equal(got, expected)

"""Smoke test of the benchmark harness (benchmarks/): one worker, the score check."""

from __future__ import annotations

import copy

import pytest

harness = pytest.importorskip("benchmarks.harness")


@pytest.fixture(scope="module")
def skrub_tiny(tmp_path_factory):
    """skrub's grid search on the tiny example, in a fresh worker process."""
    return harness.run_worker("skrub_n1", "tiny", state_dir=str(tmp_path_factory.mktemp("s")),
                              timeout=600)


def test_worker_runs_one_system(skrub_tiny):
    r = skrub_tiny
    assert r["system"] == "skrub_n1" and r["example"] == "tiny"
    assert r["wall_seconds"] > 0 and r["peak_rss"] > 0
    # PSS charges shared pages in part: never above RSS, never zero on Linux
    assert 0 < r["peak_tree_pss_sampled"] <= r["peak_tree_rss_sampled"]
    keys = [row["key"] for row in r["results"]["rows"]]
    assert len(keys) == 3  # ridge x 2 alphas + lasso
    assert r["results"]["key_columns"] == ["alpha", "model"]
    assert len(r["results"]["split_scores"]) == 3


def test_score_check_accepts_equal_results(skrub_tiny):
    res = skrub_tiny["results"]
    assert harness.compare_search_results(res, copy.deepcopy(res)) == []
    runs = {"skrub_n1": [skrub_tiny], "stratumlite_cold": [copy.deepcopy(skrub_tiny)]}
    assert harness.check_scores(runs, "skrub_n1") == []


def test_score_check_catches_a_doctored_result(skrub_tiny):
    doctored = copy.deepcopy(skrub_tiny)
    row = doctored["results"]["rows"][0]
    row["scores"]["mean_test_score"] *= 1 + 1e-7  # beyond rtol=1e-9
    problems = harness.check_scores({"skrub_n1": [skrub_tiny], "stratumlite_cold": [doctored]},
                                    "skrub_n1")
    assert problems and row["key"] in problems[0]

    split = copy.deepcopy(skrub_tiny)
    split["results"]["split_scores"][1][2] += 1e-6
    assert any("candidate 1" in p
               for p in harness.compare_search_results(skrub_tiny["results"], split["results"]))

    missing = copy.deepcopy(skrub_tiny)
    missing["results"]["rows"].pop()
    assert any("only in reference" in p for p in
               harness.compare_search_results(skrub_tiny["results"], missing["results"]))


def test_score_check_within_tolerance_and_nan():
    ref = {"key_columns": ["m"], "rows": [{"key": "m=a", "scores": {"mean_test_score": 0.5}},
                                          {"key": "m=b", "scores": {"mean_test_score": None}}],
           "split_scores": [[0.5], [None]]}
    close = copy.deepcopy(ref)
    close["rows"][0]["scores"]["mean_test_score"] = 0.5 * (1 + 1e-12)
    assert harness.compare_search_results(ref, close) == []
    nan_vs_value = copy.deepcopy(ref)
    nan_vs_value["rows"][1]["scores"]["mean_test_score"] = 0.1
    assert harness.compare_search_results(ref, nan_vs_value)


def test_agent_score_check():
    ref = {"per_pipeline": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]}
    assert harness.compare_agent_results(ref, copy.deepcopy(ref)) == []
    bad = copy.deepcopy(ref)
    bad["per_pipeline"][1][0] = 0.41
    assert harness.compare_agent_results(ref, bad) == ["pipeline 2: test scores "
                                                       "[0.41, 0.5, 0.6] != skrub's "
                                                       "[0.4, 0.5, 0.6]"]


def test_score_check_accepts_any_skrub_run_and_flags_changed_inputs(skrub_tiny):
    # skrub_n2 differs from skrub_n1 in the last digits (BLAS threads): a
    # stratumlite run equal to either passes
    n2 = copy.deepcopy(skrub_tiny)
    n2["results"]["rows"][0]["scores"]["mean_test_score"] *= 1 + 1e-7
    for rows in n2["results"]["split_scores"]:
        rows[0] *= 1 + 1e-7
    sl = copy.deepcopy(n2)
    assert harness.check_scores({"skrub_n1": [skrub_tiny], "skrub_n2": [n2],
                                 "stratumlite_cold": [sl]}, "skrub_n1") == []
    # a different plan key: reported as changed inputs, not as a score difference
    changed = copy.deepcopy(sl)
    changed["results"]["rows"][0]["scores"]["mean_test_score"] += 0.1
    changed["inputs"] = {"plan_key": "x", "source_digest": "y"}
    problems = harness.check_scores({"skrub_n1": [skrub_tiny], "stratumlite_cold": [changed]},
                                    "skrub_n1")
    assert len(problems) == 1 and "INPUTS DIFFER" in problems[0]


def test_a_timed_out_worker_is_recorded_and_reported_as_a_lower_bound(skrub_tiny):
    """A worker past its timeout is killed (with its children) and recorded as
    censored: the session goes on, tables show '>' and ratios '≥'."""
    import time

    t0 = time.perf_counter()
    late = harness.run_worker("skrub_n2", "tiny", timeout=0.5)
    assert time.perf_counter() - t0 < 30
    assert late["timed_out"] and late["wall_seconds"] is None
    bound = copy.deepcopy(skrub_tiny)
    bound["bound_seconds"] = skrub_tiny["wall_seconds"] / 4
    runs = {"skrub_n2": [late], "stratumlite_cold": [copy.deepcopy(skrub_tiny)],
            "dedup_bound": [bound]}
    assert harness.check_scores(runs, "skrub_n2") == []  # nothing to compare, no crash
    table = harness.search_table(runs, cores=2)
    assert "> 0.500 s (timed out 1/1)" in table or "> 0.50 s (timed out 1/1)" in table
    ratios = harness.ratio_table(runs)
    line = next(ln for ln in ratios.splitlines() if ln.startswith("| skrub n_jobs=2 /"))
    assert "≥ " in line
    expected = 0.5 / skrub_tiny["wall_seconds"]
    assert f"{expected:.2f}" in line


def test_one_thread_skrub_is_the_preferred_score_reference():
    assert harness.reference_system(["skrub_n1", "skrub_n1_1t", "stratumlite_cold"]) \
        == "skrub_n1_1t"
    assert harness.reference_system(["skrub_n2", "skrub_n1"]) == "skrub_n1"


def test_scaling_reports_speed_ups_over_skrub_and_distance_to_the_bound():
    pairs = harness.scaling_ratio_pairs(
        ["stratumlite_cold", "skrub_n1", "skrub_n1_1t", "stratumlite_cold_processes",
         "dedup_bound"])
    # skrub over stratumlite (> 1 = faster), never the inverse; the one-thread
    # skrub run is the score reference, not a timing peer
    assert pairs == [("skrub_n1", "stratumlite_cold"),
                     ("skrub_n1", "stratumlite_cold_processes"),
                     ("stratumlite_cold", "dedup_bound"),
                     ("stratumlite_cold_processes", "dedup_bound")]
    assert harness.scaling_ratio_pairs(["stratumlite_cold"]) == []


def test_scaling_report_merges_runs_size_by_size(skrub_tiny, tmp_path, monkeypatch):
    """``python -m benchmarks report`` on scaling runs: a row count measured
    again in a later file replaces the earlier one; the table shows the
    speed-up over skrub; a stratumlite score that differs from skrub's is a
    mismatch."""
    monkeypatch.setattr(harness, "REPO", tmp_path)
    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")

    def result(wall, doctored=False):
        r = copy.deepcopy(skrub_tiny)
        r["wall_seconds"] = wall
        if doctored:
            first = r["results"]["rows"][0]["scores"]
            for k in first:
                first[k] = (first[k] or 0.0) * (1 + 1e-6) + 1e-9
        return r

    def payload(rows_walls, doctored=False):
        runs = {str(rows): {"skrub_n1": [result(skrub)],
                            "stratumlite_cold": [result(ours, doctored)]}
                for rows, (skrub, ours) in rows_walls.items()}
        return {"command": "scaling", "machine": harness.machine_info(), "reps": 1,
                "rows": list(rows_walls), "systems": ["skrub_n1", "stratumlite_cold"],
                "runs": runs}

    old = payload({1000: (10.0, 8.0), 2000: (20.0, 4.0)}, doctored=True)
    new = payload({1000: (12.0, 3.0)})
    paths = []
    for name, p in (("old", old), ("new", new)):
        path = tmp_path / f"run-{name}.json"
        path.write_text(harness.json.dumps(p))
        paths.append(str(path))
    lines = []
    status = harness.cmd_report(paths, log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    text = "\n".join(lines)
    assert "| 1,000 | 12.0 s | 3.00 s | 4.00x |" in text  # the later file's 1,000 rows
    assert "| 2,000 | 20.0 s | 4.00 s | 5.00x |" in text  # kept from the earlier file
    assert "MISMATCH" in text and status == 2  # 2,000 rows' doctored scores
    status = harness.cmd_report(paths[1:], log=lambda *a, **k: None)
    assert status == 0


def test_a_session_starts_with_one_untimed_warm_up_of_stratumlite(tmp_path):
    """numba compiles its kernels once per checkout: the harness pays that in an
    untimed run before the first repetition, and never for skrub-only runs."""
    lines = []
    assert harness.warm_up("tiny", ["skrub_n1"], None, log=lines.append) is None
    assert lines == []
    warmed = harness.warm_up("tiny", ["skrub_n1", "stratumlite_warm", "stratumlite_cold"],
                             None, timeout=600, log=lambda *a, **k: lines.append(a[0]))
    assert warmed == "stratumlite_cold"
    assert any("warm-up (untimed): stratumlite_cold on tiny" in str(line) for line in lines)
    # the worker really ran (its timing line), and its result was not kept
    assert any("stratumlite_cold" in str(line) and "wall" in str(line) for line in lines)


def test_a_target_missed_by_a_hair_is_printed_with_the_digits_that_show_it():
    """A measured ratio that two decimals would print as the goal itself gets
    four; others keep two."""
    from benchmarks.harness import fmt_target

    assert fmt_target(1.2512400491866067, "<= 1.25x") == "1.2512x"
    assert fmt_target(1.2479, "<= 1.25x") == "1.2479x"
    assert fmt_target(1.25, "<= 1.25x") == "1.25x"
    assert fmt_target(2.2415, ">= 6.0x") == "2.24x"
    assert fmt_target(None, "<= 1.25x") == "—"


def test_a_report_section_replaces_only_its_own_section_of_latest(tmp_path, monkeypatch):
    """latest.md keeps the sections it holds from other runs (another checkout,
    an earlier day) when one command's section is written; the day's report
    gets the section too."""
    from benchmarks import harness

    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    (tmp_path / "latest.md").write_text(
        "# old\n\n<!-- begin agents -->\nagents from elsewhere\n<!-- end agents -->\n"
        "<!-- begin runtime -->\nold runtime\n<!-- end runtime -->\n")
    report = harness.write_report_section("runtime", "new runtime")
    latest = (tmp_path / "latest.md").read_text()
    assert "agents from elsewhere" in latest and "new runtime" in latest
    assert "old runtime" not in latest
    assert "new runtime" in report.read_text() and "agents from elsewhere" not in report.read_text()
    assert not list(tmp_path.glob(".*.tmp"))

"""The model server, over real HTTP on loopback.

Each test starts a uvicorn server in a thread on a free 127.0.0.1 port
(``stratumlite.serving.start_server``) in front of learners fitted on the
telco churn data (``stratumlite.datasets.load_churn``) and registered in a
temporary state directory, and talks to it with httpx.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import skrub
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import stratumlite
from stratumlite import Config
from stratumlite.datasets import load_churn
from stratumlite.lineage.registry import ModelRegistry
from stratumlite.registry_api import register

# the server's dependencies (starlette, uvicorn) and the test client (httpx)
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from stratumlite.serving import ModelRef, ServingSettings, start_server  # noqa: E402
from stratumlite.serving.batching import AIMDController  # noqa: E402
from stratumlite.serving.inputs import InputError, InputSchema  # noqa: E402

# skrub's TableVectorizer outputs float32: BLAS sums a row in another order
# depending on the batch's shape, so probabilities of one row predicted in
# different batches agree to float32 rounding (labels exactly)
RTOL = 1e-6

COLUMNS = ["tenure", "monthly_charges", "total_charges", "contract", "internet_service",
           "senior_citizen"]


def _learner(df: pd.DataFrame, C: float):
    X = skrub.var("X").skb.mark_as_X()
    y = skrub.var("y").skb.mark_as_y()
    model = make_pipeline(SimpleImputer(), LogisticRegression(C=C, max_iter=500))
    pred = X.skb.apply(skrub.TableVectorizer()).skb.apply(model, y=y)
    env = {"X": df[COLUMNS], "y": (df["churn"] == "Yes").astype(int)}
    return stratumlite.make_learner(pred, config=Config(executor="sequential", verbose=0)
                                    ).fit(env)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two versions of model 'churn' (alias 'prod' -> 1), their learners, test rows."""
    df = load_churn(n_rows=1500, random_state=0)
    train, test = df.iloc[:1000], df.iloc[1000:].reset_index(drop=True)
    cfg = Config(state_dir=tmp_path_factory.mktemp("state"), verbose=0)
    v1, v2 = _learner(train, C=1.0), _learner(train, C=0.001)
    assert register(v1, "churn", alias="prod", config=cfg) == 1
    assert register(v2, "churn", config=cfg) == 2
    # check the two versions are distinguishable
    rows = test[COLUMNS].iloc[:20]
    assert not np.allclose(v1.predict_proba({"X": rows}), v2.predict_proba({"X": rows}))
    return {"config": cfg, "v1": v1, "v2": v2, "test": test[COLUMNS]}


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def columns(frame: pd.DataFrame) -> dict[str, list]:
    return {c: [None if pd.isna(v) else v for v in frame[c].tolist()] for c in frame}


def post(client, payload, name="churn", **kwargs):
    return client.post(f"/v1/models/{name}/predict", json=payload, **kwargs)


def metric(text: str, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        base = head.split("{", 1)[0]
        if base != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def _server(models, ref="churn@prod", **settings):
    settings.setdefault("log_level", "error")
    return start_server(ref, config=models["config"], **settings)


# ------------------------------------------------------------------ batching
def test_batched_predictions_equal_unbatched_and_learner(models):
    test, v1 = models["test"], models["v1"]
    chunks = [test.iloc[i:i + 1 + i % 3] for i in range(0, 72, 3)]  # 24 requests
    expected = [v1.predict({"X": c.reset_index(drop=True)}).tolist() for c in chunks]
    expected_proba = [v1.predict_proba({"X": c.reset_index(drop=True)}).tolist()
                      for c in chunks]

    answers = {}
    for batching in (True, False):
        server = _server(models, batching=batching, max_wait_ms=30, cache_enabled=False)
        try:
            def ask(i, url=server.url):
                with httpx.Client(base_url=url, timeout=60) as client:
                    a = post(client, {"records": records(chunks[i])})
                    b = post(client, {"columns": columns(chunks[i]),
                                      "method": "predict_proba"})
                return a, b

            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(ask, range(len(chunks))))
            text = httpx.get(server.url + "/metrics").text
        finally:
            server.stop()
        for (a, b), want, want_proba in zip(results, expected, expected_proba):
            assert a.status_code == 200, a.text
            assert b.status_code == 200, b.text
            assert a.json()["predictions"] == want
            assert a.json()["version"] == 1
            got = b.json()
            assert got["classes"] == [0, 1]
            np.testing.assert_allclose(got["predictions"], want_proba, rtol=RTOL)
        answers[batching] = results
        n_batches = metric(text, "stratumlite_serving_batch_rows_count")
        n_rows = metric(text, "stratumlite_serving_batch_rows_sum")
        assert n_rows == 2 * sum(len(c) for c in chunks)
        if batching:  # requests really were batched together
            assert n_batches < len(chunks)
        else:
            assert n_batches == 2 * len(chunks)
    for (a, b), (c, d) in zip(answers[True], answers[False]):
        assert a.json()["predictions"] == c.json()["predictions"]
        np.testing.assert_allclose(b.json()["predictions"], d.json()["predictions"],
                                   rtol=RTOL)


def test_overload_answers_503_and_loses_no_accepted_request(models):
    test, v1 = models["test"], models["v1"]
    server = _server(models, queue_capacity=2, max_batch_rows=1, adaptive_batching=False,
                     max_wait_ms=0, cache_enabled=False)
    n = 40
    barrier = threading.Barrier(n)
    try:
        def ask(i):
            with httpx.Client(base_url=server.url, timeout=120) as client:
                barrier.wait()
                return post(client, {"records": records(test.iloc[[i]])})

        with ThreadPoolExecutor(n) as pool:
            responses = list(pool.map(ask, range(n)))
        text = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) > 0 and codes.count(200) > 0
    for i, r in enumerate(responses):
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"] == "overloaded"
        else:
            assert r.json()["predictions"] == v1.predict(
                {"X": test.iloc[[i]].reset_index(drop=True)}).tolist()
    # every accepted request was answered: as many predicted rows as 200s
    assert metric(text, "stratumlite_serving_batch_rows_sum") == codes.count(200)
    assert metric(text, "stratumlite_serving_errors_total", reason="overloaded") == \
        codes.count(503)


# ------------------------------------------------------------------ hot swap
def test_hot_swap_under_concurrent_load(models):
    cfg, test = models["config"], models["test"]
    registry = ModelRegistry.from_config(cfg)
    registry.set_alias("churn", "prod", 1)
    server = _server(models, poll_interval_ms=50, max_wait_ms=2, cache_enabled=False)
    stop = threading.Event()
    log: list[list[tuple[int, int, int, list]]] = [[] for _ in range(4)]

    def client_loop(k):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            i = 0
            while not stop.is_set():
                row = (k * 50 + i) % len(test)
                r = post(client, {"records": records(test.iloc[[row]]),
                                  "method": "predict_proba"})
                body = r.json()
                log[k].append((r.status_code, body.get("version"), row,
                               body.get("predictions")))
                i += 1

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while sum(map(len, log)) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        registry.set_alias("churn", "prod", 2)
        swapped_at = sum(map(len, log))
        while time.monotonic() < deadline:
            if all(entries and entries[-1][1] == 2 for entries in log) and \
                    sum(map(len, log)) > swapped_at + 12:
                break
            time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join(60)
        text = httpx.get(server.url + "/metrics").text
    finally:
        stop.set()
        server.stop()
        registry.set_alias("churn", "prod", 1)
    learners = {1: models["v1"], 2: models["v2"]}
    for entries in log:
        assert entries, "a client got no answer"
        assert all(code == 200 for code, *_ in entries), entries
        versions = [v for _, v, _, _ in entries]
        assert versions == sorted(versions)  # never back to the old version
        assert versions[-1] == 2  # later answers come from the new version
        for _, version, row, predictions in entries:
            want = learners[version].predict_proba(
                {"X": test.iloc[[row]].reset_index(drop=True)}).tolist()
            np.testing.assert_allclose(predictions, want, rtol=RTOL)
    assert any(v == 1 for entries in log for _, v, _, _ in entries)
    assert metric(text, "stratumlite_serving_model_swaps_total") == 1
    assert metric(text, "stratumlite_serving_model_version") == 2


# ------------------------------------------------------------------ bad input, auth
def test_bad_inputs(models):
    test = models["test"]
    server = _server(models, max_payload_bytes=20_000)
    good = records(test.iloc[:2])
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            missing = [dict(good[0]), dict(good[1])]
            del missing[1]["contract"]
            r = post(client, {"records": missing})
            assert r.status_code == 422
            assert r.json()["error"] == "missing_column"
            assert r.json()["column"] == "contract" and "contract" in r.json()["detail"]

            r = post(client, {"columns": {c: [1.0] for c in COLUMNS if c != "tenure"}})
            assert r.status_code == 422 and r.json()["column"] == "tenure"

            wrong = [dict(good[0])]
            wrong[0]["monthly_charges"] = "a lot"
            r = post(client, {"records": wrong})
            assert r.status_code == 422
            assert r.json()["error"] == "invalid_value"
            assert r.json()["column"] == "monthly_charges"
            assert "'a lot'" in r.json()["detail"]

            wrong[0].update(monthly_charges=10.0, tenure=3.5)  # int column
            r = post(client, {"records": wrong})
            assert r.status_code == 422 and r.json()["column"] == "tenure"

            wrong[0].update(tenure=3, contract=["Month-to-month"])
            r = post(client, {"records": wrong})
            assert r.status_code == 422 and r.json()["column"] == "contract"

            for body in (b'{"records": [', b"not json", b"\xff\xfe", b"[" * 15_000):
                r = client.post("/v1/models/churn/predict", content=body,
                                headers={"content-type": "application/json"})
                assert r.status_code == 400, body
                assert r.json()["error"] == "malformed_json"

            for payload in ([1, 2], {"rows": good}, {"records": "x"}, {"records": [1]}):
                r = post(client, payload)
                assert r.status_code == 422, payload

            big = {"records": good * 200}
            assert len(json.dumps(big)) > 20_000
            r = post(client, big)
            assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

        with httpx.Client(base_url=server.url, timeout=60) as client:
            r = post(client, {"records": good}, name="nope")
            assert r.status_code == 404 and r.json()["error"] == "unknown_model"
            r = post(client, {"records": good, "version": 99})
            assert r.status_code == 404 and "no version 99" in r.json()["detail"]
            r = post(client, {"records": good, "alias": "staging"})
            assert r.status_code == 404 and "no alias 'staging'" in r.json()["detail"]
            r = post(client, {"records": good, "method": "fit"})
            assert r.status_code == 422 and r.json()["error"] == "unsupported_method"
            r = post(client, {"records": good, "method": "score"})
            assert r.status_code == 422

            # the server still works, also for an explicitly requested version
            r = post(client, {"records": good, "version": 2, "method": "predict_proba"})
            assert r.status_code == 200 and r.json()["version"] == 2
            np.testing.assert_allclose(
                r.json()["predictions"],
                models["v2"].predict_proba({"X": test.iloc[:2]}).tolist(), rtol=RTOL)
            r = post(client, {"records": good, "alias": "prod"})
            assert r.status_code == 200 and r.json()["version"] == 1
            r = post(client, {"records": []})
            assert r.status_code == 200 and r.json()["predictions"] == []
            text = client.get("/metrics").text
            assert metric(text, "stratumlite_serving_errors_total",
                          reason="invalid_value") >= 3
    finally:
        server.stop()


def test_token_protects_every_endpoint_but_health(models):
    server = _server(models, token="s3cret-token")
    good = {"records": records(models["test"].iloc[:1])}
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get("/health").status_code == 200
            for path in ("/v1/models", "/metrics"):
                r = client.get(path)
                assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith(
                    "Bearer")
                assert client.get(path, headers={"Authorization": "Bearer nope"}
                                  ).status_code == 401
            assert post(client, good).status_code == 401
            assert post(client, good, headers={"Authorization": "s3cret-token"}
                        ).status_code == 401
            auth = {"Authorization": "Bearer s3cret-token"}
            assert post(client, good, headers=auth).status_code == 200
            r = client.get("/v1/models", headers=auth)
            assert r.status_code == 200
            (info,) = r.json()["models"]
            assert info["name"] == "churn" and info["version"] == 1
            assert info["ref"] == "churn@prod"
            assert list(info["input"]["columns"]) == COLUMNS
            assert [v["version"] for v in info["registry_versions"]] == [1, 2]
            assert "stratumlite_serving_requests_total" in client.get(
                "/metrics", headers=auth).text
    finally:
        server.stop()


# ------------------------------------------------------------------ cache, metrics
def test_prediction_cache(models):
    test, v1 = models["test"], models["v1"]
    rows = test.iloc[:6]
    want = v1.predict_proba({"X": rows}).tolist()
    for enabled in (True, False):
        server = _server(models, cache_enabled=enabled, cache_size=1000)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                first = post(client, {"records": records(rows.iloc[:3]),
                                      "method": "predict_proba"})
                again = post(client, {"records": records(rows), "method": "predict_proba"})
                plain = post(client, {"records": records(rows.iloc[:3])})
                text = client.get("/metrics").text
        finally:
            server.stop()
        np.testing.assert_allclose(first.json()["predictions"], want[:3], rtol=RTOL)
        np.testing.assert_allclose(again.json()["predictions"], want, rtol=RTOL)
        assert plain.json()["predictions"] == v1.predict({"X": rows.iloc[:3]}).tolist()
        hits = metric(text, "stratumlite_serving_cache_hits_total")
        misses = metric(text, "stratumlite_serving_cache_misses_total")
        if enabled:  # 3 rows hit, then predict is another method: misses
            assert (hits, misses) == (3, 3 + 3 + 3)
            assert metric(text, "stratumlite_serving_batch_rows_sum") == 9
        else:
            assert (hits, misses) == (0, 0)
            assert metric(text, "stratumlite_serving_batch_rows_sum") == 12


def test_metrics_exposition(models):
    server = _server(models)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            post(client, {"records": records(models["test"].iloc[:2])})
            r = client.get("/metrics")
    finally:
        server.stop()
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("requests_total", "errors_total", "request_latency_seconds", "batch_rows",
                 "queue_depth", "cache_hits_total", "cache_misses_total"):
        assert f"# TYPE stratumlite_serving_{name} " in text
    assert metric(text, "stratumlite_serving_requests_total", code="200") == 1
    assert metric(text, "stratumlite_serving_request_latency_seconds_count") == 1
    assert 'stratumlite_serving_batch_rows_bucket{le="+Inf",model="churn"} 1' in text


# ------------------------------------------------------------------ CLI (subprocess)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serve_command(models):
    port = _free_port()
    env = {**os.environ, "STRATUMLITE_SERVE_TOKEN": "tok"}
    cmd = [sys.executable, "-m", "stratumlite.serving.cli", "serve", "churn:2", "--port",
           str(port), "--state-dir", str(models["config"].state_dir), "--log-level",
           "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        r = httpx.post(url + "/v1/models/churn/predict",
                       json={"records": records(models["test"].iloc[:2])},
                       headers={"Authorization": "Bearer tok"}, timeout=60)
        assert r.status_code == 200 and r.json()["version"] == 2
    finally:
        proc.terminate()
        proc.wait(30)


def test_cli_unknown_model_is_a_one_line_error(models, capsys):
    from typer.testing import CliRunner

    from stratumlite.serving.cli import app

    result = CliRunner().invoke(app, ["serve", "nope@prod", "--state-dir",
                                      str(models["config"].state_dir)])
    assert result.exit_code == 1
    assert "unknown model 'nope'" in result.output + getattr(result, "stderr", "")


# ------------------------------------------------------------------ units
def test_model_refs():
    assert ModelRef.parse("m") == ModelRef("m")
    assert ModelRef.parse("m@prod") == ModelRef("m", alias="prod")
    assert ModelRef.parse("m:12") == ModelRef("m", version=12)
    assert ModelRef.parse("ns:model") == ModelRef("ns:model")
    with pytest.raises(ValueError):
        ModelRef.parse("@prod")


def test_input_schema_dtypes():
    schema = InputSchema("X", {"when": "datetime64[ns]", "flag": "bool", "n": "Int64",
                               "s": "str", "x": "float32"})
    cols, n = schema.parse({"records": [
        {"when": "2024-01-02T03:04:05", "flag": True, "n": None, "s": "a", "x": 1},
        {"when": None, "flag": False, "n": 3, "s": None, "x": 2.5}]})
    frame = schema.build_frame(cols)
    assert n == 2
    assert frame.dtypes.astype(str).tolist() == ["datetime64[ns]", "bool", "Int64", "str",
                                                  "float32"]
    assert frame["when"][0] == pd.Timestamp("2024-01-02 03:04:05")
    assert pd.isna(frame["when"][1]) and pd.isna(frame["n"][0])
    for bad, column in (({"when": "yesterday-ish"}, "when"), ({"flag": 1}, "flag"),
                        ({"n": "3"}, "n"), ({"s": 3}, "s"), ({"x": True}, "x")):
        record = {"when": None, "flag": True, "n": 1, "s": "a", "x": 1.0, **bad}
        with pytest.raises(InputError) as info:
            schema.parse({"records": [record]})
        assert info.value.column == column


def test_aimd_controller():
    c = AIMDController(128, objective_s=0.1, increase=8)
    start = c.limit
    for _ in range(5):
        c.observe(c.limit, 0.01)  # full, fast batches: additive increase
    assert c.limit == start + 40
    before = c.limit
    c.observe(c.limit, 0.2)  # over budget: multiplicative decrease
    assert c.limit == int(before * 0.9)
    fixed = AIMDController(128, objective_s=0.1, adaptive=False)
    fixed.observe(1, 5.0)
    assert fixed.limit == 128


def test_settings_validation():
    assert ServingSettings(max_payload_bytes="2MB").max_payload_bytes == 2_000_000
    with pytest.raises(ValueError):
        ServingSettings(max_batch_rows=0)
    with pytest.raises(ValueError):
        ServingSettings(unknown=1)
    assert "s3cret" not in repr(ServingSettings(token="s3cret"))

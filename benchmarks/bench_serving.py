"""Benchmark of the model server: dynamic batching vs one predict per request.

Model: the telco churn example (``examples/kaggle/telco_churn.py``), its
``make_data_op()`` with the default choices (raw features through the
``TableVectorizer``, imputer + scaler + logistic regression), fitted on the
7,043 customers and registered in a temporary state directory.

Servers: ``stratumlite serve`` (``python -m stratumlite.serving.cli``) in a
subprocess on 127.0.0.1, so the load generator does not share its GIL:

* **batching**: dynamic batching on (adaptive, ``max_batch_rows`` 256,
  ``max_wait_ms`` 5), prediction cache off (every row is a miss anyway: the
  rows sent are distinct);
* **per-request**: the same server with ``--no-batching``: every request runs
  its own ``learner.predict`` (a new runtime session per call) in a pool of
  as many threads as cores.

Load: a closed-loop generator in this process (asyncio, raw HTTP/1.1
keep-alive connections: less client CPU than an HTTP library) with 1, 16
and 64 concurrent clients; each client sends one single-row request, waits
for the answer, sends the next, for ``--duration`` seconds (default 10) and
at most ``--max-requests`` requests per point. The rows are the churn table's
rows in turn, sent as JSON records (with ``churn: null``: the example's
DataOp drops the target column from the same table, so it is part of the
input schema, and its value is never used in predict mode).

Also measured in-process: single-row latency of ``learner.predict`` (a new
session per call) and of the server's persistent-session path
(``stratumlite.serving.Predictor``), and where the time of one
``learner.predict`` goes (input fingerprinting, threadpoolctl per task,
operator compute, the rest of the session/scheduler). One extra point runs
64 clients against a cache-enabled server with 256 hot rows.

Run with ``python -m benchmarks.bench_serving`` (``--duration``,
``--clients``). Results: ``benchmarks/results/serving.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "telco"


# ---------------------------------------------------------------- model
def fit_and_register(state_dir: Path):
    import stratumlite
    from examples.kaggle.telco_churn import make_data_op
    from stratumlite import Config
    from stratumlite.datasets import load_churn
    from stratumlite.registry_api import register

    warnings.filterwarnings("ignore", message="Found unknown categories")
    config = Config(state_dir=state_dir, verbose=0)
    df = load_churn()
    learner = stratumlite.make_learner(make_data_op(), config=config)
    start = time.perf_counter()
    learner.fit({"customers": df})
    fit_seconds = time.perf_counter() - start
    register(learner, NAME, alias="prod", config=config)
    rows = json.loads(df.assign(churn=None).to_json(orient="records"))
    choices = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in make_data_op(n_rows=50).skb.describe_defaults().items())
    return learner, df.assign(churn=None), rows, config, fit_seconds, choices


# ---------------------------------------------------------------- in-process
def _times(fn, n: int) -> list[float]:
    """``n`` timings of ``fn()`` in milliseconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def in_process(learner, frame, config, n: int) -> dict:
    """Single-row latency of learner.predict, of the persistent-session path and
    of skrub's own learner, and a breakdown of one learner.predict call."""
    from threadpoolctl import threadpool_limits

    from examples.kaggle.telco_churn import make_data_op
    from stratumlite.datasets import load_churn
    from stratumlite.runtime.session import Session
    from stratumlite.runtime.tasks import Binding, environment_key
    from stratumlite.serving import Predictor

    one = frame.iloc[[0]].reset_index(drop=True)
    env = {"customers": one}
    learner.predict(env)
    direct = _times(lambda: learner.predict(env), n)
    predictor = Predictor(learner, config)
    predictor.run("predict", env)
    fast = _times(lambda: predictor.run("predict", env), n)
    assert (predictor.run("predict", env) == learner.predict(env)).all()
    skrub_learner = make_data_op().skb.make_learner()
    skrub_learner.fit({"customers": load_churn()})
    skrub_times = _times(lambda: skrub_learner.predict(env), n)

    fingerprint = _times(lambda: environment_key(env, {}), n)
    try:  # the runtime's per-task thread budget (threadpoolctl + numba)
        from stratumlite.runtime.scheduler import _with_budget

        tp = _times(lambda: _with_budget(1, lambda: None), n)
    except ImportError:
        tp = _times(lambda: threadpool_limits(limits=1).__exit__(None, None, None), n)

    # learner.predict replicated, to read its task records (median per task)
    per_task: dict[str, list[float]] = {}
    overhead: list[float] = []  # wall time of a replicated predict minus its compute
    for _ in range(max(3, n // 3)):
        start = time.perf_counter()
        with Session(learner.config or config, kind="predict", hooks=[]) as session:
            binding = session.bind(dict(env))
            fit_binding = Binding({}, key=learner.fit_key_, label="fit")
            for key, impl in learner.state_.items():
                session.states[(fit_binding.key, key)] = impl
            task = session.request(learner.plan.output, "predict", binding, fit_binding)
            session.run([task])
            for i, r in enumerate(session.records):
                per_task.setdefault(f"{i}: {r.task.node.op.label}", []).append(
                    1000 * r.seconds)
        overhead.append(1000 * (time.perf_counter() - start
                                - sum(r.seconds for r in session.records)))
    tasks_ms = {k: statistics.median(v) for k, v in per_task.items()}
    n_tasks = len(tasks_ms)
    compute_ms = sum(tasks_ms.values())
    direct_ms = statistics.median(direct)
    return {
        "learner_predict_ms": direct_ms,
        "learner_predict_times_ms": direct,
        "persistent_session_ms": statistics.median(fast),
        "persistent_session_times_ms": fast,
        "skrub_learner_predict_ms": statistics.median(skrub_times),
        "breakdown": {
            "tasks_per_predict": n_tasks,
            "operator_compute_ms": compute_ms,
            "input_fingerprint_ms": statistics.median(fingerprint),
            "thread_budget_per_task_ms": statistics.median(tp),
            "thread_budget_total_ms": statistics.median(tp) * n_tasks,
            "overhead_ms": statistics.median(overhead),
            "session_scheduler_rest_ms": max(0.0, statistics.median(overhead)
                                             - statistics.median(fingerprint)
                                             - statistics.median(tp) * n_tasks),
            "tasks_ms": tasks_ms,
        },
    }


# ---------------------------------------------------------------- servers
def start_server(state_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stratumlite.serving.cli", "serve", f"{NAME}@prod",
           "--port", str(port), "--state-dir", str(state_dir), "--log-level", "warning",
           "--poll-ms", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
        try:
            status, _ = asyncio.run(_once(port, "GET", "/health", b""))
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise TimeoutError("server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- load generator
class _Conn:
    """One keep-alive HTTP/1.1 connection (enough of the protocol for uvicorn)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            key, _, value = line.decode().partition(":")
            key = key.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, data

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def _once(port, method, path, body):
    conn = _Conn(port)
    try:
        return await conn.request(method, path, body)
    finally:
        conn.close()


async def _load(port: int, bodies: list[bytes], clients: int, duration: float,
                max_requests: int) -> dict:
    path = f"/v1/models/{NAME}/predict"
    latencies: list[float] = []
    codes: dict[int, int] = {}
    counter = iter(range(max_requests))
    start = time.perf_counter()
    end = start + duration

    async def client():
        conn = _Conn(port)
        try:
            while time.perf_counter() < end:
                i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                status, _ = await conn.request("POST", path, bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - t0)
                codes[status] = codes.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    ok = codes.get(200, 0)
    lat = sorted(latencies)

    def q(p):
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "ok": ok, "codes": codes,
            "seconds": elapsed, "throughput_rps": ok / elapsed, "p50_ms": q(0.50),
            "p99_ms": q(0.99), "mean_ms": 1000 * statistics.fmean(lat) if lat else None}


def _metrics(port: int) -> dict:
    _, text = asyncio.run(_once(port, "GET", "/metrics", b""))
    out = {}
    for line in text.decode().splitlines():
        if line.startswith(("stratumlite_serving_batch_rows_sum",
                            "stratumlite_serving_batch_rows_count",
                            "stratumlite_serving_batch_seconds_sum",
                            "stratumlite_serving_request_latency_seconds_sum",
                            "stratumlite_serving_request_latency_seconds_count",
                            "stratumlite_serving_batch_limit_rows",
                            "stratumlite_serving_cache_hits_total",
                            "stratumlite_serving_cache_misses_total")):
            name, value = line.rsplit(" ", 1)
            out[name.split("{")[0].replace("stratumlite_serving_", "")] = float(value)
    return out


def run_points(state_dir, bodies, mode, extra, clients_list, duration, max_requests,
               around_single=None):
    """Points at each client count on one server; ``around_single()`` is called
    just before and just after the 1-client point (in-process reference timings
    taken in the same window: the machine's load changes)."""
    port = _free_port()
    proc = start_server(state_dir, port, *extra)
    points = []
    try:
        asyncio.run(_load(port, bodies, 4, 1.0, 200))  # warm-up
        for clients in clients_list:
            if clients == 1 and around_single is not None:
                around_single()
            before = _metrics(port)
            point = asyncio.run(_load(port, bodies, clients, duration, max_requests))
            after = _metrics(port)
            if clients == 1 and around_single is not None:
                around_single()
            batches = after.get("batch_rows_count", 0) - before.get("batch_rows_count", 0)
            rows = after.get("batch_rows_sum", 0) - before.get("batch_rows_sum", 0)
            point["mode"] = mode
            point["mean_batch_rows"] = rows / batches if batches else None
            if batches:
                point["mean_batch_predict_ms"] = 1000 * (
                    after.get("batch_seconds_sum", 0) - before.get("batch_seconds_sum", 0)
                ) / batches
            served = after.get("request_latency_seconds_count", 0) - before.get(
                "request_latency_seconds_count", 0)
            if served:
                point["mean_server_latency_ms"] = 1000 * (
                    after.get("request_latency_seconds_sum", 0)
                    - before.get("request_latency_seconds_sum", 0)) / served
            point["batch_limit_rows"] = after.get("batch_limit_rows")
            hits = after.get("cache_hits_total", 0) - before.get("cache_hits_total", 0)
            misses = after.get("cache_misses_total", 0) - before.get("cache_misses_total", 0)
            if hits + misses:
                point["cache_hit_rate"] = hits / (hits + misses)
            print(f"  {mode:>12} {clients:>3} clients: {point['throughput_rps']:8.1f} req/s "
                  f"p50 {point['p50_ms']:8.1f} ms  p99 {point['p99_ms']:8.1f} ms  "
                  f"mean batch {point['mean_batch_rows'] or 0:.1f} rows  codes "
                  f"{point['codes']}", flush=True)
            points.append(point)
    finally:
        stop_server(proc)
    return points


# ---------------------------------------------------------------- report
def _markdown(res: dict) -> str:
    ip = res["in_process"]
    bd = ip["breakdown"]
    lines = [
        "# Serving benchmark",
        "",
        f"Model: telco churn example, default choices ({res['model']}); fitted in "
        f"{res['fit_seconds']:.1f} s. Machine: {res['machine']['cpus']} cores, load average "
        f"{res['machine']['loadavg_start']} at start and {res['machine']['loadavg_end']} at "
        "the end (other work was running: absolute figures are noisy).",
        f"Each point: closed-loop clients, one single-row request at a time, "
        f"{res['duration_s']:.0f} s, at most {res['max_requests']} requests, loopback.",
        "",
        "## Throughput and latency",
        "",
        "| server | clients | req/s | p50 ms | p99 ms | mean batch rows | non-200 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in res["points"]:
        bad = sum(v for k, v in p["codes"].items() if int(k) != 200)
        lines.append(
            f"| {p['mode']} | {p['clients']} | {p['throughput_rps']:.1f} | {p['p50_ms']:.1f} | "
            f"{p['p99_ms']:.1f} | {p['mean_batch_rows'] or 0:.1f} | {bad} |")
    s = res["summary"]
    lines += [
        "",
        "## Targets",
        "",
        f"* throughput at {s['top_clients']} clients, batching / per-request: "
        f"**{s['speedup_64']:.1f}x** "
        f"(target >= 10x): {'met' if s['speedup_64'] >= 10 else 'MISSED'}",
        f"* p99 at {s['top_clients']} clients with batching: **{s['p99_64_ms']:.0f} ms** "
        f"(target <= 50 ms): "
        f"{'met' if s['p99_64_ms'] <= 50 else 'MISSED'}",
        f"* single-row latency served (1 client, batching on, p50, HTTP + JSON + batching "
        f"+ validation included) / direct `learner.predict` in process "
        f"(median, timed just before and after that point: "
        f"{s['direct_around_single_ms']:.1f} ms): **{s['single_row_ratio']:.2f}x** "
        f"(target <= 1.2x): {'met' if s['single_row_ratio'] <= 1.2 else 'MISSED'}. "
        f"The machine's load moves both by tens of percent; measured inside the same "
        f"requests instead, the server added {s['single_row_overhead_ms']:.1f} ms (HTTP, "
        f"JSON, validation, queue) to a mean predict of "
        f"{s['single_row_predict_mean_ms']:.1f} ms: mean client latency / mean predict = "
        f"**{s['single_row_overhead_ratio']:.3f}x**.",
        "",
        "## Single-row latency in process",
        "",
        f"* `learner.predict` (new session per call): median {ip['learner_predict_ms']:.1f} ms "
        f"(min {min(ip['learner_predict_times_ms']):.1f})",
        f"* persistent session (`stratumlite.serving.Predictor`, what the server runs): "
        f"median {ip['persistent_session_ms']:.1f} ms (min "
        f"{min(ip['persistent_session_times_ms']):.1f})",
        f"* skrub's own learner (`.skb.make_learner()`, same choices): median "
        f"{ip['skrub_learner_predict_ms']:.1f} ms",
        "",
        f"Where one `learner.predict` goes ({bd['tasks_per_predict']} tasks; medians over "
        f"replicated calls, so the parts do not add up exactly): operator "
        f"compute {bd['operator_compute_ms']:.1f} ms, everything else "
        f"{bd['overhead_ms']:.1f} ms = input fingerprint "
        f"{bd['input_fingerprint_ms']:.1f} ms, per-task thread budget (threadpoolctl + "
        f"numba) {bd['thread_budget_per_task_ms']:.2f} ms x {bd['tasks_per_predict']} tasks = "
        f"{bd['thread_budget_total_ms']:.1f} ms, session + scheduler rest "
        f"{bd['session_scheduler_rest_ms']:.1f} ms. Per task: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in bd["tasks_ms"].items()) + ".",
        "",
    ]
    if res.get("cache_point"):
        p = res["cache_point"]
        lines += [
            "## Prediction cache",
            "",
            f"64 clients over 256 hot rows, cache on: {p['throughput_rps']:.1f} req/s, p50 "
            f"{p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, hit rate "
            f"{100 * p.get('cache_hit_rate', 0):.1f}%.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeat", type=int, default=30, help="in-process timings")
    parser.add_argument("--no-cache-point", action="store_true")
    args = parser.parse_args(argv)
    loadavg_start = [round(x, 1) for x in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        state_dir = Path(tmp)
        print("fitting the telco churn learner...", flush=True)
        learner, frame, rows, config, fit_seconds, choices = fit_and_register(state_dir)
        bodies = [json.dumps({"records": [r]}).encode() for r in rows]
        print("in-process single-row latency...", flush=True)
        ip = in_process(learner, frame, config, args.repeat)
        print(f"  learner.predict {ip['learner_predict_ms']:.1f} ms, persistent session "
              f"{ip['persistent_session_ms']:.1f} ms; breakdown {ip['breakdown']}", flush=True)
        env = {"customers": frame.iloc[[0]].reset_index(drop=True)}
        around: list[float] = []

        def around_single():
            around.extend(_times(lambda: learner.predict(env), args.repeat // 2 or 1))

        points = []
        points += run_points(state_dir, bodies, "batching",
                             ["--cache-size", "0", "--max-batch-rows", "256"], args.clients,
                             args.duration, args.max_requests, around_single)
        points += run_points(state_dir, bodies, "per-request",
                             ["--cache-size", "0", "--no-batching"], args.clients,
                             args.duration, args.max_requests)
        cache_point = None
        if not args.no_cache_point:
            (cache_point,) = run_points(state_dir, bodies[:256], "batching+cache",
                                        ["--cache-size", "100000"], [64], args.duration,
                                        args.max_requests)

    def find(mode, clients):
        return next((p for p in points if p["mode"] == mode and p["clients"] == clients),
                    None)

    top = max(args.clients)
    b64, r64, b1 = find("batching", top), find("per-request", top), find("batching", 1)
    overhead = None
    if b1 and b1.get("mean_batch_predict_ms") is not None:
        overhead = b1["mean_ms"] - b1["mean_batch_predict_ms"]
    summary = {
        "top_clients": top,
        "single_row_mean_ms": b1["mean_ms"] if b1 else None,
        "single_row_predict_mean_ms": b1.get("mean_batch_predict_ms") if b1 else None,
        "single_row_overhead_ms": overhead,
        "single_row_overhead_ratio": (b1["mean_ms"] / b1["mean_batch_predict_ms"])
        if overhead is not None else None,
        "speedup_64": b64["throughput_rps"] / r64["throughput_rps"] if b64 and r64 else None,
        "p99_64_ms": b64["p99_ms"] if b64 else None,
        "direct_around_single_ms": statistics.median(around) if around else None,
        "single_row_ratio": (b1["p50_ms"] / statistics.median(around))
        if b1 and around else None,
        "single_row_vs_persistent_ratio": (b1["p50_ms"] / ip["persistent_session_ms"])
        if b1 else None,
    }
    result = {
        "benchmark": "serving",
        "model": choices,
        "fit_seconds": fit_seconds,
        "duration_s": args.duration,
        "max_requests": args.max_requests,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_start": loadavg_start,
                    "loadavg_end": [round(x, 1) for x in os.getloadavg()]},
        "in_process": ip,
        "points": points,
        "cache_point": cache_point,
        "summary": summary,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "serving.md").write_text(_markdown(result))
    print(_markdown(result))
    return result


if __name__ == "__main__":
    main()

"""Prometheus metrics of the model server, in the text exposition format.

A tiny, dependency-free implementation of the three metric types the server
needs (counter, gauge, histogram), each with labels, rendered by
:meth:`Metrics.render` as Prometheus' text format version 0.0.4 (what
``GET /metrics`` answers). Updates take a lock, so the event loop and the
batch worker threads may both record.

Metric names (all prefixed ``stratumlite_serving_``):

==============================  =========  =====================================
name                            type       labels / meaning
==============================  =========  =====================================
``requests_total``              counter    model, method, code: answered requests
``errors_total``                counter    model, reason: answers >= 400
``request_latency_seconds``     histogram  model: time from request to answer
``batch_rows``                  histogram  model: rows per executed batch
``batch_seconds``               histogram  model: time of one batch's predict
``queue_depth``                 gauge      model: requests waiting for a batch
``batch_limit_rows``            gauge      model: current adaptive batch limit
``cache_hits_total``            counter    model: rows answered from the cache
``cache_misses_total``          counter    model: rows that had to be predicted
``model_version``               gauge      model: version being served
``model_swaps_total``           counter    model: hot swaps to a new version
==============================  =========  =====================================

>>> m = Metrics()
>>> m.requests.inc(model="churn", method="predict", code="200")
>>> m.latency.observe(0.004, model="churn")
>>> text = m.render()
>>> 'stratumlite_serving_requests_total{code="200",method="predict",model="churn"} 1' in text
True
>>> 'stratumlite_serving_request_latency_seconds_bucket{le="0.005",model="churn"} 1' in text
True
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left

__all__ = ["Counter", "Gauge", "Histogram", "Metrics"]

PREFIX = "stratumlite_serving_"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)
ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...], extra: tuple[str, str] | None = None) -> str:
    items = list(pairs) if extra is None else sorted((*pairs, extra))
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, lock: threading.Lock):
        self.name = PREFIX + name
        self.help = help_text
        self._lock = lock

    @staticmethod
    def _key(labels: dict) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, str(v)) for k, v in labels.items()))

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name, help_text, lock):
        super().__init__(name, help_text, lock)
        self._values: dict = {}

    def inc(self, amount: float = 1, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels) -> float:
        return self._values.get(self._key(labels), 0)

    def render(self) -> list[str]:
        lines = self._header()
        for key, v in sorted(self._values.items()):
            lines.append(f"{self.name}{_labels(key)} {_number(v)}")
        return lines


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def set(self, value: float, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value


class Histogram(_Metric):
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(self, name, help_text, lock, buckets):
        super().__init__(name, help_text, lock)
        self.buckets = tuple(buckets)
        self._values: dict = {}

    def observe(self, value: float, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            entry = self._values.get(key)
            if entry is None:
                entry = self._values[key] = [[0] * (len(self.buckets) + 1), 0.0, 0]
            entry[0][bisect_left(self.buckets, value)] += 1
            entry[1] += value
            entry[2] += 1

    def count(self, **labels) -> int:
        entry = self._values.get(self._key(labels))
        return 0 if entry is None else entry[2]

    def render(self) -> list[str]:
        lines = self._header()
        for key, (counts, total, n) in sorted(self._values.items()):
            running = 0
            for bound, c in zip((*self.buckets, math.inf), counts):
                running += c
                lines.append(
                    f"{self.name}_bucket{_labels(key, ('le', _number(bound)))} {running}")
            lines.append(f"{self.name}_sum{_labels(key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(key)} {n}")
        return lines


class Metrics:
    """Every metric the server exports (see the module docstring)."""

    def __init__(self):
        lock = threading.Lock()
        self.requests = Counter("requests_total", "Answered prediction requests.", lock)
        self.errors = Counter("errors_total", "Requests answered with an error.", lock)
        self.latency = Histogram("request_latency_seconds",
                                 "Time from receiving a request to its answer.", lock,
                                 LATENCY_BUCKETS)
        self.batch_rows = Histogram("batch_rows", "Rows per executed batch.", lock,
                                    ROWS_BUCKETS)
        self.batch_seconds = Histogram("batch_seconds", "Run time of one batch's predict.",
                                       lock, LATENCY_BUCKETS)
        self.queue_depth = Gauge("queue_depth", "Requests waiting for a batch.", lock)
        self.batch_limit = Gauge("batch_limit_rows", "Current adaptive batch size limit.",
                                 lock)
        self.cache_hits = Counter("cache_hits_total", "Rows answered from the cache.", lock)
        self.cache_misses = Counter("cache_misses_total",
                                    "Rows not in the cache (predicted).", lock)
        self.model_version = Gauge("model_version", "Version being served.", lock)
        self.swaps = Counter("model_swaps_total", "Hot swaps to another version.", lock)
        self._all = [self.requests, self.errors, self.latency, self.batch_rows,
                     self.batch_seconds, self.queue_depth, self.batch_limit,
                     self.cache_hits, self.cache_misses, self.model_version, self.swaps]

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"

"""Prometheus metrics of the service, in the text exposition format (version 0.0.4), written by hand.

``GET /api/v1/metrics`` answers :meth:`Registry.render`. Counters and the histogram count since the process
started (Prometheus handles restarts); labels never carry account names (bounded cardinality, nothing about a
client leaks):

| metric | type | labels | counts |
| --- | --- | --- | --- |
| ``janus_decision_latency_seconds`` | histogram | | server time of each decision (parse to answer) |
| ``janus_decisions_total`` | counter | ``action`` (the env action index), ``side`` (hold, buy, sell) | decisions answered, by the action executed and the order sent |
| ``janus_vetoes_total`` | counter | ``by`` (basal_ganglia, shield) | proposals the No-Go/logic gate or the shield replaced |
| ``janus_rule_violations_total`` | counter | ``rule`` | proposals whose rule truth was below the shield's τ |
| ``janus_halts_total`` | counter | ``reason`` (the breaker, ``manual``, or the failing part) | halts |
| ``janus_http_responses_total`` | counter | ``code`` | answers by HTTP status |
| ``janus_accounts_halted`` | gauge | | accounts halted now |
| ``janus_model_info`` | gauge | ``version``, ``engine`` | 1 for the model being served |
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds (seconds) of the decision-latency histogram's buckets (``+Inf`` is added)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values)) + "}"


def _number(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def _key(self, labels: Sequence[str]) -> tuple[str, ...]:
        key = tuple(str(v) for v in labels)
        if len(key) != len(self.label_names):
            raise ValueError(f"{self.name}: expected labels {self.label_names}, got {key}")
        return key

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted(self.values.items())
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount


class Gauge(_Metric):
    """A value that goes up and down, per label set."""

    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = float(value)

    def clear(self) -> None:
        with self._lock:
            self.values.clear()


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count (no labels)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self.bounds = tuple(sorted(float(b) for b in buckets)) + (math.inf,)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        with self._lock:
            for i, bound in enumerate(self.bounds):
                if value <= bound:
                    self.counts[i] += 1
                    break
            self.sum += value
            self.count += 1

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            running = 0
            for bound, n in zip(self.bounds, self.counts):
                running += n
                lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
            lines += [f"{self.name}_sum {_number(self.sum)}", f"{self.name}_count {self.count}"]
        return lines


class Registry:
    """The service's metrics (module docstring table)."""

    def __init__(self) -> None:
        self.latency = Histogram("janus_decision_latency_seconds", "Server time of each decision, seconds.",
                                 LATENCY_BUCKETS)
        self.decisions = Counter("janus_decisions_total",
                                 "Decisions answered, by the action executed and the side of the order sent.",
                                 ("action", "side"))
        self.vetoes = Counter("janus_vetoes_total", "Proposals replaced by the Go/No-Go gate or the LTN shield.",
                              ("by",))
        self.violations = Counter("janus_rule_violations_total",
                                  "Proposals whose rule truth was below the shield's threshold, by rule.", ("rule",))
        self.halts = Counter("janus_halts_total", "Account halts, by reason.", ("reason",))
        self.responses = Counter("janus_http_responses_total", "HTTP answers, by status code.", ("code",))
        self.halted = Gauge("janus_accounts_halted", "Accounts halted now.")
        self.model = Gauge("janus_model_info", "The model being served (value 1).", ("version", "engine"))
        self.all = (self.latency, self.decisions, self.vetoes, self.violations, self.halts, self.responses,
                    self.halted, self.model)

    def render(self) -> str:
        """Every metric in the text exposition format."""
        lines: list[str] = []
        for metric in self.all:
            lines += metric.render()
        return "\n".join(lines) + "\n"


def halt_label(reason: str) -> str:
    """The ``reason`` label of a halt: the breaker or part before the first ``:`` (``manual`` for the kill switch
    through the API), so the label set stays small."""
    return reason.split(":", 1)[0].strip() or "unknown"


__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Counter", "Gauge", "Histogram", "Registry", "halt_label"]

"""GASF + GADF throughput: JANUS ``gaf_images`` vs pyts ``GramianAngularField``.

One unit is one series turned into both images (GASF and GADF). The named
baseline is pyts (``GramianAngularField(method="summation")`` followed by
``GramianAngularField(method="difference")``, default ``sample_range=(-1, 1)``,
float64), timed in the same process on the same float64 inputs (random walks,
seed 0). Cases: 1,024 windows of 64 and 16,384 windows of 60.

JANUS rows, for float64 and float32 output:

* ``serial`` / ``parallel`` — ``parallel=False`` (the default: a plain loop
  over the batch) vs ``parallel=True`` (``prange`` on numba's thread pool);
* ``fresh`` — every call allocates its output, like pyts does; ``out=`` —
  ``gaf_images(x, out=buf)`` writes into one preallocated array every call.
  The difference is first-touch cost: the OS zeroes each new page before we
  write it, which costs more than computing the images;

Rates are series/s: the median and the best of ``--repeats`` timed calls
(after one warm-up call). On a shared machine the best is the better estimate
of what the code can do, the median of what you get; ``× pyts`` divides
medians. The last two columns are the max absolute difference to pyts'
float64 images and the max absolute error against the definition evaluated
with ``arccos`` in float64 (``cos(φ_i + φ_j)``, ``sin(φ_i − φ_j)``,
``φ = arccos(x̃)``) on the first ``ACCURACY_WINDOWS`` windows.

Usage (pyts is not a JANUS dependency; it lives in ``.bench-venv``)::

    PYTHONPATH=. .bench-venv/bin/python benchmarks/bench_gaf.py [--repeats 7] [--cases 1024x64,16384x60]

Without pyts the baseline rows print "pyts not installed".
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wrappers.gaf import gaf_images  # noqa: E402

NOT_INSTALLED = "pyts not installed"
PUBLISHED_PYTS = 45_000.0
"""pyts series/s for both images at 1,024 × 64 quoted in issue 3 (not measured here)."""

ACCURACY_WINDOWS = 256
"""Windows per case checked against the arccos definition."""

Row = tuple[str, str, str, str, str, str]


def arccos_reference(x: np.ndarray) -> np.ndarray:
    """GASF = cos(φi + φj), GADF = sin(φi − φj), φ = arccos(2(x − min)/(max − min) − 1), float64, (B, 2, n, n)."""
    lo = x.min(axis=1, keepdims=True)
    phi = np.arccos(2.0 * (x - lo) / (x.max(axis=1, keepdims=True) - lo) - 1.0)
    gasf = np.cos(phi[:, :, None] + phi[:, None, :])
    gadf = np.sin(phi[:, :, None] - phi[:, None, :])
    return np.stack([gasf, gadf], axis=1)


def timed(fn: Callable[[], np.ndarray], units: int, repeats: int) -> tuple[float, float, np.ndarray]:
    """(median, best) units/s over ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()  # warm-up: JIT compilation (or cache load), thread pool start
    rates = []
    for _ in range(repeats):
        del result
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        rates.append(units / (time.perf_counter() - t0))
    return statistics.median(rates), max(rates), result


def pyts_both(x: np.ndarray) -> np.ndarray:
    """pyts GASF and GADF stacked as (B, 2, n, n)."""
    from pyts.image import GramianAngularField

    gasf = GramianAngularField(method="summation").transform(x)
    gadf = GramianAngularField(method="difference").transform(x)
    return np.stack([gasf, gadf], axis=1)


def bench_case(batch: int, n: int, repeats: int, have_pyts: bool) -> list[Row]:
    """Table rows (implementation, median, best, × pyts, max |Δ| vs pyts, max err vs arccos) for one case."""
    x = np.random.default_rng(0).standard_normal((batch, n)).cumsum(axis=1)
    exact = arccos_reference(x[:ACCURACY_WINDOWS])

    def error(out: np.ndarray) -> str:
        return f"{np.abs(out[:ACCURACY_WINDOWS] - exact).max():.1e}"

    rows: list[Row] = []
    reference = None
    base = None
    if have_pyts:
        base, best, reference = timed(lambda: pyts_both(x), batch, repeats)
        rows.append(("pyts GASF+GADF (float64)", f"{base:,.0f}", f"{best:,.0f}", "1.0×", "—", error(reference)))
    else:
        rows.append(("pyts GASF+GADF (float64)", NOT_INSTALLED, "—", "—", "—", "—"))

    def ours(label: str, fn: Callable[[], np.ndarray]) -> None:
        median, best, out = timed(fn, batch, repeats)
        ratio = f"{median / base:,.1f}×" if base else "—"
        diff = f"{np.abs(out - reference).max():.1e}" if reference is not None else "—"
        rows.append((f"JANUS {label}", f"{median:,.0f}", f"{best:,.0f}", ratio, diff, error(out)))

    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        for parallel in (False, True):
            mode = "parallel" if parallel else "serial"
            ours(f"{name} {mode}, fresh", lambda: gaf_images(x, dtype=dtype, parallel=parallel))
        buf = np.empty((batch, 2, n, n), dtype=dtype)
        for parallel in (False, True):
            mode = "parallel" if parallel else "serial"
            ours(f"{name} {mode}, out=", lambda: gaf_images(x, parallel=parallel, out=buf))
        del buf
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per row")
    parser.add_argument("--cases", default="1024x64,16384x60", help="comma-separated BATCHxN")
    args = parser.parse_args(argv)
    try:
        cases = [(int(b), int(n)) for b, n in (case.split("x") for case in args.cases.split(","))]
    except ValueError:
        parser.error(f"--cases must look like 1024x64,16384x60, got {args.cases!r}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    have_pyts = importlib.util.find_spec("pyts") is not None
    if have_pyts:
        import pyts

        pyts_version = f"pyts {pyts.__version__}"
    else:
        pyts_version = NOT_INSTALLED
    print(f"# GASF+GADF series/s — {os.cpu_count()} CPUs, numba {numba.__version__} "
          f"({numba.get_num_threads()} threads), numpy {np.__version__}, "
          f"{pyts_version}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"# gaf_images defaults to the serial kernel (parallel=False); "
          f"issue 3 quotes pyts at ~{PUBLISHED_PYTS:,.0f} series/s for 1024×64")
    print()
    print("| windows × n | implementation | series/s median | series/s best | × pyts (median) "
          "| max abs diff vs pyts | max abs err vs arccos |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for batch, n in cases:
        for impl, median, best, ratio, diff, err in bench_case(batch, n, args.repeats, have_pyts):
            print(f"| {batch:,} × {n} | {impl} | {median} | {best} | {ratio} | {diff} | {err} |", flush=True)
    print()
    print(f"load average {os.getloadavg()[0]:.2f} at end; numba threading layer {numba.threading_layer()}")


if __name__ == "__main__":
    main()

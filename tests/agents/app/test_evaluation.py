"""evaluate.py and agents.app.evaluation: the protocol by hand on scripted episodes, real envs, the CLI end to end."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import envs_registry  # noqa: F401
from agents.app.evaluation import (
    ANNUALIZED_FIELDS,
    Annualization,
    annualization,
    annualization_notes,
    check_breaker_settings,
    check_event_inside,
    episode_plan,
    event_notes,
    make_eval_env,
    new_eval_dir,
    paired_rows,
    paired_table,
    run_episode,
    summarize,
    summary_table,
    walk_forward_starts,
    write_outputs,
)
from agents.app.metrics import CALENDARS
from janus_env.checks import BAD_VALUE
from janus_env.samples import sample_path

HOLD, BUY = 0, 1


class ScriptedEnv(gym.Env):
    """Equity follows a script per seed; every BUY fills 10 shares of 15 at 2 bps slippage; info as JanusLOBEnv's."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    action_space = spaces.Discrete(3)

    def __init__(self, paths: dict[int, list[float]], halt: dict[int, str] | None = None) -> None:
        self.paths, self.halt = paths, halt or {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._seed, self._t = int(seed), 0
        return np.zeros(1, np.float32), {"equity": self.paths[self._seed][0]}

    def step(self, action: int):
        path = self.paths[self._seed]
        self._t += 1
        equity = path[self._t]
        last = self._t == len(path) - 1
        halted = last and self._seed in self.halt
        info = {"equity": equity, "exec_qty": 10.0 if action == BUY else 0.0,
                "rejected_qty": 5.0 if action == BUY else 0.0, "slippage_bps": 2.0 if action == BUY else 0.0,
                "halted": halted, "halt_reason": self.halt.get(self._seed) if halted else None, "ruin": equity <= 0}
        return np.zeros(1, np.float32), 0.0, equity <= 0 or halted, last and not halted and equity > 0, info


def _timing(steps: int) -> Annualization:
    return Annualization(23.4, "test", CALENDARS["equities"], "test", steps)


# ------------------------------------------------------------------ statistics of one strategy, by hand

PATHS = {0: [100.0, 101.0, 100.0, 102.0, 103.0],  # +3%, drawdown 1/101
         1: [100.0, 99.0, 98.0, 99.0, 99.0],  # -1%, drawdown 2/100 (halted at the end)
         2: [100.0, 100.0, 100.0, 100.0, 102.0],  # +2%
         3: [100.0, 101.0, 102.0, 101.0, 100.0]}  # 0%, drawdown 2/102


def test_summarize_by_hand() -> None:
    env = ScriptedEnv(PATHS, halt={1: "fear: activation 0.9 > 0.7"})
    results = [run_episode(env, lambda obs: BUY, seed) for seed in range(4)]
    row = summarize(results, _timing(4))
    r = np.array([0.03, -0.01, 0.02, 0.0])
    sd = math.sqrt((0.02**2 + 0.02**2 + 0.01**2 + 0.01**2) / 3)
    n_year = 252 * 23400 / 23.4 / 4  # 63,000 four-step episodes a year
    assert row["episodes"] == 4 and row["mean_steps"] == 4
    assert row["return_bps"] == pytest.approx(100.0)
    assert row["return_bps_ci95"] == pytest.approx(1e4 * 3.182446305284263 * sd / 2)
    assert row["return_bps_low"] == pytest.approx(100.0 - row["return_bps_ci95"])
    assert row["annualized_return_pct"] == pytest.approx(100 * math.expm1(n_year * np.mean(np.log1p(r))))
    assert row["sharpe"] == pytest.approx(r.mean() / sd * math.sqrt(n_year))
    assert row["sharpe_episode"] == pytest.approx(r.mean() / sd)  # what the printed table shows
    assert row["max_drawdown_pct"] == pytest.approx(100 * 2 / 100)  # the worst episode: seed 1 (2/102 in seed 3)
    assert row["fill_rate"] == pytest.approx(10 / 15)
    assert row["avg_slippage_bps"] == pytest.approx(2.0)
    assert (row["halts"], row["ruin"], row["halt_reasons"]) == (1, 0, "fear×1")
    assert math.isnan(row["violation_rate"]) and math.isnan(row["executed_violations"])  # no shield: not scored
    assert math.isnan(row["event_covered"])
    assert row["periods_per_year"] == pytest.approx(252_000)


def test_ruin_is_reported_not_a_crash(tmp_path: Path) -> None:
    env = ScriptedEnv({0: [100_000.0, 50_000.0, -2_000.0, 10.0]})
    result = run_episode(env, lambda obs: BUY, 0)
    assert result.ruin and result.steps == 2  # the env ended the episode at equity <= 0
    row = {"scenario": "x", "strategy": "y", **summarize([result], _timing(3))}
    assert row["ruin"] == 1
    assert row["return_bps"] == pytest.approx(-10_200.0)
    assert row["max_drawdown_pct"] == pytest.approx(102.0)
    written = write_outputs(tmp_path, [row], [], {"x": {"y": result.equity}}, {"x": None}, summary_table([row]))
    assert all(p.stat().st_size > 0 for p in written)
    assert "| x | y | -10200.0 | " in summary_table([row])


def test_fill_rate_of_a_strategy_that_never_trades_is_blank(tmp_path: Path) -> None:
    env = make_eval_env("Janus-LOB-v0", {"episode_steps": 20}, shield=False, breakers=False)
    timing = annualization(env)
    idle = summarize([run_episode(env, lambda obs: HOLD, 1000)], timing)
    busy = summarize([run_episode(env, lambda obs: BUY, 1000)], timing)
    assert math.isnan(idle["fill_rate"]) and math.isnan(idle["avg_slippage_bps"])
    assert idle["return_bps"] == 0.0
    assert 0.0 < busy["fill_rate"] <= 1.0
    rows = [{"scenario": "ou", "strategy": "idle", **idle}]
    assert summary_table(rows).splitlines()[-1].split(" | ")[-2] == "—"  # the fill % cell
    write_outputs(tmp_path, rows, [], {}, {}, "")
    with open(tmp_path / "metrics.csv") as fh:
        assert next(csv.DictReader(fh))["fill_rate"] == ""
    assert json.loads((tmp_path / "metrics.json").read_text())[0]["fill_rate"] is None


def test_paired_rows_by_hand() -> None:
    rows = paired_rows("ou", {"agent": [0.0003, 0.0001, 0.0004], "random": [0.0002, 0.0, 0.0002]})
    assert len(rows) == 1
    row = rows[0]  # differences 1, 1, 2 bps
    assert row["baseline"] == "random" and row["n"] == 3
    assert row["diff_bps"] == pytest.approx(4 / 3)
    half = 4.302652729911275 * math.sqrt(1 / 3) / math.sqrt(3)
    assert (row["ci_low_bps"], row["ci_high_bps"]) == pytest.approx((4 / 3 - half, 4 / 3 + half))
    assert row["p_value"] == pytest.approx(0.0571909584, rel=1e-6)  # t = 4 with 2 degrees of freedom
    assert paired_rows("ou", {"random": [0.0]}) == []  # no agent, nothing to pair
    assert paired_table(rows).splitlines()[-1] == "| ou | agent − random | 1.3 | [-0.1, 2.8] | 0.057 | 3 |"
    tiny = [{**row, "diff_bps": -0.04, "ci_low_bps": -0.04, "ci_high_bps": 0.3, "p_value": 2e-4}]
    assert paired_table(tiny).splitlines()[-1] == "| ou | agent − random | 0.0 | [0.0, 0.3] | <0.001 | 3 |"


def test_summary_table_is_rounded_for_reading() -> None:
    row = {"scenario": "ou", "strategy": "momentum", "episodes": 4, "return_bps": -1.7349, "return_bps_ci95": 3.2449,
           "annualized_return_pct": -4.37199, "sharpe": -3.0, "sharpe_episode": math.nan, "max_drawdown_pct": 0.123456, "halts": 1, "ruin": 0,
           "fill_rate": 0.98765, "avg_slippage_bps": 0.87654}
    assert summary_table([row]).splitlines()[-1] == \
        "| ou | momentum | -1.7 ± 3.2 | -4.4 | — | 0.12 | 1/4 | 0/4 | 99 | 0.88 |"


# ------------------------------------------------------------------ real envs: annualization, windows, events


def test_annualization_from_the_simulator_and_the_data() -> None:
    sim = annualization(make_eval_env("Janus-LOB-v0", {}, shield=False, breakers=False))
    assert (sim.step_seconds, sim.calendar.name, sim.steps_per_episode) == (23.4, "equities", 1000)
    assert sim.periods_per_year == pytest.approx(252_000) and sim.episodes_per_year == pytest.approx(252)
    cases = {"btc_usd_hourly": (3600.0, "crypto", 8760.0), "btc_book_15_levels": (60.0, "crypto", 525_600.0),
             "btc_usd_daily": (86_400.0, "crypto", 365.0)}
    for name, (step, cal, periods) in cases.items():
        env = make_eval_env("Janus-LOB-v0", {"scenario": "historical", "data": str(sample_path(name)),
                                             "episode_steps": 50}, shield=False, breakers=False)
        timing = annualization(env)
        assert (timing.step_seconds, timing.calendar.name) == (step, cal), name
        assert timing.periods_per_year == pytest.approx(periods), name
        assert annualization(env, "equities").calendar.name == "equities"
    env = make_eval_env("Janus-LOB-v0", {"scenario": "historical", "data": str(sample_path("lobster_aapl")),
                                         "episode_steps": 4, "window": 2}, shield=False, breakers=False)
    timing = annualization(env)
    source = env.unwrapped._market.source
    bounds = source.bounds
    gaps = np.diff(source.data.time[bounds - 1])
    assert timing.calendar.name == "equities"
    assert timing.step_seconds == pytest.approx(float(np.median(gaps[gaps > 0])))
    assert env.unwrapped.step_seconds == timing.step_seconds


@pytest.mark.parametrize(("episodes", "error"), [(0, ValueError), (2.5, TypeError), (True, TypeError),
                                                  ("3", TypeError)])
def test_bad_episodes(episodes: Any, error: type[Exception]) -> None:
    # 2.5 was cut to 2 episodes and "3" read as 3 before; the bool and 0 raised ValueError
    env = make_eval_env("Janus-LOB-v0", {"scenario": "ou", "episode_steps": 20}, shield=False, breakers=False)
    message = BAD_VALUE.format(name="episodes", expected="an int >= 1", value=episodes)
    with pytest.raises(error, match=re.escape(message)):
        episode_plan(env, episodes, 0)
    assert episode_plan(env, np.int64(2), 7).episodes == [(7, None), (8, None)]


def test_walk_forward_windows_do_not_overlap() -> None:
    env = make_eval_env("Janus-LOB-v0", {"scenario": "historical", "data": str(sample_path("btc_book_15_levels")),
                                         "data_split": (0.7, 1.0), "episode_steps": 40}, shield=False, breakers=False)
    # 600 snapshots: the test split is rows 420..599; an episode needs window (32) + 40 rows
    starts = walk_forward_starts(env)
    assert starts == [420, 460, 500]  # (180 − 32 − 40) // 40 + 1 = 3 windows
    intervals = [(s + 31, s + 31 + 40) for s in starts]  # rows of the decisions' return intervals
    for (lo, hi), (next_lo, _) in zip(intervals, intervals[1:]):
        assert hi == next_lo  # consecutive: the close of one window is the open of the next
    assert intervals[-1][1] <= 599
    plan = episode_plan(env, 5, 1000)
    assert plan.episodes == [(1000, 420), (1001, 460), (1002, 500)]
    assert "3 non-overlapping test window(s) of 40 steps fit in rows 420..599; evaluating 3 (asked for 5)" in plan.note
    last_mid = None
    for seed, start in plan.episodes:
        result = run_episode(env, lambda obs: HOLD, seed, start)
        _, info = env.reset(seed=seed, options={"start": start})
        if last_mid is not None:
            assert info["mid"] == last_mid  # the data row where the previous window ended
        assert result.steps == 40
        for _ in range(40):
            _, _, _, _, info = env.step(HOLD)
        last_mid = info["mid"]


def test_stress_event_falls_inside_the_episode() -> None:
    env = make_eval_env("Janus-LOB-v0", {"scenario": "flash_crash", "episode_steps": 60}, shield=False, breakers=False)
    assert check_event_inside(env) == (24, 33)  # floor(0.4·60), + max(1, floor(0.15·60))
    short = make_eval_env("Janus-LOB-v0", {"scenario": "squeeze", "episode_steps": 10}, shield=False, breakers=False)
    assert check_event_inside(short) == (4, 5)  # --steps 10 moves the event along
    calm_env = make_eval_env("Janus-LOB-v0", {"episode_steps": 60}, shield=False, breakers=False)
    assert check_event_inside(calm_env) is None

    def mids(scenario: str) -> np.ndarray:
        e = make_eval_env("Janus-LOB-v0", {"scenario": scenario, "episode_steps": 60}, shield=False, breakers=False)
        _, info = e.reset(seed=3)
        out = [info["mid"]]
        for _ in range(60):
            out.append(e.step(HOLD)[4]["mid"])
        return np.array(out)

    calm, crash = mids("ou"), mids("flash_crash")  # flash_crash = ou + the event, same seed
    assert np.array_equal(calm[:25], crash[:25])  # the same market until the event starts (mid i follows step i − 1)
    assert np.any(calm[25:35] != crash[25:35])  # and the crash happens inside the evaluated steps
    late = make_eval_env("Janus-LOB-v0", {"scenario": "flash_crash", "episode_steps": 60, "event_start": 0.95},
                         shield=False, breakers=False)
    with pytest.raises(ValueError, match=re.escape("the flash_crash event spans steps 57..66 but the episode has 60 "
                                                   "steps (0..59)")):
        check_event_inside(late)


def test_event_covered_counts_episodes_still_running_at_the_event_end() -> None:
    env = ScriptedEnv({0: [100.0] * 11, 1: [100.0] * 5}, halt={1: "volatility: 4x"})
    results = [run_episode(env, lambda obs: HOLD, seed) for seed in (0, 1)]
    row = summarize(results, _timing(10), event=(4, 6))
    assert row["event_covered"] == 1  # seed 1 stopped after 4 steps
    assert row["stopped_before_event"] == 1  # ... at the event's first market step: before a decision saw it
    assert summarize(results, _timing(10), event=(3, 6))["stopped_before_event"] == 0  # inside the event
    assert event_notes([{"scenario": "x", "strategy": "s", **row}]) == [
        "note: x/s: 1 of 2 episode(s) stopped before the stress event ended, 1 of them before it began "
        "(volatility×1)"]


def test_a_stress_scenario_is_not_annualized() -> None:
    """Every episode holds the designed event: the row keeps the per-episode figures and leaves out what scales
    episodes to a year, and the summary says why."""
    env = ScriptedEnv(PATHS)
    results = [run_episode(env, lambda obs: BUY, seed) for seed in range(4)]
    calm, stress = summarize(results, _timing(4)), summarize(results, _timing(4), event=(1, 2))
    assert not calm["stress_event"] and stress["stress_event"]
    for field in ANNUALIZED_FIELDS:
        assert np.isfinite(calm[field]) and math.isnan(stress[field]), field
    for field in ("return_bps", "return_bps_ci95", "sharpe_episode", "max_drawdown_pct", "var_95_bps"):
        assert stress[field] == calm[field], field
    rows = [{"scenario": "ou", "strategy": "agent", **calm}, {"scenario": "flash_crash", "strategy": "agent", **stress},
            {"scenario": "flash_crash", "strategy": "random", **stress}]
    assert annualization_notes(rows) == [
        "note: flash_crash: not annualized (ann. %, and Sharpe, Sortino, Calmar in CSV/JSON): every episode holds "
        "the designed stress event, so a year of such episodes is not a year of trading"]
    assert annualization_notes(rows[:1]) == []
    assert summary_table(rows).splitlines()[3].split("|")[4].strip() == "—"  # ann. % of the flash_crash row


def test_shield_and_breakers_switch_separately() -> None:
    def chain(env: gym.Env) -> list[str]:
        names = []
        while hasattr(env, "env"):
            names.append(type(env).__name__)
            env = env.env
        return names

    both = chain(make_eval_env("Janus-LOB-v0", {"episode_steps": 10}))
    assert both[:2] == ["Amygdala", "LTNShield"]
    assert "Amygdala" not in chain(make_eval_env("Janus-LOB-v0", {"episode_steps": 10}, breakers=False))
    no_shield = make_eval_env("Janus-LOB-v0", {"episode_steps": 10}, shield=False, breakers={"vol_ratio": 4.0})
    assert "LTNShield" not in chain(no_shield) and type(no_shield).__name__ == "Amygdala"
    assert no_shield.config.vol_ratio == 4.0
    assert check_breaker_settings({"vol_ratio": 4, "fear_threshold": None}) == {"vol_ratio": 4, "fear_threshold": None}
    with pytest.raises(ValueError, match=re.escape("Unknown breaker setting 'volratio'; expected one of")):
        check_breaker_settings({"volratio": 4})
    with pytest.raises(ValueError, match=re.escape("Expected `vol_ratio` to be a finite number > 0 or None, got -")):
        check_breaker_settings({"vol_ratio": -1})


def test_each_evaluation_gets_its_own_folder(tmp_path: Path) -> None:
    first, second = new_eval_dir(tmp_path), new_eval_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert (tmp_path / "latest").resolve() == second.resolve()


# ------------------------------------------------------------------ the CLI


def test_baselines_only_run_writes_a_new_folder_each_time(tmp_path: Path, run_script) -> None:
    first = run_script("evaluate.py", "--scenarios", "ou,flash_crash", "--episodes", "2", "--steps", "50",
                       "--hp", "env_kwargs.lot=50", "--out", str(tmp_path))
    assert "| scenario | strategy | return bps ± 95% CI | ann. % | Sharpe/ep | max DD % |" in first.stdout
    assert "flash_crash: step 23.4 s" in first.stdout and "event at steps 20..27" in first.stdout
    folder = (tmp_path / "latest").resolve()
    assert str(folder) in first.stdout
    rows = json.loads((folder / "metrics.json").read_text())
    assert {r["strategy"] for r in rows} == {"buy_and_hold", "mean_reversion", "momentum", "random"}
    assert {r["scenario"] for r in rows} == {"ou", "flash_crash"}
    assert all(r["steps_per_episode"] == 50 and r["mean_steps"] <= 50 for r in rows)
    assert all(r["executed_violations"] == 0 for r in rows)  # the shield lets no violation through
    for name in ("metrics.csv", "summary.md", "equity_ou.png", "equity_flash_crash.png", "returns.png"):
        assert (folder / name).stat().st_size > 0
    assert not (folder / "paired.json").exists()  # no agent: nothing to pair
    second = run_script("evaluate.py", "--scenarios", "ou", "--episodes", "1", "--steps", "30", "--baselines",
                        "momentum", "--no-glass-box", "--out", str(tmp_path))
    assert "shield off, breakers off" in second.stdout
    later = (tmp_path / "latest").resolve()
    assert later != folder and not (later / "equity_flash_crash.png").exists()  # no stale plots beside new numbers
    assert len(json.loads((folder / "metrics.json").read_text())) == 8  # the first evaluation is untouched


def test_trained_run_is_compared_with_each_baseline(tmp_path: Path, run_script) -> None:
    run_script("train.py", "--algo", "dqn", "--timesteps", "300", "--run-dir", str(tmp_path), "--run-name", "r",
               "--no-progress", "--hp", "learning_starts=50", "--hp", "env_kwargs.episode_steps=100")
    result = run_script("evaluate.py", str(tmp_path / "r"), "--scenarios", "regime", "--episodes", "2", "--baselines",
                        "random,momentum", "--no-breakers")
    assert "agent − random" in result.stdout and "shield on, breakers off" in result.stdout
    folder = tmp_path / "r" / "eval" / "latest"
    rows = json.loads((folder / "metrics.json").read_text())
    assert [r["strategy"] for r in rows] == ["agent", "random", "momentum"]
    assert rows[0]["latency_p50_us"] > 0
    paired = json.loads((folder / "paired.json").read_text())
    assert [p["baseline"] for p in paired] == ["random", "momentum"] and all(p["n"] == 2 for p in paired)
    agent, random_ = rows[0]["return_bps"], rows[1]["return_bps"]
    assert paired[0]["diff_bps"] == pytest.approx(agent - random_)


def test_historical_walk_forward(tmp_path: Path, run_script) -> None:
    data = sample_path("btc_book_15_levels")
    result = run_script("evaluate.py", "--scenarios", "historical", "--data", str(data), "--episodes", "5",
                        "--steps", "40", "--baselines", "momentum", "--out", str(tmp_path), "--no-glass-box")
    assert "3 non-overlapping test window(s) of 40 steps" in result.stdout
    assert "step 60 s (median spacing of the data's time stamps), crypto calendar" in result.stdout
    rows = json.loads((tmp_path / "latest" / "metrics.json").read_text())
    assert rows[0]["episodes"] == 3 and rows[0]["calendar"] == "crypto"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["no/such/run"], "no model at no/such/run/model.zip"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str, run_script) -> None:
    result = run_script("evaluate.py", *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenarios", "moon"], "unknown baseline(s)/scenario(s) ['moon']"),
        (["--scenarios", "historical"], "the historical scenario needs --data PATH"),
        (["--baselines", "none"], "nothing to evaluate"),
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--breaker", "volratio=4"], "Unknown breaker setting 'volratio'; expected one of"),
        (["--breaker", "vol_ratio=-1"], "Expected `vol_ratio` to be a finite number > 0 or None, got -1"),
        (["--breaker", "fear_threshold=2"], "Expected `fear_threshold` to be a number in (0, 1) or None, got 2"),
        (["--breaker", "vol_ratio"], "Expected --breaker NAME=VALUE (VALUE in YAML syntax, null disables), got "
                                     "'vol_ratio'"),
        (["--breaker", "vol_ratio=4", "--no-breakers"], "--breaker needs the breakers on"),
        (["--breaker", "vol_ratio=4", "--no-glass-box"], "--breaker needs the breakers on"),
        (["--hp", "lot=10"], "evaluate.py --hp sets env settings only (env_kwargs.NAME=VALUE), got 'lot=10'"),
        (["--hp", "env_kwargs.lot"], "Expected --hp KEY=VALUE (VALUE in YAML syntax), got 'env_kwargs.lot'"),
        (["--hp", "env_kwargs.lott=10", "--scenarios", "ou"], "ou: Unknown market parameter(s) ['lott']"),
        (["--hp", "env_kwargs.lot=-5", "--scenarios", "ou"], "ou: Expected `lot` to be a finite number > 0, got -5"),
        (["--scenarios", "flash_crash", "--hp", "env_kwargs.event_start=0.95", "--steps", "60"],
         "flash_crash: the flash_crash event spans steps 57..66 but the episode has 60 steps"),
        (["--calendar", "moon"], "argument --calendar: invalid choice: 'moon'"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture,
                                            tmp_path: Path) -> None:
    import evaluate

    try:
        code = evaluate.main([*args, "--out", str(tmp_path)])
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing left behind

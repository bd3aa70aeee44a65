"""``benchmarks/bench_ablation.py``: the grid, its resumability and the report's paired statistics.

The report is checked on synthetic result files against a computation by hand (per-seed differences, Student-t
quantiles from a table, ``statistics.stdev``); resumability on real baseline jobs (no training, a few seconds);
the whole path of every trained variant (train, evaluate, resume, evaluate a saved model again) in a ``@slow``
test.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
T_975 = {2: 4.302652729749464, 3: 3.182446305284263, 4: 2.7764451051977987, 7: 2.3646242510102993}
"""Student-t 97.5% quantiles by degrees of freedom (statistical tables)."""


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_ablation", ROOT / "benchmarks" / "bench_ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ablation"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_ablation", None)


def _result(variant: str, market: str, seed: int, returns: list[float], config_hash: str = "h",
            **extra: Any) -> dict[str, Any]:
    episodes = [{"seed": 10_000 + 1000 * seed + k, "start": None, "return_bps": r, "steps": 200, "trades": 10,
                 "nogo_vetoes": 1, "logic_vetoes": 0, "violations": 0, "proposed": 200, "halted": False}
                for k, r in enumerate(returns)]
    return {"variant": variant, "market": market, "seed": seed, "config_hash": config_hash, "episodes": episodes,
            "returns_bps": returns, **extra}


def _markets(bench: Any, *seeds: int) -> tuple[Any, ...]:
    return (bench.Market("m1", tuple(range(seeds[0])), {}), bench.Market("m2", tuple(range(seeds[1])), {}))


def test_the_per_seed_paired_interval_is_the_one_computed_by_hand(bench: Any) -> None:
    janus = {0: [10.0, 30.0, -5.0], 1: [50.0, 20.0, 40.0], 2: [0.0, 5.0, 10.0]}
    other = {0: [0.0, 10.0, 5.0], 1: [40.0, 40.0], 2: [-20.0, 5.0, 1.0]}  # seed 1: its third episode is missing
    results = [_result("janus", "m1", s, r) for s, r in janus.items()]
    results += [_result("no-nogo", "m1", s, r) for s, r in other.items()]
    report = bench.build_report(results, variants=["janus", "no-nogo"], markets=_markets(bench, 3, 3))

    # by hand: the difference per seed over the episodes both played, then a t-interval over the three seeds
    d = [statistics.fmean(a - b for a, b in zip(janus[s], other[s])) for s in (0, 1, 2)]
    assert d == pytest.approx([(10 + 20 - 10) / 3, (10 - 20) / 2, (20 + 0 + 9) / 3])
    mean, sd = statistics.fmean(d), statistics.stdev(d)
    half = T_975[2] * sd / math.sqrt(3)
    c = report.per_seed[("no-nogo", "m1")]
    assert (c.n, c.mean, c.low, c.high) == (3, pytest.approx(mean), pytest.approx(mean - half),
                                            pytest.approx(mean + half))
    t = mean / (sd / math.sqrt(3))
    from scipy import stats

    assert c.p == pytest.approx(2 * stats.t.sf(abs(t), 2))
    # per episode: the 8 paired episodes pooled
    e = [a - b for s in (0, 1, 2) for a, b in zip(janus[s], other[s])]
    half_e = T_975[7] * statistics.stdev(e) / math.sqrt(len(e))
    ce = report.per_episode[("no-nogo", "m1")]
    assert (ce.n, ce.mean, ce.high) == (8, pytest.approx(statistics.fmean(e)),
                                         pytest.approx(statistics.fmean(e) + half_e))
    # the tables print them
    row = next(line for line in report.markdown.splitlines() if line.startswith("| no-nogo |") and "[" in line)
    assert f"{mean:.1f} [{mean - half:.1f}, {mean + half:.1f}] p={c.p:.2f}" in row
    means = [statistics.fmean(janus[s]) for s in (0, 1, 2)]
    assert f"| janus | {statistics.fmean(means):.1f} ± {statistics.stdev(means):.1f} | missing (0/3) |" in (
        report.markdown)


def test_all_markets_pools_the_per_seed_differences_of_every_market(bench: Any) -> None:
    results = [_result("janus", "m1", 0, [10.0]), _result("ppo-mlp", "m1", 0, [4.0]),
               _result("janus", "m1", 1, [0.0]), _result("ppo-mlp", "m1", 1, [3.0]),
               _result("janus", "m2", 0, [7.0, 9.0]), _result("ppo-mlp", "m2", 0, [1.0, 1.0])]
    report = bench.build_report(results, variants=["janus", "ppo-mlp"], markets=_markets(bench, 2, 1))
    d = [6.0, -3.0, 7.0]
    c = report.per_seed[("ppo-mlp", "all")]
    half = T_975[2] * statistics.stdev(d) / math.sqrt(3)
    assert (c.n, c.mean, c.low) == (3, pytest.approx(statistics.fmean(d)), pytest.approx(statistics.fmean(d) - half))
    assert report.per_seed[("ppo-mlp", "m2")].n == 1  # one seed: a difference, no interval
    assert "| ppo-mlp | 1.5 [" in report.markdown and "| 7.0 (n = 1) |" in report.markdown


def test_missing_cells_are_marked_and_stale_results_left_out(bench: Any) -> None:
    results = [_result("janus", "m1", 0, [1.0], "a0"), _result("janus", "m1", 1, [3.0], "a1"),
               _result("random", "m1", 0, [-5.0], "old")]
    expected = {"janus__m1__s0": "a0", "janus__m1__s1": "a1", "random__m1__s0": "r0",
                **{f"{v}__m2__s{s}": "x" for v in ("janus", "random") for s in (0, 1)}}
    report = bench.build_report(results, expected=expected, variants=["janus", "random"],
                                markets=_markets(bench, 3, 2))
    assert report.stale == ["random__m1__s0"]
    assert "| janus | 2.0 ± 1.4 (2/3) | missing (0/2) |" in report.markdown
    assert "| random | missing (0/3) | missing (0/2) |" in report.markdown
    assert "| random | missing | missing | missing |" in report.markdown  # no comparison without its results
    assert "Left out: 1 stale result(s)" in report.markdown and "random__m1__s0" in report.markdown
    # a result of a job the selection does not hold (e.g. --max-seeds 2 with a third seed on disk) is not stale
    report = bench.build_report([*results, _result("janus", "m1", 2, [9.0], "a2")], expected=expected,
                                variants=["janus", "random"], markets=_markets(bench, 3, 2))
    assert report.stale == ["random__m1__s0"] and report.outside == ["janus__m1__s2"]
    assert "| janus | 2.0 ± 1.4 (2/3) |" in report.markdown and "Not shown: 1 result(s)" in report.markdown


def test_diagnostics_count_decisions_vetoes_and_training_speed(bench: Any) -> None:
    results = [_result("janus", "m1", s, [1.0, 2.0], train_s=100.0 + s, train_cpu_s=90.0, steps=1024, eval_s=2.0)
               for s in (0, 1)]
    report = bench.build_report(results, variants=["janus"], markets=_markets(bench, 2, 1))
    d = report.diagnostics["janus"]
    assert d["runs"] == 2 and d["train_s"] == 100.5
    assert d["fps"] == pytest.approx((1024 / 100 + 1024 / 101) / 2)
    assert d["trade_share"] == pytest.approx(10 / 200) and d["nogo_veto_rate"] == pytest.approx(1 / 200)


def test_a_malformed_result_file_is_refused_by_name(bench: Any, tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps({"variant": "janus"}))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'results' / 'x.json'}: not an ablation result "
                                                   "(missing ['market', 'seed', 'config_hash', 'episodes'])")):
        bench.load_results(tmp_path)


# --------------------------------------------------------------------------- the grid and its jobs

TINY = {"scenario": "ou", "window": 128, "warmup": 128, "episode_steps": 20}


def _grid(bench: Any, tmp_path: Path, episodes: int = 1, variants: tuple[str, ...] = ("janus", "hold", "random"),
          **kwargs: Any) -> list[Any]:
    chosen = [dataclasses.replace(v, markets=None) for v in bench.VARIANTS if v.name in variants]
    settings = bench.Settings(tmp_path, timesteps=1024, eval_episodes=episodes)
    jobs, _ = bench.build_grid(settings, chosen, (bench.Market("tiny", (0, 1), {**TINY, **kwargs}),))
    return jobs


def test_a_rerun_skips_up_to_date_results_and_reruns_stale_ones(bench: Any, tmp_path: Path) -> None:
    jobs = sorted((j for j in _grid(bench, tmp_path) if j.variant in ("hold", "random") and j.seed == 0),
                  key=lambda j: j.variant)  # hold, random
    assert [bench.run_job(j, tmp_path)[1] for j in jobs] == ["evaluated", "evaluated"]
    hold = json.loads(bench.result_path(tmp_path, jobs[0]).read_text())
    assert hold["returns_bps"] == [0.0] and hold["episodes"][0]["steps"] == 20
    assert hold["episodes"][0]["seed"] == bench.EVAL_SEED and hold["config_hash"] == jobs[0].config_hash
    before = {j.key: bench.result_path(tmp_path, j).read_bytes() for j in jobs}
    assert [bench.run_job(j, tmp_path)[1] for j in jobs] == ["skipped", "skipped"]
    assert {j.key: bench.result_path(tmp_path, j).read_bytes() for j in jobs} == before

    more = [j for j in _grid(bench, tmp_path, episodes=2) if j.key in before]
    assert [bench.status(tmp_path, j) for j in more] == ["stale", "stale"]
    assert [bench.run_job(j, tmp_path)[1] for j in more] == ["evaluated", "evaluated"]
    random = json.loads(bench.result_path(tmp_path, more[1]).read_text())
    assert len(random["returns_bps"]) == 2 and random["returns_bps"][0] == json.loads(before[more[1].key])[
        "returns_bps"][0]  # the same first episode: same seed, same actions


def test_the_hash_follows_the_extractor_defaults_the_run_would_use(bench: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.extractor import JanusExtractor

    variants = ("janus", "no-vision", "ppo-mlp", "hold")
    before = {j.key: j.config_hash for j in _grid(bench, tmp_path, variants=variants)}
    janus = next(j for j in _grid(bench, tmp_path, variants=variants) if j.variant == "janus")
    used = janus.config["train"]["used"]["extractor"]
    assert used["class"] == "agents.extractor:JanusExtractor" and used["kwargs"]["d_model"] == 32
    defaults = list(JanusExtractor.__init__.__defaults__)
    defaults[1] = 48  # d_model's default
    monkeypatch.setattr(JanusExtractor.__init__, "__defaults__", tuple(defaults))
    after = {j.key: j.config_hash for j in _grid(bench, tmp_path, variants=variants)}
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["janus__tiny__s0", "janus__tiny__s1"]  # CombinedExtractor runs and baselines keep theirs


def test_an_added_argument_at_its_former_behaviour_keeps_every_hash(bench: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``JanusExtractor(vision=...)`` came after the grid's results: at ``True`` (what the class always built) it is
    not hashed, so those results stay up to date; ``no-gaf`` (``False``) hashes it, and so would a new default."""
    from agents.app.config import resolve_hyperparams
    from agents.extractor import JanusExtractor

    jobs = {j.key: j for j in _grid(bench, tmp_path, variants=("janus", "no-gaf", "series-patches"))}
    janus, no_gaf = jobs["janus__tiny__s0"], jobs["no-gaf__tiny__s0"]
    assert "vision" not in janus.config["train"]["used"]["extractor"]["kwargs"]
    assert no_gaf.config["train"]["used"]["extractor"]["kwargs"]["vision"] is False
    assert no_gaf.config["train"]["hyperparams"]["policy_kwargs"]["features_extractor_kwargs"] == {
        "vision": False, "ts_patch": 1}
    assert no_gaf.train_hash != janus.train_hash
    # janus-ppo ships without the video and with series patches (series-patches); the grid's full brain sets the
    # video and one token per step back (FULL_BRAIN) and hashes as before those changes
    assert jobs["series-patches__tiny__s0"].config["train"]["hyperparams"] == resolve_hyperparams(
        "janus-ppo", bench.ENV_ID, None, bench.market_overrides(bench.Market("tiny", (0,), TINY)))
    assert set(bench.FULL_BRAIN) <= set(janus.config["train"]["hp"])
    assert janus.config["train"]["hyperparams"]["policy_kwargs"]["features_extractor_kwargs"] == {
        "vision": True, "ts_patch": 1}
    before = json.loads(json.dumps(janus.config))
    for text in bench.FULL_BRAIN:
        before["train"]["hp"].remove(text)
    del before["train"]["hyperparams"]["policy_kwargs"]["features_extractor_kwargs"]
    assert bench.stable_hash(before) == janus.config_hash
    monkeypatch.setitem(bench.ADDED_ARGUMENTS, "agents.extractor:JanusExtractor", {})  # as if vision were hashed
    assert next(j for j in _grid(bench, tmp_path, variants=("janus",))).config_hash != janus.config_hash
    monkeypatch.undo()
    # a run that leaves vision unset hashes the class's default: at True (the former behaviour) it is left out, a
    # new default (False) would be hashed
    params = {"policy_kwargs": {"features_extractor_class": "agents.extractor:JanusExtractor"}}
    assert "vision" not in bench.used_arguments("janus-dqn", params)["extractor"]["kwargs"]
    defaults = list(JanusExtractor.__init__.__defaults__)
    assert defaults[-1] is True  # vision, the last argument
    monkeypatch.setattr(JanusExtractor.__init__, "__defaults__", (*defaults[:-1], False))
    assert bench.used_arguments("janus-dqn", params)["extractor"]["kwargs"]["vision"] is False
    assert next(j for j in _grid(bench, tmp_path, variants=("janus",))).config_hash == janus.config_hash  # sets it


def test_a_setting_at_the_class_default_is_not_hashed_any_other_is(bench: Any, tmp_path: Path) -> None:
    """``no-gaf`` pins ``ts_patch=1`` (the class's default) since the config reads patches of 4: it hashes as it did
    without the pin under the former config; the shipped value (4) is hashed, through its text and its arguments."""
    name = "agents.extractor:JanusExtractor"
    assert bench.hashed_settings(name, {"ts_patch": 1, "vision": True, "d_model": 48}) == {"d_model": 48}
    assert bench.hashed_settings(name, {"ts_patch": 4, "vision": False}) == {"ts_patch": 4, "vision": False}
    assert bench.hashed_settings("", {"ts_patch": 1}) == {"ts_patch": 1}  # no class named: kept as given
    jobs = {j.variant: j for j in _grid(bench, tmp_path, variants=("janus", "no-gaf", "series-patches")) if j.seed == 0}
    no_gaf, patches = jobs["no-gaf"], jobs["series-patches"]
    former = json.loads(json.dumps(no_gaf.config))  # the same run before the pin, when the config had no ts_patch
    former["train"]["hp"].remove(bench.STEP_TOKENS)
    former["train"]["hyperparams"]["policy_kwargs"]["features_extractor_kwargs"] = {"vision": False}
    assert bench.stable_hash(former) == no_gaf.config_hash
    assert no_gaf.config["train"]["used"]["extractor"]["kwargs"]["ts_patch"] == 1
    assert patches.config["train"]["used"]["extractor"]["kwargs"]["ts_patch"] == 4
    assert patches.config_hash != no_gaf.config_hash and patches.train_hash != no_gaf.train_hash


def test_variants_differ_from_the_full_agent_by_their_switches_only(bench: Any, tmp_path: Path) -> None:
    jobs = {j.variant: j for j in _grid(bench, tmp_path, variants=("janus", "no-vision", "no-logic", "no-nogo",
                                                                    "ppo-mlp", "logic-in-training",
                                                                    "shield-observes")) if j.seed == 0}
    full = jobs["janus"].config["train"]["hyperparams"]
    assert full["shield"] is True and full["shield_training"] == "none" and full["lambda_logic"] == 0
    assert jobs["janus"].config["eval"]["glass_box"]["shield"] is True  # deployed behind the shield
    # no-logic: the full agent's own run (one training), evaluated without the shield
    assert jobs["no-logic"].train_hash == jobs["janus"].train_hash
    assert jobs["no-logic"].config["eval"]["glass_box"]["shield"] is False
    for name, mode in (("logic-in-training", "enforce"), ("shield-observes", "observe")):
        params = jobs[name].config["train"]["hyperparams"]
        assert (params["shield_training"], params["lambda_logic"]) == (mode, 2.0)
        assert {k: v for k, v in params.items() if k not in ("shield_training", "lambda_logic")} == {
            k: v for k, v in full.items() if k not in ("shield_training", "lambda_logic")}
        assert jobs[name].config["eval"]["glass_box"]["shield"] is True
    assert jobs["no-nogo"].config["train"]["used"]["gate"]["tau_veto"] == 1.0
    assert jobs["janus"].config["train"]["used"]["gate"]["tau_veto"] == 0.7
    assert jobs["no-vision"].config["train"]["used"]["extractor"]["class"].endswith(":CombinedExtractor")
    # every variant plays the same episodes of the same market
    assert len({json.dumps(j.config["eval"]["env_kwargs"], sort_keys=True) for j in jobs.values()}) == 1
    assert len({j.config["eval"]["first_seed"] for j in jobs.values()}) == 1


def test_the_dqn_rows_differ_by_their_switches_and_run_on_their_markets_only(bench: Any, tmp_path: Path) -> None:
    from agents.app.config import resolve_hyperparams

    jobs = {j.variant: j for j in _grid(bench, tmp_path, variants=("janus", "janus-dqn", "janus-dqn-unshielded",
                                                                    "dqn-mlp")) if j.seed == 0}
    shipped = jobs["janus-dqn"].config["train"]["hyperparams"]
    assert (shipped["shield"], shipped.get("shield_training", "enforce"), shipped["lambda_logic"]) == (True, "enforce",
                                                                                                       2.0)
    unshielded = jobs["janus-dqn-unshielded"].config["train"]["hyperparams"]
    assert (unshielded["shield_training"], unshielded["lambda_logic"]) == ("none", 0.0)
    assert {k: v for k, v in unshielded.items() if k not in ("shield_training", "lambda_logic")} == {
        k: v for k, v in shipped.items() if k not in ("shield_training", "lambda_logic")}
    assert jobs["janus-dqn-unshielded"].config["eval"]["glass_box"]["shield"] is True  # decides behind it
    assert jobs["dqn-mlp"].config["train"]["algo"] == "dqn"
    assert len({json.dumps(j.config["eval"]["env_kwargs"], sort_keys=True) for j in jobs.values()}) == 1
    # they run on their markets only, and the report marks the other markets "—", not "missing"
    only = bench.Variant("only-m1", baseline="hold", markets=("m1",))
    settings = bench.Settings(tmp_path, eval_episodes=1)
    grid, _ = bench.build_grid(settings, (bench.VARIANTS[0], only),
                               (bench.Market("m1", (0,), TINY), bench.Market("m2", (0,), TINY)))
    assert sorted((j.variant, j.market) for j in grid) == [("janus", "m1"), ("janus", "m2"), ("only-m1", "m1")]
    report = bench.build_report([], expected={j.key: j.config_hash for j in grid}, variants=["janus", "only-m1"],
                                markets=(bench.Market("m1", (0,), TINY), bench.Market("m2", (0,), TINY)))
    assert "| only-m1 | missing (0/1) | — |" in report.markdown
    assert {v.name: v.markets for v in bench.VARIANTS if v.algo and "dqn" in v.algo} == {
        "janus-dqn": ("ou-edge",), "janus-dqn-unshielded": ("ou-edge",), "janus-dqn-no-gaf": ("ou-edge",),
        "janus-dqn-series-patches": ("ou-edge", "toxic-squeeze"), "janus-dqn-flat": ("ou-edge", "toxic-squeeze"),
        "janus-dqn-symlog": ("ou-edge", "toxic-squeeze"), "janus-dqn-nogo-every-4": ("ou-edge", "toxic-squeeze"),
        "janus-dqn-cerebellum-every-4": ("ou-edge", "toxic-squeeze"), "dqn-mlp": ("ou-edge",)}
    # janus-dqn-nogo-every-4 is janus-dqn as configs/janus-dqn.yml ships it; janus-dqn keeps the video, and the rows
    # measured before the No-Go cadence changed update the head every step, hashed as before the config had the block
    rows = {j.variant: j for j in _grid(bench, tmp_path, variants=("janus", "janus-dqn-series-patches",
                                                                   "janus-dqn-nogo-every-4")) if j.seed == 0}
    assert rows["janus-dqn-nogo-every-4"].config["train"]["hyperparams"] == resolve_hyperparams(
        "janus-dqn", bench.ENV_ID, None, bench.market_overrides(bench.Market("tiny", (0,), TINY)))
    assert shipped["policy_kwargs"]["features_extractor_kwargs"] == {"vision": True, "ts_patch": 1}
    patches = rows["janus-dqn-series-patches"]
    assert patches.config["train"]["hyperparams"]["basal_ganglia"] == {"train_freq": 1}
    former = json.loads(json.dumps(patches.config))  # the same run when the config had no basal_ganglia block
    former["train"]["hp"].remove(bench.NOGO_EVERY_STEP)
    del former["train"]["hyperparams"]["basal_ganglia"]
    assert bench.stable_hash(former) == patches.config_hash
    assert rows["janus-dqn-nogo-every-4"].config_hash != patches.config_hash
    assert not bench.at_callback_default(["basal_ganglia", "train_freq"], 4)
    assert bench.at_callback_default(["basal_ganglia", "train_freq"], 1)
    assert bench.without_callback_defaults({"basal_ganglia": {"train_freq": 1, "batch_size": 32}}) == {
        "basal_ganglia": {"batch_size": 32}}


def test_event_phases_add_up_to_the_episode_returns(bench: Any, tmp_path: Path) -> None:
    """The phases (before, during, after the squeeze) split each episode's return exactly, checked against the
    evaluation's own per-episode returns; HOLD has nothing in any phase; a market without an event is refused."""
    jobs = {j.variant: j for j in _grid(bench, tmp_path, episodes=3, variants=("janus", "hold", "mean-reversion"),
                                        event="squeeze", kappa=0.1, sigma=0.002, informed_size=1500,
                                        informed_rate=1.0) if j.seed == 0}
    rule = jobs["mean-reversion"]
    phases = bench.event_phases(rule, tmp_path, 3)
    returns = [e["return_bps"] for e in bench.evaluate(rule)]
    assert sum(v["return_bps"] for v in phases.values()) == pytest.approx(statistics.mean(returns), abs=1e-9)
    assert any(v["trade_share"] > 0 for v in phases.values())  # not vacuous: the rule traded
    assert all(v["return_bps"] != 0.0 for v in phases.values())
    hold = bench.event_phases(jobs["hold"], tmp_path, 3)
    assert all(v["return_bps"] == v["position_lots"] == v["trade_share"] == 0.0 for v in hold.values())
    # the squeeze of a 20-step session occupies steps 8..11 (agents.app.evaluation.event_window)
    assert [v["decisions"] for v in hold.values()] == [8.0, 4.0, 8.0]
    table = bench.phase_table([rule], tmp_path, 3)
    assert "| mean-reversion__tiny__s0 | " not in table  # no result file yet: skipped
    bench.run_job(rule, tmp_path)
    assert "| mean-reversion__tiny__s0 | " in bench.phase_table([rule], tmp_path, 3)
    with pytest.raises(ValueError, match="no finished run"):
        bench.event_phases(jobs["janus"], tmp_path, 1)
    calm = next(j for j in _grid(bench, tmp_path, variants=("janus", "hold")) if j.variant == "hold")
    with pytest.raises(ValueError, match="no stress event"):
        bench.event_phases(calm, tmp_path, 1)


def test_a_variant_that_would_play_another_market_is_refused(bench: Any, tmp_path: Path) -> None:
    odd = bench.Variant("odd", "ppo", hp=("env_kwargs.window=64",))
    settings = bench.Settings(tmp_path, eval_episodes=1)
    with pytest.raises(ValueError, match=re.escape("market 'tiny': variant 'odd' would play env_kwargs")):
        bench.build_grid(settings, (bench.VARIANTS[0], odd), (bench.Market("tiny", (0,), TINY),))


def test_only_selects_variant_and_market_patterns(bench: Any, tmp_path: Path) -> None:
    jobs = _grid(bench, tmp_path)
    assert [j.key for j in bench.select(jobs, ["hold/tiny"])] == ["hold__tiny__s0", "hold__tiny__s1"]
    assert len(bench.select(jobs, ["*"])) == len(jobs) == 6
    assert {j.variant for j in bench.select(jobs, ["ja*", "random"])} == {"janus", "random"}
    with pytest.raises(ValueError, match=re.escape("Expected --only VARIANT or VARIANT/MARKET (shell-style wildcards), "
                                                   "got 'a/b/c'")):
        bench.select(jobs, ["a/b/c"])
    with pytest.raises(ValueError, match=re.escape("--only 'nope' matches no job of the grid")):
        bench.select(jobs, ["nope"])


def test_the_command_line_lists_selects_and_refuses(bench: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--out", str(tmp_path), "--list", "--max-seeds", "1", "--only", "hold", "--only", "random/regime",
            "--exclude", "hold/btc-hourly"]
    assert bench.main(argv) == 0
    listed = [line.split()[:2] for line in capsys.readouterr().out.splitlines() if line.startswith("missing")]
    assert listed == [["missing", f"hold__{m}__s0"] for m in ("ou-edge", "regime", "flash-crash", "toxic-squeeze")] + [
        ["missing", "random__regime__s0"]]
    assert bench.main(["--out", str(tmp_path), "--list", "--only", "nope/*"]) == 2
    assert "bench_ablation.py: error: --only 'nope/*' matches no job of the grid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--timesteps", "0"])
    assert "--timesteps must be >= 1, got 0" in capsys.readouterr().err


def test_the_sleep_variants_run_only_when_the_full_agent_sleeps(bench: Any, tmp_path: Path) -> None:
    from agents.app.config import resolve_hyperparams

    settings = bench.Settings(tmp_path, eval_episodes=1)
    jobs, notes = bench.build_grid(settings, bench.VARIANTS, (bench.Market("tiny", (0,), TINY),))
    sleepers = [v.name for v in bench.VARIANTS if v.needs_sleep]
    assert sleepers == ["no-sleep", "no-memory"]
    if resolve_hyperparams("janus-ppo", bench.ENV_ID).get("sleep"):
        assert {j.variant for j in jobs} >= set(sleepers) and not notes
        sleep = next(j for j in jobs if j.variant == "no-sleep").config["train"]["hyperparams"]["sleep"]
        assert sleep is False
    else:
        assert not {j.variant for j in jobs} & set(sleepers)
        assert notes == [f"{name}: not run — the full agent has no sleep phase (configs/janus-ppo.yml has no "
                         "`sleep` block), so it would be the full agent" for name in sleepers]


def test_the_veto_check_vetoes_exactly_above_its_threshold(bench: Any) -> None:
    market = bench.Market("tiny", (0,), {**TINY, "kappa": 0.1, "sigma": 0.002, "informed_size": 1500,
                                         "informed_rate": 1.0})
    never = bench.veto_check(market, shield=False, threshold=1.5, episodes=2)  # VPIN <= 1: nothing vetoed
    assert list(never["vetoed"]) == list(never["plain"]) and list(never["diff"]) == [0.0, 0.0]
    always = bench.veto_check(market, shield=False, threshold=-1.0, episodes=2)  # every order vetoed: flat
    assert list(always["vetoed"]) == [0.0, 0.0] and list(always["plain"]) == list(never["plain"])
    assert any(r != 0.0 for r in never["plain"])  # the rule did trade in these episodes
    measured = bench.veto_check(market, shield=False, episodes=2)
    assert never["plain"][0] == measured["plain"][0] and 0.0 <= measured["threshold"] <= 1.0


@pytest.mark.slow
def test_every_trained_variant_trains_evaluates_and_resumes(bench: Any, tmp_path: Path) -> None:
    """Each trained variant for one rollout (1,024 steps), 2 held-out episodes (~1.5 min alone, 4 min on a loaded
    2-core machine); then the rerun skips everything, and a deleted result is evaluated again from the saved run
    with the same returns."""
    names = tuple(v.name for v in bench.VARIANTS if v.algo is not None)
    jobs = [j for j in _grid(bench, tmp_path, episodes=2, variants=names) if j.seed == 0]
    reused = {"no-logic"}  # janus's run, evaluated without the shield
    assert [bench.run_job(j, tmp_path)[1] for j in jobs] == [
        "evaluated" if j.variant in reused else "trained" for j in jobs]
    results = {j.variant: json.loads(bench.result_path(tmp_path, j).read_text()) for j in jobs}
    for variant, result in results.items():
        assert result["steps"] == 1024 and result["train_s"] > 0, variant
        assert len(result["episodes"]) == 2 and all(e["steps"] == 20 for e in result["episodes"]), variant
    assert all(e["nogo_vetoes"] == 0 for e in results["no-nogo"]["episodes"])
    assert all(e["proposed"] == 0 for e in results["no-logic"]["episodes"])  # no shield: nothing scores the rules
    assert all(e["proposed"] == 20 for e in results["janus"]["episodes"])
    assert results["no-logic"]["train_s"] == results["janus"]["train_s"]  # the same run
    assert [bench.run_job(j, tmp_path)[1] for j in jobs] == ["skipped"] * len(jobs)
    no_logic = next(j for j in jobs if j.variant == "no-logic")
    bench.result_path(tmp_path, no_logic).unlink()
    assert bench.run_job(no_logic, tmp_path)[1] == "evaluated"
    again = json.loads(bench.result_path(tmp_path, no_logic).read_text())
    assert again["returns_bps"] == results["no-logic"]["returns_bps"] and again["steps"] == 1024
    report = bench.write_report(tmp_path, jobs, [])
    assert (tmp_path / "report.png").stat().st_size > 0 and "| janus | " in report.markdown

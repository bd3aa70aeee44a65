"""train.py end to end: smoke runs, bad arguments, TensorBoard tags, kill-and-resume."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from wrappers import read_audit_log

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--hp", "env_kwargs.episode_steps=200", "--hp", "learning_starts=100"]


def _scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in run_dir.glob("tb_*/events*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
        for tag in acc.Tags()["images"]:
            out.setdefault(tag, []).append(0.0)
    return out


@pytest.mark.parametrize("algo", ["dqn", "ppo", "qrdqn"])
def test_train_smoke_sb3_algos(tmp_path: Path, algo: str, run_script) -> None:
    hp = ["--hp", "env_kwargs.episode_steps=100"] + (["--hp", "learning_starts=100"] if algo != "ppo" else [])
    run_script("train.py", "--algo", algo, "--timesteps", "512", "--run-dir", str(tmp_path), "--run-name", "r",
               "--no-progress", *hp)
    run = tmp_path / "r"
    assert (run / "model.zip").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["run"]["algo"] == algo and config["run"]["seed"] == 0
    assert "rollout/ep_rew_mean" in _scalars(run) or algo == "ppo"


def test_janus_dqn_logs_brain_metrics(tmp_path: Path, run_script) -> None:
    run_script("train.py", "--algo", "janus-dqn", "--timesteps", "700", "--run-dir", str(tmp_path), "--run-name", "r",
               "--hp", "sleep.every_n_steps=300", "--checkpoint-every", "600",
               "--hp", "breakers={blocked_weight: 1.0}", *FAST)
    scalars = _scalars(tmp_path / "r")
    gates = [t for t in scalars if t.startswith("janus/fusion_gate/")]
    assert gates, sorted(scalars)
    halts = [t for t in scalars if t.startswith("janus/halts/")]
    # random early actions trip the violation-rate breaker once blocked proposals count fully
    assert halts, sorted(scalars)
    for tag in ("janus/per_mean_priority", "janus/per_beta", "janus/equity", "sleep/replays",
                "sleep/td_error_improvement", "sleep/schema_count", "sleep/umap_clusters", "sleep/anomalies",
                "janus/ltn_satisfaction", "janus/violation_rate", "janus/shield_overrides", "janus/go_mean",
                "janus/nogo_mean", "janus/veto_rate", "janus/cerebellum_error", "train/logic_loss", *gates, *halts):
        assert tag in scalars, (tag, sorted(scalars))
        assert all(math.isfinite(v) for v in scalars[tag]), tag
    assert "janus/equity_curve" in scalars and "sleep/umap" in scalars


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "a2c"], "invalid choice: 'a2c'"),
        (["--timesteps", "0"], "--timesteps must be >= 1, got 0"),
        (["--hp", "novalue"], "Expected --hp KEY=VALUE"),
        (["--config", "missing.yaml"], "Config file missing.yaml does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str, run_script) -> None:
    result = run_script("train.py", *args, "--run-dir", str(tmp_path), check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_kill_after_checkpoint_then_resume(tmp_path: Path, run_script) -> None:
    args = ["--algo", "janus-dqn", "--timesteps", "2400", "--run-dir", str(tmp_path), "--run-name", "r",
            "--checkpoint-every", "600", "--hp", "sleep.every_n_steps=500", *FAST,
            # SB3's plain extractor keeps this test fast; the JanusExtractor path is covered above
            "--hp", "policy_kwargs.features_extractor_class=stable_baselines3.common.torch_layers:CombinedExtractor",
            "--hp", "policy_kwargs.features_extractor_kwargs={}"]  # the config's are JanusExtractor's
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "r" / "checkpoints" / "latest"  # written once the first checkpoint folder is complete
    deadline = time.monotonic() + 300
    while not marker.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.is_file(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = (tmp_path / "r" / "checkpoints" / "latest").read_text().strip()
    killed = json.loads((tmp_path / "r" / "checkpoints" / latest / "meta.json").read_text())
    killed_at = killed["num_timesteps"]
    assert killed_at < 2400
    result = run_script("train.py", "--resume", str(tmp_path / "r"), "--no-progress")
    assert f"at step {killed_at}" in result.stdout
    final = (tmp_path / "r" / "checkpoints" / "latest").read_text().strip()
    meta = json.loads((tmp_path / "r" / "checkpoints" / final / "meta.json").read_text())
    assert meta["num_timesteps"] == 2400
    # the sleep state survived the kill: cycles continued from the checkpoint's count
    assert meta["sleep_cycles"] > killed.get("sleep_cycles", 0)
    from agents.basal_ganglia import GatedJanusDQN

    model = GatedJanusDQN.load(tmp_path / "r" / "model.zip", device="cpu")
    assert model.num_timesteps == 2400


def test_janus_ppo_trains_behind_the_shield_and_evaluates(tmp_path: Path, run_script) -> None:
    # a learning rate so small that the policy evaluated below is still near its initialisation and sends orders in
    # some states: after 256 steps at the config's rate it may hold everywhere (trading costs the spread on this
    # market), and the checks of the orders' predicted slippage would then have no order to look at
    run_script("train.py", "--algo", "janus-ppo", "--timesteps", "256", "--n-envs", "2", "--run-dir", str(tmp_path),
               "--run-name", "r", "--no-progress", "--hp", "n_steps=64", "--hp", "batch_size=64",
               "--hp", "env_kwargs.episode_steps=100", "--hp", "learning_rate=1e-8",
               "--hp", "policy_kwargs.features_extractor_kwargs.vision=true")  # the GAF video, for its attribution
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert config["hyperparams"]["shield"] is True
    from sb3_contrib import MaskablePPO

    from agents.basal_ganglia import BasalGangliaMaskablePolicy

    model = MaskablePPO.load(tmp_path / "r" / "model.zip", device="cpu")
    assert isinstance(model.policy, BasalGangliaMaskablePolicy)
    assert model.num_timesteps >= 256
    # the trained policy's own explanation reaches the audit record of the step it decided (nothing injected)
    audit = tmp_path / "audit.jsonl"
    result = run_script("evaluate.py", str(tmp_path / "r"), "--scenarios", "ou,regime", "--episodes", "1",
                        "--steps", "30", "--baselines", "momentum", "--audit", str(audit), "--explain", "2")
    assert f"audit trail of the agent's decisions: {audit}" in result.stdout
    trail = read_audit_log(audit)
    assert trail["strategy"].eq("agent").all() and sorted(set(trail["scenario"])) == ["ou", "regime"]
    assert trail["seed"].eq(1000).all() and len(trail) == 60  # 30 decisions per scenario, baselines not recorded
    assert trail["go_nogo.final"].notna().all() and trail["fusion_gates.vis"].between(0, 1).all()
    # the gated action the policy sent is the action the glass box received at that very step
    assert (trail["go_nogo.final"].astype(int) == trail["proposed_action"].astype(int)).all()
    assert trail["ltn.sat_agg"].notna().all() and trail["go_nogo.go"].map(len).eq(3).all()
    # the logic gate judged each proposal with the shield's rules in that step's state: where the proposal went
    # through, its logic loss is 1 - the SatAgg the shield then recorded for the same action and state
    assert trail["go_nogo.logic_source"].eq("hook").all()
    kept = trail[trail["go_nogo.proposed"] == trail["go_nogo.final"]]
    assert len(kept) > 0
    assert (kept["go_nogo.logic_loss"] - (1.0 - kept["ltn.sat_agg"])).abs().max() < 1e-5
    # the cerebellum trained with the policy is saved beside it and predicts each order's slippage before it is
    # sent, for the 2x slippage breaker (HOLD sends nothing: 0 bps)
    assert (tmp_path / "r" / "cerebellum.pt").is_file()
    assert "slippage breaker fed by the run's cerebellum" in result.stdout
    assert trail["predicted_slippage_bps"].notna().all()
    assert trail.loc[trail["proposed_action"] == 0, "predicted_slippage_bps"].eq(0.0).all()
    assert trail.loc[trail["proposed_action"] != 0, "predicted_slippage_bps"].ne(0.0).any()
    assert trail["breakers.slippage.threshold"].eq(2.0).all()
    # which GAF frames drove each proposal, in numbers; the two most consequential decisions drawn
    assert trail["gaf_attribution.frame_scores"].map(len).eq(5).all()
    assert (trail["gaf_attribution.action"] == trail["go_nogo.proposed"]).all()
    folder = tmp_path / "r" / "eval" / "latest"
    for scenario in ("ou", "regime"):
        assert [p.name for p in sorted(folder.glob(f"explain_{scenario}_*.png"))] == [
            f"explain_{scenario}_1.png", f"explain_{scenario}_2.png"]

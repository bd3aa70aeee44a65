"""Trade hourly BTC in 0.01-BTC lots behind the glass box, and rebuild the account from the fills.

    python examples/btc_fractional_lots.py                      # momentum, one week of hourly bars
    python examples/btc_fractional_lots.py --strategy buy_and_hold --steps 336 --seed 3

The shipped sample ``btc_usd_hourly`` (5,000 bars) is replayed with no look-ahead; the baseline's
orders go through the LTN shield and the amygdala's breakers. Cash and position are then recomputed
independently from each step's fills (``exec_qty``, ``exec_price``, ``fees``) and compared with what
the env reported.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import envs_registry  # noqa: F401  (registers Janus-LOB-v0)
from agents.baselines import TRADING_BASELINES, make_baseline
from wrappers import Amygdala, LTNShield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="momentum", choices=sorted(TRADING_BASELINES))
    parser.add_argument("--steps", type=int, default=168, help="hourly decisions per episode (default: one week)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    env = Amygdala(LTNShield(gym.make("Janus-LOB-v0", scenario="historical", data="btc_usd_hourly", lot=0.01,
                                      max_position=1.0, initial_cash=100_000.0, episode_steps=args.steps)))
    policy = make_baseline(args.strategy, env, seed=args.seed)
    obs, info = env.reset(seed=args.seed)
    cash, position, cash0 = info["cash"], info["position"], info["cash"]
    worst = 0.0
    done, steps, fills, halt = False, 0, 0, None
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        done, steps = terminated or truncated, steps + 1
        cash -= info["exec_qty"] * info["exec_price"] + info["fees"]  # Δcash = −qty·price − fees
        position += info["exec_qty"]
        fills += info["exec_qty"] != 0
        worst = max(worst, abs(cash - info["cash"]), abs(position - info["position"]))
        halt = info.get("halt_reason") or halt
    equity = cash + position * info["mid"]
    print(f"{args.strategy} on BTC/USD hourly, {steps} decisions from seed {args.seed}: {fills} fills, "
          f"position {position:.2f} BTC, equity {equity:,.2f} USD ({(equity / cash0 - 1) * 1e4:+.1f} bps)")
    print(f"largest difference between the account rebuilt from fills and the env's: {worst:.2e}")
    print(f"halted: {halt}" if halt else "no breaker halted the episode")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""agents — the conscious trader: torch policies, JanusDQN and baselines."""

from agents.janus_dqn import JanusDQN  # noqa: F401

"""JANUS markets: the numba matching engine, simulated and replayed markets, and their Gymnasium/PettingZoo envs."""

from janus_env._numba_cache import refresh_stale_caches

refresh_stale_caches()

"""Per-key rate limit: a token bucket per API key; a request without a token is answered 429.

Each key's bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request takes one.
So a key may send ``burst`` requests at once and ``rate`` per second sustained. The answer to a request beyond
it is 429 with ``Retry-After`` (whole seconds until the next token).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from janus_env.checks import check_positive


class RateLimiter:
    """Token buckets keyed by API key name.

    Args:
        rate: sustained requests per second per key (> 0).
        burst: bucket size, requests a key may send at once (≥ 1).
        clock: monotonic seconds (``time.monotonic``; tests pass their own).

    Raises:
        TypeError / ValueError: ``rate`` or ``burst`` not a positive number, ``burst`` < 1.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = check_positive("rate", rate)
        self.burst = check_positive("burst", burst)
        if self.burst < 1:
            raise ValueError(f"Expected `burst` to be a number >= 1, got {burst!r}")
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float | None:
        """Take a token for ``key``: None if granted, else the seconds until one is available."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))


__all__ = ["RateLimiter"]

"""Real market data samples shipped with JANUS (sources and licenses in ``LICENSES.md`` beside this file).

    >>> from janus_env.samples import sample_path
    >>> sample_path("btc_usd_hourly").name
    'btc_usd_hourly_2021-08_2022-03.csv'
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent

SAMPLES: dict[str, str] = {
    "lobster_aapl": "AAPL_2012-06-21_34200000_57600000_message_10.csv",
    "lobster_aapl_orderbook": "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv",
    "btc_book_15_levels": "btc_book_15_levels.csv",
    "btc_usd_hourly": "btc_usd_hourly_2021-08_2022-03.csv",
    "btc_usd_daily": "coinbase_btc_usd_daily.csv",
}
"""Sample name → file name in :data:`SAMPLE_DIR`."""

_UNKNOWN = "Unknown sample {!r}; expected one of {}"


def sample_path(name: str) -> Path:
    """Path of the shipped sample ``name`` (a key of :data:`SAMPLES`).

    Raises:
        KeyError: ``name`` is not a shipped sample.
    """
    try:
        return SAMPLE_DIR / SAMPLES[name]
    except (KeyError, TypeError):
        raise KeyError(_UNKNOWN.format(name, sorted(SAMPLES))) from None

"""Historical market data: validated loaders for LOBSTER, L2 snapshot and OHLCV files.

Every loader reads with pandas and validates whole columns at once; a bad row
raises :class:`DataFormatError` (a ``ValueError``) naming the file, the 1-based
line and the problem, and a missing file raises ``FileNotFoundError``. Data
classes built from arrays (:class:`OHLCVBars`, :class:`L2Snapshots`) are held
to the same rules and raise ``ValueError`` naming the field and the index.
The decision-step view used by the environments is :mod:`janus_env.historical`
(:func:`~janus_env.historical.load_source` takes the reading options).

Layouts:

* OHLCV (:func:`read_ohlcv`): one instrument per file (CryptoDataDownload,
  Coinbase, gym-anytrading, ...), wide multi-asset files (``BTC:open, ...,
  ETH:open, ...``; ``asset="ETH"``), long files with a symbol column
  (``asset="ETH"``), and any other names through ``columns={"close": "Adj Close"}``.
* L2 (:func:`read_l2_snapshots`): absolute levels (``bid1_price, bid1_size, ...,
  ask5_size`` and variants such as ``bid_price_1`` or ``asks[0].price``) or
  TradeMaster's relative layout (``midpoint``, ``bids_distance_i``, ...).
* LOBSTER message and orderbook files (:func:`read_lobster`); the book rebuilt from them
  (:func:`replay_lobster`, :mod:`~janus_env.data.lobster_replay`) and engine runs written as
  LOBSTER files (:func:`write_lobster`, :mod:`~janus_env.data.lobster_write`).
"""

from janus_env.data.l2 import L2Snapshots, l2_frame, read_l2_snapshots
from janus_env.data.lobster import LOBSTERData, read_lobster, read_lobster_messages, read_lobster_orderbook
from janus_env.data.lobster_replay import (
    LOBSTERReplayer,
    PriceGrid,
    ReplayReport,
    initial_book,
    price_grid,
    replay_lobster,
    to_orderbook_layout,
)
from janus_env.data.lobster_write import drifting_order_flow, visible_messages, write_lobster
from janus_env.data.ohlcv import OHLCVBars, read_ohlcv, split_volume, synthetic_book
from janus_env.data.validation import DataFormatError

__all__ = [
    "DataFormatError",
    "L2Snapshots",
    "LOBSTERData",
    "LOBSTERReplayer",
    "OHLCVBars",
    "PriceGrid",
    "ReplayReport",
    "initial_book",
    "l2_frame",
    "price_grid",
    "read_l2_snapshots",
    "read_lobster",
    "read_lobster_messages",
    "read_lobster_orderbook",
    "read_ohlcv",
    "replay_lobster",
    "split_volume",
    "synthetic_book",
    "to_orderbook_layout",
    "drifting_order_flow",
    "visible_messages",
    "write_lobster",
]

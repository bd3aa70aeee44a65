"""Historical market data: validated loaders for LOBSTER, L2 snapshot and OHLCV files.

Every loader reads with pandas and validates whole columns at once; a bad row
raises :class:`DataFormatError` (a ``ValueError``) naming the file, the 1-based
line and the problem, and a missing file raises ``FileNotFoundError``. The
decision-step view used by the environments is :mod:`janus_env.historical`.
"""

from janus_env.data.l2 import L2Snapshots, l2_frame, read_l2_snapshots
from janus_env.data.lobster import (
    LOBSTERData,
    LOBSTERReplayer,
    PriceGrid,
    ReplayReport,
    price_grid,
    read_lobster,
    read_lobster_messages,
    read_lobster_orderbook,
    replay_lobster,
    to_orderbook_layout,
    write_lobster,
)
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
    "write_lobster",
]

"""Cerebellum: a forward model of execution — predicted slippage of a market order, learned online from fills.

The cerebellum learns the sensory consequence of a motor command (Wolpert,
Miall & Kawato 1998, "Internal models in the cerebellum", Trends Cogn. Sci.
2(9)). Here the command is a market order of ``size`` lots on ``side`` and the
consequence its slippage against the mid before the order, in bps (positive =
cost; ``info["slippage_bps"]`` of ``Janus-LOB-v0``)::

    ŝ = f_θ(book_t, market_t, size, side)
    θ ← θ − η ∇_θ mean (s − ŝ)²                      (online MSE on fills, Adam)
    sensory prediction error  ε = |s − ŝ|             (before the update; logged)

The JANUS design predicts the execution *price*; slippage in bps carries the
same information (``p̂ = mid·(1 + side·ŝ/10⁴)``) on a scale that does not drift
with the price level *(ours)*.

Inputs *(ours)*: the book is presented side-aware — the levels the order
walks first ("near": asks for a buy, bids for a sell; prices as ``|offset|``
bps from mid, sizes as ``log1p(shares/lot)``), then the opposite side — followed
by ``obs["market"]`` (VPIN, σ bps, spread bps, imbalance) through
``symlog(x) = sign(x)·log1p|x|``, ``log1p(size)`` and ``side``.

``Cerebellum.predictor`` has the amygdala's signature ``(obs, action, info) ->
predicted bps`` and :class:`CerebellumCallback` trains the model during any SB3
``learn`` and logs ``janus/cerebellum_error``.

```python
import gymnasium as gym
import envs_registry
from stable_baselines3 import PPO
from agents.cerebellum import Cerebellum, CerebellumCallback

env = gym.make("Janus-LOB-v0", seed=0)
cerebellum = Cerebellum.from_env(env, seed=0)
PPO("MultiInputPolicy", env).learn(10_000, callback=CerebellumCallback(cerebellum))
predicted_bps = cerebellum.predictor(obs, action, info)
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn
from torch.nn import functional as F

from janus_env.checks import (
    check_array_like,
    check_bool,
    check_int,
    check_number,
    check_positive,
    generator_from_state,
)

_BAD_HIDDEN = "Expected `hidden` to be a sequence of positive ints, got {!r}"
_BAD_ACTION = "Expected a discrete action index in [0, {}), got {!r}"
_BAD_OBS = "Expected an observation with keys {!r} and {!r}, shapes ({}, 4) and ({},), got {!r}"
_BAD_BATCH = "Expected equal-length rows in the batch, got sizes {}"
_EMPTY_BATCH = "Expected a non-empty batch of fills"
_NOT_CEREBELLUM = "Expected a Cerebellum, got {}"
_NO_LOB_ENV = "Expected an env whose unwrapped config has `n_levels` and `lot` (Janus-LOB-v0), got {!r}"


class CerebellumBatch(NamedTuple):
    """A batch of fills: the state before the order, the order, and its realized slippage.

    Attributes:
        book: ``(B, L, 4)`` ``obs["book"]`` before the order.
        market: ``(B, M)`` ``obs["market"]`` before the order.
        size: ``(B,)`` order size in lots (> 0).
        side: ``(B,)`` +1 buy, −1 sell.
        slippage_bps: ``(B,)`` realized slippage vs the pre-order mid, bps.
    """

    book: th.Tensor
    market: th.Tensor
    size: th.Tensor
    side: th.Tensor
    slippage_bps: th.Tensor


def _symlog(x: th.Tensor) -> th.Tensor:
    return th.sign(x) * th.log1p(th.abs(x))


class Cerebellum(nn.Module):
    """Forward model of execution: slippage (bps) of a market order from the book, its size and side.

    Args:
        n_levels: book levels L in ``obs["book"]``.
        n_market: width M of ``obs["market"]``.
        hidden: MLP hidden widths (ReLU).
        lr: Adam learning rate of :meth:`update`.
        lot: quantity per lot (to turn ``exec_qty`` into lots; fractional on e.g. ``lot=0.01`` BTC data).
        n_sizes: k of the env's ``Discrete(2k+1)`` actions (1 = HOLD/BUY/SELL).
        book_key: observation key of the book.
        market_key: observation key of the market features.
        seed: seed of the weight initialisation (the global torch RNG is left untouched).

    Raises:
        TypeError: a size or width that is not an int, ``lot`` or ``lr`` not a number, ``hidden`` not a sequence.
        ValueError: a size, width or learning rate out of range.
    """

    def __init__(
        self,
        n_levels: int = 5,
        n_market: int = 4,
        *,
        hidden: Sequence[int] = (64, 64),
        lr: float = 1e-3,
        lot: float = 100,
        n_sizes: int = 1,
        book_key: str = "book",
        market_key: str = "market",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.n_levels = check_int("n_levels", n_levels, low=1)
        self.n_market = check_int("n_market", n_market, low=0)
        self.lot = check_positive("lot", lot)
        self.n_sizes = check_int("n_sizes", n_sizes, low=1)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(_BAD_HIDDEN.format(hidden))
        self.hidden = tuple(check_int(f"hidden[{i}]", h, low=1) for i, h in enumerate(hidden))
        self.lr = check_positive("lr", lr)
        self.book_key = book_key
        self.market_key = market_key
        in_dim = 4 * self.n_levels + self.n_market + 2
        with th.random.fork_rng(devices=[]):
            if seed is not None:
                th.manual_seed(int(seed))
            layers: list[nn.Module] = []
            width = in_dim
            for h in self.hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            self.net = nn.Sequential(*layers)
        self.optimizer = th.optim.Adam(self.net.parameters(), lr=self.lr)
        self.last_error: float | None = None

    @classmethod
    def from_env(cls, env: gym.Env, **kwargs: Any) -> Cerebellum:
        """A cerebellum sized for a ``Janus-LOB-v0`` env (``n_levels``, ``lot``, ``n_sizes`` from it).

        Raises:
            TypeError: the env has no ``config.n_levels`` / ``config.lot``.
        """
        base = env.unwrapped
        config = getattr(base, "config", None)
        if config is None or not hasattr(config, "n_levels") or not hasattr(config, "lot"):
            raise TypeError(_NO_LOB_ENV.format(env))
        kwargs.setdefault("n_levels", int(config.n_levels))
        kwargs.setdefault("lot", float(config.lot))
        kwargs.setdefault("n_sizes", int(getattr(base, "n_sizes", 1)))
        market = getattr(base, "observation_space", None)
        if market is not None and "market" in getattr(market, "spaces", {}):
            kwargs.setdefault("n_market", int(market["market"].shape[0]))
        return cls(**kwargs)

    @property
    def device(self) -> th.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    # ------------------------------------------------------------------ model
    def features(self, book: th.Tensor, market: th.Tensor, size: th.Tensor, side: th.Tensor) -> th.Tensor:
        """Side-aware input vector ``(B, 4L + M + 2)`` (module docstring)."""
        book = book.float().reshape(-1, self.n_levels, 4)
        buy = (side.float().reshape(-1, 1) > 0).float()
        near_px = buy * book[:, :, 2] + (1.0 - buy) * book[:, :, 0]
        near_qty = buy * book[:, :, 3] + (1.0 - buy) * book[:, :, 1]
        far_px = buy * book[:, :, 0] + (1.0 - buy) * book[:, :, 2]
        far_qty = buy * book[:, :, 1] + (1.0 - buy) * book[:, :, 3]
        parts = [
            th.abs(near_px),
            near_qty,
            th.abs(far_px),
            far_qty,
            _symlog(market.float().reshape(-1, self.n_market)),
            th.log1p(size.float().reshape(-1, 1)),
            th.sign(side.float().reshape(-1, 1)),
        ]
        return th.cat(parts, dim=1)

    def forward(self, book: th.Tensor, market: th.Tensor, size: th.Tensor, side: th.Tensor) -> th.Tensor:
        """Predicted slippage ``ŝ`` in bps, shape ``(B,)``."""
        return self.net(self.features(book, market, size, side)).squeeze(1)

    def loss(self, batch: CerebellumBatch) -> th.Tensor:
        """``mean (s − ŝ)²`` over the batch."""
        predicted = self(batch.book, batch.market, batch.size, batch.side)
        return F.mse_loss(predicted, batch.slippage_bps.float().reshape(-1))

    def update(self, batch: CerebellumBatch) -> float:
        """One Adam step on the MSE of a batch of fills; returns the MSE before the step.

        Raises:
            ValueError: an empty batch.
        """
        if batch.slippage_bps.numel() == 0:
            raise ValueError(_EMPTY_BATCH)
        self.train(True)
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def prediction_error(self, batch: CerebellumBatch) -> np.ndarray:
        """Sensory prediction error ``|s − ŝ|`` per fill (no update)."""
        with th.no_grad():
            predicted = self(batch.book, batch.market, batch.size, batch.side)
        return th.abs(batch.slippage_bps.float().reshape(-1) - predicted).cpu().numpy()

    # ------------------------------------------------------------------ data
    def make_batch(
        self,
        book: np.ndarray,
        market: np.ndarray,
        exec_qty: np.ndarray,
        slippage_bps: np.ndarray,
    ) -> CerebellumBatch:
        """A :class:`CerebellumBatch` from numpy rows of fills; rows with ``exec_qty == 0`` are dropped.

        Args:
            book: ``(B, L, 4)`` books before the orders.
            market: ``(B, M)`` market features before the orders.
            exec_qty: ``(B,)`` signed executed shares (``info["exec_qty"]``).
            slippage_bps: ``(B,)`` realized slippage (``info["slippage_bps"]``).

        Raises:
            ValueError: rows of different lengths.
        """
        book_a = np.asarray(book, dtype=np.float32).reshape(-1, self.n_levels, 4)
        market_a = np.asarray(market, dtype=np.float32).reshape(-1, self.n_market)
        qty = np.asarray(exec_qty, dtype=np.float64).reshape(-1)
        slip = np.asarray(slippage_bps, dtype=np.float32).reshape(-1)
        sizes = {book_a.shape[0], market_a.shape[0], qty.shape[0], slip.shape[0]}
        if len(sizes) != 1:
            raise ValueError(_BAD_BATCH.format(sorted(sizes)))
        keep = qty != 0.0
        dev = self.device
        return CerebellumBatch(
            book=th.as_tensor(book_a[keep], device=dev),
            market=th.as_tensor(market_a[keep], device=dev),
            size=th.as_tensor((np.abs(qty[keep]) / self.lot).astype(np.float32), device=dev),
            side=th.as_tensor(np.sign(qty[keep]).astype(np.float32), device=dev),
            slippage_bps=th.as_tensor(slip[keep], device=dev),
        )

    def order_of(self, action: Any) -> tuple[float, float]:
        """``(side, size_lots)`` of a discrete action (the env's ``sized_quantity``); HOLD → ``(0, 0)``.

        Raises:
            ValueError: not an integer index in ``[0, 2k+1)``.
        """
        n = 2 * self.n_sizes + 1
        arr = np.asarray(action)
        if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer) or isinstance(action, (bool, np.bool_)):
            raise ValueError(_BAD_ACTION.format(n, action))
        index = int(arr.reshape(-1)[0])
        if not 0 <= index < n:
            raise ValueError(_BAD_ACTION.format(n, action))
        if index == 0:
            return 0.0, 0.0
        if index <= self.n_sizes:
            return 1.0, float(index)
        return -1.0, float(index - self.n_sizes)

    def predict_slippage(self, obs: Mapping[str, Any], action: Any, info: Mapping[str, Any] | None = None) -> float:
        """Predicted slippage (bps) of ``action`` in the state ``obs``: the amygdala's ``(obs, action, info)``.

        ``obs`` is the single (unbatched) ``Dict`` observation the action is
        decided on; ``info`` is accepted for the signature and not read. HOLD → 0.

        Raises:
            ValueError: an observation without the book/market keys or shapes, or a bad action.
        """
        side, size = self.order_of(action)
        try:
            book = np.asarray(obs[self.book_key], dtype=np.float32).reshape(1, self.n_levels, 4)
            market = np.asarray(obs[self.market_key], dtype=np.float32).reshape(1, self.n_market)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                _BAD_OBS.format(self.book_key, self.market_key, self.n_levels, self.n_market, obs)
            ) from err
        if side == 0.0:
            return 0.0
        dev = self.device
        self.train(False)
        with th.no_grad():
            predicted = self(
                th.as_tensor(book, device=dev),
                th.as_tensor(market, device=dev),
                th.tensor([size], device=dev),
                th.tensor([side], device=dev),
            )
        return float(predicted.item())

    predictor = predict_slippage
    """The amygdala's slippage predictor: ``cerebellum.predictor(obs, action, info) -> bps``."""

    def numpy_predictor(self) -> Callable[[Mapping[str, Any], Any, Mapping[str, Any] | None], float]:
        """:meth:`predict_slippage` in numpy, on a snapshot of the weights taken now (for a cerebellum that no
        longer learns: the decision service's).

        The same side-aware features and layers in float32; the matrix products sum in another order than
        torch's, so a prediction equals :meth:`predict_slippage`'s to float32 rounding (≈ 1e-6 relative), not
        bit for bit. At batch 1 it costs ≈ 20 µs against 0.2-0.4 ms in torch.

        Raises:
            TypeError: ``net`` holds a layer other than ``Linear`` and ``ReLU``.
        """
        layers: list[tuple[np.ndarray, np.ndarray] | None] = []  # None: a ReLU
        for module in self.net:
            if isinstance(module, nn.Linear):
                weight, bias = module.weight.detach().cpu().numpy(), module.bias.detach().cpu().numpy()
                layers.append((weight.T.copy(), bias.copy()))
            elif isinstance(module, nn.ReLU):
                layers.append(None)
            else:
                raise TypeError(f"numpy_predictor: expected Linear and ReLU layers, got {type(module).__name__}")
        n_levels, n_market = self.n_levels, self.n_market
        one = np.float32(1.0)

        def predict(obs: Mapping[str, Any], action: Any, info: Mapping[str, Any] | None = None) -> float:
            side, size = self.order_of(action)
            try:
                book = np.asarray(obs[self.book_key], dtype=np.float32).reshape(n_levels, 4)
                market = np.asarray(obs[self.market_key], dtype=np.float32).reshape(n_market)
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(_BAD_OBS.format(self.book_key, self.market_key, n_levels, n_market, obs)) from err
            if side == 0.0:
                return 0.0
            buy = np.float32(side > 0)
            near_px = buy * book[:, 2] + (one - buy) * book[:, 0]
            near_qty = buy * book[:, 3] + (one - buy) * book[:, 1]
            far_px = buy * book[:, 0] + (one - buy) * book[:, 2]
            far_qty = buy * book[:, 1] + (one - buy) * book[:, 3]
            x = np.concatenate([np.abs(near_px), near_qty, np.abs(far_px), far_qty,
                                np.sign(market) * np.log1p(np.abs(market)),
                                np.log1p(np.array([size], dtype=np.float32)), np.array([side], dtype=np.float32)])
            for layer in layers:
                x = np.maximum(x, np.float32(0.0)) if layer is None else x @ layer[0] + layer[1]
            return float(x[0])

        return predict


class CerebellumCallback(BaseCallback):
    """Trains a :class:`Cerebellum` online from the fills of an SB3 ``learn`` and logs its error.

    At every env step, each env whose ``info["exec_qty"] != 0`` contributes a
    fill: the observation the order was decided on (``model._last_obs``, before
    ``env.step``), the signed executed quantity and ``info["slippage_bps"]``.
    Its sensory prediction error ``|s − ŝ|`` is computed *before* any update and
    recorded with ``logger.record_mean("janus/cerebellum_error", ·)``; the fill
    goes to a FIFO buffer, and every ``train_freq`` calls ``gradient_steps``
    minibatches update the model (``janus/cerebellum_loss``). ``info["predicted_slippage_bps"]``
    is written for downstream consumers (``JanusMetricsCallback``, audit) when
    ``write_info`` and no inner component (the amygdala) wrote one.

    Args:
        cerebellum: the model to train.
        buffer_size: FIFO capacity in fills.
        batch_size: minibatch size.
        train_freq: env-step calls between updates.
        gradient_steps: updates per training call.
        learning_starts: fills needed before the first update.
        write_info: add ``info["predicted_slippage_bps"]`` for each fill.
        seed: seed of the minibatch sampler.
        verbose: SB3 verbosity.

    Raises:
        TypeError: ``cerebellum`` is not a :class:`Cerebellum`, or a size is not an int.
        ValueError: a size out of range.
    """

    def __init__(
        self,
        cerebellum: Cerebellum,
        *,
        buffer_size: int = 10_000,
        batch_size: int = 64,
        train_freq: int = 1,
        gradient_steps: int = 1,
        learning_starts: int = 64,
        write_info: bool = True,
        seed: int | None = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if not isinstance(cerebellum, Cerebellum):
            raise TypeError(_NOT_CEREBELLUM.format(type(cerebellum).__name__))
        self.cerebellum = cerebellum
        self.buffer_size = check_int("buffer_size", buffer_size, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.train_freq = check_int("train_freq", train_freq, low=1)
        self.gradient_steps = check_int("gradient_steps", gradient_steps, low=1)
        self.learning_starts = check_int("learning_starts", learning_starts, low=0)
        self.write_info = bool(write_info)
        self._rng = np.random.default_rng(seed)
        c = cerebellum
        self._book = np.zeros((self.buffer_size, c.n_levels, 4), dtype=np.float32)
        self._market = np.zeros((self.buffer_size, c.n_market), dtype=np.float32)
        self._qty = np.zeros(self.buffer_size, dtype=np.float64)
        self._slip = np.zeros(self.buffer_size, dtype=np.float32)
        self._pos = 0
        self._full = False
        self._calls = 0
        self.errors: list[float] = []
        """Every fill's sensory prediction error, in order."""

    @property
    def size(self) -> int:
        """Fills held."""
        return self.buffer_size if self._full else self._pos

    def state_dict(self) -> dict[str, Any]:
        """The fill ring, its position, the call counter, the sampler's generator state and the cerebellum's last
        error, as numpy arrays and plain values (a checkpoint stores them without pickle; the cerebellum's own
        weights and optimizer are saved apart, as torch tensors). ``errors`` (a diagnostic list) is not kept."""
        return {"book": self._book.copy(), "market": self._market.copy(), "qty": self._qty.copy(),
                "slip": self._slip.copy(), "pos": self._pos, "full": self._full, "calls": self._calls,
                "rng": self._rng.bit_generator.state, "last_error": self.cerebellum.last_error}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (same ``buffer_size`` and cerebellum sizes); checked before any write.

        Raises:
            TypeError / ValueError: an array of another dtype or shape, a counter out of range, a bad generator
                state.
        """
        arrays = {name: check_array_like(name, state.get(name), getattr(self, f"_{name}"))
                  for name in ("book", "market", "qty", "slip")}
        pos = check_int("pos", state.get("pos"), low=0, high=self.buffer_size - 1)
        full = check_bool("full", state.get("full"))
        calls = check_int("calls", state.get("calls"), low=0)
        last_error = state.get("last_error")
        if last_error is not None:
            last_error = check_number("last_error", last_error, low=0)
        rng = generator_from_state("rng", state.get("rng"))
        for name, arr in arrays.items():
            np.copyto(getattr(self, f"_{name}"), arr)
        self._pos, self._full, self._calls, self._rng = pos, full, calls, rng
        self.cerebellum.last_error = last_error

    def _on_step(self) -> bool:
        infos: Sequence[dict[str, Any]] = self.locals.get("infos", [])
        rows = [
            i for i, info in enumerate(infos)
            if float(info.get("exec_qty", 0.0)) != 0.0 and "slippage_bps" in info
        ]  # fmt: skip
        c = self.cerebellum
        if rows:
            obs = self.model._last_obs
            book = np.asarray(obs[c.book_key])[rows]
            market = np.asarray(obs[c.market_key])[rows]
            qty = np.array([float(infos[i]["exec_qty"]) for i in rows])
            slip = np.array([float(infos[i]["slippage_bps"]) for i in rows], dtype=np.float32)
            batch = c.make_batch(book, market, qty, slip)
            c.train(False)
            with th.no_grad():
                predicted = c(batch.book, batch.market, batch.size, batch.side).cpu().numpy()
            errors = np.abs(slip - predicted)
            for k, i in enumerate(rows):
                self.logger.record_mean("janus/cerebellum_error", float(errors[k]))
                if self.write_info:  # an inner component's (e.g. the amygdala's) prediction is kept
                    infos[i].setdefault("predicted_slippage_bps", float(predicted[k]))
            self.errors.extend(float(e) for e in errors)
            c.last_error = float(errors[-1])
            for k in range(len(rows)):
                self._book[self._pos] = book[k]
                self._market[self._pos] = market[k]
                self._qty[self._pos] = qty[k]
                self._slip[self._pos] = slip[k]
                self._pos = (self._pos + 1) % self.buffer_size
                self._full = self._full or self._pos == 0
        self._calls += 1
        if self._calls % self.train_freq == 0 and self.size >= max(self.learning_starts, 1):
            for _ in range(self.gradient_steps):
                idx = self._rng.integers(0, self.size, size=min(self.batch_size, self.size))
                loss = c.update(c.make_batch(self._book[idx], self._market[idx], self._qty[idx], self._slip[idx]))
                self.logger.record_mean("janus/cerebellum_loss", loss)
        return True


__all__ = ["Cerebellum", "CerebellumBatch", "CerebellumCallback"]

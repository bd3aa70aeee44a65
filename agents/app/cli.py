"""Shared command-line plumbing of ``train.py`` and ``evaluate.py``."""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import yaml

from agents.app.yaml_io import load_yaml


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


_BAD_DATA_OPTION = "expected KEY=VALUE (VALUE in YAML syntax), got {!r}"
_UNKNOWN_DATA_OPTION = "unknown data option {!r}; accepted: {}"
_DATA_OPTION_NOT_MAPPING = "data option {!r}: {!r} is not a mapping"


def data_option(text: str) -> tuple[list[str], Any]:
    """``argparse`` type of ``--data-option KEY=VALUE``: the dotted key and the value parsed as YAML
    (:func:`~agents.app.yaml_io.load_yaml`).

    ``asset=ETH`` → (["asset"], "ETH"); ``columns.close=Adj Close`` → (["columns", "close"], "Adj Close");
    ``columns={close: Adj Close}`` → (["columns"], {"close": "Adj Close"}). The first key must be one of
    ``janus_env.historical.data_options()``, ``path`` or ``kind``.

    Raises:
        argparse.ArgumentTypeError: no ``=``, invalid YAML, or an unknown key (the message names the accepted ones).
    """
    from janus_env.historical import data_options  # here, not at the top: it imports pandas (about a second)

    key, sep, raw = text.partition("=")
    keys = [k.strip() for k in key.split(".")]
    if not sep or not all(keys):
        raise argparse.ArgumentTypeError(_BAD_DATA_OPTION.format(text))
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(_BAD_DATA_OPTION.format(text)) from err
    accepted = sorted({"path", "kind", *data_options()})
    if keys[0] not in accepted:
        raise argparse.ArgumentTypeError(_UNKNOWN_DATA_OPTION.format(keys[0], ", ".join(accepted)))
    return keys, value


def data_spec(data: Any, options: Sequence[tuple[list[str], Any]]) -> Any:
    """What ``data=`` of the historical env gets: ``data`` unchanged without options, else a spec mapping.

    ``data`` is a path or shipped sample name (becomes ``{"path": data}``), a spec mapping (copied) or None;
    each ``(keys, value)`` of :func:`data_option` is set in it, later ones winning.

    Raises:
        ValueError: a dotted key goes through a value that is not a mapping.
    """
    if not options:
        return data
    spec: dict[str, Any] = copy.deepcopy(dict(data)) if isinstance(data, Mapping) else (
        {} if data is None else {"path": str(data)})  # fmt: skip
    for keys, value in options:
        node = spec
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(_DATA_OPTION_NOT_MAPPING.format(".".join(keys), key))
        node[keys[-1]] = value
    return spec

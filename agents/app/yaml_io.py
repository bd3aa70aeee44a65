"""YAML for configs and ``KEY=VALUE`` flags, read safely and with the numbers people write.

PyYAML implements YAML 1.1, where a float needs a dot: ``1.0e-4`` is a float but ``1e-4`` is the *string*
``"1e-4"``, so ``--hp learning_rate=1e-4`` reached SB3 as text and crashed deep inside it. YAML 1.2 (and every
other parser a user meets: JSON, Python, ruamel) reads ``1e-4`` and ``5E3`` as floats; :func:`load_yaml` does
too, with PyYAML's safe loader otherwise unchanged (no object construction from the file).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose implicit float also matches exponent forms without a dot (YAML 1.2)."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, but ``1e-4``/``5E3`` are floats (YAML 1.2); raises ``yaml.YAMLError`` as it does."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader

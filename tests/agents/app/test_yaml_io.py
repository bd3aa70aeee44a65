"""load_yaml: YAML 1.1 safe loading, except that 1e-4 is a float (the README's own --hp learning_rate=1e-4)."""

from __future__ import annotations

import math

import pytest
import yaml

from agents.app.config import parse_override, read_yaml, resolve_hyperparams
from agents.app.yaml_io import load_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-4", 1e-4), ("5E3", 5000.0), ("-2e+2", -200.0), ("1.0e-4", 1e-4), ("0.5", 0.5), (".5", 0.5),
     ("1_000", 1000), ("3", 3), ("abc", "abc"), ("1e", "1e"), ("e5", "e5"), ("true", True), ("null", None),
     ("[1e-3, 2]", [1e-3, 2]), ("{lr: 1e-4}", {"lr": 1e-4})],
)
def test_numbers_as_written(text: str, value: object) -> None:
    got = load_yaml(text)
    assert got == value and type(got) is type(value)


def test_everything_else_reads_as_pyyaml_safe_load() -> None:
    for text in (".inf", "-.inf", "0x1F", "12:30", "2026-12-07", "'1e-4'", "a: [1, {b: 2.5}]"):
        expected = yaml.safe_load(text)
        got = load_yaml(text)
        assert got == expected or (isinstance(got, float) and math.isnan(got) and math.isnan(expected))
    assert math.isnan(load_yaml(".nan"))
    assert load_yaml("'1e-4'") == "1e-4"  # quoted: still text
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['echo pwned']")  # the safe loader builds no objects


def test_the_readme_learning_rate_reaches_the_model_as_a_float(tmp_path) -> None:
    assert parse_override("learning_rate=1e-4") == (["learning_rate"], 1e-4)
    params = resolve_hyperparams("dqn", "Janus-LOB-v0", overrides=["learning_rate=1e-4"])
    assert params["learning_rate"] == 1e-4 and isinstance(params["learning_rate"], float)
    path = tmp_path / "c.yml"
    path.write_text("default:\n  learning_rate: 3e-4\n")
    assert read_yaml(path) == {"default": {"learning_rate": 3e-4}}

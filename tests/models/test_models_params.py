"""Hyper-parameters are written once, in each model's constructor signature; ``config()`` is derived from it
(scikit-learn's ``get_params`` rule) and a model rebuilt from its config has the same config."""

from __future__ import annotations

import inspect

import pytest

from precache.models.kinds import build_predictor, kind_names, predictor_class


@pytest.mark.parametrize("kind", kind_names())
def test_config_is_the_signature_and_round_trips(kind: str) -> None:
    cls = predictor_class(kind)
    signature = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "name")]
    model = build_predictor(kind)
    config = model.config()
    fixed = getattr(cls, "fixed_order", None) is not None  # Markov / popularity: no max_order to store
    assert list(config) == [p for p in signature if not (fixed and p == "max_order")]
    assert build_predictor(kind, **config).config() == config


def test_a_changed_parameter_is_in_the_config() -> None:
    assert build_predictor("ppm", max_order=2, discount=0.3).config()["max_order"] == 2
    assert build_predictor("sknn", neighbors=7).config()["neighbors"] == 7
    assert build_predictor("auto", edge_fallback=False).config()["edge_fallback"] is False
    assert build_predictor("attention", d_model=32).config()["d_model"] == 32


def test_attention_training_config_takes_the_predictor_parameters() -> None:
    """The training loop's dataclass has no defaults of its own for the predictor's parameters: they come from
    the predictor (written once, in its signature)."""
    pytest.importorskip("torch")
    from precache.models.attention.train import TrainConfig

    predictor = build_predictor("attention", d_model=32, epochs=3)
    config = predictor.train_config()  # type: ignore[attr-defined]
    assert isinstance(config, TrainConfig) and (config.d_model, config.epochs) == (32, 3)
    shared = [f for f in TrainConfig.__dataclass_fields__ if f in predictor.config()]
    assert len(shared) == 20
    with pytest.raises(TypeError):
        TrainConfig()  # type: ignore[call-arg]

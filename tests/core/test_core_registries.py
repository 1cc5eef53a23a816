"""Names, kinds and formats have one registry each; every schema and table that lists them agrees with it.

The HTTP schema once listed 6 of the 7 predictor kinds (``markov-count`` was refused by ``POST /api/ml/train``
and accepted by the CLI) and 7 of the 12 trace formats: these tests fail on any such drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from precache.defaults import MODEL_NAMES
from precache.models.kinds import available_predictors, kind_names, predictor_class
from precache.serve.schemas import TraceIn, TrainConfigIn, TrainRequestIn
from precache.traces.detect import FORMATS
from precache.training.request import MODEL_TYPES, TrainingConfig


def enum_of(schema: dict[str, Any], field: str) -> list[str]:
    """The enum a field's JSON schema offers (OpenAPI clients read it), through ``anyOf`` and ``$ref``."""
    prop = schema["properties"][field]
    for option in prop.get("anyOf", [prop]):
        if "enum" in option:
            return list(option["enum"])
    raise AssertionError(f"{field} has no enum in {prop}")


def test_train_schema_offers_every_predictor_kind() -> None:
    kinds = set(kind_names())
    assert set(available_predictors()) == kinds  # no plugin adds a kind the schema would not know
    assert set(enum_of(TrainConfigIn.model_json_schema(), "predictor")) == kinds
    for kind in kinds:
        assert TrainConfigIn.model_validate({"predictor": kind}).predictor == kind
        TrainingConfig.from_api({"predictor": kind})  # and the training run takes what the schema let in
    assert "markov-count" in kinds
    with pytest.raises(ValidationError, match="predictor"):
        TrainConfigIn.model_validate({"predictor": "bogus"})


def test_trace_schema_offers_every_format_detect_knows() -> None:
    assert enum_of(TraceIn.model_json_schema(), "format") == ["auto", *FORMATS]
    assert len(FORMATS) == 12
    for fmt in FORMATS:
        assert TraceIn.model_validate({"path": "x.log", "format": fmt}).format == fmt
    with pytest.raises(ValidationError, match="format"):
        TraceIn.model_validate({"path": "x.log", "format": "bogus"})


def test_model_names_and_types_come_from_the_registry() -> None:
    from precache.registry import MODEL_NAMES as REGISTRY_NAMES
    from precache.serve.schemas import ModelName

    assert REGISTRY_NAMES is MODEL_NAMES
    assert enum_of(TrainRequestIn.model_json_schema(), "modelType") == list(MODEL_TYPES) == [*MODEL_NAMES, "all"]
    assert ModelName.__args__ == MODEL_NAMES  # type: ignore[attr-defined]


def test_each_kind_names_its_class_and_the_class_its_kind() -> None:
    """The kinds table (``name -> "module:Class"``) and each class's ``kind`` (written into manifests, read
    back by ``load_predictor``) agree."""
    for kind in kind_names():
        assert predictor_class(kind).kind == kind


def test_complexity_and_edge_worker_are_class_attributes() -> None:
    """What the one-standard-error rule and the edge publisher read of a kind, from its class."""
    from precache.edge.build import edge_worker_for
    from precache.models.simplest import complexity

    expected = {"popularity": (0, "table"), "markov-count": (1, "table"), "markov": (2, "table"),
                "ppm": (3, "table"), "attention": (4, "ort"), "sknn": (3, None), "auto": (3, None)}
    assert set(expected) <= set(kind_names())
    for kind, (rank, worker) in expected.items():
        assert (complexity(kind), edge_worker_for(kind)) == (rank, worker), kind
    assert complexity("bogus") == 3 and edge_worker_for("bogus") is None


def test_the_public_names_are_listed_once_and_all_resolve() -> None:
    """``precache/__init__.py`` lists its public names once (its ``TYPE_CHECKING`` imports); ``__all__``,
    ``dir()`` and the lazy attributes are derived from that list."""
    import precache
    from precache._lazy import declared_imports

    declared = declared_imports(precache.__file__)
    assert len(declared) > 40 and "PredictiveCache" in declared
    assert precache.__all__ == sorted([*(n for n in declared if n != "InferenceEngine"), "__version__"])
    assert set(declared) <= set(dir(precache))
    for name, module in declared.items():
        assert getattr(precache, name) is getattr(__import__(module, fromlist=[name]), name)
    source = Path(precache.__file__).read_text()
    assert source.count('"PredictiveCache"') == 0 and source.count("PredictiveCache") == 2  # "X as X", once


# Still spelled by hand: file -> count (none left).
KNOWN_SPELLINGS: dict[str, int] = {}


def test_model_names_are_spelled_once_in_the_source() -> None:
    """``"page-predictor"`` / ``"cache-optimizer"`` as string literals only in ``precache.defaults``."""
    import precache

    root = Path(precache.__file__).parent
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        count = text.count('"page-predictor"') + text.count('"cache-optimizer"')
        if count:
            found[str(path.relative_to(root))] = count
    assert found.pop("defaults.py") == 2
    grown = {name: n for name, n in found.items() if n > KNOWN_SPELLINGS.get(name, 0)}
    assert not grown, f"spell the model names through precache.defaults (PAGE_PREDICTOR, CACHE_OPTIMIZER): {grown}"

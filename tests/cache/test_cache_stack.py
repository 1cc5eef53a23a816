"""build_stack(): the whole stack from the environment; ML_ENABLED=false turns the learned layer off."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import hub_sessions
from precache.cache import RedisTier, S3FIFOPolicy
from precache.config import load_settings
from precache.models import build_predictor
from precache.stack import build_stack
from precache.warming.resolver import MappingResolver


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    predictor = build_predictor("markov")
    predictor.fit(hub_sessions(200))
    predictor.save(tmp_path / "predictor")
    return tmp_path


def _resolver() -> MappingResolver:
    async def load() -> bytes:
        return b"page"

    return MappingResolver(lambda page: load)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PRECACHE_PREDICTIVE__WARMING_THRESHOLD", "0.4")
    monkeypatch.setenv("PRECACHE_PREDICTIVE__MAX_PRELOAD_ITEMS", "7")


async def test_stack_from_the_environment(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_STORAGE_PATH", str(model_dir))
    stack = build_stack(resolver=_resolver())
    assert isinstance(stack.cache.l2, RedisTier) and stack.settings.redis_url.endswith("/0")
    assert stack.loaded == {"predictor": "markov"} and stack.predictor is not None
    assert stack.warmer is not None
    assert (stack.warmer.config.threshold, stack.warmer.config.max_items) == (0.4, 7)
    async with stack:
        await stack.cache.set("k", "v")
        assert await stack.cache.get("k") == "v"
        stack.warmer.observe("s1", "/a1")
        await stack.warmer.step()


async def test_ml_disabled_means_a_plain_cache(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_ENABLED", "false")
    stack = build_stack(model_dir=model_dir, resolver=_resolver())
    assert stack.predictor is None and stack.warmer is None and stack.loaded == {}
    assert isinstance(stack.cache.l1.policy, S3FIFOPolicy)
    assert not stack.cache.config.staleness.enabled
    async with stack:
        assert await stack.cache.get("x", loader=lambda: 1) == 1


async def test_stack_takes_the_registrys_active_version(model_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from precache.registry import open_registry

    monkeypatch.setenv("MODEL_STORAGE_PATH", str(tmp_path / "registry"))
    monkeypatch.setenv("MODEL_BACKUP_PATH", str(tmp_path / "backups"))
    registry = open_registry(load_settings())
    info = registry.register("page-predictor", model_dir / "predictor")
    assert build_stack(l2=False).predictor is None  # registered, not active yet: nothing to load
    registry.activate("page-predictor", info.version)
    stack = build_stack(l2=False)
    assert stack.loaded == {"page-predictor version": info.version, "predictor": "markov"}
    assert stack.model_dir == info.path


def test_explicit_settings_and_no_l2(model_dir: Path) -> None:
    stack = build_stack(load_settings(ml_enabled=True), model_dir=model_dir / "predictor", l2=False)
    assert stack.cache.l2 is None and stack.loaded == {"predictor": "markov"}
    assert stack.warmer is None  # no resolver and no origin URL: nothing to preload with

"""``ML_ONLINE_*`` settings: names, validation with the variable named, and both off switches."""

from __future__ import annotations

import pytest

from precache.config import ConfigError, load_settings
from precache.online.settings import load_online_settings


def test_settings_from_the_environment_and_the_off_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_ONLINE_HALF_LIFE_SECONDS", "0")
    monkeypatch.setenv("ML_ONLINE_WEIGHT", "0.35")
    monkeypatch.setenv("ML_ONLINE_MAX_CONTEXTS", "1000")
    online = load_online_settings()
    assert online.half_life is None and online.merge_params().weight == 0.35 and online.max_contexts == 1000
    assert online.active(load_settings())
    monkeypatch.setenv("ML_ENABLED", "false")
    assert not online.active(load_settings())  # ML_ENABLED=false switches the online layer off too
    monkeypatch.setenv("ML_ENABLED", "true")
    monkeypatch.setenv("ML_ONLINE_ENABLED", "false")
    assert not load_online_settings().active(load_settings())


@pytest.mark.parametrize(("name", "value"), [("ML_ONLINE_WEIGHT", "2"), ("ML_ONLINE_EVIDENCE", "0"),
                                             ("ML_ONLINE_MAX_CONTEXTS", "many")])
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_online_settings()

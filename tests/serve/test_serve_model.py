"""The served-model holder: both answer paths agree, a swap leaves in-flight snapshots alone, bad dirs refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_harness import train_model

from precache.serve.model import ModelHolder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("holder") / "ppm")


async def test_inline_and_batched_paths_give_the_same_answer(model_dir: Path) -> None:
    holder = ModelHolder(max_history=50, cache_size=0)
    served = holder.load(model_dir)
    assert served.inline  # a PPM table answers in microseconds: on the event loop
    inline, _ = await holder.predict(served, ["/a2", "/hub"], 5)
    served.inline = False  # through the engine's micro-batching thread
    batched, cached = await holder.predict(served, ["/a2", "/hub"], 5)
    assert inline == batched and inline[0][0] == "/b2" and cached is False
    await holder.aclose()


async def test_a_swap_keeps_the_old_snapshot_usable_and_refuses_bad_dirs(model_dir: Path, tmp_path: Path) -> None:
    holder = ModelHolder(max_history=50, cache_size=10, retire_after=0.01)
    old = holder.load(model_dir, version="v1")
    new = holder.load(model_dir, version="v2")
    assert holder.current is new and holder.loads == 2
    answer, _ = await holder.predict(old, ["/a1"], 3)  # a request that took the old snapshot finishes on it
    assert answer[0][0] == "/hub"
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(Exception):  # noqa: B017 - any refusal; the message is checked below
        holder.load(tmp_path)
    assert holder.current is new and holder.last_error is not None and str(tmp_path) in holder.last_error
    await holder.aclose()

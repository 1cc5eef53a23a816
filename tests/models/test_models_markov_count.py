"""The plain count Markov bar: ranks a page's seen successors by count, never lets popularity outrank them,
backs off to popularity for unknown pages, and saves/loads like every baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from precache.models import build_predictor, load_predictor
from precache.models.markov_count import CountMarkovPredictor
from precache.traces.model import Session


def sessions_from(paths: list[list[str]]) -> list[Session]:
    return [Session(str(i), f"c{i}", float(i), list(p)) for i, p in enumerate(paths)]


@pytest.fixture(scope="module")
def train() -> list[Session]:
    # /pop follows almost everything; /a was followed once by /x and once by /y
    return sessions_from([["/a", "/x"], ["/a", "/y"]] + [["/h", "/pop"]] * 40 + [["/b", "/pop"]] * 20)


def test_counts_rank_seen_successors_first_where_smoothed_markov_lets_popularity_win(train: list[Session]) -> None:
    count = build_predictor("markov-count")
    count.fit(train)
    ranked = count.predict(["/a"], 3)
    assert {p for p, _ in ranked[:2]} == {"/x", "/y"}
    assert [q for _, q in ranked[:2]] == [0.5, 0.5]
    assert ranked[2] == ("/pop", 0.0)  # the list is filled in popularity order, with no mass
    smoothed = build_predictor("markov")
    smoothed.fit(train)
    assert smoothed.predict(["/a"], 1)[0][0] == "/pop"  # the Witten-Bell mass toward popularity


def test_unknown_or_empty_history_backs_off_to_popularity(train: list[Session]) -> None:
    count = CountMarkovPredictor()
    count.fit(train)
    for history in ([], ["/never-seen"], ["/x"]):  # /x was never followed by anything
        ranked = count.predict(history, 2)
        assert ranked[0][0] == "/pop" and 0 < ranked[0][1] <= 1
        assert sum(p for _, p in count.predict(history, 10)) <= 1.0 + 1e-9


def test_round_trip_through_the_registry(train: list[Session], tmp_path: Path) -> None:
    count = build_predictor("markov-count")
    count.fit(train)
    root = count.save(tmp_path / "count")
    loaded = load_predictor(root)
    assert isinstance(loaded, CountMarkovPredictor) and loaded.kind == "markov-count"
    for history in ([], ["/a"], ["/h"], ["/zzz"]):
        assert loaded.predict(history, 5) == count.predict(history, 5)

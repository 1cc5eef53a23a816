"""Baseline predictors on small hand-built sessions: they learn what they should and stay real
probability distributions, with documented fallbacks for unknown pages and empty histories."""

from __future__ import annotations

import random

import numpy as np
import pytest

from precache.models import (
    OOV,
    MarkovPredictor,
    PopularityPredictor,
    PPMPredictor,
    SessionKNNPredictor,
    Vocabulary,
    build_predictor,
)
from precache.traces.model import Session

NAMES = ["popularity", "markov", "ppm", "sknn"]


def sessions_from(paths: list[list[str]]) -> list[Session]:
    return [Session(str(i), f"c{i}", float(i), list(p)) for i, p in enumerate(paths)]


def chain_sessions(n: int = 300, seed: int = 1) -> list[Session]:
    """A site where /a -> /b -> /c is the usual path, /x -> /y a second one, and noise pages."""
    rng = random.Random(seed)
    paths = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            paths.append(["/a", "/b", "/c"])
        elif r < 0.9:
            paths.append(["/x", "/y", "/a", "/z"])
        else:
            paths.append([f"/n{rng.randrange(20)}" for _ in range(3)])
    return sessions_from(paths)


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    train = chain_sessions()
    models = {}
    for name in NAMES:
        model = build_predictor(name)
        model.fit(train[:250], train[250:])
        models[name] = model
    return models


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("history", [[], ["/a"], ["/x", "/y"], ["/never-seen"], ["/a", "/never-seen"]])
def test_models_predictions_are_sorted_probabilities(fitted: dict, name: str, history: list[str]) -> None:
    model = fitted[name]
    top = model.predict(history, 10)
    assert 1 <= len(top) <= 10
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert sum(probs) <= 1.0 + 1e-9
    everything = model.predict(history, 10_000)  # huge k is capped at the vocabulary
    assert len(everything) == model.vocabulary_size
    assert len({page for page, _ in everything}) == len(everything)
    assert sum(p for _, p in everything) == pytest.approx(1.0, abs=1e-6)
    assert "<oov>" not in {page for page, _ in everything}


def test_models_markov_learns_transitions(fitted: dict) -> None:
    markov = fitted["markov"]
    assert markov.predict(["/a"], 1)[0][0] == "/b"
    assert markov.predict(["/x", "/y"], 1)[0][0] == "/a"
    # /a is followed by /b in ~2/3 of cases and by /z in ~1/3: empirical frequencies, lightly smoothed
    (first, p1), (second, p2) = markov.predict(["/a"], 2)
    assert (first, second) == ("/b", "/z")
    assert 0.6 < p1 < 0.72
    assert 0.27 < p2 < 0.36
    # the same last page gives the same answer whatever came before (first order)
    assert markov.predict(["/y", "/a"], 3) == markov.predict(["/a"], 3)


def test_models_ppm_uses_longer_context() -> None:
    # After /p the next page depends on the page before /p: a first-order model cannot tell.
    train = sessions_from([["/u", "/p", "/u2"]] * 50 + [["/v", "/p", "/v2"]] * 50)
    ppm = PPMPredictor(max_order=2)
    markov = MarkovPredictor()
    ppm.fit(train)
    markov.fit(train)
    assert ppm.predict(["/u", "/p"], 1)[0][0] == "/u2"
    assert ppm.predict(["/v", "/p"], 1)[0][0] == "/v2"
    assert ppm.predict(["/u", "/p"], 1)[0][1] > 0.9
    assert markov.predict(["/u", "/p"], 1)[0][1] < 0.6


def test_models_unknown_and_empty_history_fall_back_to_popularity(fitted: dict) -> None:
    popularity = fitted["popularity"]
    for name in ("markov", "ppm", "sknn"):
        model = fitted[name]
        fallback = [page for page, _ in model.predict([], 3)]
        assert fallback == [page for page, _ in popularity.predict([], 3)], name
        assert [page for page, _ in model.predict(["/never-seen"], 3)] == fallback, name


def test_models_popularity_counts_next_pages_not_entry_pages() -> None:
    model = PopularityPredictor()
    model.fit(sessions_from([["/entry", "/b"]] * 10 + [["/entry", "/c", "/c"]] * 3))
    top = model.predict(["/anything"], 3)
    assert top[0][0] == "/b"
    assert top[0][1] == pytest.approx(10 / 16, abs=0.05)
    assert top[-1][0] == "/entry"  # never a target: only the uniform share


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [0, -3])
def test_models_bad_k_is_an_error(fitted: dict, name: str, k: int) -> None:
    with pytest.raises(ValueError, match="k must be"):
        fitted[name].predict(["/a"], k)
    with pytest.raises(ValueError, match="k must be"):
        fitted[name].predict_batch([["/a"]], k)


def test_models_predict_before_fit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        MarkovPredictor().predict(["/a"], 3)


@pytest.mark.parametrize("name", NAMES)
def test_models_predict_batch_matches_predict(fitted: dict, name: str) -> None:
    histories = [[], ["/a"], ["/x", "/y"], ["/n3", "/n4"]]
    model = fitted[name]
    assert model.predict_batch(histories, 4) == [model.predict(h, 4) for h in histories]


def test_models_sknn_recommends_co_visited_pages() -> None:
    # Pages of one "topic" co-occur in sessions, in varying order: kNN should recommend the topic.
    rng = random.Random(3)
    paths = []
    for _ in range(200):
        topic = rng.choice(["s", "t"])
        pages = [f"/{topic}{i}" for i in range(4)]
        rng.shuffle(pages)
        paths.append(pages)
    model = SessionKNNPredictor(similarity="cosine")
    model.fit(sessions_from(paths))
    top = [page for page, _ in model.predict(["/s0", "/s1"], 2)]
    assert set(top) == {"/s2", "/s3"}  # repeats are never seen in training: seen pages are demoted
    assert model.repeat_rate == 0.0


def test_models_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        PPMPredictor(max_order=-1)
    with pytest.raises(ValueError):
        PPMPredictor(escape="nope")
    with pytest.raises(ValueError):
        SessionKNNPredictor(similarity="jaccardish")
    with pytest.raises(ValueError, match="unknown predictor"):
        build_predictor("no-such-model")
    with pytest.raises(ValueError, match="bad options"):
        build_predictor("markov", colour="blue")


def test_models_vocabulary_caps_size_and_maps_rare_pages_to_oov() -> None:
    vocab = Vocabulary.from_sessions(sessions_from([["/a", "/a", "/b", "/c"], ["/a", "/b"]]), max_size=2)
    assert len(vocab) == 2
    assert vocab.encode(["/a", "/b", "/c", "/zzz"]) == [1, 2, OOV, OOV]
    assert vocab.page(1) == "/a"
    assert Vocabulary.from_json(vocab.to_json()).pages == vocab.pages
    model = PPMPredictor(max_vocabulary=2)
    model.fit(sessions_from([["/a", "/b", "/c"]] * 5 + [["/a", "/b"]] * 5))
    assert {page for page, _ in model.predict(["/b"], 10)} <= {"/a", "/b"}


def test_models_ppm_distribution_sums_to_one_on_random_data() -> None:
    rng = np.random.default_rng(0)
    paths = [[f"/p{int(x)}" for x in rng.integers(0, 30, size=rng.integers(1, 8))] for _ in range(400)]
    model = PPMPredictor(max_order=3)
    model.fit(sessions_from(paths))
    for _ in range(50):
        history = [f"/p{int(x)}" for x in rng.integers(0, 35, size=rng.integers(0, 6))]
        dist = model.distribution(history)
        assert dist[OOV] == 0.0
        assert dist.sum() == pytest.approx(1.0, abs=1e-9)
        assert (dist >= 0).all()

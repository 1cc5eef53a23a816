"""The access-event collector on a real Redis Stream: one consumer group, dated files, takeover of a dead
collector's pending entries, and training from what was collected (pages from context.currentPath)."""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import redis

from conftest import shared_file
from precache.cache.events import AccessEvent
from precache.cache.stream import event_fields
from precache.evaluation import time_split
from precache.registry import ModelRegistry
from precache.traces import read_sessions
from precache.training import TrainingConfig, TrainRequest, run_pipeline
from precache.training.collect import read_event_files, sessions_from_events
from precache.training.collector import StreamCollector

NASA_JUL = "nasa-http/NASA_access_log_small.gz"


def publish_sessions(client: redis.Redis, stream: str) -> int:
    """The NASA Jul extract's page views as the cache would emit them: each view gets its page's key and an
    API key, both with ``context.currentPath`` set to the page (so keys and pages differ)."""
    sessions = read_sessions(shared_file(NASA_JUL))
    pipe = client.pipeline(transaction=False)
    n = 0
    for s in sessions:
        for page, t in zip(s.pages, s.times, strict=True):
            for key in (f"page:{page}", f"api:nav{hash(page) % 7}"):
                event = AccessEvent(t, key, s.client, {"currentPath": page}, "origin", 0.01, 100)
                pipe.xadd(stream, event_fields(event))
                n += 1
    pipe.execute()
    return n


def test_dead_collector_entries_taken_over_and_training_from_events(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = f"test-events-{uuid.uuid4().hex}"
    sent = publish_sessions(client, stream)
    events_dir = tmp_path / "events"
    a = StreamCollector(client, events_dir, stream=stream, consumer="a", batch=1000)
    b = StreamCollector(client, events_dir, stream=stream, consumer="b", batch=1000, claim_idle_ms=200)
    a.ensure_group()
    b.ensure_group()  # a second ensure is harmless (BUSYGROUP)
    stored = a.store(a.read(block_ms=None))  # a healthy batch
    taken = a.read(block_ms=None)  # then a reads a batch and dies before writing or acking it
    assert stored and taken
    while b.store(b.read(block_ms=10)):  # b drains what is left of the stream
        pass
    assert int(client.xpending(stream, "precache-training")["pending"]) == len(taken)
    time.sleep(0.3)
    assert b.claim_stale() == len(taken)
    assert int(client.xpending(stream, "precache-training")["pending"]) == 0
    client.xtrim(stream, maxlen=0)  # the stream is trimmed: nothing is lost, it is all in the files
    files = sorted(p.name for p in events_dir.iterdir())
    assert files and all(name.endswith((".a.jsonl", ".b.jsonl")) and name[:4] == "1995" for name in files)
    events = list(read_event_files(events_dir))
    assert len(events) == sent and len({e["id"] for e in events}) == sent
    sessions = sessions_from_events(events)
    assert all(not p.startswith(("page:", "api:")) for s in sessions for p in s.pages)  # pages, not keys
    # one page view makes several gets, so repeats of a page in a row collapse (a reload does too)
    original = read_sessions(shared_file(NASA_JUL))
    views = sum(1 + sum(a != b for a, b in itertools.pairwise(s.pages)) for s in original if s.pages)
    assert sum(len(s.pages) for s in sessions) == views

    reg = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    result = run_pipeline(TrainRequest("page-predictor", events_dir=str(events_dir),
                                       config=TrainingConfig(predictor="markov")), reg)
    (outcome,) = result.outcomes
    assert outcome.status == "activated" and outcome.decision is not None
    # same data, same protocol: the events give the trace's page sessions back, so the score is close
    assert abs(outcome.decision.candidate - 0.40) < 0.05
    assert len(time_split(sessions).test) > 100


async def test_event_bus_sink_writes_the_same_event_files(tmp_path: Path) -> None:
    """Without Redis: the cache's in-process event bus feeds the same dated files, pages from currentPath."""
    from precache.cache import MemoryTier, PredictiveCache
    from precache.cache.clock import ManualClock
    from precache.training.collector import EventFileSink

    clock = ManualClock(804_556_800.0)  # 1995-07-01 UTC
    sink = EventFileSink(tmp_path / "events", name="bus", batch=3)
    cache = PredictiveCache(l1=MemoryTier(max_bytes=1 << 20, max_items=1000, clock=clock), clock=clock)
    cache.subscribe(sink)

    async def load() -> str:
        return "body"

    async with cache:
        for session, pages in (("s1", ["/a", "/b", "/c"]), ("s2", ["/a", "/c"])):
            for page in pages:
                for key in (f"page:{page}", "api:menu"):  # one view, two gets
                    await cache.get(key, session_id=session, context={"currentPath": page}, loader=load)
                clock.advance(5.0)
    await sink.aclose()
    assert sink.written == 10 and sink.dropped == 0
    assert [p.name for p in (tmp_path / "events").iterdir()] == ["1995-07-01.bus.jsonl"]
    sessions = sessions_from_events(list(read_event_files(tmp_path / "events")))
    assert sorted(s.pages for s in sessions) == [["/a", "/b", "/c"], ["/a", "/c"]]

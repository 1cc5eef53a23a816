"""The online layer over a real redis-server and a real 3-node Redis Cluster: sharing, outage, key layout."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from precache.online.layer import OnlineLayer
from precache.online.merge import MergeParams
from precache.online.redis_store import INDEX_EVERY, RedisCounts, bucket_of, row_tag
from precache.online.state import epoch_of

FROZEN = [("/old", 0.6), ("/other", 0.3)]
PARAMS = MergeParams(weight=0.9, evidence=1.0, half_life=3600.0)


def _layer(client: object, prefix: str, **options: object) -> OnlineLayer:
    store = RedisCounts(client, PARAMS.half_life, prefix=prefix)
    return OnlineLayer(PARAMS, store=store, flush_seconds=0.02, refresh_seconds=0.05, timeout=0.5, **options)  # type: ignore[arg-type]


async def _top(layer: OnlineLayer, history: list[str]) -> str:
    return (await layer.rerank([history], [FROZEN], 2))[0][0][0]


async def test_a_transition_learned_on_one_layer_changes_the_others_answer_within_a_second(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    a, b = _layer(Redis.from_url(redis_url), prefix), _layer(Redis.from_url(redis_url), prefix)
    a.start()
    b.start()
    assert await _top(b, ["/home"]) == "/old"
    for _ in range(10):
        assert a.observe("/home", "/new", client="c", session=str(uuid.uuid4()))
    started = time.monotonic()
    while await _top(b, ["/home"]) != "/new":
        assert time.monotonic() - started < 1.0, "replica B did not see A's transition within 1 s"
        await asyncio.sleep(0.01)
    assert a.stats["flushes"] >= 1 and b.stats["read_fallbacks"] == 0
    await a.close()
    await b.close()


async def test_a_redis_outage_answers_from_frozen_plus_local_counts(private_redis) -> None:  # type: ignore[no-untyped-def]
    layer = _layer(Redis.from_url(private_redis.url, socket_connect_timeout=0.2), "o:", )
    layer.start()
    private_redis.stop()
    assert await _top(layer, ["/home"]) == "/old"  # no failed prediction
    for _ in range(5):
        layer.observe("/home", "/new")
    await asyncio.sleep(0.1)
    assert await _top(layer, ["/home"]) == "/new"  # local updates still count
    assert layer.stats["read_fallbacks"] >= 1 and layer.stats["flush_errors"] >= 1
    assert layer.backlog  # kept for when Redis comes back
    private_redis.start()
    for _ in range(100):
        if not layer.backlog:
            break
        await asyncio.sleep(0.05)
    assert not layer.backlog and layer.stats["flushed_increments"] > 0
    await layer.close()


async def test_cluster_key_layout_spreads_rows_and_keeps_each_row_in_one_slot(redis_cluster: str) -> None:
    prefix = f"c{uuid.uuid4().hex[:6]}:"
    client = RedisCluster.from_url(redis_cluster)
    a, b = _layer(client, prefix), _layer(RedisCluster.from_url(redis_cluster), prefix)
    pages = [f"/page/{i}" for i in range(60)] + ["/{braces}/page"]
    for page in pages:
        a.observe(page, "/next")
    assert await a.flush() > 0
    rows = await b.store.rows(pages, time.time())  # type: ignore[union-attr]
    assert all(rows[p] and max(rows[p], key=rows[p].__getitem__) == "/next" for p in pages)
    store = a.store
    assert store is not None
    slots = {client.keyslot(store.row_key(p, 0)) for p in pages}
    nodes = {client.nodes_manager.get_node_from_slot(s).name for s in slots}
    assert len(nodes) == 3  # rows spread over the three masters
    tag = row_tag("/{braces}/page")
    assert store.row_key("/{braces}/page", 7) == f"{prefix}{{{bucket_of('/{braces}/page')}}}:{tag}:e7"
    assert client.keyslot(store.row_key("/page/1", 0)) == client.keyslot(store.index_key(bucket_of("/page/1"), 0))
    epoch = int(time.time() // (64 * 3600.0))
    assert await b.store.contexts(epoch) == len(pages)  # type: ignore[union-attr]
    await a.close()
    await b.close()
    await client.aclose()


async def test_a_flush_on_one_redis_groups_rows_into_few_calls_and_sets_each_expiry_once(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    store = RedisCounts(client, PARAMS.half_life, prefix=f"g{uuid.uuid4().hex[:8]}:")
    now = time.time()
    epoch = epoch_of(now, PARAMS.half_life)
    pages = [f"/p{i}" for i in range(100)]
    increments = {**{(epoch, page, "/next"): 1.5 for page in pages}, (epoch, "", "/next"): 100.0}
    assert await store.flush(increments, now) == 7  # 101 rows: 6 x 16 + 5, not one call per bucket
    key = store.row_key(pages[0], epoch)
    ttl = await client.ttl(key)
    assert 0 < ttl <= store.ttl()  # type: ignore[operator]
    await client.expire(key, 1000)
    assert await store.flush(increments, now + 1) == 7
    assert await client.ttl(key) <= 1000  # an existing key's expiry is left alone
    index = store.index_key(bucket_of(pages[0]), epoch)
    assert await client.zscore(index, pages[0]) == now  # a hot row is re-stamped every INDEX_EVERY s, not per flush
    await store.flush({(epoch, pages[0], "/next"): 0.0}, now + INDEX_EVERY)
    assert await client.zscore(index, pages[0]) == now + INDEX_EVERY
    rows = await store.rows(pages, now)
    assert all(rows[page] == {"/next": 3.0} for page in pages)
    assert await store.popularity(now, 5) == {"/next": 200.0}
    assert await store.contexts(epoch) == 100
    await client.aclose()


class _FailsOnce:
    """A real client whose second script call fails once (a connection lost half way through a flush)."""

    def __init__(self, client: Redis) -> None:
        self.client, self.calls = client, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    async def evalsha(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionError("lost half way")
        return await self.client.evalsha(*args)


async def test_a_flush_that_fails_half_way_resends_only_what_redis_did_not_get(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"h{uuid.uuid4().hex[:8]}:"
    layer = _layer(_FailsOnce(client), prefix)
    pages = [f"/from{i}" for i in range(20)]  # 21 rows with popularity: two script calls (16 + 5)
    for page in pages:
        assert layer.observe(page, "/to", session=page)
    assert await layer.flush() == 0 and layer.stats["flush_errors"] == 1
    assert 0 < layer.backlog < 2 * len(pages)  # only the second call's increments wait
    assert await layer.flush() > 0 and not layer.backlog
    rows = await RedisCounts(client, PARAMS.half_life, prefix=prefix).rows(pages, time.time())
    local = {page: layer.local.rows[page].successors["/to"] for page in pages}
    assert all(abs(rows[page]["/to"] / local[page] - 1) < 1e-9 for page in pages)  # each counted once, none twice
    await client.aclose()

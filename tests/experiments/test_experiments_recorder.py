"""Two replicas record arms into a real Redis; the readout sums them; the CLI drives the same store."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
import redis.asyncio as aioredis

from precache.experiments.model import Arm, Experiment
from precache.experiments.readout import readout
from precache.experiments.recorder import ExperimentRecorder
from precache.experiments.store import RedisExperimentStore


async def test_replicas_flush_and_the_readout_sums_them(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
        exp = await RedisExperimentStore(client).create(
            Experiment("warm-ab", "warming", (Arm("off", 1), Arm("on", 1)), mde=0.05))
        replicas = [ExperimentRecorder(client, replica_id=f"r{i}") for i in range(2)]
        rng = random.Random(3)
        for i in range(4000):
            rec = replicas[i % 2]
            arm = rec.arm_for(exp, f"s{i}")
            assert arm is not None
            hit_rate = 0.6 if arm.name == "on" else 0.4  # warming on: clearly better
            stats = rec.stats(exp.id, arm.name)
            hits, latency = 0, 0.0
            for _ in range(3):  # a session of three requests
                hit = rng.random() < hit_rate
                hits += hit
                ms = rng.uniform(5, 50)
                latency += ms
                stats.record_request(hit, ms)
            stats.record_session(3 - hits, 3000 * (3 - hits), requests=3, hits=hits, latency_ms=latency)
        for rec in replicas:
            await rec.flush()
        arms = await ExperimentRecorder(client, replica_id="reader").collect(exp.id)
        assert sum(a.sessions for a in arms.values()) == 4000
        out = readout(exp, arms)
        on = out["arms"]["on"]
        assert on["metrics"]["hits"]["significant"] and on["metrics"]["hits"]["fixedHorizon"]["diff"] > 0.15
        assert on["verdict"] == "treatment better"
        assert not out["sampleRatio"]["mismatch"]
        assert on["metrics"]["latency_ms"]["status"] == "ok"
        assert on["metrics"]["latency_ms"]["unit"] == "session (delta method)"
        assert on["metrics"]["hits"]["unit"] == "session (delta method)"
        p95 = on["p95LatencyMs"]
        assert 40 <= p95["control"] <= 60 and 40 <= p95["treatment"] <= 60  # uniform(5, 50): p95 ~ 47.75
        assert on["metrics"]["origin_requests"]["fixedHorizon"]["diff"] < 0
    finally:
        await client.aclose()


@pytest.mark.slow
def test_cli_create_list_show_stop_and_bad_input(redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url}
    code = "import sys; from precache.cli import main; sys.argv = ['precache', *sys.argv[1:]]; main()"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, "experiments", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    made = cli("create", "cli-exp", "--kind", "threshold", "--arm", "t07:1:{\"threshold\": 0.7}",
               "--arm", "t05:1:{\"threshold\": 0.5}")
    assert made.returncode == 0, made.stderr
    again = cli("create", "cli-exp", "--kind", "threshold", "--arm", "a:1", "--arm", "b:2")
    assert again.returncode == 2 and "immutable" in again.stderr and "Traceback" not in again.stderr
    bad = cli("create", "x", "--kind", "nonsense", "--arm", "a:1", "--arm", "b:1")
    assert bad.returncode == 2 and "kind" in bad.stderr
    listed = cli("list")
    assert listed.returncode == 0 and "cli-exp\tthreshold\tsession\trunning" in listed.stdout
    shown = cli("show", "cli-exp")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["arms"]["t05"]["verdict"] == "insufficient data"
    assert cli("stop", "cli-exp").returncode == 0
    assert "stopped" in cli("list").stdout
    missing = cli("show", "nope")
    assert missing.returncode == 2 and "no experiment" in missing.stderr
    down = subprocess.run([sys.executable, "-c", code, "experiments", "list"], capture_output=True, text=True,
                          env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"}, timeout=120)
    assert down.returncode == 2 and "Redis" in down.stderr and "Traceback" not in down.stderr

"""Benchmark of a clean stop: ``precache serve --workers 2`` under load gets SIGTERM, N times (issue 28).

Run: ``nice -n 10 .venv/bin/python bench/bench_shutdown.py --trials 20`` (about 3-5 minutes; starts its own
redis-server and service processes on free loopback ports, and two CPU-burning processes so the CPU is
contended as in the issue's report). Writes ``bench/results/shutdown.json`` and prints a table.

Each trial: start the service (2 workers, a small PPM model, Redis for histories, events, metrics and
experiments), run a closed-loop load of ``--concurrency`` clients posting ``/api/ml/predict`` (one new
connection per request, so "in flight" is unambiguous: a request whose connection was accepted), send SIGTERM
to the ``precache serve`` process after ``--load-seconds`` as an orchestrator would, and record:

* the exit status (the goal: 0) and the seconds from SIGTERM to exit (the goal: under 10, the default
  ``PRECACHE_SHUTDOWN_SECONDS``);
* requests answered 200, requests refused at connect after the stop began (not in flight: the listening
  socket is closed), and **failed in-flight requests**: an accepted connection that got no complete answer,
  or an answer other than 200 (the goal: 0);
* whether any process of the service's group outlived it (the goal: none).

The load average before the run is recorded: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from precache.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "shutdown.json"
TOKEN = "shutdown-bench-token-0123456789"


@dataclass
class Trial:
    exit_code: int | None
    seconds_to_exit: float
    answered: int
    refused_after_stop: int
    failed_in_flight: int
    leftover_processes: int
    failures: list[str]


def _request(port: int, body: bytes) -> tuple[str, int]:
    """One POST on a new connection: ("refused", 0), ("ok", status) or ("failed", 0) after connecting."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    except OSError:
        return "refused", 0
    try:
        sock.settimeout(30.0)
        sock.sendall(b"POST /api/ml/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            return "empty answer", 0
        status = int(head.split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if length is not None and len(payload) < length:
            return "failed", status
        return "ok", status
    except OSError as exc:
        return f"failed ({type(exc).__name__})", 0
    finally:
        sock.close()


def _load(port: int, stop: threading.Event, stopping: threading.Event, out: dict[str, Any], worker: int) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        body = json.dumps({"sessionId": f"w{worker}-{i % 50}", "type": "page",
                           "context": {"currentPath": "/a3"}}).encode()
        kind, status = _request(port, body)
        with out["lock"]:
            if kind == "refused":
                if stopping.is_set():
                    out["refused"] += 1
                else:
                    out["failures"].append("connection refused before the stop")
                    time.sleep(0.05)
            elif kind == "ok" and status == 200:
                out["answered"] += 1
            else:
                out["failed"] += 1
                out["failures"].append(f"{kind} status {status} ({'after' if stopping.is_set() else 'before'} SIGTERM)")
        if kind == "refused" and stopping.is_set():
            time.sleep(0.01)


def _group_alive(pgid: int) -> int:
    alive = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive += 1
    return alive


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"precache serve exited with {proc.returncode} before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("precache serve was not ready in time")


def trial(env: dict[str, str], *, workers: int = 2, concurrency: int = 8, load_seconds: float = 2.0,
          limit: float = 30.0) -> Trial:
    """One start / load / SIGTERM / exit cycle of ``precache serve``."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "precache"), "serve", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    out: dict[str, Any] = {"lock": threading.Lock(), "answered": 0, "refused": 0, "failed": 0, "failures": []}
    stop, stopping = threading.Event(), threading.Event()
    try:
        wait_ready(port, proc)
        clients = [threading.Thread(target=_load, args=(port, stop, stopping, out, i), daemon=True)
                   for i in range(concurrency)]
        for client in clients:
            client.start()
        time.sleep(load_seconds)
        stopping.set()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the parent only, as `docker stop` does to PID 1
        try:
            code: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - sent
        time.sleep(0.3)  # requests still running on the client side finish (or fail) now
        stop.set()
        for client in clients:
            client.join(timeout=35)
        leftover = _group_alive(proc.pid)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Trial(code, round(seconds, 3), out["answered"], out["refused"], out["failed"], leftover,
                 out["failures"][:10])


def service_env(redis_url: str, model_dir: Path, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECACHE_", "ML_", "MODEL_", "PROMETHEUS_"))}
    env.update({"REDIS_URL": redis_url, "PRECACHE_API_TOKEN": TOKEN, "PRECACHE_MODEL_DIR": str(model_dir),
                "MODEL_STORAGE_PATH": str(model_dir.parent / "no-storage"), "PRECACHE_REDIS_PREFIX": prefix,
                "PRECACHE_EVENTS_PER_SECOND": "1000000", "PRECACHE_EVENTS_BURST": "1000000"})
    return env


def small_model(directory: Path) -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    from precache.models import build_predictor
    from precache.traces.model import Session

    sessions = [Session(str(i), f"c{i}", float(i), [f"/entry{i % 2}", f"/a{i % 7}", "/hub", f"/b{i % 7}"])
                for i in range(300)]
    model = build_predictor("ppm")
    model.fit(sessions)
    model.save(directory)
    return directory


def _burners(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes during the run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        sys.exit("redis-server is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-shutdown-"))
    redis_port = free_port()
    redis = subprocess.Popen([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    burners: list[subprocess.Popen[bytes]] = []
    load_before = os.getloadavg()[0]
    try:
        env = service_env(f"redis://127.0.0.1:{redis_port}/0", small_model(work / "ppm"), "bench:")
        burners = _burners(args.burners)
        trials = []
        for i in range(args.trials):
            t = trial(env, workers=args.workers, concurrency=args.concurrency)
            trials.append(t)
            print(f"trial {i + 1:2d}: exit {t.exit_code} in {t.seconds_to_exit:5.2f} s, {t.answered} answered, "
                  f"{t.refused_after_stop} refused after the stop, {t.failed_in_flight} failed in flight, "
                  f"{t.leftover_processes} left over", flush=True)
    finally:
        for burner in burners:
            burner.kill()
        redis.kill()
        shutil.rmtree(work, ignore_errors=True)
    clean = [t for t in trials if t.exit_code == 0 and t.seconds_to_exit < 10 and t.failed_in_flight == 0
             and t.leftover_processes == 0]
    summary = {
        "trials": len(trials), "clean": len(clean), "workers": args.workers, "concurrency": args.concurrency,
        "cpu_burners": args.burners, "exit_codes": sorted({t.exit_code for t in trials}, key=str),
        "max_seconds_to_exit": max(t.seconds_to_exit for t in trials),
        "failed_in_flight": sum(t.failed_in_flight for t in trials),
        "answered": sum(t.answered for t in trials), "load_average_before": round(load_before, 2),
        "machine": platform.platform(), "runs": [asdict(t) for t in trials],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print("\n| trials | clean (exit 0, < 10 s, 0 failed in flight) | max s to exit | failed in flight | answered |")
    print(f"| {summary['trials']} | {summary['clean']} | {summary['max_seconds_to_exit']:.2f} | "
          f"{summary['failed_in_flight']} | {summary['answered']} |")
    print(f"load average before: {load_before:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()

"""Run every benchmark under bench/ in turn; each prints its table and writes bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ORDER = ["bench_traces", "bench_cache", "bench_predictor", "bench_predictor_ceiling", "bench_attention",
         "bench_policies", "bench_replay", "bench_edge", "bench_pipeline", "bench_service", "bench_web"]


def main() -> int:
    failed = []
    only = set(sys.argv[1:])
    for name in ORDER:
        script = BENCH / f"{name}.py"
        if not script.exists() or (only and name not in only):
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

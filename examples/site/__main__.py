"""``python -m examples.site`` (``make example``): build the database, train a page predictor on the
MSNBC trace mapped onto the site (random walks when the trace is absent), start uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from examples.site.app import build_site
from examples.site.trace import MSNBC, as_sessions, msnbc_sessions, walk_sessions


def train_predictor(n_sessions: int = 20_000) -> object:
    from precache.models import build_predictor

    pages = msnbc_sessions(limit=n_sessions) if MSNBC.is_file() else walk_sessions(n_sessions)
    predictor = build_predictor("markov")
    predictor.fit(list(as_sessions(pages)))  # type: ignore[attr-defined]
    return predictor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.site", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", type=Path, default=Path("examples/site/site.db"))
    parser.add_argument("--delay", type=float, default=0.12, help="simulated query delay per page (s)")
    parser.add_argument("--mode", choices=["none", "cache", "warm", "prefetch"], default="prefetch")
    args = parser.parse_args(argv)
    if args.delay < 0 or not 0 < args.port < 65536:
        print("error: --delay must be >= 0 and --port in 1..65535", file=sys.stderr)
        return 2
    predictor = train_predictor() if args.mode in ("warm", "prefetch") else None
    app = build_site(args.db, args.mode, delay=args.delay, predictor=predictor)
    print(f"The Daily Precache ({args.mode}) on http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

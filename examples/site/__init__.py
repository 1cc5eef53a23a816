"""The example site: a small server-rendered news site (SQLite, deliberately slow pages) with precache's
middleware in front. ``make example`` runs it; the browser tests and ``bench/bench_web.py`` drive it."""

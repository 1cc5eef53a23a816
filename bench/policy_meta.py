"""The ``meta`` block of bench/results/policies.json: what every row of the policy benchmark means."""

from __future__ import annotations

from typing import Any


def meta() -> dict[str, Any]:
    return {
        "harness": "libCacheSim (C, oracleGeneral files) for lcs.*; bench_policies.replay (Python, "
                   "EvictionPolicy protocol) for precache.*",
        "split": "train on the first part; every cache (libCacheSim's and precache's) replays that part "
                 "uncounted as warm-up, then the rest is measured",
        "order": "evict then insert (libCacheSim's order) for every policy; admission only through admit()",
        "baselines": "every lcs.* and precache.lru/s3fifo row except the references and any policy listed in "
                     "returns_lru_numbers (identical to LRU at every size: not really running in this build); "
                     "LRU/S3FIFO/GDSF with libCacheSim admissioners (Bloom filter, AdaptSize, probabilistic 0.5, "
                     "size <= 1% of the cache)",
        "references": "Belady (ignores size) and BeladySize know the future: shown for reference, not a bound",
        "object_size": "largest successful response size of the object (>=1)",
        "learned_policy": "precache.learned = the learned configuration chosen per trace and size on the "
                          "validation slice (the second half of the training part, at most 100,000 requests, "
                          "warmed on as many before it; offline candidates use a model trained before the slice; "
                          "replayed at the point's own capacity; see learned_selection) by the noise-band rule "
                          "of precache.models.optimizer.selection: 'sampled' unless a candidate beats it by "
                          "more than max(0.001, 2 block standard errors) over 10 blocks (then the best of "
                          "those). LearnedPolicy defaults (sample_size 64, evict_batch 8, queue_divisor 8, "
                          "max_staleness 0.5, hit_rescore_every 8) were set on earlier validation slices",
        "online": "precache.learned (online*) = OnlineLearnedPolicy (models/optimizer/online.py): trained online on a "
                  "sliding window as LRB does (labels from the window's own future), with the page predictor's "
                  "probability of the next request as a feature where the trace has sessions (predictor_hints); "
                  "window = a sixth of the training part (2,000-100,000 requests); it streams the training part "
                  "before the evaluation half, like every cache here",
        "switch": "precache.switch (default) = SwitchingPolicy (models/optimizer/switcher.py): runs S3-FIFO and "
                  "switches online, test-then-learn, among S3-FIFO, S3-FIFO+doorkeeper, SIEVE and GDSF+doorkeeper "
                  "when their full-size shadow caches (keys and sizes; byte miss ratio decayed with a half-life "
                  "of 2,048 requests) show one better by more than 0.005; a switch hands the cache to the warm "
                  "shadow (nothing rebuilt); it streams the training part first (it may switch there), its "
                  "cpu_us_per_request includes the shadows",
        "shipped": "per point, chosen on the same validation slice among every learned candidate and every "
                   "baseline by the same noise-band rule with the online switcher "
                   "(precache.switch (default)) as the default (learned_selection.shipped.rule holds every "
                   "candidate's delta, standard error and whether it cleared the band); its evaluation result "
                   "is the point's shipped entry (summary.shipped_*)",
        "requests_per_s": "wall clock of the whole replay loop (Python replay for precache.*, C for lcs.*) on "
                          "a shared 2-core machine: compare within one run; cpu_us_per_request (precache.* "
                          "only) is this process's CPU time per request, less sensitive to other load",
    }

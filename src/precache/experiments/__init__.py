"""A/B experiments over what precache controls: sticky assignment, per-arm metrics, valid readouts.

Why always-valid statistics: people look at a running experiment every hour. A fixed-horizon test
checked after every batch finds a "significant" difference between two identical arms far more often
than its alpha says; the mixture sequential probability ratio test (mSPRT, as in Optimizely's Stats
Engine) gives p-values and confidence intervals that stay valid however often they are read.

Modules: ``stats`` (tests and sequential inference, on scipy's distributions), ``assignment`` (hashing
sessions into arms), ``model`` (experiment definitions), ``store`` (definitions in Redis so every replica
agrees), ``arms`` (per-arm accumulators), ``readout`` (the report). Nothing here is imported by the cache
or the warmer: they receive an arm's parameters through :class:`precache.types.ArmParameters`.
"""

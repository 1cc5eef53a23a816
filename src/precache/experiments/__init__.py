"""A/B experiments over what precache controls: sticky assignment, per-arm metrics, valid readouts.

Why always-valid statistics: people look at a running experiment every hour. A fixed-horizon test
checked after every batch finds a "significant" difference between two identical arms far more often
than its alpha says; the mixture sequential probability ratio test (mSPRT, as in Optimizely's Stats
Engine) gives p-values and confidence intervals that stay valid however often they are read.

Modules: ``stats`` (tests and sequential inference, on scipy's distributions), ``assignment`` (hashing
sessions into arms), ``model`` (experiment definitions), ``store`` (definitions in Redis so every replica
agrees), ``arms`` (per-arm accumulators), ``readout`` (the report), ``params`` (the running experiments as
:class:`precache.types.SessionParameters` and per-replica arms), ``consume`` (per-arm statistics from the
access-event stream), ``hub`` (what one process holds: definitions, arms, recorder, compact readouts).
An experiment replayed through the simulator is :mod:`precache.sim.ab_replay` (the simulator sits above
this package). Nothing here is imported by the cache or the
warmer: they receive an arm through :class:`precache.types.SessionArm` / :class:`precache.types.ReplicaArm`.
"""

"""Model assets for precache's Cloudflare Worker (``edge/``): ``precache edge build``.

The Worker runs no Python: it serves files this package writes. A Markov or PPM predictor becomes a
top-k table per context (:mod:`precache.edge.tables`, the default, Free-plan sized worker); the
attention network ships as its ONNX file for the opt-in onnxruntime-web worker
(:mod:`precache.edge.onnx`). An ``auto`` model is served as its best component a Worker can run
(:mod:`precache.edge.served`). Both come with an edge manifest (:mod:`precache.edge.manifest`) that names
every file with its sha256 and carries probes -- histories with the Python predictor's answers -- that
the Worker replays before a model may serve.
"""

from precache.edge.manifest import EDGE_MANIFEST, EdgeExport

__all__ = ["EDGE_MANIFEST", "EdgeExport"]

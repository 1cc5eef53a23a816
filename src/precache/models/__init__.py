"""Page predictors: rank a session's next pages with probabilities.

Baselines (popularity, first-order Markov, PPM, session-kNN) are pure numpy; every predictor saves to a
directory of JSON/NPZ(/ONNX) files plus a checksummed ``manifest.json`` and loads back without torch.
"""

from precache.models.base import (
    FORMAT_VERSION,
    ModelFileError,
    PagePredictorBase,
    Prediction,
    read_manifest,
)
from precache.models.files import ModelFiles, open_model_dir
from precache.models.kinds import (
    available_predictors,
    build_predictor,
    load_predictor,
    register_predictor,
)
from precache.models.markov import MarkovPredictor
from precache.models.popularity import PopularityPredictor
from precache.models.ppm import PPMPredictor
from precache.models.sknn import SessionKNNPredictor
from precache.models.vocabulary import OOV, Vocabulary

__all__ = [
    "FORMAT_VERSION",
    "OOV",
    "MarkovPredictor",
    "ModelFileError",
    "ModelFiles",
    "PPMPredictor",
    "PagePredictorBase",
    "PopularityPredictor",
    "Prediction",
    "SessionKNNPredictor",
    "Vocabulary",
    "available_predictors",
    "build_predictor",
    "load_predictor",
    "open_model_dir",
    "read_manifest",
    "register_predictor",
]

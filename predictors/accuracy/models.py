"""Accuracy models behind one small surface: `fit(archs|codes, accuracy)`, `predict(archs|codes) -> ndarray`
(top-1 in [0, 1]), `predict_std` (None where the model gives no uncertainty), `fidelity`, `save`/`load`.

Kinds, by name in `ACCURACY_MODELS` (add your own with `register_accuracy_model`):
`mlp` (once-for-all's predictor), `gbr` (gradient boosting), `rf` (random forest), `gp` (Gaussian process, gives
`predict_std`), `ensemble` (the mean of several kinds), `ofa-imported` (once-for-all's own trained predictor,
imported, never fitted here). A kind can be named on another of the feature sets
(`predictors.accuracy._features`) in brackets, `gbr[blocks]`, wherever a kind is named (`make_accuracy_model`,
ensemble members, `--model`); `model_name(model)` gives that name back.

Saved models load safely: torch weights are safetensors; scikit-learn models are skops files loaded against an
explicit list of the types they may hold (never pickle).
"""

from predictors.accuracy._base import (ACCURACY_MODELS, AccuracyModel, AccuracyPredictorError, make_accuracy_model,
                                       model_name, parse_model_name, register_accuracy_model, write_bytes_atomic)
from predictors.accuracy._ensemble import EnsembleAccuracy
from predictors.accuracy._mlp import MlpAccuracy
from predictors.accuracy._ofa import OfaImportedAccuracy
from predictors.accuracy._sklearn import GbrAccuracy, GpAccuracy, RfAccuracy

__all__ = ["AccuracyModel", "MlpAccuracy", "GbrAccuracy", "RfAccuracy", "GpAccuracy", "EnsembleAccuracy",
           "OfaImportedAccuracy", "ACCURACY_MODELS", "register_accuracy_model", "make_accuracy_model",
           "AccuracyPredictorError", "write_bytes_atomic", "model_name", "parse_model_name"]

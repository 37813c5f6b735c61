"""Accuracy predictors fitted on measured subnets of a trained run, stored beside its checkpoint.

    from predictors.accuracy import fit_run_predictor, load_accuracy_predictor
    p = fit_run_predictor("runs/fashion-mnist", samples=500)        # measure (resumable), choose, fit, store
    p = load_accuracy_predictor("runs/fashion-mnist")                # refused if the supernet was retrained
    p.predict(codes), p.predict_std(codes), p.fidelity
"""

from predictors.accuracy._features import AccuracyPredictorError
from predictors.accuracy.dataset import measure_subnets, measured_path, plan_subnets, read_measured, run_measurer
from predictors.accuracy.fit import (BASE_KINDS, CANDIDATES, MODEL_CHOICES, check_model, compare_models,
                                     cross_validate, fit_predictor, fit_run_predictor, select_model)
from predictors.accuracy.models import (ACCURACY_MODELS, AccuracyModel, EnsembleAccuracy, GbrAccuracy, GpAccuracy,
                                        MlpAccuracy, RfAccuracy, make_accuracy_model, model_name, parse_model_name,
                                        register_accuracy_model)
from predictors.accuracy.store import AccuracyPredictor, load_accuracy_predictor, save_accuracy_predictor

__all__ = ["AccuracyPredictor", "AccuracyModel", "MlpAccuracy", "GbrAccuracy", "RfAccuracy", "GpAccuracy",
           "EnsembleAccuracy", "ACCURACY_MODELS", "register_accuracy_model", "make_accuracy_model",
           "AccuracyPredictorError", "fit_run_predictor", "fit_predictor", "select_model", "cross_validate",
           "compare_models", "load_accuracy_predictor", "save_accuracy_predictor", "plan_subnets",
           "measure_subnets", "run_measurer", "read_measured", "measured_path", "BASE_KINDS", "CANDIDATES",
           "MODEL_CHOICES", "check_model", "model_name", "parse_model_name"]

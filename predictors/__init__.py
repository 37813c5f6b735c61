"""Predictors of a subnet's cost and quality: latency (lookup table, learned, roofline), MCU latency and memory,
and the `Predictors` facade a search calls. Every predictor is vectorised over compact arch codes."""

from predictors.api import Predictors, latency_predictor
from predictors.base import (Predictor, PredictorBase, PredictorError, available_predictors, load_predictor,
                             register_predictor)
from predictors.learned import LearnedLatency
from predictors.lookup import LookupTableLatency, read_ofa_tables, write_ofa_tables
from predictors.mcu import McuCostModel
from predictors.metrics import fidelity
from predictors.roofline import RooflineLatency

__all__ = ["Predictors", "latency_predictor", "Predictor", "PredictorBase", "PredictorError", "LearnedLatency",
           "LookupTableLatency", "RooflineLatency", "McuCostModel", "fidelity", "available_predictors",
           "load_predictor", "register_predictor", "read_ofa_tables", "write_ofa_tables"]

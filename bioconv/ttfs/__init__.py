"""Time-to-first-spike conversion (LC-TTFS, seed 004): ReL-PSP neurons in layer windows with a
dynamic threshold, latency-coded inputs, and the weight-sum constraint the ANN is trained with."""
from .constraints import (TOLERANCE, WeightSumError, WeightSumWarning, check_weight_sums, project_weight_sums,
                          row_sums)
from .latency import activations, check_unit_interval, spike_times
from .mapping import TTFSLayer, TTFSNetwork, TTFSProjection, UnboundedActivationWarning, map_network
from .simulate import TTFSOutput, simulate

__all__ = ["TOLERANCE", "TTFSLayer", "TTFSNetwork", "TTFSOutput", "TTFSProjection", "UnboundedActivationWarning",
           "WeightSumError", "WeightSumWarning", "activations", "check_unit_interval", "check_weight_sums",
           "map_network", "project_weight_sums", "row_sums", "simulate", "spike_times"]

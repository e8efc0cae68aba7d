"""Canonic signed spike (CSS) conversion (seed 002; FORMULAS §7): TSA neurons that amplify their
input by beta every step and fire ternary spikes, a Theorem 2 input encoder, Algorithm 2's
calibration, the optional amplitude adjustment of A.18, and the decoding of layer values.

- `code`: the arithmetic (values of signed trains, S_T, latency, the A.18 factor);
- `mapping`: a ReLU network to layers of TSA neurons with their amplitudes (`map_network`);
- `simulate`: Brian2 simulation, one step per coding step, layers chained within a step;
- `adjust`: A.18's data-based amplitude adjustment;
- `errors`: the per-layer coding error against the ReLU of the decoded input.
"""
from .adjust import adjust_amplitudes
from .code import adjustment_factor, encodable, latency, value
from .errors import layer_errors
from .mapping import PERCENTILE, CSSLayer, CSSNetwork, CSSProjection, check_graph, map_network
from .simulate import RULES, CSSOutput, NeuronTrace, encoder_trains, network_schedule, neuron, simulate

__all__ = ["CSSLayer", "CSSNetwork", "CSSOutput", "CSSProjection", "NeuronTrace", "PERCENTILE", "RULES", "adjust_amplitudes",
           "adjustment_factor", "check_graph", "encodable", "encoder_trains", "latency", "layer_errors", "map_network",
           "network_schedule", "neuron", "simulate", "value"]

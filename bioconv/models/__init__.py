"""The model library (equations/) and builders of Brian2 objects from it."""
from .build import (LEAK_STEP_CODE, neuron_group, parameters_of, resolve_parameters, rest_state_code, synapses,
                    weighted_event_code)
from .library import (LIBRARY_DIR, NeuronModel, Parameter, SynapseModel, available, compose_equations,
                      load, search_path)

__all__ = ["LEAK_STEP_CODE", "LIBRARY_DIR", "NeuronModel", "Parameter", "SynapseModel", "available", "compose_equations",
           "load", "neuron_group", "parameters_of", "resolve_parameters", "rest_state_code", "search_path",
           "synapses", "weighted_event_code"]

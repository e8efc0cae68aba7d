"""The model library (equations/) and builders of Brian2 objects from it."""
from .build import (neuron_group, parameters_of, resolve_parameters, rest_state_code, synapses,
                    weighted_event_code)
from .library import (LIBRARY_DIR, NeuronModel, Parameter, SynapseModel, available, compose_equations,
                      load, search_path)

__all__ = ["LIBRARY_DIR", "NeuronModel", "Parameter", "SynapseModel", "available", "compose_equations",
           "load", "neuron_group", "parameters_of", "resolve_parameters", "rest_state_code", "search_path",
           "synapses", "weighted_event_code"]

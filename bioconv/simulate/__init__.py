"""Running Brian2 simulations: device selection and build folders."""
from .devices import DEVICES, simulation_device

__all__ = ["DEVICES", "simulation_device"]

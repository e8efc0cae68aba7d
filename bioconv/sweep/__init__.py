"""Parameter sweeps: a specification (`Spec`), levels that evaluate points (`bioconv.sweep.neuron`,
`bioconv.sweep.network`), a Parquet results store (`load`), a runner on Dask (`run`) and plots
(`bioconv.sweep.plots`)."""
from .level import Level
from .params import Param, SweepSpecError
from .runner import SchedulerError, run
from .spec import Spec, Task, config_hash
from .store import load

__all__ = ["Level", "Param", "SchedulerError", "Spec", "SweepSpecError", "Task", "config_hash", "load", "run"]

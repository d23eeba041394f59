"""shallowflow: gradient flow of mean-field shallow ReLU networks (see SPEC.md).

The public API, re-exported flat: configure (:func:`make_config`), simulate
(:func:`simulate`), tabulate (:func:`runs_table`, :func:`trajectory_table`,
:func:`summary`), save (:func:`save`), and the pure building blocks (model, flow,
observables) for your own experiments.
"""

import jax

from shallowflow.compilation import use_compilation_cache
from shallowflow.devices import use_cpu_devices

use_cpu_devices()  # one XLA device per core, before JAX computes anything
use_compilation_cache()  # compiled programs kept on disk (see shallowflow.compilation)
# Padding-stable random draws rest on this mode (a longer 1-D draw extends a shorter
# one; see shallowflow.data). It is JAX's default; fix it so that a change of default
# cannot change our numbers.
jax.config.update("jax_threefry_partitionable", True)

from shallowflow.activations import parse_activation
from shallowflow.api import load_user, run_simulation, save
from shallowflow.compilation import CompileCounter
from shallowflow.config import SimConfig, horizon_steps, make_config
from shallowflow.engine import simulate, simulate_many
from shallowflow.errors import ShallowflowInputError
from shallowflow.geometry import Geometry, to_working
from shallowflow.kernel import mu_inf_kernel, tangent_kernel
from shallowflow.model import Problem, State, activation, forward, loss, vector_field
from shallowflow.observables import (
    assumption1,
    balance,
    coverage,
    energies,
    measure,
    mu,
    orthogonal_bounds,
)
from shallowflow.planning import plan
from shallowflow.results import SimResult, runs_table, summary, trajectory_table
from shallowflow.start import UserArrays, make_run
from shallowflow.theory.width import coverage_failure_bound, width
from shallowflow.trajectory import record_grid

__all__ = [
    "CompileCounter",
    "Geometry",
    "Problem",
    "ShallowflowInputError",
    "SimConfig",
    "SimResult",
    "State",
    "UserArrays",
    "activation",
    "assumption1",
    "balance",
    "coverage",
    "coverage_failure_bound",
    "energies",
    "forward",
    "horizon_steps",
    "load_user",
    "loss",
    "make_config",
    "make_run",
    "measure",
    "mu_inf_kernel",
    "mu",
    "orthogonal_bounds",
    "parse_activation",
    "plan",
    "record_grid",
    "run_simulation",
    "runs_table",
    "save",
    "simulate",
    "simulate_many",
    "summary",
    "tangent_kernel",
    "to_working",
    "trajectory_table",
    "use_cpu_devices",
    "vector_field",
    "width",
]

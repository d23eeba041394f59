"""Simulation configuration: five small immutable specs, each resolved once.

A cell is described by flat *knobs* (``n=400, d=100, solver="gd", ...``): the
vocabulary of the CLI, sweep files, protocols and :func:`make_config`. Defaults are
the paper's ("paper" preset, SPEC §5): sphere data, ±U[1,2] labels, asymmetric
initialisation, width p(n, 0.05), GD with η = 1, horizon T(n, p). :func:`make_config`
validates the knobs, fills in the automatic ones once (width ``p = p(n, eps)``,
horizon ``T(n, p)``, stop loss ``1/(2n)``, the flow's step floor, the geometry) and
returns a :class:`SimConfig` made of

- :class:`DataSpec`: the examples (law, n, d, labels);
- :class:`InitSpec`: the network and θ(0) (width p, activation, initialisation);
- :class:`SolverSpec`: the dynamics (GD or a flow, horizon, stop, tolerances); its
  :attr:`SolverSpec.spec` is the solver's own spec (:mod:`shallowflow.solvers`), the one
  place that converts GD steps to time and back;
- :class:`RecordSpec`: what is recorded (the time grid, the tail window, states);
- :class:`RunSpec`: how it runs (runs, seed, geometry, precision, memory).

Each knob is a field of one spec, named as the knob and nothing else (``DataSpec.data``
is the knob ``data``, ``InitSpec.state_file`` the knob ``state_file``); :data:`KNOBS`
lists them all, with the three that only choose automatic values (``eps``,
``horizon_factor``, ``activation_slope``). ``config.json`` stores knobs by name, so a
field's name is the name in every file and cell id.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo
from pydantic.functional_validators import AfterValidator

from shallowflow import heldout
from shallowflow.activations import ALLOWED, ActivationName, from_knobs, parse_activation
from shallowflow.data import PAPER_RANGE, check_range, check_ranges
from shallowflow.errors import ShallowflowInputError
from shallowflow.solvers import SOLVERS, Solver, solver_class
from shallowflow.theory.width import horizon_steps, width

DataName = Literal["sphere", "orthogonal", "gaussian", "correlated", "file"]
LabelName = Literal["paper", "teacher", "file"]
InitName = Literal["asymmetric", "balanced", "gaussian", "group", "standard", "file"]
GeometryName = Literal["dense", "reduced", "diagonal", "implicit"]
GridName = Literal["linear", "log"]
StopRule = Literal["inclusive", "authors"]  # solvers.gd.solve states both
Range = Annotated[tuple[float, float], pydantic.AfterValidator(check_range)]  # lo,hi: 0 < lo <= hi


def _known_solver(name: str) -> str:
    if name not in SOLVERS:
        raise ValueError(f"unknown {name!r}; allowed: {tuple(SOLVERS)}")
    return name


# A solver's name: a key of shallowflow.solvers.SOLVERS (checked when validated, so a
# solver registered later is known).
SolverName = Annotated[str, AfterValidator(_known_solver)]
# Seeds are 32-bit: jax.random.key(2**32) is the key of seed 0.
MAX_SEED = 2**32 - 1
# Loss levels a run measures itself at, at most (RecordSpec.levels).
MAX_LEVELS = 16
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _auto(text: str) -> dict[str, Any]:
    """Marks a field whose knob may be left out (None): ``make_config`` resolves it."""
    return {"auto": text}


class _Spec(BaseModel):
    # No inf or NaN anywhere: every float knob must be finite.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DataSpec(_Spec):
    """The examples (SPEC §1, §5): their law, numbers n and d, and their labels."""

    data: DataName = Field(
        "sphere", description="sphere | orthogonal | gaussian | correlated | file"
    )
    n: int = Field(1700, ge=1, description="number of examples")
    d: int = Field(100, ge=1, description="input dimension")
    rho: float = Field(0.0, ge=0, lt=1, description="pairwise correlation for data='correlated'")
    labels: LabelName = Field(
        "paper", description="paper (±U[1,2]; --labels paper:lo,hi for ±U[lo,hi]) | teacher | file"
    )
    teacher_width: int = Field(4, ge=1, description="width of the teacher network")
    data_file: str | None = Field(None, description="data file (.npz, .npy, .csv)")
    test_n: int = Field(0, ge=0, description="held-out examples drawn like the data (0: none)")
    test_data: str | None = Field(None, description="held-out data file")
    x_norms: Range = Field(
        PAPER_RANGE, description="input norms ρ_i ~ U[lo, hi] (sphere, orthogonal, correlated)"
    )
    label_range: Range = Field(
        PAPER_RANGE, description="paper labels' magnitudes |y_i| ~ U[lo, hi] (--labels paper:lo,hi)"
    )


class InitSpec(_Spec):
    """The network and its start θ(0) (SPEC §2, §5): width p, activation, initialisation."""

    p: int = Field(ge=1, description="width", json_schema_extra=_auto("p(n, eps)"))
    init: InitName = Field(
        "asymmetric", description="asymmetric | balanced | gaussian | group | standard | file"
    )
    w_law: Literal["uniform", "gaussian"] = Field("uniform", description="first-layer law")
    sigma: float = Field(1.0, gt=0, description="scale of the gaussian initialisation")
    w_scale: float = Field(1.0, gt=0, description="factor on W after drawing a")
    a_scale: float = Field(1.0, gt=0, description="factor on a after drawing it")
    require_coverage: bool = Field(False, description="redraw until every example is covered")
    activation: ActivationName = Field(
        description=f"σ: {ALLOWED}",
        json_schema_extra=_auto("relu; leaky:S with --activation-slope S"),
    )
    state_file: str | None = Field(None, description="initial state .npz (W, a)")
    state_run: int | None = Field(
        None,
        ge=0,
        description="start every run from run K of a multi-run state file (default: run r "
        "from the file's run r)",
    )


class SolverSpec(_Spec):
    """The dynamics (SPEC §1, §3b): GD with step η, or a flow; the horizon and the stop.

    The horizon is in units of time; a GD run takes ``steps(horizon)`` steps of η
    (step k is time kη). The solver's :attr:`spec` converts between the two
    (:meth:`steps` and :meth:`times` ask it)."""

    solver: SolverName = Field("gd", description="gd | flow | flow-floor (solvers.SOLVERS)")
    lr: float = Field(1.0, gt=0, description="GD step η")
    rtol: float = Field(1e-5, gt=0, lt=1, description="flow: relative tolerance")
    atol: float = Field(1e-7, gt=0, description="flow: absolute tolerance")
    dtmin: float = Field(
        gt=0,
        description="flow-floor: step floor",
        json_schema_extra=_auto("1e-6 on orthogonal data, else 1e-2"),
    )
    method: Literal["tsit5", "dopri5", "dopri8"] = Field(
        "tsit5", description="flow-floor: Runge-Kutta method"
    )
    horizon: float = Field(
        gt=0, description="time horizon", json_schema_extra=_auto("horizon_factor·T(n, p)·η")
    )
    stop_loss: float = Field(
        ge=0, description="stop below this loss", json_schema_extra=_auto("1/(2n)")
    )
    diverge_factor: float = Field(1e6, gt=1, description="loss > factor·L(0) marks divergence")
    stop_rule: StopRule = Field(
        "inclusive",
        description="gd: inclusive (L checked at steps 0..T, stop at L <= stop_loss) | "
        "authors (the paper's code: L checked at steps 0..T-1, stop at L < stop_loss; "
        "the paper preset)",
    )

    @property
    def spec(self) -> Solver:
        """The solver's spec (:mod:`shallowflow.solvers`), from the knobs it reads."""
        return solver_class(self.solver).from_knobs(self.model_dump())

    def steps(self, t: float) -> int:
        """The solver's units of grid in time ``t`` (GD: steps of η; at least one)."""
        return self.spec.steps(t)

    def times(self, grid: np.ndarray) -> np.ndarray:
        """Times of a record grid: GD steps × η, or the flow's times as they are."""
        return self.spec.times(grid)


class RecordSpec(_Spec):
    """What a run records (SPEC §2, §5): the time grid, the tail window, the states, the
    tangent kernel's rate, and the end-of-run measures taken again at loss levels."""

    record: int = Field(50, ge=2, description="number of recorded times")
    grid: GridName = Field("linear", description="recorded times: linear | log")
    tail: int = Field(
        100,
        ge=1,
        description="mu(t_inf)'s window in units of time: the last 100 steps of GD with "
        "η = 1, 100/η steps of another η (SPEC §5, Fig. 6)",
    )
    keep_state: bool = Field(
        False,
        description="keep the final states: state.npz with W (runs, p, d) and a (runs, p) "
        "(implicit d: a, V (runs, p, n), off2 (runs, p))",
    )
    kernel: bool = Field(
        description="also measure mu_inf_kernel, the tangent kernel's rate, at the end",
        json_schema_extra=_auto("on for orthogonal data (cheap there), else off"),
    )
    fitted: bool = Field(
        False, description="also record `fitted`: the examples with |r_i| < |y_i|/2"
    )
    levels: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        (),
        max_length=MAX_LEVELS,
        description="losses at which the end-of-run measures (mu(t_inf), <mu>, the kernel's "
        "rate) are also taken, the first time the loss falls below each (gd and flow)",
    )


class RunSpec(_Spec):
    """How the cell runs: R runs from one seed, the geometry, the precision, the memory."""

    runs: int = Field(16, ge=1, description="independent runs")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="32-bit seed")
    geometry: GeometryName = Field(
        description="dense | reduced | diagonal | implicit",
        json_schema_extra=_auto("the cheapest exact one"),
    )
    x64: bool = Field(False, description="float64 instead of float32")
    precision: Literal["highest", "high", "default"] = Field(
        "highest", description="matmul precision: highest | high | default"
    )
    memory_gb: float = Field(2.0, gt=0, description="memory budget for one batched chunk")


class _Choices(_Spec):
    """Knobs that only choose automatic values: they are spent by :func:`make_config`."""

    eps: float = Field(0.05, gt=0, lt=1, description="ε in p(n, ε) = ⌊log(n/ε)/log(4/3)⌋+1")
    horizon_factor: float = Field(1.0, gt=0, description="multiplies the default horizon")
    activation_slope: float | None = Field(None, ge=0, lt=1, description="= activation leaky:S")


SPECS: dict[str, type[_Spec]] = {
    "data": DataSpec,
    "init": InitSpec,
    "solver": SolverSpec,
    "record": RecordSpec,
    "run": RunSpec,
}


def _knob_fields() -> dict[str, tuple[str | None, FieldInfo]]:
    """knob → (its spec, its field); the spent knobs have spec None."""
    return {
        knob: (spec, info)
        for spec, model in [*SPECS.items(), (None, _Choices)]
        for knob, info in model.model_fields.items()
    }


KNOBS = _knob_fields()


def auto_rule(knob: str) -> str | None:
    """How :func:`make_config` resolves a knob left out (None), in words; None for a knob
    that may not be left out."""
    extra = KNOBS[knob][1].json_schema_extra
    return str(extra["auto"]) if isinstance(extra, dict) and "auto" in extra else None


def is_auto(knob: str) -> bool:
    """Whether a knob may be left out (None) and resolved by :func:`make_config`."""
    return auto_rule(knob) is not None


def _flat_model() -> type[BaseModel]:
    """The knobs as one flat model (field-level checks under the knobs' own names).
    An automatic knob may be None; the geometry's knob also takes "auto"."""
    fields = {}
    for knob, (_, info) in KNOBS.items():
        annotation: Any = info.annotation  # a type expression, built on at run time
        if is_auto(knob):
            default = "auto" if knob == "geometry" else None
            annotation = (
                Literal["auto", *get_args(annotation)] if knob == "geometry" else annotation
            )
            info = FieldInfo.merge_field_infos(info, default=default)
            annotation = annotation | None
        fields[knob] = (annotation, info)
    return create_model("Knobs", __base__=_Spec, **fields)


_Knobs = _flat_model()


class SimConfig(_Spec):
    """Every knob of one simulation cell (R runs of one (d, n, p) setting), resolved."""

    data: DataSpec
    init: InitSpec
    solver: SolverSpec
    record: RecordSpec
    run: RunSpec

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        data, init, solver, run = self.data, self.init, self.solver, self.run
        if data.data == "orthogonal" and data.n > data.d:
            raise ValueError(f"n: orthogonal data need n <= d; got n={data.n} > d={data.d}")
        if data.data == "correlated" and data.n + 1 > data.d:
            raise ValueError(f"n: correlated data need n + 1 <= d; got n={data.n}, d={data.d}")
        if data.data == "file" and not data.data_file:
            raise ValueError("data_file: data='file' needs a path (--data FILE)")
        if init.init == "file" and not init.state_file:
            raise ValueError("state_file: init='file' needs a path (--state FILE)")
        if init.state_file and init.init != "file":
            raise ValueError(
                f"init: {init.init!r} does not apply with a state file (--state FILE is θ(0)); "
                "leave --init out"
            )
        if init.state_run is not None and not init.state_file:
            raise ValueError("state_run: picks a run of a state file; give --state FILE")
        if init.init == "group" and data.data != "orthogonal":
            raise ValueError("init: 'group' needs orthogonal data (SPEC §4)")
        if data.rho != 0.0 and data.data != "correlated":
            raise ValueError(f"rho: only data='correlated' uses rho; got data={data.data!r}")
        if data.labels == "file" and data.data != "file":
            raise ValueError("labels: 'file' takes y from a data file (--data FILE with y)")
        spec = solver.spec
        spec.check(solver.horizon, self.record.tail)
        if solver.stop_rule != "inclusive" and "stop_rule" not in spec.knobs():
            raise ValueError(
                f"stop_rule: {solver.stop_rule!r} is a rule of GD's step loop; the flows stop "
                "when the loss reaches stop_loss (use 'inclusive')"
            )
        if not run.x64:  # the run's values are float32 on device: no silent inf
            for name, value in self.knobs().items():
                if isinstance(value, float) and abs(value) > _FLOAT32_MAX:
                    raise ValueError(f"{name}: {value:g} exceeds float32's range; use x64")
        from shallowflow.devices import check_memory  # imports JAX: only when checking

        check_memory(run.geometry, data.n, data.d, init.p, self.record.record, run.x64, run.runs)
        if self.record.levels and not spec.measures_levels:
            raise ValueError(f"levels: measured by the gd and flow solvers, not {solver.solver}")
        if any(level <= solver.stop_loss for level in self.record.levels):
            raise ValueError(
                f"levels: each must lie above the stop loss {solver.stop_loss:g} (the run "
                f"stops there); got {list(self.record.levels)}"
            )
        if run.geometry == "diagonal" and data.data != "orthogonal":
            raise ValueError("geometry: 'diagonal' needs data='orthogonal'")
        if init.require_coverage and not parse_activation(init.activation).activity:
            raise ValueError(f"require_coverage: coverage means u > 0; not for {init.activation}")
        if init.init == "standard" and init.w_law != "uniform":
            raise ValueError("w_law: 'standard' draws W from U(±1/√d); leave w_law out")
        heldout.check(data.data, data.n, data.d, data.test_n, data.test_data, run.geometry)
        check_ranges(data.data, data.labels, data.x_norms, data.label_range)
        if run.geometry == "implicit" and not implicit_ok(data, init):
            raise ValueError(
                "geometry: 'implicit' needs data in {sphere, gaussian}, labels in "
                "{paper, teacher}, init 'gaussian' or w_law='gaussian', and n <= d"
            )
        return self

    def knobs(self) -> dict[str, Any]:
        """The resolved knobs, flat: ``make_config(**cfg.knobs()) == cfg``."""
        out: dict[str, Any] = {}
        for spec in SPECS:
            out |= getattr(self, spec).model_dump()
        return out


def implicit_ok(data: DataSpec, init: InitSpec) -> bool:
    """Rotation-invariant data and first layer: reduced coordinates can be sampled."""
    gaussian_w = init.init == "gaussian" or (
        init.init in ("asymmetric", "balanced") and init.w_law == "gaussian"
    )
    return (
        data.data in ("sphere", "gaussian")
        and data.labels in ("paper", "teacher")
        and gaussian_w
        and data.n <= data.d
        and not data.test_data
    )


def _geometry(data: DataSpec, init: InitSpec) -> str:
    """The cheapest exact geometry (SPEC §3)."""
    if data.data == "orthogonal":
        return "diagonal"
    if implicit_ok(data, init) and data.d > data.n + data.test_n:
        return "implicit"
    if data.d > data.n:
        return "reduced"
    return "dense"


def _resolve(flat: dict[str, Any]) -> SimConfig:
    """Fill in the automatic knobs (once) and build the specs."""
    parts: dict[str, dict[str, Any]] = {spec: {} for spec in SPECS}
    for knob, value in flat.items():
        spec = KNOBS[knob][0]
        if spec is not None:
            parts[spec][knob] = value
    data = DataSpec(**parts["data"])
    n = data.n
    auto = parts["init"]
    if auto["p"] is None:
        auto["p"] = width(n, flat["eps"])
    sol = parts["solver"]
    if sol["stop_loss"] is None:
        sol["stop_loss"] = 1.0 / (2 * n)
    if sol["dtmin"] is None:
        sol["dtmin"] = 1e-6 if data.data == "orthogonal" else 1e-2
    if sol["horizon"] is None:  # T(n, p) paper steps, in the solver's time
        spec = solver_class(sol["solver"]).from_knobs(sol)
        sol["horizon"] = spec.default_horizon(flat["horizon_factor"] * horizon_steps(n, auto["p"]))
    auto["activation"] = from_knobs(auto["activation"], flat["activation_slope"])
    init = InitSpec(**auto)
    if parts["run"]["geometry"] in (None, "auto"):
        parts["run"]["geometry"] = _geometry(data, init)
    if parts["record"]["kernel"] is None:
        parts["record"]["kernel"] = parts["run"]["geometry"] == "diagonal"
    return SimConfig(
        data=data,
        init=init,
        solver=SolverSpec(**sol),
        record=RecordSpec(**parts["record"]),
        run=RunSpec(**parts["run"]),
    )


def make_config(**knobs: Any) -> SimConfig:
    """Build a :class:`SimConfig` from flat knobs (module doc), turning validation
    failures into :class:`ShallowflowInputError` that names the offending knob."""
    try:
        flat = _Knobs(**knobs)
        return _resolve(flat.model_dump())
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        names = [str(x) for x in err["loc"] if isinstance(x, str)]  # not a sequence index
        loc = names[-1] if names else ""
        if not loc:  # the checks across knobs write "knob: message"
            loc, _, msg = msg.partition(": ") if ": " in msg else ("config", "", msg)
        raise ShallowflowInputError(loc, msg) from None

"""Simulation configuration: small immutable pydantic models, validated on creation.

Defaults are the paper's ("paper" preset, SPEC §5): sphere data, ±U[1,2] labels,
asymmetric initialisation, width p(n, 0.05), GD with η = 1, horizon T(n, p).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shallowflow.errors import ShallowflowInputError
from shallowflow.theory.width import width

DataName = Literal["sphere", "orthogonal", "gaussian", "correlated", "file"]
LabelName = Literal["paper", "teacher", "file"]
InitName = Literal["asymmetric", "balanced", "gaussian", "group", "file"]
SolverName = Literal["gd", "flow", "flow-floor"]
GeometryName = Literal["auto", "dense", "reduced", "diagonal", "implicit"]
GridName = Literal["linear", "log"]


def horizon_steps(n: int, p: int) -> int:
    """The paper's horizon T(n, p) = ⌊1.5 √(np) log(np) / 4⌋ + 1 steps (SPEC §5)."""
    return int(math.floor(1.5 * math.sqrt(n * p) * math.log(n * p) / 4)) + 1


# Largest GD horizon in steps: step counters and record grids are int32 on device.
MAX_STEPS = 2**30
# Seeds are 32-bit: jax.random.key(2**32) is the key of seed 0.
MAX_SEED = 2**32 - 1
# Host memory for one result row (run × record): the recorded observables in float64.
_RECORD_BYTES = 8 * 32


class _Frozen(BaseModel):
    # No inf or NaN anywhere: every float knob must be finite.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SimConfig(_Frozen):
    """Every knob of one simulation cell (R runs of one (d, n, p) setting)."""

    n: int = Field(1700, ge=1, description="number of examples")
    d: int = Field(100, ge=1, description="input dimension")
    p: int | None = Field(None, ge=1, description="width; None = p(n, eps)")
    eps: float = Field(0.05, gt=0, lt=1, description="failure probability for p(n, eps)")
    data: DataName = "sphere"
    rho: float = Field(0.0, ge=0, lt=1, description="pairwise correlation for data='correlated'")
    labels: LabelName = "paper"
    teacher_width: int = Field(4, ge=1)
    init: InitName = "asymmetric"
    w_law: Literal["uniform", "gaussian"] = "uniform"
    sigma: float = Field(1.0, gt=0, description="scale of the gaussian initialisation")
    w_scale: float = Field(1.0, gt=0, description="factor on W after drawing a")
    require_coverage: bool = False
    activation_slope: float = Field(0.0, ge=0, lt=1, description="leaky-ReLU slope; 0 = ReLU")
    solver: SolverName = "gd"
    lr: float = Field(1.0, gt=0, description="GD step η")
    rtol: float = Field(1e-5, gt=0, lt=1, description="flow: relative tolerance")
    atol: float = Field(1e-7, gt=0, description="flow: absolute tolerance")
    dtmin: float | None = Field(
        None,
        gt=0,
        description="flow-floor: step floor; None = 1e-6 (orthogonal data) or 1e-2",
    )
    method: Literal["tsit5", "dopri5", "dopri8"] = "tsit5"
    horizon: float | None = Field(None, gt=0, description="time horizon; None = T(n, p)")
    horizon_factor: float = Field(1.0, gt=0, description="multiplies the default horizon")
    stop_loss: float | None = Field(None, ge=0, description="stop below; None = 1/(2n)")
    diverge_factor: float = Field(1e6, gt=1, description="loss > factor·L(0) marks divergence")
    tail: int = Field(100, ge=1, description="steps averaged for mu(t_inf) (SPEC §5, Fig. 6)")
    record: int = Field(50, ge=2, description="number of recorded times")
    grid: GridName = "linear"
    runs: int = Field(16, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="32-bit seed")
    geometry: GeometryName = "auto"
    x64: bool = False
    precision: Literal["highest", "high", "default"] = "highest"
    memory_gb: float = Field(2.0, gt=0, description="memory budget for one batched chunk")
    keep_state: bool = False
    data_file: str | None = None
    state_file: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SimConfig:
        if self.data == "orthogonal" and self.n > self.d:
            raise ValueError(f"n: orthogonal data need n <= d; got n={self.n} > d={self.d}")
        if self.data == "correlated" and self.n + 1 > self.d:
            raise ValueError(f"n: correlated data need n + 1 <= d; got n={self.n}, d={self.d}")
        if self.data == "file" and not self.data_file:
            raise ValueError("data_file: data='file' needs a path (--data FILE)")
        if self.init == "file" and not self.state_file:
            raise ValueError("state_file: init='file' needs a path (--state FILE)")
        if self.init == "group" and self.data != "orthogonal":
            raise ValueError("init: 'group' needs orthogonal data (SPEC §4)")
        if self.rho != 0.0 and self.data != "correlated":
            raise ValueError(f"rho: only data='correlated' uses rho; got data={self.data!r}")
        if self.labels == "file" and self.data != "file":
            raise ValueError("labels: 'file' takes y from a data file (--data FILE with y)")
        if self.solver == "gd" and self.t_end / self.lr > MAX_STEPS:
            raise ValueError(
                f"horizon: {self.t_end / self.lr:.3g} GD steps; at most 2^30 = {MAX_STEPS} "
                "(the step counter is 32-bit)"
            )
        if not self.x64:  # the run's values are float32 on device: no silent inf
            big = 3.4028234e38
            for name, value in self:
                if isinstance(value, float) and abs(value) > big:
                    raise ValueError(f"{name}: {value:g} exceeds float32's range; use x64")
        _check_memory(self)
        if self.geometry == "diagonal" and self.data != "orthogonal":
            raise ValueError("geometry: 'diagonal' needs data='orthogonal'")
        if self.geometry == "implicit" and not self.implicit_ok:
            raise ValueError(
                "geometry: 'implicit' needs data in {sphere, gaussian}, labels in "
                "{paper, teacher}, init 'gaussian' or w_law='gaussian', and n <= d"
            )
        return self

    @property
    def implicit_ok(self) -> bool:
        """Rotation-invariant data and first layer: reduced coordinates can be sampled."""
        gaussian_w = self.init == "gaussian" or (
            self.init in ("asymmetric", "balanced") and self.w_law == "gaussian"
        )
        return (
            self.data in ("sphere", "gaussian")
            and self.labels in ("paper", "teacher")
            and gaussian_w
            and self.n <= self.d
        )

    @property
    def width(self) -> int:
        """p, or p(n, ε) = ⌊log(n/ε)/log(4/3)⌋ + 1 when unset (SPEC §2)."""
        return self.p if self.p is not None else width(self.n, self.eps)

    @property
    def resolved_geometry(self) -> str:
        """The geometry used: the cheapest exact one unless fixed (SPEC §3)."""
        if self.geometry != "auto":
            return self.geometry
        if self.data == "orthogonal":
            return "diagonal"
        if self.implicit_ok and self.d > self.n:
            return "implicit"
        if self.d > self.n:
            return "reduced"
        return "dense"

    @property
    def t_end(self) -> float:
        """The horizon in time units (steps × η for GD)."""
        if self.horizon is not None:
            return float(self.horizon)
        return (
            self.horizon_factor
            * horizon_steps(self.n, self.width)
            * (self.lr if self.solver == "gd" else 1.0)
        )

    @property
    def step_floor(self) -> float:
        """The floored flow's step floor (``solver="flow-floor"``): orthogonal data only
        meet isolated kinks, so a tiny floor lets the tolerance hold there; other data
        slide along activation boundaries, where 1e-2 bounds the cost."""
        if self.dtmin is not None:
            return self.dtmin
        return 1e-6 if self.data == "orthogonal" else 1e-2

    @property
    def threshold(self) -> float:
        """Early-stop loss: 1/(2n) by default (the paper's success criterion)."""
        return self.stop_loss if self.stop_loss is not None else 1.0 / (2 * self.n)


def run_bytes(geometry: str, n: int, d: int, p: int, records: int, x64: bool) -> int:
    """Device memory one run of these sizes needs (an estimate, also the engine's chunk
    rule): data, first layer, pre-activations and recorded states."""
    from shallowflow.start import working_dim

    m = working_dim(geometry, n, d)
    explicit = 0 if geometry == "implicit" else n * d + p * d
    per_run = explicit + n * m + p * m * (records + 4) + 8 * p * n
    return per_run * (8 if x64 else 4)


def _check_memory(cfg: SimConfig) -> None:
    """Refuse a cell whose one run cannot fit the device, or whose results cannot fit
    the host, with the estimate and the limit."""
    from shallowflow.devices import device_memory_bytes, host_memory_bytes

    gib = 2**30
    limit = device_memory_bytes()
    need = run_bytes(cfg.resolved_geometry, cfg.n, cfg.d, cfg.width, cfg.record, cfg.x64)
    if limit is not None and need > limit:
        n, p = cfg.n, cfg.width
        culprit = "p" if p * (cfg.record + 12) > n + cfg.d else "n"
        raise ValueError(
            f"{culprit}: one run of n={cfg.n}, d={cfg.d}, p={cfg.width} needs about "
            f"{need / gib:.3g} GiB; the device has {limit / gib:.3g} GiB"
        )
    host = host_memory_bytes()
    results = cfg.runs * (cfg.record + 2) * _RECORD_BYTES
    if host is not None and results > host / 2:
        raise ValueError(
            f"runs: {cfg.runs} runs × {cfg.record} records need about {results / gib:.3g} GiB "
            f"of results; at most half the host's {host / gib:.3g} GiB"
        )


def make_config(**knobs) -> SimConfig:
    """Build a :class:`SimConfig`, turning validation failures into
    :class:`ShallowflowInputError` that names the offending parameter."""
    try:
        return SimConfig(**knobs)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(x) for x in err["loc"])
        if not loc:  # model-level checks write "param: message"
            loc, _, msg = msg.partition(": ") if ": " in msg else ("config", "", msg)
        raise ShallowflowInputError(loc, msg) from None

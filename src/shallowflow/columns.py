"""The data dictionary: every column that a command writes, in one registry.

Each column has a meaning, units, the formula or theorem it comes from (SPEC.md section)
and when it is null. Knob columns (``n``, ``lr``, ``w_scale``, …) are documented by
their field in :mod:`shallowflow.config` (one owner); the per-run measures of a
recorded observable ``x`` are ``final_x``; the loss-level measures are
``final_level_<measure>_<k>``. :func:`describe` finds a column's entry, and
:func:`markdown` renders the dictionary (the docs site's reference page is generated
from it, and ``tests/test_columns.py`` fails when a writer writes a column that is not
here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shallowflow.config import KNOBS
from shallowflow.study_columns import STUDY_COLUMNS

__all__ = ["Column", "TABLES", "describe", "markdown"]


@dataclass(frozen=True)
class Column:
    """One column: its name (or pattern), meaning, units, source and when it is null."""

    name: str
    meaning: str
    units: str = "—"
    source: str = "—"
    null: str = "never"


def _c(name: str, meaning: str, units: str = "—", source: str = "—", null: str = "never"):
    return Column(name, meaning, units, source, null)


# Which file holds which columns, for the reader (see docs/reference/columns.md).
TABLES = {
    "trajectory": "`simulate`'s `runs.parquet`: one row per run × recorded time "
    "(`final` marks the row at the stop time), with the per-run columns "
    "`outcome`, `success`, `interpolated`, `steps`, `t_final`, `assumption1`, `coverage0`, "
    "`mu_tail`, `mu_mean`, `geometry` merged in",
    "runs": "one row per run: `simulate`'s `final.parquet`; the `runs.parquet` of "
    "`reproduce`, `sweep` and `study` (with the cell's knobs as leading columns)",
    "points": "`points.parquet` of `reproduce` (one row per point of a figure) and `sweep`",
    "study": "`table.parquet` of a study: `conjecture1`, one row per fitted exponent; "
    "`kernels`, one per (tag, n, predictor, measure); `constants`, one per cell; "
    "`smallinit`, `groupinit`: one per measure (part, arm, measure, x, value, interval)",
}

# What an activation σ does not allow is null, never a wrong number (SPEC §6).
_NOT_ORTHO = "σ other than relu, leaky included (proven for ReLU only, SPEC §6)"
_NO_LAW = "σ not positively homogeneous (softplus, gelu): no conservation law"
_NO_ACTIVITY = "σ with no inactive side (monomial, softplus, gelu): u > 0 means nothing"

# Observables recorded along a trajectory (SPEC §2); per run they appear as final_<name>.
OBSERVABLES = [
    _c("loss", "L(θ) = (1/2n) Σ_i r_i²", "loss", "SPEC §1"),
    _c(
        "mu",
        "rate of the trajectory followed, −d/dt log L: the Filippov field's ‖F‖²/(pL) "
        "for the flow; log(L_k/L_{k+1})/η averaged over the record interval for GD",
        "1/time",
        "SPEC §2, §3b",
        "the first record of a GD run (no interval yet)",
    ),
    _c(
        "mu_state",
        "p‖∇L‖²/L at the state (σ'(0) = 0): the quantity of the PL inequalities",
        "1/time",
        "SPEC §2",
    ),
    _c(
        "mu_integral",
        "∫₀ᵗ μ dt; log(L(0)/L(t)) = ∫μ checks the trajectory",
        "—",
        "SPEC §2",
        "not the exact flow (column absent)",
    ),
    _c(
        "balance_drift",
        "max_j |Δ(k a_j² − ‖w_j‖²)| since t = 0, k the degree of a positively homogeneous σ "
        "(1 for ReLU and leaky: Lemma 1)",
        "θ²",
        "Lemma 1, SPEC §2, §6",
        _NO_LAW,
    ),
    _c(
        "balance_drift_rel",
        "balance_drift / max_j (a_j(0)² + ‖w_j(0)‖²)",
        "—",
        "Lemma 1, SPEC §6",
        _NO_LAW,
    ),
    _c(
        "coverage",
        "number of covered examples (some j with a_j y_i > 0, ⟨w_j, x_i⟩ > 0)",
        "examples",
        "SPEC §2",
        _NO_ACTIVITY,
    ),
    _c(
        "energy_min",
        "min_i E_i, E_i = (1/p) Σ_j a_j² 1[⟨w_j, x_i⟩ > 0]",
        "θ²",
        "SPEC §2",
        _NOT_ORTHO,
    ),
    _c("energy_max", "max_i E_i", "θ²", "SPEC §2", _NOT_ORTHO),
    _c(
        "mu_low",
        "the paper's lower bound (2/n) min_i E_i (orthogonal data, ‖x_i‖ ∈ [1, 2])",
        "1/time",
        "SPEC §2, Fig. 6",
        _NOT_ORTHO,
    ),
    _c(
        "mu_upp",
        "the paper's upper bound (16/n) max_i E_i",
        "1/time",
        "SPEC §2, Fig. 6",
        _NOT_ORTHO,
    ),
    _c("mu_low_tight", "(2/n) min_i ‖x_i‖² E_i", "1/time", "SPEC §2", _NOT_ORTHO),
    _c("mu_upp_tight", "(4/n) max_i ‖x_i‖² E_i", "1/time", "SPEC §2", _NOT_ORTHO),
    _c(
        "min_fit",
        "min_i h_θ(x_i)/y_i = min_i (1 − r_i/y_i)",
        "—",
        "Theorem 1",
        "a label is 0 (a teacher whose units are all off at x_i)",
    ),
    _c(
        "thm1_const",
        "empirical Theorem-1 constant n μ / min_i (h_θ(x_i)/y_i)",
        "—",
        "Theorem 1, SPEC §2",
        f"min_fit ≤ 0 (some example fitted on the wrong side); {_NOT_ORTHO}",
    ),
    _c("theta_norm2", "‖θ‖² = Σ_j a_j² + ‖w_j‖²", "θ²", "SPEC §6"),
    _c(
        "grown_neurons",
        "neurons whose norm (a_j² + ‖w_j‖²)^(1/2) is ≥ 10× its value at t = 0",
        "neurons",
        "SPEC §6",
    ),
    _c(
        "fitted",
        "examples fitted to half their label, |r_i| < |y_i|/2",
        "examples",
        "SPEC §6",
        "not asked for (knob `fitted` off: column absent)",
    ),
    _c(
        "test_loss",
        "held-out loss (1/(2N)) Σ_k (y_k − h_θ(x_k))² (`test_n` drawn, or `test_data`)",
        "loss",
        "SPEC §6",
        "no held-out data (column absent)",
    ),
]

_FLOW_STATS = [
    _c("rejected", "rejected steps (error too large, or an event to land on)", "steps", "SPEC §3b"),
    _c(
        "crossings",
        "pattern flips: a pair (j, i) crossing its surface u_ji = 0",
        "events",
        "SPEC §3b",
    ),
    _c("slides", "entries onto a sliding surface", "events", "SPEC §3b"),
    _c("exits", "exits from a sliding surface (a λ past 0 or 1 by the tolerance band)", "events"),
    _c("evals", "evaluations of the vector field (steps, landings, mode decisions)", "evals"),
    _c(
        "evals_per_event",
        "evals / (crossings + slides): the cost of an event",
        "evals",
        "SPEC §3b",
        "no event in the run; the flow of a C¹ σ (no events: column absent)",
    ),
    _c("sliding_time", "time with at least one pair sliding", "time", "SPEC §3b"),
    _c("max_sliding", "most pairs sliding at once", "pairs", "SPEC §3b"),
    _c(
        "max_violation",
        "largest |u_ji| on a sliding pair before it is restored",
        "⟨w, x⟩",
        "SPEC §3b",
    ),
    _c("overflow", "sliding pairs refused for want of a slot (made inactive)", "pairs", "SPEC §3b"),
    _c("last_event", "time of the last pattern change", "time", "SPEC §3b"),
]

_LEVEL_MEASURES = {
    "t": ("first time the loss is below the level", "time"),
    "loss": ("the loss there", "loss"),
    "mu_tail": ("μ(t_∞) of the window ending there", "1/time"),
    "mu_mean": ("⟨μ⟩ = log(L(0)/L)/t there", "1/time"),
    "mu_kernel": ("the tangent kernel's 2λ_min(K) there", "1/time"),
}

_RUN = [
    _c("run", "index of the run in its cell (0 … runs − 1)"),
    _c("t", "recorded time (GD: step × η)", "time", "SPEC §1"),
    _c("final", "True on the row at the run's stop time"),
    _c("outcome", "converged | horizon | diverged | stalled", "—", "solvers.common.Outcome"),
    _c("success", "outcome == converged: L ≤ stop loss (1/(2n) by default)", "—", "SPEC §5"),
    _c(
        "stall_reason",
        "why the exact flow stopped as stalled, in words (chatter, Zeno, step at rounding, "
        "rejections, inconsistent modes, attempt cap), with the time; empty otherwise",
        "—",
        "SPEC §3b",
    ),
    _c(
        "interpolated",
        "the final loss is ≤ 1/(2n), or the run stopped at a stop loss ≤ 1/(2n) (the exact "
        "flow lands on it to its tolerance); whatever the stop loss (with --stop-loss 0 no "
        "run succeeds, and this says which fit the data)",
        "—",
        "SPEC §5",
    ),
    _c("steps", "solver steps taken (GD steps, or the exact flow's accepted steps)", "steps"),
    _c("t_final", "time at which the run stopped", "time"),
    _c(
        "mu_tail",
        "μ(t_∞): the rate over the last `tail` units of time",
        "1/time",
        "SPEC §5, Fig. 6",
        "the run diverged (a rate that was never measured)",
    ),
    _c("mu_mean", "⟨μ⟩ = log(L(0)/L(t_final))/t_final", "1/time", "SPEC §2"),
    _c(
        "final_mu_inf_kernel",
        "2λ_min(K) of the tangent kernel at the end (the asymptotic rate)",
        "1/time",
        "shallowflow.kernel",
        "kernel off (column absent)",
    ),
    _c("assumption1", "Assumption 1 at θ(0): |a_j| ≥ ‖w_j‖ for every j", "—", "Lemma 1"),
    _c(
        "assumption1_fraction",
        "fraction of the p neurons with |a_j| ≥ ‖w_j‖ at θ(0) (1 exactly when assumption1)",
        "—",
        "Lemma 1, SPEC §6",
    ),
    _c(
        "assumption1_margin",
        "min_j (|a_j| − ‖w_j‖) at θ(0); < 0 where Assumption 1 fails",
        "θ",
        "Lemma 1, SPEC §6",
    ),
    _c(
        "a_sign_changes",
        "neurons j with sign(a_j(T)) ≠ sign(a_j(0)) at the run's end (none under the flow "
        "when Assumption 1 holds)",
        "neurons",
        "Lemma 1, SPEC §2",
    ),
    _c("coverage0", "covered examples at θ(0)", "examples", "SPEC §2", _NO_ACTIVITY),
    _c("loss0", "L(θ(0))", "loss", "SPEC §1"),
    _c("mu0", "μ_state at θ(0)", "1/time", "SPEC §2"),
    _c(
        "draws",
        "draws of data and θ(0) until covered (require_coverage); in a study's "
        "tables the tag of the cells that share their draws (e.g. 'n=250')",
    ),
    _c(
        "min_thm1_const",
        "least n μ(t)/min_i(h_i/y_i) over the run's recorded times and its end where "
        "min_fit > 0: the largest C with Theorem 1's μ ≥ (C/n) min_i(h_i/y_i) along the run "
        "(constants study; in its table, the mean over runs)",
        "—",
        "Theorem 1, SPEC §2",
        "min_fit ≤ 0 at every recorded time",
    ),
    *(
        _c(
            f"{kind}_loss_{name}",
            f"(1/(2N)) Σ (y − f)² on the {where} of the {what} (kernels study)",
            "loss",
            "theory.baselines, SPEC §6",
        )
        for kind, where in (("train", "training set"), ("test", "held-out set"))
        for name, what in (
            ("linear", "min-norm linear predictor X⁺y"),
            ("ntk", "tangent kernel's ridgeless regression at θ(0), h_θ(0) kept"),
            ("rf", "random features: W(0) frozen, min-norm second layer"),
            ("null", "predictor f = 0"),
        )
    ),
    _c(
        "plateau_time",
        "study smallinit: the first plateau t₁, the first time L ≤ 0.9 L(0) (log-linear "
        "between records)",
        "time",
        "SPEC §4, §6",
        "the loss never fell by 10%",
    ),
    _c(
        "fit_times",
        "study smallinit: list, the first recorded time at which k examples are fitted "
        "(|r_i| < |y_i|/2), k = 1 … n",
        "time",
        "SPEC §6",
        "an entry is NaN for a k never reached",
    ),
    _c(
        "grown_times",
        "study smallinit: list, the first recorded time at which k neurons have grown "
        "(`grown_neurons` ≥ k), k = 1 … p",
        "time",
        "SPEC §6",
        "an entry is NaN for a k never reached",
    ),
    _c(
        "min_norm2",
        "study smallinit: the least ‖θ‖² of a width-p interpolator of the labels the final "
        "state fits, 2p(‖D₊‖ + ‖D₋‖), D_i = h(x_i)/‖x_i‖ (theory.smallinit.min_norm2)",
        "θ²",
        "SPEC §6",
        "not orthogonal data; no example fitted",
    ),
    _c("cell_id", "content hash of the cell's knobs (runner)"),
    _c("cell_seed", "the seed the runner derived for the cell from its knobs"),
    _c("figure", "the figure or study that owns the cell"),
    _c("adaptive_step", "order of the evaluation in its group's adaptive search (0, 1, …)"),
    _c("tag", "variant of a cell within its figure or study (e.g. 'adaptive', 'flow')"),
    _c(
        "geometry", "dense | reduced | diagonal | implicit (the cheapest exact one)", "—", "SPEC §3"
    ),
]

_POINTS = [
    _c("successes", "successful runs at the point", "runs"),
    _c("fraction", "success fraction successes/runs", "—", "SPEC §5"),
    _c("bar_low", "lower end of the 95% Hoeffding bar", "—", "SPEC §5, Fig. 3"),
    _c("bar_high", "upper end of the 95% Hoeffding bar", "—", "SPEC §5, Fig. 3"),
    _c("loss_ratio", "mean of L(θ_T)/L(θ_0), successes counted as 0", "—", "SPEC §5, Fig. 3"),
    _c("u", "rescaled time of Fig. 2's staircase", "—", "SPEC §4, Fig. 2"),
    _c("limit", "the limit staircase L_∞(u)", "loss", "SPEC §4, Fig. 2"),
    _c(
        "log_<measure>",
        "natural log of a Fig. 6 measure's mean over runs",
        "log(1/time)",
        "SPEC §5, Fig. 6",
        "the measure's mean ≤ 0 or null",
    ),
]

_STUDY = [_c(*entry) for entry in STUDY_COLUMNS]


def _knob_columns() -> list[Column]:
    out = []
    for knob, (_, info) in KNOBS.items():
        extra = info.json_schema_extra
        auto = extra.get("auto") if isinstance(extra, dict) else None
        out.append(_c(knob, f"knob: {info.description}" + (f" (auto: {auto})" if auto else "")))
    return out


def _registry() -> dict[str, Column]:
    cols: dict[str, Column] = {c.name: c for c in _knob_columns()}
    for obs in [*OBSERVABLES, *_FLOW_STATS]:
        cols[obs.name] = obs
        cols[f"final_{obs.name}"] = Column(
            f"final_{obs.name}", f"{obs.meaning}, at the run's end", obs.units, obs.source, obs.null
        )
    for measure, (meaning, units) in _LEVEL_MEASURES.items():
        name = f"final_level_{measure}_<k>"
        cols[name] = _c(
            name,
            f"at the k-th loss level (`levels`): {meaning}",
            units,
            "SPEC §2, §5",
            "the level was not reached",
        )
    for col in [*_RUN, *_POINTS, *_STUDY]:
        cols[col.name] = col
    cols["N"] = _c(
        "N", "threshold: n where the success probability crosses 1/2", "examples", "SPEC §5"
    )
    return cols


REGISTRY = _registry()
_PATTERNS = [
    (
        re.compile("^" + re.escape(name).replace("<k>", r"\d+").replace("<measure>", r"\w+") + "$"),
        col,
    )
    for name, col in REGISTRY.items()
    if "<" in name
]


def describe(column: str) -> Column | None:
    """The registry's entry for ``column`` (a pattern entry for ``final_level_t_0``), or
    None when the column is not documented."""
    if column in REGISTRY:
        return REGISTRY[column]
    return next((col for pattern, col in _PATTERNS if pattern.match(column)), None)


def markdown() -> str:
    """The data dictionary as Markdown tables (the docs site's reference page)."""
    head = "| column | meaning | units | source | null when |\n|---|---|---|---|---|\n"

    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a bar inside a formula would split the cell

    def rows(cols) -> str:
        return "".join(
            f"| `{c.name}` | {cell(c.meaning)} | {cell(c.units)} | {c.source} | {cell(c.null)} |\n"
            for c in cols
        )

    observed = [REGISTRY[o.name] for o in OBSERVABLES]
    parts = [
        "## Tables\n\n" + "".join(f"- **{k}**: {v}\n" for k, v in TABLES.items()),
        "## Recorded observables\n\nIn the trajectory; per run as `final_<name>` "
        "(the value at the stop time).\n\n" + head + rows(observed),
        "## The exact flow's diagnostics\n\nPer run as `final_<name>` (`--solver flow` "
        "only).\n\n" + head + rows(_FLOW_STATS),
        "## Loss levels\n\n`--levels L1,L2,…`: per run, the end-of-run measures taken "
        "again the first time the loss falls below each level.\n\n"
        + head
        + rows(REGISTRY[f"final_level_{m}_<k>"] for m in _LEVEL_MEASURES),
        "## Per run and per cell\n\n" + head + rows(_RUN),
        "## Points of a figure or sweep\n\nAlso `n`, `d`, `p`, `runs`, `loss` and the "
        "Fig. 6 measures' means under their per-run names.\n\n"
        + head
        + rows([*_POINTS, REGISTRY["N"]]),
        "## A study's table\n\n" + head + rows(_STUDY),
        "## Knobs\n\nEvery knob of a cell can be a column (the runner writes a cell's "
        "knobs as leading columns); its meaning is its field's in `shallowflow.config`.\n\n"
        + head
        + rows(_knob_columns()),
    ]
    return "\n".join(parts)

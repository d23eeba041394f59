"""A simulated cell's arrays (:class:`SimResult`), its tidy tables and a short summary
(no plotting, no files)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shallowflow.config import SimConfig
from shallowflow.solvers.common import Outcome, StallReason

# The knobs copied into every row of a result table (a few of config.KNOBS).
TABLE_KNOBS = ("n", "d", "data", "init", "solver", "lr", "seed")


@dataclass(frozen=True)
class SimResult:
    """Arrays of a simulated cell. ``records[name]`` has shape (R, K) at ``times``
    (K,), masked by ``valid`` (R, K); ``final[name]`` and ``init[name]`` have shape
    (R,). ``states`` holds the final state in the user's coordinates when
    ``cfg.record.keep_state``: ``W`` (R, p, d) and ``a`` (R, p); for the implicit
    geometry ``a``, ``V`` (R, p, n) and ``off2`` (R, p) (:func:`trajectory.final_state`)."""

    cfg: SimConfig
    times: np.ndarray
    valid: np.ndarray
    records: dict[str, np.ndarray]
    final: dict[str, np.ndarray]
    init: dict[str, np.ndarray]
    states: dict[str, np.ndarray] | None = None

    @property
    def runs(self) -> int:
        """Number of runs R of the cell."""
        return self.valid.shape[0]


def runs_table(res: SimResult) -> pd.DataFrame:
    """One row per run: knobs, seed index, outcome, final loss, steps and measures."""
    cfg = res.cfg
    columns = {}
    for k, v in res.final.items():
        if k == "status":
            continue
        if np.ndim(v) == 2:  # one column per loss level: final_level_t_0, ...
            columns.update({f"final_{k}_{j}": v[:, j] for j in range(v.shape[1])})
        else:
            columns[f"final_{k}"] = v
    df = pd.DataFrame(columns)
    df = df.rename(
        columns={
            "final_t_final": "t_final",
            "final_steps": "steps",
            "final_mu_tail": "mu_tail",
            "final_mu_mean": "mu_mean",
            "final_a_sign_changes": "a_sign_changes",
        }
    )
    df.insert(0, "run", np.arange(res.runs))
    df["outcome"] = [Outcome(int(s)).label for s in res.final["status"]]
    if "stall_reason" in res.final:  # the exact flow: why a run stalled, in words
        df["stall_reason"] = [
            StallReason(int(code)).describe(int(k), float(t))
            for code, k, t in zip(
                res.final["stall_reason"],
                res.final["stall_sliding"],
                res.final["t_final"],
                strict=True,
            )
        ]
        df = df.drop(columns=["final_stall_reason", "final_stall_sliding"])
    # Two questions: did the run reach its stop loss (success, its outcome), and does
    # its final state interpolate, L ≤ 1/(2n) (the paper's success level)? They differ
    # when the stop loss is not 1/(2n), e.g. --stop-loss 0 runs to the horizon.
    df["success"] = df["outcome"] == "converged"
    # The exact flow lands on L = stop loss to its tolerance, so a run stopped there may end
    # a rounding above it: it interpolates whenever its stop loss does.
    level = 1.0 / (2 * cfg.data.n)
    stopped = df["success"].to_numpy(bool) & (cfg.solver.stop_loss <= level)
    df["interpolated"] = np.asarray(df["final_loss"] <= level) | stopped
    for k, v in res.init.items():
        df[k] = v
    df["p"] = cfg.init.p
    df["geometry"] = cfg.run.geometry
    knobs = cfg.knobs()
    for k in TABLE_KNOBS:
        df[k] = knobs[k]
    return df


def trajectory_table(res: SimResult) -> pd.DataFrame:
    """One row per run × recorded time (t ≤ stop time), plus each run's final row
    (``final`` = True) at its stop time."""
    r, k = res.valid.shape
    rows = {"run": np.repeat(np.arange(r), k), "t": np.tile(res.times, r)}
    rows.update({name: v.reshape(-1) for name, v in res.records.items()})
    df = pd.DataFrame(rows).loc[res.valid.reshape(-1)]
    df["final"] = False
    fin = pd.DataFrame({"run": np.arange(r), "t": res.final["t_final"]})
    for name in res.records:
        fin[name] = res.final[name]
    fin["final"] = True
    out = pd.concat([df, fin], ignore_index=True).sort_values(["run", "t", "final"])
    out["p"] = res.cfg.init.p
    knobs = res.cfg.knobs()
    for kn in TABLE_KNOBS:
        out[kn] = knobs[kn]
    return out.reset_index(drop=True)


def summary(res: SimResult) -> dict:
    """Success fraction, outcome counts, median final loss and median μ at the end."""
    runs = runs_table(res)
    return {
        "runs": int(res.runs),
        "n": res.cfg.data.n,
        "d": res.cfg.data.d,
        "p": res.cfg.init.p,
        "solver": res.cfg.solver.solver,
        "geometry": res.cfg.run.geometry,
        "success_fraction": float(np.mean(runs["success"].to_numpy())),
        "interpolated_fraction": float(np.mean(runs["interpolated"].to_numpy())),
        "outcomes": {k: int(v) for k, v in runs["outcome"].value_counts().items()},
        "median_final_loss": float(np.median(runs["final_loss"])),
        "median_mu_end": float(np.median(runs["final_mu"])),
        "median_mu_tail": _median_defined(runs["mu_tail"]),
        "median_steps": float(np.median(runs["steps"])),
        "assumption1_fraction": float(np.mean(runs["assumption1"])),
        # coverage is null where σ has no activity (SPEC §6): no fraction then
        "fully_covered_fraction": (
            None
            if np.all(np.isnan(res.init["coverage0"]))
            else float(np.mean(runs["coverage0"] == res.cfg.data.n))
        ),
    }


def _median_defined(values) -> float | None:
    """The median over the runs where a quantity is defined (not NaN); None if none."""
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else None


def least_thm1_const(res: SimResult) -> np.ndarray:
    """Per run, the least empirical Theorem-1 constant n μ(t)/min_i(h_i/y_i) over its
    recorded times and its end, where defined (min_fit > 0; SPEC §2): the largest C with
    μ(t) ≥ (C/n) min_i(h_i/y_i) along the run. NaN for a run where it is never defined."""
    ok = res.valid & (res.records["min_fit"] > 0)
    least = np.where(ok, res.records["thm1_const"], np.inf).min(axis=1)
    end = np.where(res.final["min_fit"] > 0, res.final["thm1_const"], np.inf)
    least = np.minimum(least, end)
    return np.where(np.isfinite(least), least, np.nan)

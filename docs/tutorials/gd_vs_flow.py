# %% [markdown]
# # GD against the exact flow across an activation kink
#
# The field $F(\theta) = -p\nabla L(\theta)$ jumps where a pre-activation
# $u_{ji} = \langle w_j, x_i\rangle$ crosses 0. Gradient descent ignores these
# surfaces: it is forward Euler with $\sigma'(0) = 0$. The exact flow
# (`solver="flow"`) integrates inside each activation pattern, lands on each crossing,
# and slides along a surface when both sides push into it (a Filippov solution; see
# [The exact flow through the kinks](../explanation/kinks.md)).
#
# With more examples than dimensions ($n > d$, sphere data) pairs are often pushed into
# their surface from both sides and slide along it. We run the same draws under GD with
# $\eta = 1$, GD with $\eta = 1/4$ and the exact flow, in float64, to a loss of
# $10^{-8}$.

# %%
import matplotlib.pyplot as plt
import numpy as np

from shallowflow import (
    make_config,
    runs_table,
    simulate_many,
    trajectory_table,
)

common = dict(
    n=12,
    d=8,
    runs=3,
    seed=3,
    x64=True,
    record=60,
    horizon=150.0,
    stop_loss=1e-8,
)
cfgs = {
    "GD η = 1": make_config(**common, solver="gd", lr=1.0),
    "GD η = 1/4": make_config(**common, solver="gd", lr=0.25),
    "exact flow": make_config(**common, solver="flow", rtol=1e-9, atol=1e-12),
}
results = dict(zip(cfgs, simulate_many(list(cfgs.values())), strict=True))
flow = runs_table(results["exact flow"])
flow[
    [
        "run",
        "outcome",
        "t_final",
        "final_crossings",
        "final_slides",
        "final_max_sliding",
        "final_max_violation",
        "final_mu_integral",
        "loss0",
        "final_loss",
    ]
]

# %% [markdown]
# `crossings` counts the pattern changes the flow landed on, `slides` the entries onto
# a sliding surface, and `max_violation` the largest $|u_{ji}|$ of a
# sliding pair before it was put back on its surface. The flow also integrates its own
# rate, $\int \mu\,dt$, so the identity $\log(L(0)/L(t)) = \int_0^t \mu$ checks the
# trajectory:

# %%
check = np.log(flow["loss0"] / flow["final_loss"]) - flow["final_mu_integral"]
print("max |log(L(0)/L(t)) − ∫μ dt| over runs:", float(np.max(np.abs(check))))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
for (name, res), style in zip(results.items(), ["-", "--", ":"], strict=True):
    traj = trajectory_table(res)
    run0 = traj[traj["run"] == 0].sort_values("t")
    ax1.semilogy(run0["t"], run0["loss"], style, label=name)
    ax2.semilogy(
        run0["t"], run0["mu"].where(run0["mu"] > 0), style, label=name
    )
ax1.set(xlabel="t", ylabel="L(t)")
ax2.set(xlabel="t", ylabel="μ(t), the rate followed")
ax1.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# GD with a smaller step approaches the flow. Its `mu` is the realised rate
# $\log(L_k/L_{k+1})/\eta$; the flow's is $\|F\|^2/(pL)$ with $F$ the Filippov field,
# which on a sliding surface is $p\,\mathrm{dist}(0, \partial L)^2/L$, never larger than
# $p\|\nabla L\|^2/L$ at the state (`mu_state`). The runs' ends, side by side:

# %%
import pandas as pd

pd.DataFrame(
    {
        name: runs_table(res)[
            ["t_final", "final_loss", "mu_tail", "final_mu_state"]
        ].median()
        for name, res in results.items()
    }
)

# %% [markdown]
# # A first simulation and its μ(t)
#
# We simulate a small cell of the paper's Fig. 3 setting (sphere data, labels
# $y_i = \pm U[1, 2]$, the asymmetric initialisation, GD with $\eta = 1$), look at the
# loss and the rate $\mu(t) = -\frac{d}{dt}\log L$, and check the identity
# $L(t) = L(0)\exp(-\int_0^t \mu)$ on the trajectory we computed. It takes a few seconds
# on a laptop.

# %%
import matplotlib.pyplot as plt
import numpy as np

from shallowflow import make_config, simulate, summary, trajectory_table

cfg = make_config(n=60, d=30, runs=4, seed=1, record=40)
print(
    f"width p = p(n, 0.05) = {cfg.init.p}, horizon T(n, p) = {cfg.solver.horizon:g}"
)
res = simulate(cfg)
summary(res)

# %% [markdown]
# `make_config` filled in what we left out: the width $p(n, \varepsilon) =
# \lfloor \log(n/\varepsilon)/\log(4/3) \rfloor + 1$, the horizon
# $T(n, p) = \lfloor 1.5\sqrt{np}\log(np)/4\rfloor + 1$ steps, the stop loss $1/(2n)$
# and the cheapest exact geometry. A run *succeeds* when its loss reaches $1/(2n)$.
#
# The trajectory table has one row per run and recorded time (the data dictionary,
# [Reference › Data dictionary](../reference/columns.md), lists every column):

# %%
traj = trajectory_table(res)
traj[["run", "t", "loss", "mu", "mu_state", "coverage", "final"]].head()

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
for run, df in traj.groupby("run"):
    ax1.semilogy(df["t"], df["loss"], label=f"run {run}")
    ax2.semilogy(df["t"], df["mu"].where(df["mu"] > 0))
ax1.axhline(1 / (2 * cfg.data.n), color="gray", ls=":", label="1/(2n)")
ax1.set(xlabel="t", ylabel="L(t)")
ax2.set(xlabel="t", ylabel="μ(t)")
ax1.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# For GD, `mu` is the realised rate $\log(L_k/L_{k+1})/\eta$ averaged over each
# record interval, so summing it over the intervals gives back the loss exactly:
# $\log(L(0)/L(t)) = \int_0^t \mu$. `mu_state` is $p\|\nabla L\|^2/L$ at the state,
# the quantity of the PL inequalities; for GD with a small step the two agree.

# %%
run0 = traj[(traj["run"] == 0) & ~traj["final"]].sort_values("t")
t, loss, mu = (run0[c].to_numpy() for c in ("t", "loss", "mu"))
integral = np.sum(mu[1:] * np.diff(t))
print(
    f"log(L(0)/L(t)) = {np.log(loss[0] / loss[-1]):.6f},  ∫μ dt = {integral:.6f}"
)

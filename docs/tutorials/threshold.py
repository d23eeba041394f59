# %% [markdown]
# # A threshold N(d, p) from a sweep and from the adaptive search
#
# The paper's Figs. 3–5 measure where training stops converging: at fixed $d$ and
# $p$, the success probability falls from 1 to 0 as $n$ grows, and the threshold
# $N(d, p)$ is the $n$ where it crosses $1/2$. Here we measure one threshold at a
# tiny size twice: on a grid of $n$, then with the adaptive search that
# `reproduce --adaptive` uses. (The explanation page
# [Thresholds and their intervals](../explanation/thresholds.md) says how the fit and
# its interval work.)

# %%
import matplotlib.pyplot as plt
import numpy as np

from shallowflow import make_config, plan, runs_table, simulate_many
from shallowflow.stats.design import adaptive_threshold
from shallowflow.stats.thresholds import fit_threshold, success_bars

D, P, RUNS = 20, 30, 8
ns = np.arange(20, 201, 30)
cfgs = [make_config(n=int(n), d=D, p=P, runs=RUNS, seed=int(n)) for n in ns]
results = simulate_many(
    cfgs
)  # one compiled program for the whole sweep (padded)
successes = np.array([int(runs_table(r)["success"].sum()) for r in results])
dict(zip(ns.tolist(), successes.tolist(), strict=True))

# %% [markdown]
# A run succeeds when its outcome is *converged* ($L \le 1/(2n)$). The
# threshold comes from a Firth-penalised logistic fit of the successes against $n$,
# with a 95% profile-likelihood interval; the bars are 95% Hoeffding bars
# $\sqrt{\log(2/0.05)/(2R)}$ around each success fraction.

# %%
fit = fit_threshold(ns, successes, np.full(ns.size, RUNS))
print(
    f"N({D}, {P}) = {fit.threshold:.1f}, 95% interval [{fit.ci_low:.1f}, {fit.ci_high:.1f}]"
)
lo, hi = success_bars(successes, np.full(ns.size, RUNS))
frac = successes / RUNS
grid_n = np.linspace(ns.min(), ns.max(), 200)
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.errorbar(ns, frac, yerr=[frac - lo, hi - frac], fmt="o", label="grid")
ax.plot(
    grid_n,
    1 / (1 + np.exp(fit.slope * (grid_n - fit.threshold))),
    label="logistic fit",
)
ax.axvspan(fit.ci_low, fit.ci_high, alpha=0.15, label="95% interval of N")
ax.set(xlabel="n", ylabel="success fraction")
ax.legend(fontsize=7)

# %% [markdown]
# The adaptive search spends its runs where the success probability is uncertain. It
# calls `simulate(n, runs, seed)` for the number of successes, starts from a few
# evenly spaced sizes, then cycles through $\hat N$ and the ends of its interval
# until the interval is narrower than a target or the budget is spent. Every
# evaluation runs in the compiled bucket of the largest size (`plan`), so the whole
# search compiles one program, as `reproduce --adaptive` does.


# %%
largest = plan([make_config(n=int(ns.max()), d=D, p=P, runs=4)])


def successes_at(n: int, runs: int, seed: int) -> int:
    cfg = make_config(n=n, d=D, p=P, runs=runs, seed=seed % 2**32)
    res = simulate_many([cfg], buckets=largest)[0]
    return int(runs_table(res)["success"].sum())


search = adaptive_threshold(
    successes_at,
    n_min=20,
    n_max=200,
    runs_per_point=4,
    target_width=40,
    max_runs=ns.size * RUNS,
    n_step=5,
    n_init=4,
    n_boot=100,
)
print(
    f"adaptive: N = {search.fit.threshold:.1f} "
    f"[{search.fit.ci_low:.1f}, {search.fit.ci_high:.1f}], "
    f"{search.total_runs} runs against the grid's {ns.size * RUNS}"
)
search.evaluations  # (n, runs, successes), in the order simulated

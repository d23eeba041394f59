# %% [markdown]
# # Running a study and reading its verdict
#
# A *study* asks a question the paper leaves open and answers it with numbers, a
# verdict in words and a figure. The one shipped today, `conjecture1`, asks: under the
# protocol of the paper's Fig. 6 (orthogonal data $x_i = \rho_i e_i$, width
# $p(n, 0.05)$, $W \times 0.01$), what is the exponent of the asymptotic rate in
# $n$? Conjecture 1 says $-1/2$; Proposition 1 proves it lies in $[-1, -1/2]$.
#
# From the command line the study is one command (its quick preset takes about two
# minutes on a 2-core CPU):
#
# ```bash
# shallowflow study conjecture1 --preset quick --out out/study
# ```
#
# Here we run the same study module on a much smaller design, piece by piece: its
# cells, the runner, its analysis, its verdict and its figure.

# %%
import tempfile

from shallowflow.experiments.batch import run_cells
from shallowflow.experiments.studies import conjecture1

design = conjecture1.Design(
    d=64,
    ns=(16, 23, 32, 45, 64),  # the Fig. 6 protocol's n grid
    runs=3,
    side_ns=(16, 32, 64),  # where the variants (solver, initialisation) run
    side_runs=2,
    horizon=40.0,  # in units of T(n, p)
    windows=((16, 45), (23, 64)),  # local exponents on windows of n
    variants=("gd", "gd_eta_0.25", "w_1", "balanced"),
    boot=200,
)
cells = conjecture1.cells(design)
print(len(cells), "cells; one of them:")
{
    k: cells[0][k]
    for k in ("n", "d", "p", "w_scale", "x64", "stop_loss", "levels", "kernel")
}

# %% [markdown]
# Each cell runs in float64 to a loss of $10^{-14}/(2n)$, and measures the end-of-run
# rates again the first time the loss falls below $10^{-6}/(2n)$ (the paper's stop),
# $10^{-8}$, $10^{-10}$ and $10^{-12}/(2n)$ (`levels`). The runner simulates them
# (resumably, into a directory), one compiled program per bucket of cells.

# %%
runs = run_cells(cells, tempfile.mkdtemp(), progress=False)
table, summary = conjecture1.summarise(runs, design)
table.head(8)

# %% [markdown]
# Every row of the table is one fitted exponent: the least-squares slope of
# $\log(\text{mean over runs})$ against $\log n$, with a 95% bootstrap interval over
# runs, for a part of the study (stop level, solver, initialisation, range of $n$,
# mechanism), a variant, a level and a measure: $\mu(t_\infty)$, $\langle\mu\rangle$
# or the tangent kernel's $\mu_\infty = 2\lambda_{\min}(K)$. The verdict reads the
# table:

# %%
lines, numbers = conjecture1.verdict(table, summary)
for line in lines:
    print("-", line)

# %% [markdown]
# At these tiny sizes the intervals are wide; the quick and paper presets use
# $n$ up to 2000 and 8000 ([What shallowflow found](../results/findings.md)). The
# figure is the study's own:

# %%
# shallowflow's plotting module switched matplotlib to Agg when it was imported;
# back to the notebook's inline backend so that the figure shows
# %matplotlib inline
fig = conjecture1.plot(table, summary)

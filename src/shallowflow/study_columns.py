"""The columns of the studies' tables (each study's ``table.parquet``), for the data
dictionary (:mod:`shallowflow.columns`): one ``(name, meaning[, units, source, null
when])`` per column."""

from __future__ import annotations

STUDY_COLUMNS: list[tuple[str, ...]] = [
    (
        "part",
        "the study's part (conjecture1: stop level, solver, init, range of n, mechanism; "
        "initialisation: threshold, ratio, mechanism, shift; activations: p_0.9, law, rate)",
    ),
    (
        "variant",
        "the variant's tag (gd, gd_eta_0.25, flow, w_0.1, w_1, balanced; an initialisation; "
        "a regression's model: term)",
    ),
    (
        "value",
        "the row's estimate: a threshold N, a ratio N/N(paper), a logistic coefficient "
        "(log-odds per unit) or a threshold shift (fraction of N(paper) per unit); in "
        "kernels, its `measure` (a mean loss, a success fraction, diverged runs, a ratio)",
        "—",
        "SPEC §5; stats.regression",
        "not estimable (no crossing of 1/2)",
    ),
    (
        "se",
        "one-sigma error of value (half the 68% profile interval of a threshold; Fisher "
        "information for a coefficient)",
        "—",
        "",
        "not defined (a bootstrap ratio)",
    ),
    (
        "violating_fraction",
        "mean over runs of the fraction of neurons violating Assumption 1 at θ(0), "
        "1 − assumption1_fraction",
        "—",
        "Lemma 1",
        "not a threshold row",
    ),
    (
        "sign_changes",
        "mean over runs of a_sign_changes",
        "neurons",
        "Lemma 1",
        "not a threshold row",
    ),
    (
        "kept",
        "bootstrap replicates in which both curves cross 1/2",
        "replicates",
        "—",
        "not a ratio row",
    ),
    ("level", "stop level, × 1/(2n)", "loss × 2n"),
    (
        "arm",
        "smallinit, groupinit: the variant of the measures table (GD, the exact flow, an init …)",
    ),
    (
        "x",
        "smallinit, groupinit: where a measure is taken: ε, σ or n",
        "—",
        "",
        "a fit over every x",
    ),
    (
        "measure",
        "what the row measures: mu_tail | mu_mean | mu_kernel | e_min | lambda_min "
        "(conjecture1); test_loss | train_loss | success | diverged | ratio (kernels); "
        "the named measure of smallinit and groupinit's measures tables",
    ),
    (
        "predictor",
        "kernels: network | linear | ntk | rf | null, or a ratio 'a/b' of two predictors' "
        "mean test losses",
        "—",
        "theory.baselines",
    ),
    ("n_over_d", "n/d", "—"),
    ("param", "constants: the arm's range parameter (C_x⁻, C_x⁻/C_x⁺, C_y⁻ or C_y⁺)"),
    ("x_lo", "lower end of the input norms' range (x_norms)", "‖x‖"),
    ("x_hi", "upper end of the input norms' range (x_norms)", "‖x‖"),
    ("y_lo", "lower end of the label magnitudes' range (label_range)", "|y|"),
    ("y_hi", "upper end of the label magnitudes' range (label_range)", "|y|"),
    ("undefined", "runs whose min_thm1_const is undefined (null)", "runs"),
    (
        "min_thm1_const_se",
        "standard error of the cell's mean min_thm1_const",
        "—",
        "",
        "fewer than two runs with it defined",
    ),
    ("mu_mean_se", "standard error of the cell's mean ⟨μ⟩", "1/time", "", "fewer than two runs"),
    ("n_min", "smallest n of the fit", "examples"),
    ("n_max", "largest n of the fit", "examples"),
    ("points", "sizes n in the fit", "sizes"),
    ("missing", "runs without the measure (level not reached)", "runs"),
    (
        "slope",
        "least-squares slope of log(mean over runs) against log n",
        "—",
        "Fig. 6, Conjecture 1",
    ),
    (
        "ci_low",
        "lower end of the 95% interval (bootstrap over runs for a study)",
        "—",
        "",
        "interval not defined (too few points)",
    ),
    ("ci_high", "upper end of the 95% interval", "—", "", "interval not defined (too few points)"),
    ("horizon_T", "horizon of a success count, × T(n, p(n, 0.05))", "T", "—", "a rate row"),
    (
        "status",
        "p_0.9 located in the grid of p, or censored below | above it",
        "—",
        "—",
        "not p_0.9",
    ),
    ("law", "growth law of p_0.9 in n: constant | log | power", "—", "—", "not a law row"),
    ("delta_aic", "the law's AIC minus the least AIC of the laws", "—", "—", "not a law row"),
    ("best", "the law of least AIC", "—", "—", "not a law row"),
]

"""Fig. 2 — the staircase of the group-initialisation closed form (SPEC §4, §5).

Two groups with label magnitudes 1 and 2: the rescaled loss L_n(u), u = t/(√n log n),
against its limit L_∞ as n grows to 10¹⁸. No simulation: the "cells" are the sizes n
of :func:`shallowflow.theory.closed_form.staircase`; both presets are the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from shallowflow.experiments.protocol import Protocol
from shallowflow.report.format import fmt, yes
from shallowflow.theory import closed_form

NAME = "fig2"
TITLE = "Fig. 2 — staircase of the group-initialisation closed form"
CLAIM = (
    "With two groups of label magnitudes 1 and 2, the loss in rescaled time converges "
    "to a staircase as n → ∞: the larger group is learnt first, each transition has a "
    "relative width of order 1/log n."
)
PROTOCOLS = {
    preset: {"magnitudes": (1.0, 2.0), "ns": (1e2, 1e4, 1e8, 1e18), "u_max": 0.6, "points": 2001}
    for preset in ("quick", "paper")
}


def protocol(preset: str, solver: str = "gd", seed: int = 0) -> Protocol:
    """The closed form's sizes and parameters (the same in both presets)."""
    params = dict(PROTOCOLS[preset])
    cells = [{"figure": NAME, "n": n, "magnitudes": params["magnitudes"]} for n in params["ns"]]
    return Protocol(
        NAME,
        preset,
        cells,
        TITLE,
        CLAIM,
        kind="closed_form",
        params=params,
        notes="Closed form of SPEC §4 (theory.closed_form.staircase); identical in both presets.",
    )


def summarise(runs: pd.DataFrame | None, proto: Protocol) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per n: the staircase L_n(u) and its limit; the distance ∫|L_n − L_∞| du, the
    transition times and relative widths (times log n)."""
    m = np.asarray(proto.params["magnitudes"])
    u = np.linspace(0.0, proto.params["u_max"], proto.params["points"])
    limit = closed_form.staircase_limit(m, u)
    frames, numbers = [], {}
    for n in proto.params["ns"]:
        loss = closed_form.staircase(n, m, u)
        frames.append(pd.DataFrame({"n": n, "u": u, "loss": loss, "limit": limit}))
        widths = closed_form.transition_widths(n, m)
        times = closed_form.transition_times(n, m) / closed_form.staircase_time_scale(n)
        numbers[f"{n:.0e}"] = {
            "l1_to_limit": float(np.trapezoid(np.abs(loss - limit), u)),
            "widths": widths.tolist(),
            "widths_log_n": (widths * math.log(n)).tolist(),
            "transition_u": times.tolist(),
        }
    return pd.concat(frames, ignore_index=True), {"numbers": numbers}


def verdict(
    points: pd.DataFrame, summary: dict[str, Any], proto: Protocol
) -> tuple[list[str], bool]:
    """Reproduced when the distance to the limit decreases to 0 with n."""
    numbers = summary["numbers"]
    m = np.asarray(proto.params["magnitudes"])
    u_k = closed_form.limit_transition_times(m)
    l1s = [v["l1_to_limit"] for v in numbers.values()]
    wl = [v["widths_log_n"][0] for v in numbers.values()]
    limit_wl = 2 * math.log((0.1**-0.5 - 1) / (0.9**-0.5 - 1))
    decreasing = bool(np.all(np.diff(l1s) < 0))
    last = list(numbers)[-1]
    lines = [
        "∫|L_n − L_∞| du: "
        + ", ".join(f"n={k}: {fmt(v['l1_to_limit'])}" for k, v in numbers.items())
        + f"; decreasing to 0: {yes(decreasing)}",
        f"transitions at n={last}: u = {', '.join(fmt(t) for t in numbers[last]['transition_u'])} "
        f"(limit u_k = √G/(4m_k) = {', '.join(fmt(t) for t in u_k)}); larger labels first: "
        f"{yes(bool(numbers[last]['transition_u'][1] < numbers[last]['transition_u'][0]))}",
        "relative width (10%→90%) × log n, group m=1: "
        + ", ".join(fmt(w) for w in wl)
        + f" → {fmt(limit_wl)}: width of order 1/log n: {yes(abs(wl[-1] / limit_wl - 1) < 0.1)}",
    ]
    return lines, decreasing


def plot(points: pd.DataFrame, summary: dict[str, Any]):
    """Rescaled staircase loss L_n(u) for growing n against its limit L_∞."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    ns = points["n"].unique()
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(ns)))
    for n, color in zip(ns, colors, strict=True):
        pts = points[points["n"] == n]
        ax.plot(pts["u"], pts["loss"], color=color, label=f"$n = 10^{{{round(math.log10(n))}}}$")
    first = points[points["n"] == ns[0]]
    ax.plot(first["u"], first["limit"], "k--", lw=1.2, label=r"$L_\infty$")
    ax.set_xlabel(r"rescaled time $u = t / (\sqrt{n}\,\log n)$")
    ax.set_ylabel(r"$L_n(u) / L_n(0)$")
    ax.set_title("Staircase, label magnitudes 1 and 2")
    ax.legend(loc="upper right")
    return fig

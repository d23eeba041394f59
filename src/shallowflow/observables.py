"""What the theory talks about, measured at a state (SPEC §2).

All functions are pure and jit-able; ``measure`` returns a dict of scalars, the
per-record observables of a run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.geometry import Geometry
from shallowflow.model import Forward, Problem, State, field_from_forward, forward, sq_norm


def balance(state: State) -> jax.Array:
    """a_j² − ‖v_j‖² per neuron; equals a_j² − ‖w_j‖² up to the constant off-span
    part, so its change is the change of Lemma 1's conserved quantity."""
    return state.a**2 - jnp.sum(state.v**2, axis=1)


def mu_from(fw: Forward, field: State, p) -> jax.Array:
    """μ = p‖∇L‖²/L = ‖F‖²/(p L) with F = −p∇L the exact flow (SPEC §2)."""
    return sq_norm(field) / (p * fw.loss)


def mu(geom: Geometry, state: State, prob: Problem, slope: float = 0.0) -> jax.Array:
    """Local PL curvature μ(θ) = p‖∇L(θ)‖²/L(θ) from the exact gradient (SPEC §2)."""
    fw = forward(geom, state, prob, slope)
    return mu_from(fw, field_from_forward(geom, state, prob, fw, slope), prob.sizes(state)[1])


def covered(geom: Geometry, state: State, prob: Problem, pre: jax.Array | None = None):
    """Per-example coverage (SPEC §2): some j has a_j y_i > 0 and ⟨w_j, x_i⟩ > 0.
    (Padded examples have y_i = 0 and are never covered.)"""
    pre = geom.preact(state.v, prob.z) if pre is None else pre
    hit = (state.a[:, None] * prob.y[None, :] > 0) & (pre > 0)
    return jnp.any(hit, axis=0)


def coverage(geom: Geometry, state: State, prob: Problem, pre: jax.Array | None = None):
    """Number of covered examples (SPEC §2)."""
    return jnp.sum(covered(geom, state, prob, pre))


def all_covered(geom: Geometry, state: State, prob: Problem) -> jax.Array:
    """Every (real) example is covered."""
    return jnp.all(covered(geom, state, prob) | ~prob.example_mask())


def energies(state: State, pre: jax.Array, p=None) -> jax.Array:
    """E_i = (1/p) Σ_j a_j² 1[⟨w_j, x_i⟩ > 0] (SPEC §2)."""
    p = state.a.shape[0] if p is None else p
    return (state.a**2) @ (pre > 0).astype(state.a.dtype) / p


def _min_real(x: jax.Array, prob: Problem) -> jax.Array:
    """min_i over the real examples."""
    return jnp.min(jnp.where(prob.example_mask(), x, jnp.inf))


def orthogonal_bounds(geom: Geometry, state: State, prob: Problem, pre: jax.Array):
    """(μ_low, μ_upp) tight: ((2/n) min_i ‖x_i‖² E_i, (4/n) max_i ‖x_i‖² E_i), bounds on
    μ for pairwise orthogonal data under Assumption 1 (SPEC §2)."""
    n, p = prob.sizes(state)
    xe = geom.sq_norms(prob.z) * energies(state, pre, p)
    return 2.0 * _min_real(xe, prob) / n, 4.0 * jnp.max(xe) / n


def paper_bounds(state: State, prob: Problem, pre: jax.Array):
    """The paper's (μ_low, μ_upp) = ((2/n) min_i E_i, (16/n) max_i E_i) (SPEC §5, Fig. 6):
    the bounds of :func:`orthogonal_bounds` with its constants for ‖x_i‖ ∈ [1, 2]."""
    n, p = prob.sizes(state)
    e = energies(state, pre, p)
    return 2.0 * _min_real(e, prob) / n, 16.0 * jnp.max(e) / n


def assumption1(state: State, off2: jax.Array) -> jax.Array:
    """Assumption 1: |a_j| ≥ ‖w_j‖ for every j, with ‖w_j‖² = ‖v_j‖² + off2_j.

    Equality counts (the balanced initialisation, |a_j| = ‖w_j‖ by construction), so
    the comparison allows a few ulps of rounding in ‖w_j‖²."""
    w2 = jnp.sum(state.v**2, axis=1) + off2
    slack = 16 * jnp.finfo(w2.dtype).eps
    return jnp.all(state.a**2 >= w2 * (1 - slack))


def assumption1_margins(state: State, off2: jax.Array, p) -> dict[str, jax.Array]:
    """Assumption 1 neuron by neuron, over the real neurons j < p: the fraction with
    |a_j| ≥ ‖w_j‖ (the rule of :func:`assumption1`, so ``assumption1`` holds exactly when
    the fraction is 1) and min_j (|a_j| − ‖w_j‖), < 0 where it fails."""
    w2 = jnp.sum(state.v**2, axis=1) + off2
    slack = 16 * jnp.finfo(w2.dtype).eps
    real = jnp.arange(w2.shape[0]) < p
    holds = (state.a**2 >= w2 * (1 - slack)) & real
    margin = jnp.where(real, jnp.abs(state.a) - jnp.sqrt(w2), jnp.inf)
    return {
        "assumption1_fraction": jnp.sum(holds) / p,
        "assumption1_margin": jnp.min(margin),
    }


def neuron_norms2(state: State, off2: jax.Array) -> jax.Array:
    """a_j² + ‖w_j‖² per neuron, with ‖w_j‖² = ‖v_j‖² + off2_j."""
    return state.a**2 + jnp.sum(state.v**2, axis=1) + off2


def norms(state: State, off2: jax.Array, norms0: jax.Array) -> dict[str, jax.Array]:
    """‖θ‖² = Σ_j a_j² + ‖w_j‖² (SPEC §6) and ``grown_neurons``: the neurons whose norm
    (a_j² + ‖w_j‖²)^(1/2) is at least ten times its start ``norms0`` (squared, per
    neuron), i.e. a_j² + ‖w_j‖² ≥ 100 (a_j(0)² + ‖w_j(0)‖²). A neuron that starts at 0
    is a fixed point and never counts (padded neurons are such)."""
    n2 = neuron_norms2(state, off2)
    grown = (n2 >= 100.0 * norms0) & (norms0 > 0)
    return {"theta_norm2": jnp.sum(n2), "grown_neurons": jnp.sum(grown)}


def fitted(fw: Forward, prob: Problem) -> jax.Array:
    """Number of examples fitted to half their label, |r_i| < |y_i|/2 (the order in which
    a small start fits the examples, SPEC §6; padded examples never count)."""
    return jnp.sum((jnp.abs(fw.r) < 0.5 * jnp.abs(prob.y)) & prob.example_mask())


def on_surface(geom: Geometry, state: State, prob: Problem, fw: Forward) -> Forward:
    """``fw`` with pre-activations within rounding of 0 set to exactly 0 (σ(0) = 0, so
    h, r and L are unchanged to rounding)."""
    size = jnp.sqrt(jnp.sum(state.v**2, 1))[:, None] * jnp.sqrt(geom.sq_norms(prob.z))[None, :]
    tol = 64 * jnp.finfo(fw.pre.dtype).eps * size
    return fw._replace(pre=jnp.where(jnp.abs(fw.pre) <= tol, 0.0, fw.pre))


def measure(
    geom: Geometry,
    state: State,
    prob: Problem,
    balance0: jax.Array,
    scale0: jax.Array,
    slope: float = 0.0,
) -> dict[str, jax.Array]:
    """All per-record observables of SPEC §2 at θ, in one forward/backward pass:
    loss, μ, balance drift max_j |Δ(a_j² − ‖w_j‖²)| (absolute, and relative to
    ``scale0`` = max_j (a_j(0)² + ‖w_j(0)‖²)), coverage, energies range, the
    orthogonal-data μ bounds and the empirical Theorem-1 constant
    n μ / min_i (h_θ(x_i)/y_i). The bounds are the paper's ``mu_low``/``mu_upp``
    ((2/n) min E_i, (16/n) max E_i) and the tight ``mu_low_tight``/``mu_upp_tight``.

    A pair within rounding of its surface (|u_ji| ≤ 64 ε ‖v_j‖‖x_i‖) is measured as on
    it (u = 0, σ'(0) = 0): the exact flow holds sliding pairs there, and which side
    rounding leaves them on must not change what is measured (SPEC §3b)."""
    fw = on_surface(geom, state, prob, forward(geom, state, prob, slope))
    field = field_from_forward(geom, state, prob, fw, slope)
    n, p = prob.sizes(state)
    m = mu_from(fw, field, p)
    drift = jnp.max(jnp.abs(balance(state) - balance0))
    e = energies(state, fw.pre, p)
    lo, hi = paper_bounds(state, prob, fw.pre)
    lo_tight, hi_tight = orthogonal_bounds(geom, state, prob, fw.pre)
    real = prob.example_mask()
    fit = _min_real(fw.h / jnp.where(real, prob.y, 1.0), prob)
    # h(x_i)/y_i is undefined where y_i = 0 (a teacher whose units are all off at x_i)
    fit = jnp.where(jnp.any(real & (prob.y == 0)), jnp.nan, fit)
    return {
        "loss": fw.loss,
        "mu": m,
        "balance_drift": drift,
        "balance_drift_rel": drift / scale0,
        "coverage": coverage(geom, state, prob, fw.pre),
        "energy_min": _min_real(e, prob),
        "energy_max": jnp.max(e),
        "mu_low": lo,
        "mu_upp": hi,
        "mu_low_tight": lo_tight,
        "mu_upp_tight": hi_tight,
        "min_fit": fit,
        # Theorem 1's PL inequality is about the state; its constant is defined only
        # where every example is fitted on the right side (min_fit > 0): elsewhere NaN,
        # a null in the tables (with min_fit ≤ 0 saying why), never ±inf or < 0.
        "thm1_const": jnp.where(fit > 0, n * m / jnp.where(fit > 0, fit, 1.0), jnp.nan),
    }

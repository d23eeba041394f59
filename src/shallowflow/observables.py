"""What the theory talks about, measured at a state (SPEC §2).

All functions are pure and jit-able; ``measure`` returns a dict of scalars, the
per-record observables of a run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from shallowflow.activations import Activation, relu
from shallowflow.geometry import Geometry
from shallowflow.model import Forward, Problem, State, field_from_forward, forward, sq_norm


def balance(state: State, act: Activation = relu) -> jax.Array | None:
    """k a_j² − ‖v_j‖² per neuron for a positively k-homogeneous σ (SPEC §6; ReLU: k = 1,
    Lemma 1); equals k a_j² − ‖w_j‖² up to the constant off-span part, so its change is
    the change of the conserved quantity. None (no law) when σ is not homogeneous.

    Why it is conserved: along the flow (SPEC §1),
    d/dt a_j² = 2 a_j ȧ_j = (2a_j/n) Σ_i r_i σ(u_ji) and
    d/dt ‖w_j‖² = 2⟨w_j, ẇ_j⟩ = (2a_j/n) Σ_i r_i σ′(u_ji) u_ji, u_ji = ⟨w_j, x_i⟩.
    Euler's identity for a positively k-homogeneous σ, u σ′(u) = k σ(u), makes the
    second k times the first, so d/dt (k a_j² − ‖w_j‖²) = 0."""
    k = act.degree
    if k is None:
        return None
    a2 = state.a**2 if k == 1 else k * state.a**2
    return a2 - jnp.sum(state.v**2, axis=1)


def mu_from(fw: Forward, field: State, p) -> jax.Array:
    """μ = p‖∇L‖²/L = ‖F‖²/(p L) with F = −p∇L the exact flow (SPEC §2)."""
    return sq_norm(field) / (p * fw.loss)


def mu(geom: Geometry, state: State, prob: Problem, act: Activation = relu) -> jax.Array:
    """Local PL curvature μ(θ) = p‖∇L(θ)‖²/L(θ) from the exact gradient (SPEC §2)."""
    fw = forward(geom, state, prob, act)
    return mu_from(fw, field_from_forward(geom, state, prob, fw, act), prob.sizes(state)[1])


def covered(geom: Geometry, state: State, prob: Problem, pre: jax.Array | None = None):
    """Per-example coverage (SPEC §2): some j has a_j y_i > 0 and ⟨w_j, x_i⟩ > 0.
    (Padded examples have y_i = 0 and are never covered.)"""
    pre = geom.preact(state.v, prob.z) if pre is None else pre
    hit = (state.a[:, None] * prob.y[None, :] > 0) & (pre > 0)
    return jnp.any(hit, axis=0)


def coverage(
    geom: Geometry,
    state: State,
    prob: Problem,
    pre: jax.Array | None = None,
    act: Activation = relu,
) -> jax.Array:
    """Number of covered examples (SPEC §2). Coverage reads "neuron j is active on x_i" as
    u_ji > 0, which means something only when σ is 0 (ReLU, relu_power) or smaller
    (leaky) on the other side: NaN (null) for the others (monomials, softplus, GELU)."""
    count = jnp.sum(covered(geom, state, prob, pre))
    return count if act.activity else jnp.full((), jnp.nan, state.a.dtype)


def all_covered(geom: Geometry, state: State, prob: Problem) -> jax.Array:
    """Every (real) example is covered."""
    return jnp.all(covered(geom, state, prob) | ~prob.example_mask())


def energies(state: State, pre: jax.Array, p=None) -> jax.Array:
    """E_i = (1/p) Σ_j a_j² 1[⟨w_j, x_i⟩ > 0] (SPEC §2)."""
    p = state.a.shape[0] if p is None else p
    return (state.a**2) @ (pre > 0).astype(state.a.dtype) / p


# The measures proven for ReLU only (SPEC §6): null for an activation without relu_theory.
RELU_ONLY = (
    "energy_min",
    "energy_max",
    "mu_low",
    "mu_upp",
    "mu_low_tight",
    "mu_upp_tight",
    "thm1_const",
)


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


def a_sign_changes(start: State, end: State) -> jax.Array:
    """The number of neurons j with sign(a_j(T)) ≠ sign(a_j(0)) (SPEC §2: under the flow
    and Assumption 1 no a_j changes sign, Lemma 1). Padded neurons have a_j = 0 at both
    ends and never count."""
    return jnp.sum(jnp.sign(end.a) != jnp.sign(start.a))


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
    balance0: jax.Array | None,
    scale0: jax.Array,
    act: Activation = relu,
) -> dict[str, jax.Array]:
    """All per-record observables of SPEC §2 at θ, in one forward/backward pass:
    loss, μ, balance drift max_j |Δ(a_j² − ‖w_j‖²)| (absolute, and relative to
    ``scale0`` = max_j (a_j(0)² + ‖w_j(0)‖²)), coverage, energies range, the
    orthogonal-data μ bounds and the empirical Theorem-1 constant
    n μ / min_i (h_θ(x_i)/y_i). The bounds are the paper's ``mu_low``/``mu_upp``
    ((2/n) min E_i, (16/n) max E_i) and the tight ``mu_low_tight``/``mu_upp_tight``.

    A pair within rounding of its surface (|u_ji| ≤ 64 ε ‖v_j‖‖x_i‖) is measured as on
    it (u = 0, σ'(0) = 0): the exact flow holds sliding pairs there, and which side
    rounding leaves them on must not change what is measured (SPEC §3b).

    What σ does not allow is null (NaN), never a wrong number (SPEC §6): the balance
    drift when σ has no conservation law (``balance0`` None: softplus, GELU); coverage
    when u > 0 means no activity (:func:`coverage`); the energies, the orthogonal bounds
    and Theorem 1's constant, proven for ReLU only (kept for the leaky ReLU, as before
    the model family), for the others."""
    fw = forward(geom, state, prob, act)
    if act.piecewise_linear:  # kinks: a pair within rounding of its surface is on it
        fw = on_surface(geom, state, prob, fw)
    field = field_from_forward(geom, state, prob, fw, act)
    n, p = prob.sizes(state)
    m = mu_from(fw, field, p)
    now = balance(state, act)
    nan = jnp.full((), jnp.nan, m.dtype)
    drift = nan if now is None or balance0 is None else jnp.max(jnp.abs(now - balance0))
    e = energies(state, fw.pre, p)
    lo, hi = paper_bounds(state, prob, fw.pre)
    lo_tight, hi_tight = orthogonal_bounds(geom, state, prob, fw.pre)
    real = prob.example_mask()
    fit = _min_real(fw.h / jnp.where(real, prob.y, 1.0), prob)
    # h(x_i)/y_i is undefined where y_i = 0 (a teacher whose units are all off at x_i)
    fit = jnp.where(jnp.any(real & (prob.y == 0)), jnp.nan, fit)
    out = {
        "loss": fw.loss,
        "mu": m,
        "balance_drift": drift,
        "balance_drift_rel": drift / scale0,
        "coverage": coverage(geom, state, prob, fw.pre, act),
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
    if not act.relu_theory:
        out.update({k: nan for k in RELU_ONLY})
    return out

"""The mean-field network, its loss and its gradient flow (SPEC §1).

Everything here works in *working coordinates* (see :mod:`shallowflow.geometry`):
the data are ``z`` and the first layer is ``v``; the pre-activations
``P[j, i] = ⟨w_j, x_i⟩`` are computed by the geometry. In the dense geometry
``z = X`` and ``v = W``. The activation σ is a spec of :mod:`shallowflow.activations`
(ReLU by default), passed as ``act``.
"""

from __future__ import annotations

import functools
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from shallowflow.activations import Activation, relu
from shallowflow.geometry import Geometry


class State(NamedTuple):
    """Parameters θ = (a, v): ``a`` (p,), ``v`` (p, m) in working coordinates."""

    a: jax.Array
    v: jax.Array


class Problem(NamedTuple):
    """One run's data in working coordinates: ``z`` (n, m) or (n,) for the diagonal
    geometry, labels ``y`` (n,).

    ``n`` and ``p``: the run's true numbers of examples and neurons when its arrays are
    padded to a bucket's shape (:mod:`shallowflow.engine`); None means the arrays' own
    sizes. Padded examples have z_i = 0 and y_i = 0, so h(x_i) = 0 and r_i = 0 exactly;
    padded neurons have a_j = 0 and v_j = 0, so they add nothing to h and their field is
    exactly 0 (σ(0) = 0, and every term of dv_j carries a_j): a fixed point. The
    mean-field 1/p and the loss's 1/n use the true sizes.

    An activation with σ(0) ≠ 0 (softplus) breaks two of these: a padded example gets
    h(x_i) = σ(0) Σ_j a_j/p, and a padded neuron da_j = (1/n) Σ_i r_i σ(0). The model then
    masks both (:func:`forward` sets r_i = 0 on padded examples, :func:`field_from_forward`
    da_j = 0 on padded neurons), so a padded run is the lone run.
    """

    z: jax.Array
    y: jax.Array
    n: jax.Array | np.ndarray | int | None = None
    p: jax.Array | np.ndarray | int | None = None

    def sizes(self, state: State) -> tuple:
        """(n, p): the true sizes, or the arrays' sizes when not padded."""
        n = self.y.shape[0] if self.n is None else self.n
        p = state.a.shape[0] if self.p is None else self.p
        return n, p

    def example_mask(self) -> jax.Array:
        """True for the real examples (all of them when not padded)."""
        size = self.y.shape[0]
        return jnp.ones(size, bool) if self.n is None else jnp.arange(size) < self.n

    def neuron_mask(self, state: State) -> jax.Array:
        """True for the real neurons (all of them when not padded)."""
        size = state.a.shape[0]
        return jnp.ones(size, bool) if self.p is None else jnp.arange(size) < self.p


def activation(u: jax.Array, act: Activation = relu) -> jax.Array:
    """σ(u) of the activation spec ``act`` (:mod:`shallowflow.activations`; ReLU by
    default, SPEC §1)."""
    return act.sigma(u)


def activation_grad(u: jax.Array, act: Activation = relu) -> jax.Array:
    """σ'(u) of ``act``, with σ'(0) as SPEC fixes at a kink (0 for ReLU)."""
    return act.grad(u)


class Forward(NamedTuple):
    """Quantities of one forward pass: pre-activations, outputs, residuals, loss."""

    pre: jax.Array  # (p, n) ⟨w_j, x_i⟩
    h: jax.Array  # (n,) h_θ(x_i)
    r: jax.Array  # (n,) y_i − h_θ(x_i)
    loss: jax.Array  # () (1/2n) Σ r_i²


def forward(geom: Geometry, state: State, prob: Problem, act: Activation = relu) -> Forward:
    """h_θ(x) = (1/p) Σ_j a_j σ(⟨w_j, x⟩), r = y − h, L = (1/2n) Σ r² (SPEC §1)."""
    pre = geom.preact(state.v, prob.z)
    n, p = prob.sizes(state)
    h = state.a @ act.sigma(pre) / p
    r = prob.y - h
    if not act.zero_at_zero:  # padded examples: r_i = 0 (Problem)
        r = jnp.where(prob.example_mask(), r, 0.0)
    loss = 0.5 * jnp.sum(r * r) / n
    return Forward(pre, h, r, loss)


def field_from_forward(
    geom: Geometry, state: State, prob: Problem, fw: Forward, act: Activation = relu
) -> State:
    """The flow F(θ) = −p∇L(θ) (SPEC §1):
    da_j/dt = (1/n) Σ_i r_i σ(⟨w_j,x_i⟩),  dw_j/dt = (a_j/n) Σ_i r_i σ'(⟨w_j,x_i⟩) x_i."""
    n, _ = prob.sizes(state)
    da = act.sigma(fw.pre) @ fw.r / n
    if not act.zero_at_zero:  # padded neurons stay at 0 (Problem)
        da = jnp.where(prob.neuron_mask(state), da, 0.0)
    m = (state.a[:, None] / n) * (fw.r[None, :] * act.grad(fw.pre))
    dv = geom.pullback(m, prob.z)
    return State(da, dv)


def vector_field(geom: Geometry, state: State, prob: Problem, act: Activation = relu) -> State:
    """F(θ) = −p∇L(θ), the mean-field gradient flow of SPEC §1."""
    return field_from_forward(geom, state, prob, forward(geom, state, prob, act), act)


def loss(geom: Geometry, state: State, prob: Problem, act: Activation = relu) -> jax.Array:
    """L(θ) = (1/2n) Σ_i (y_i − h_θ(x_i))² (SPEC §1)."""
    return forward(geom, state, prob, act).loss


def sq_norm(tree: State) -> jax.Array:
    """Squared Euclidean norm of a parameter pytree."""
    # reduce, not sum(): the same additions, without sum's int 0 as a first term
    squares = (jnp.sum(x * x) for x in jax.tree_util.tree_leaves(tree))
    return functools.reduce(operator.add, squares)

"""The activations σ of the model family (SPEC §1, §6), each a small frozen spec.

A spec is an immutable, hashable object (equal specs hash equal, so it can be a static
argument of a compiled program and cells of one activation share their program) with

- ``sigma(u)`` and ``grad(u)`` = σ′(u), elementwise; at a kink σ′ takes the value SPEC
  fixes (ReLU: σ′(0) = 0; leaky: σ′(0) = slope);
- ``degree``: k when σ is positively k-homogeneous (uσ′(u) = kσ(u), so Lemma 1's
  k a_j² − ‖w_j‖² is conserved), else None;
- ``piecewise_linear``: kinks, hence the event-driven exact flow (SPEC §3b); the others
  are C¹ and an error-controlled Runge–Kutta step integrates their flow;
- ``relu_theory``: whether the ReLU-only quantities (orthogonal bounds, energies,
  Theorem 1's constant) are reported (SPEC §6);
- ``activity``: whether "neuron j is active on x_i" means u_ji > 0 (coverage, SPEC §2);
- ``zero_at_zero``: σ(0) = 0, which makes padded examples and neurons inert by
  themselves (:class:`shallowflow.model.Problem`); otherwise the model masks them;
- ``name``: the canonical text, ``parse_activation(spec.name) == spec``.

The string exists only at the edge (the CLI, sweep files, ``config.json``):
:func:`parse_activation` turns it into a spec once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar

import jax
import jax.numpy as jnp
from pydantic import AfterValidator

from shallowflow.errors import ShallowflowInputError

__all__ = [
    "Activation",
    "ActivationName",
    "Gelu",
    "Leaky",
    "Monomial",
    "ReluPower",
    "Softplus",
    "gelu",
    "leaky",
    "monomial",
    "parse_activation",
    "relu",
    "relu_power",
    "softplus",
]

ALLOWED = (
    "relu | leaky:S (0 <= S < 1) | relu_power:K (K in 2, 3) | monomial:B (integer B >= 2) "
    "| softplus:B (B > 0) | gelu"
)


def _number(x: float) -> str:
    """A float as the shortest text that reads back to it, without a trailing '.0'."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Activation:
    """The interface of every activation spec (module doc)."""

    @property
    def name(self) -> str:
        """The canonical text: ``parse_activation(spec.name) == spec``."""
        raise NotImplementedError

    @property
    def degree(self) -> int | None:
        """k when σ is positively k-homogeneous (uσ′(u) = kσ(u)), else None."""
        return None

    def sigma(self, u: jax.Array) -> jax.Array:
        """σ(u), elementwise."""
        raise NotImplementedError

    def grad(self, u: jax.Array) -> jax.Array:
        """σ′(u), elementwise (at a kink the value SPEC fixes)."""
        raise NotImplementedError

    # Class attributes, not fields: a spec's fields are its parameters only, so that
    # equality and the hash are those of (kind, parameters).
    piecewise_linear: ClassVar[bool] = False
    relu_theory: ClassVar[bool] = False
    activity: ClassVar[bool] = False
    zero_at_zero: ClassVar[bool] = True


@dataclass(frozen=True)
class Leaky(Activation):
    """σ(u) = max(u, s·u), 0 ≤ s < 1, σ′(0) = s: ReLU for s = 0 (SPEC §1), leaky ReLU
    otherwise. Positively 1-homogeneous, piecewise linear. The ReLU-only quantities are
    reported for s = 0 only: the paper proves its orthogonal bounds and Theorem 1 for the
    ReLU, and for s > 0 the upper bound and Theorem 1's constant are not proven (the
    energies' 1[u > 0] no longer is σ′), so they are null, never a number that reads as
    a bound (SPEC §6)."""

    slope: float = 0.0
    piecewise_linear: ClassVar[bool] = True
    activity: ClassVar[bool] = True

    @property
    def relu_theory(self) -> bool:  # pyright: ignore[reportIncompatibleVariableOverride]
        """True for the ReLU (s = 0) only."""
        return self.slope == 0.0

    @property
    def degree(self) -> int | None:
        """1."""
        return 1

    @property
    def name(self) -> str:
        """'relu' for s = 0, else 'leaky:s'."""
        return "relu" if self.slope == 0.0 else f"leaky:{_number(self.slope)}"

    def sigma(self, u: jax.Array) -> jax.Array:
        """max(u, s·u)."""
        return jnp.where(u > 0, u, self.slope * u)

    def grad(self, u: jax.Array) -> jax.Array:
        """1 for u > 0, s for u ≤ 0."""
        return jnp.where(u > 0, jnp.ones_like(u), self.slope * jnp.ones_like(u))


@dataclass(frozen=True)
class ReluPower(Activation):
    """σ(u) = max(u, 0)^k, σ′(u) = k max(u, 0)^(k−1), k ∈ {2, 3}: positively
    k-homogeneous, C¹ (C² for k = 3); active where u > 0."""

    k: int = 2
    activity: ClassVar[bool] = True

    @property
    def degree(self) -> int | None:
        """k."""
        return self.k

    @property
    def name(self) -> str:
        """'relu_power:k'."""
        return f"relu_power:{self.k}"

    def sigma(self, u: jax.Array) -> jax.Array:
        """max(u, 0)^k."""
        return jnp.maximum(u, 0) ** self.k

    def grad(self, u: jax.Array) -> jax.Array:
        """k max(u, 0)^(k−1)."""
        return self.k * jnp.maximum(u, 0) ** (self.k - 1)


@dataclass(frozen=True)
class Monomial(Activation):
    """σ(u) = u^β, σ′(u) = β u^(β−1), integer β ≥ 2: positively β-homogeneous (the
    authors' reply to a reviewer: Lemma 1 holds up to the constant β), smooth."""

    beta: int = 2

    @property
    def degree(self) -> int | None:
        """β."""
        return self.beta

    @property
    def name(self) -> str:
        """'monomial:β'."""
        return f"monomial:{self.beta}"

    def sigma(self, u: jax.Array) -> jax.Array:
        """u^β."""
        return u**self.beta

    def grad(self, u: jax.Array) -> jax.Array:
        """β u^(β−1)."""
        return self.beta * u ** (self.beta - 1)


@dataclass(frozen=True)
class Softplus(Activation):
    """σ(u) = log(1 + e^{βu})/β, written stably as softplus(βu)/β; σ′(u) = 1/(1 + e^{−βu}).
    Smooth, not homogeneous (no conservation law), and σ(0) = log 2/β ≠ 0: padded
    examples and neurons are masked by the model."""

    beta: float = 1.0
    zero_at_zero: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """'softplus:β'."""
        return f"softplus:{_number(self.beta)}"

    def sigma(self, u: jax.Array) -> jax.Array:
        """softplus(βu)/β = log(1 + e^{βu})/β, stable for large |βu|."""
        return jax.nn.softplus(self.beta * u) / self.beta

    def grad(self, u: jax.Array) -> jax.Array:
        """1/(1 + e^{−βu})."""
        return jax.nn.sigmoid(self.beta * u)


@dataclass(frozen=True)
class Gelu(Activation):
    """The exact (erf) GELU, σ(u) = u Φ(u) = (u/2)(1 + erf(u/√2)), σ′(u) = Φ(u) + u φ(u)
    (not the tanh approximation). Smooth, not homogeneous, σ(0) = 0."""

    @property
    def name(self) -> str:
        """'gelu'."""
        return "gelu"

    def sigma(self, u: jax.Array) -> jax.Array:
        """(u/2)(1 + erf(u/√2))."""
        return 0.5 * u * (1.0 + jax.lax.erf(u / math.sqrt(2.0)))

    def grad(self, u: jax.Array) -> jax.Array:
        """Φ(u) + u e^{−u²/2}/√(2π)."""
        cdf = 0.5 * (1.0 + jax.lax.erf(u / math.sqrt(2.0)))
        return cdf + u * jnp.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)


relu = Leaky(0.0)
gelu = Gelu()


def leaky(slope: float) -> Leaky:
    """max(u, slope·u) with 0 ≤ slope < 1 (slope 0 is :data:`relu`)."""
    slope = float(slope)
    if not (math.isfinite(slope) and 0.0 <= slope < 1.0):
        raise ShallowflowInputError("activation", f"leaky slope must be in [0, 1); got {slope!r}")
    return Leaky(slope + 0.0)  # −0.0 is 0.0: one spec, one name


def relu_power(k: int) -> ReluPower:
    """max(u, 0)^k with k ∈ {2, 3}."""
    if k not in (2, 3) or isinstance(k, bool):
        raise ShallowflowInputError("activation", f"relu_power needs K in 2, 3; got {k!r}")
    return ReluPower(int(k))


def monomial(beta: int) -> Monomial:
    """u^β with integer β ≥ 2."""
    if isinstance(beta, bool) or int(beta) != beta or beta < 2:
        raise ShallowflowInputError("activation", f"monomial needs an integer B >= 2; got {beta!r}")
    return Monomial(int(beta))


def softplus(beta: float) -> Softplus:
    """log(1 + e^{βu})/β with β > 0."""
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0):
        raise ShallowflowInputError("activation", f"softplus needs B > 0; got {beta!r}")
    return Softplus(beta)


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ShallowflowInputError(
            "activation", f"{what} needs an integer; got {text!r}"
        ) from None


def _real(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ShallowflowInputError("activation", f"{what} needs a number; got {text!r}") from None


def parse_activation(text: str | Activation) -> Activation:
    """The spec named by ``text`` (module doc; a spec is returned as it is):
    ``relu``, ``leaky:S``, ``relu_power:K``, ``monomial:B``, ``softplus:B``, ``gelu``.
    Bad text raises :class:`ShallowflowInputError` naming ``activation``."""
    if isinstance(text, Activation):
        return text
    if not isinstance(text, str):
        raise ShallowflowInputError("activation", f"expected text ({ALLOWED}); got {text!r}")
    kind, sep, arg = text.strip().partition(":")
    plain = {"relu": relu, "gelu": gelu}
    if kind in plain and not sep:
        return plain[kind]
    makers = {
        "leaky": lambda s: leaky(_real(s, "leaky")),
        "relu_power": lambda s: relu_power(_integer(s, "relu_power")),
        "monomial": lambda s: monomial(_integer(s, "monomial")),
        "softplus": lambda s: softplus(_real(s, "softplus")),
    }
    if kind in makers and sep and arg.strip():
        return makers[kind](arg.strip())
    raise ShallowflowInputError("activation", f"unknown {text!r}; allowed: {ALLOWED}")


def canonical_name(text: str | None) -> str | None:
    """The canonical name of the activation ``text`` (a validator for configuration
    fields: a bad name raises a plain ValueError, which the configuration reports under
    the field's own name; None, a knob left out, stays None)."""
    if text is None:
        return None
    try:
        return parse_activation(text).name
    except ShallowflowInputError as exc:
        raise ValueError(str(exc).removeprefix("activation: ")) from None


# A configuration field holding an activation's name, checked and made canonical.
ActivationName = Annotated[str, AfterValidator(canonical_name)]


def from_knobs(activation: str | None, slope: float | None) -> str:
    """The activation of the knobs ``activation`` and its alias ``activation_slope`` S
    (= leaky:S, 0 = relu; the knob of configurations before the model family): relu when
    neither is given; both given is an error."""
    if slope is None:
        return "relu" if activation is None else activation
    if activation is not None:
        raise ShallowflowInputError(
            "activation",
            f"give activation or its alias activation_slope, not both (got {activation!r} "
            f"and activation_slope={slope!r})",
        )
    return leaky(slope).name

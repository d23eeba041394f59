"""How many devices the engine shares runs over (see :mod:`shallowflow.engine`)."""

from __future__ import annotations

import os

import jax

from shallowflow.geometry import run_bytes


def use_cpu_devices(count: int | None = None) -> bool:
    """Expose the host's cores as ``count`` XLA CPU devices (default: all cores, or
    ``$SHALLOWFLOW_CPU_DEVICES``) so that the engine runs that many runs at once,
    one per core. Small GEMMs and element-wise steps do not spread over cores inside
    XLA:CPU; independent runs do (1.4x on the Fig. 3 cell of benchmarks/engine.py
    with 2 cores). It must be called before JAX computes anything: ``import
    shallowflow`` calls it; it returns False, changing nothing, if it is too late,
    if a count was already configured, or if the count is 1."""
    if count is None:
        env = os.environ.get("SHALLOWFLOW_CPU_DEVICES", "").strip()
        count = int(env) if env else (os.cpu_count() or 1)
    # jax.config's flags are attributes made at run time, unknown to its annotations
    if count <= 1 or jax.config.jax_num_cpu_devices != -1:  # pyright: ignore[reportAttributeAccessIssue]
        return False
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", int(count))
    except RuntimeError:  # JAX already initialised its backends
        return False
    return True


def host_memory_bytes() -> int | None:
    """The host's physical memory, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def device_memory_bytes() -> int | None:
    """Memory of one local device: an accelerator's own limit, or the host's memory
    for CPU devices (shared by all of them). None where unknown."""
    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        try:
            stats = dev.memory_stats() or {}
        except Exception:  # some backends do not report
            stats = {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    return host_memory_bytes()


# Host memory for one result row (run × record): the recorded observables in float64.
_RECORD_BYTES = 8 * 32


def check_memory(geometry: str, n: int, d: int, p: int, points: int, x64: bool, runs: int):
    """Refuse a cell whose one run cannot fit the device, or whose results cannot fit
    the host, with the estimate and the limit (ValueError "knob: …")."""
    gib = 2**30
    limit = device_memory_bytes()
    need = run_bytes(geometry, n, d, p, points, x64)
    if limit is not None and need > limit:
        culprit = "p" if p * (points + 12) > n + d else "n"
        raise ValueError(
            f"{culprit}: one run of n={n}, d={d}, p={p} needs about "
            f"{need / gib:.3g} GiB; the device has {limit / gib:.3g} GiB"
        )
    host = host_memory_bytes()
    results = runs * (points + 2) * _RECORD_BYTES
    if host is not None and results > host / 2:
        raise ValueError(
            f"runs: {runs} runs × {points} records need about {results / gib:.3g} GiB "
            f"of results; at most half the host's {host / gib:.3g} GiB"
        )

"""How many devices the engine shares runs over (see :mod:`shallowflow.engine`)."""

from __future__ import annotations

import os

import jax


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

"""Compilation as a cost to count: the persistent cache, and a compile counter.

XLA compiles one program per bucket (:mod:`shallowflow.engine`); compiled programs are
kept on disk by JAX's persistent compilation cache, so that running the same
``reproduce`` again compiles nothing. The cache lives in
``$SHALLOWFLOW_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/shallowflow/jax`` (default
``~/.cache/shallowflow/jax``); ``SHALLOWFLOW_CACHE_DIR=off`` disables it.
:class:`CompileCounter` counts XLA compilations and their seconds (cache hits apart)
from JAX's monitoring events.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import jax
from jax import monitoring

_OFF = ("off", "none", "0", "false", "no")


def cache_dir() -> Path | None:
    """Where compiled programs are kept, or None when the cache is disabled."""
    env = os.environ.get("SHALLOWFLOW_CACHE_DIR")
    if env is not None:
        env = env.strip()
        return None if env.lower() in _OFF or not env else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shallowflow" / "jax"


def use_compilation_cache() -> Path | None:
    """Switch JAX's persistent compilation cache on, at :func:`cache_dir`, for every
    program (no minimum compile time or size), unless the user configured one or
    disabled it. Returns the directory in use, or None."""
    # jax.config's flags are attributes made at run time, unknown to its annotations
    configured = jax.config.jax_compilation_cache_dir  # pyright: ignore[reportAttributeAccessIssue]
    if configured:
        return Path(configured)
    where = cache_dir()
    if where is None:
        return None
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError:  # an unwritable cache must not stop a simulation
        return None
    jax.config.update("jax_compilation_cache_dir", str(where))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return where


_COMPILE = "/jax/core/compile/backend_compile_duration"
_HIT = "/jax/compilation_cache/cache_hits"
_RETRIEVE = "/jax/compilation_cache/cache_retrieval_time_sec"


@dataclass(eq=False)
class CompileCounter:
    """Counts XLA compilations while active (``with CompileCounter() as c: ...``).

    ``compiles``: programs compiled by XLA (persistent-cache hits excluded), and
    ``by_name`` the same per jitted function name (the engine's is
    ``shallowflow_engine``); ``seconds``: their compile time; ``hits``: programs
    loaded from the persistent cache; ``programs``: every program lowered."""

    compiles: int = 0
    seconds: float = 0.0
    hits: int = 0
    programs: int = 0
    by_name: dict[str, int] = field(default_factory=dict)
    _hit: bool = field(default=False, repr=False)

    def __enter__(self) -> CompileCounter:
        install_listeners()
        _listeners.add(self)
        return self

    def __exit__(self, *exc) -> None:
        _listeners.discard(self)

    def _duration(self, event: str, seconds: float, fun_name: str = "") -> None:
        if event == _RETRIEVE:
            self.seconds -= seconds  # a hit's "compile" span was this retrieval
        if event != _COMPILE:
            return
        self.programs += 1
        self.seconds += seconds
        if self._hit:  # a persistent-cache hit happened inside this span
            self._hit = False
            return
        self.compiles += 1
        name = fun_name.removeprefix("jit(").removesuffix(")")
        self.by_name[name] = self.by_name.get(name, 0) + 1

    def _event(self, event: str) -> None:
        if event == _HIT:
            self.hits += 1
            self._hit = True


_listeners: set[CompileCounter] = set()
_lock = threading.Lock()
_installed = False


def _on_duration(event: str, duration_secs: float, **kwargs: str | int) -> None:
    for c in list(_listeners):
        c._duration(event, duration_secs, str(kwargs.get("fun_name", "")))


def _on_event(event: str, **kwargs: str | int) -> None:
    for c in list(_listeners):
        c._event(event)


def install_listeners() -> None:
    """Register the counters' JAX monitoring listeners (once per process)."""
    global _installed
    with _lock:
        if not _installed:
            monitoring.register_event_duration_secs_listener(_on_duration)
            monitoring.register_event_listener(_on_event)
            _installed = True

"""The golden comparison tells a changed number from a different machine.

A child process produces part of the golden artifacts (the Fig. 5 and Fig. 6 sweeps cut as
in ``test_golden``, and the user sweep) under a changed floating-point environment:

- XLA:CPU fast math, which lets LLVM reassociate sums and contract multiply-adds (NaN, inf,
  division and library functions still honoured, so the engine's divergence tests keep
  their meaning): every reduction may be summed in another order;
- vector instructions capped at AVX2 (AVX-512 where the golden files were written), which
  changes the width, hence the tree, of the vectorised sums;
- one CPU device instead of one per core, which regroups the runs of a batch.

Those artifacts must pass the golden comparison (its rule is in ``test_golden``'s
docstring), while a change of 1e-4 planted in one number of them must fail it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_golden import GOLDEN, X64, _golden_name, assert_same_artifact

from shallowflow.storage import read_json, read_parquet, write_json_atomic, write_parquet_atomic

CHANGED_ENV = {
    "XLA_FLAGS": " ".join(
        [
            "--xla_cpu_enable_fast_math=true",
            "--xla_cpu_fast_math_honor_nans=true",
            "--xla_cpu_fast_math_honor_infs=true",
            "--xla_cpu_fast_math_honor_division=true",
            "--xla_cpu_fast_math_honor_functions=true",
            "--xla_cpu_max_isa=AVX2",
        ]
    ),
    "SHALLOWFLOW_CPU_DEVICES": "1",
}
ARTIFACTS = ["fig5/summary.json", "fig5/runs.parquet", "fig6/runs.parquet", "sweep/runs.parquet"]

_CHILD = """
import sys
from pathlib import Path
from shallowflow.experiments.reproduce import run_protocol
from shallowflow.experiments.sweepfile import run_sweep_file
from test_golden import SWEEP, _small
import jax
out = Path(sys.argv[1])
for fig in ("fig5", "fig6"):
    run_protocol(_small(fig), out, progress=False)
(out / "golden.toml").write_text(SWEEP)
run_sweep_file(out / "golden.toml", out / "sweep", progress=False)
print("devices", jax.device_count())
"""


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """The artifacts produced in a child process under the changed environment."""
    out = tmp_path_factory.mktemp("changed_env")
    here = Path(__file__).parent
    env = {**os.environ, **CHANGED_ENV, "PYTHONPATH": os.pathsep.join([str(here), *sys.path])}
    # A compilation cache of its own: programs compiled under other flags are not reused.
    env["SHALLOWFLOW_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "devices 1" in done.stdout
    return out


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_golden_holds_under_a_changed_floating_point_environment(changed, artifact):
    assert_same_artifact(changed / artifact, GOLDEN / _golden_name(artifact), X64)


def _plant_json(path: Path, keys: tuple[str, ...], factor: float) -> None:
    obj = read_json(path)
    node = obj
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] *= factor
    write_json_atomic(obj, path)


def test_a_planted_change_of_1e_4_fails_the_comparison(changed, tmp_path):
    """Relative 1e-4 in one number of a table and of a summary is caught; the unplanted
    copies pass (they are the same files as above, read again)."""
    runs = read_parquet(changed / "fig6/runs.parquet")
    runs.loc[3, "mu_tail"] *= 1 + 1e-4
    write_parquet_atomic(runs, tmp_path / "runs.parquet")
    with pytest.raises(AssertionError, match="mu_tail"):
        assert_same_artifact(tmp_path / "runs.parquet", GOLDEN / "fig6__runs.parquet", X64)

    summary = tmp_path / "summary.json"
    summary.write_text((changed / "fig5/summary.json").read_text())
    _plant_json(summary, ("fits", "power", "gamma"), 1 + 1e-4)
    with pytest.raises(AssertionError, match=r"\$\.fits\.power\.gamma"):
        assert_same_artifact(summary, GOLDEN / "fig5__summary.json", X64)


def test_rounding_noise_around_zero_passes_and_a_real_misfit_does_not(tmp_path):
    """The χ² of an exact fit is rounding noise: any value of that size passes (the value
    another machine gave is planted); a χ² of 1e-4 is a misfit and fails."""
    golden = GOLDEN / "fig5__summary.json"
    want = json.loads(golden.read_text())
    assert want["fits"]["linear"]["dof"] == 0  # an exact fit: its χ² is zero up to rounding
    for chi2, passes in ((3.3100079141427127e-29, True), (1e-4, False)):
        path = tmp_path / "summary.json"
        path.write_text(golden.read_text())
        obj = read_json(path)
        obj["fits"]["linear"]["chi2"] = chi2
        write_json_atomic(obj, path)
        if passes:
            assert_same_artifact(path, golden, X64)
        else:
            with pytest.raises(AssertionError, match=r"fits\.linear\.chi2"):
                assert_same_artifact(path, golden, X64)

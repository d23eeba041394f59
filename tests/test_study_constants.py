"""The range knobs (``x_norms``, ``label_range``; ``--x-norms lo,hi``, ``--labels
paper:lo,hi``) and the `constants` study: draws land in their ranges, the defaults are
today's draws bit for bit and keep cell ids, a planted exponent is recovered and a null
one is not reported, and the study runs end to end."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shallowflow.cli import app
from shallowflow.columns import describe
from shallowflow.config import make_config
from shallowflow.data import paper_labels, radii
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.cells import Cell
from shallowflow.experiments.figures import protocol
from shallowflow.experiments.studies import constants as study
from shallowflow.experiments.studies import run_study
from shallowflow.start import Shape, draw_spec, draw_values, make_padded_run, make_run
from shallowflow.storage import read_json, read_parquet

EPS = float(np.finfo(np.float64).eps)
CASES = {
    "sphere": dict(n=5, d=9),
    "dense": dict(n=9, d=5),
    "orthogonal": dict(data="orthogonal", n=5, d=12),
    "correlated": dict(data="correlated", rho=0.3, n=4, d=10),
    "implicit": dict(n=5, d=10**9, w_law="gaussian", geometry="implicit"),
}


def _start(knobs, key=0):
    cfg = make_config(p=3, runs=1, test_n=3, x64=True, **knobs)
    with jax.enable_x64(True):
        return cfg, jax.device_get(make_run(jax.random.key(key), cfg))


def _norms(cfg, start):
    """‖x_i‖ of the training points (rotation invariant: exact in working coordinates;
    the diagonal geometry keeps the norms themselves)."""
    z = np.asarray(start.prob.z)
    return np.abs(z) if cfg.run.geometry == "diagonal" else np.sqrt(np.sum(z * z, axis=-1))


@settings(max_examples=12, deadline=None)
@given(
    case=st.sampled_from(list(CASES)),
    lo=st.floats(0.05, 5.0),
    width=st.floats(0.0, 5.0),
    ylo=st.floats(0.05, 5.0),
    ywidth=st.floats(0.0, 5.0),
    key=st.integers(0, 2**16),
)
def test_the_knobs_draw_inside_their_ranges(case, lo, width, ylo, ywidth, key):
    """Every input norm lies in x_norms and every label magnitude in label_range (to
    rounding), in every geometry that draws them."""
    x, y = (lo, lo + width), (ylo, ylo + ywidth)
    cfg, start = _start(CASES[case] | {"x_norms": x, "label_range": y}, key)
    norms = _norms(cfg, start)
    tol = 64 * EPS * x[1]
    assert np.all((norms >= x[0] - tol) & (norms <= x[1] + tol)), (norms, x)
    mags = np.abs(np.asarray(start.prob.y))
    assert np.all((mags >= y[0]) & (mags <= y[1])), (mags, y)
    held = np.abs(np.asarray(start.held.y))
    assert np.all((held >= y[0]) & (held <= y[1])), (held, y)


# Computed with shallowflow at commit e206af2 (main before the knobs): radii(key(3), 4)
# and paper_labels(key(3), 4) in float64, and radii(key(3), 3) in float32, as float.hex.
TODAY = {
    "radii64": ["0x1.dd8a639bcf7f7p+0", "0x1.7405344b842f0p+0", "0x1.3d10ce329b32cp+0",
                "0x1.3448e71bcd8aap+0"],
    "labels64": ["0x1.66fc40b0605bdp+0", "0x1.6844185de2eb7p+0", "0x1.454e7e083e6a4p+0",
                 "0x1.487c999dd6b98p+0"],
    "radii32": ["0x1.12f51c0000000p+0", "0x1.f02a3a0000000p+0", "0x1.a6220c0000000p+0"],
}  # fmt: skip


def test_the_defaults_are_todays_draws_bit_for_bit():
    """The paper's ranges as defaults give the draws of the code before the knobs, and
    the engine's program with the ranges traced per run gives exactly the numbers of the
    program with them compiled in as constants (as they were)."""
    key = jax.random.key(3)
    with jax.enable_x64(True):
        assert [float(v).hex() for v in radii(key, 4, jnp.float64)] == TODAY["radii64"]
        assert [float(v).hex() for v in paper_labels(key, 4, jnp.float64)] == TODAY["labels64"]
    assert [float(v).hex() for v in radii(key, 3)] == TODAY["radii32"]
    for case in ("dense",):  # radii, labels, test points; golden covers every geometry
        cfg = make_config(p=3, runs=1, test_n=2, **CASES[case])
        shape = Shape(cfg.data.n, cfg.data.d, cfg.init.p, cfg.data.test_n)
        spec, vals = draw_spec(cfg), jax.tree_util.tree_map(jnp.asarray, draw_values(cfg))

        def draw(v, fixed):  # fixed: the ranges as the compiled constants they were
            v = v._replace(norm_lo=1.0, norm_hi=2.0, label_lo=1.0, label_hi=2.0) if fixed else v
            return make_padded_run(key, spec, shape, v)  # noqa: B023

        traced, baked = (jax.jit(functools.partial(draw, fixed=f))(vals) for f in (False, True))
        pairs = zip(
            jax.tree_util.tree_leaves(traced), jax.tree_util.tree_leaves(baked), strict=True
        )
        for a, b in pairs:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=case)


def test_cell_ids_are_stable():
    """Studies leave the range knobs out of their cells at the paper's ranges, so stored
    sweeps keep their ids: the id below was computed on main at e206af2."""
    assert Cell(protocol("fig3", "quick").cells[0]).cell_id == "2f39934dfe42284b"
    base = [c for c in study.cells("quick") if c["tag"] == "n"]
    assert base and all("x_norms" not in c and "label_range" not in c for c in base)


@pytest.mark.parametrize(
    "knobs, match",
    [
        (dict(x_norms=(2.0, 1.0)), "x_norms: a range lo,hi needs 0 < lo <= hi"),
        (dict(x_norms=(0.0, 1.0)), "x_norms: a range lo,hi needs 0 < lo <= hi"),
        (dict(label_range=(-1.0, 1.0)), "label_range: a range lo,hi needs 0 < lo <= hi"),
        (dict(data="gaussian", x_norms=(1.0, 3.0)), "x_norms: 'gaussian' data draw no norms"),
        (dict(labels="teacher", label_range=(1.0, 3.0)), "label_range: 'teacher' labels draw"),
    ],
)
def test_bad_ranges_are_refused_naming_the_knob(knobs, match):
    with pytest.raises(ShallowflowInputError, match=match):
        make_config(n=6, d=8, **knobs)


def test_the_command_line_takes_the_ranges(tmp_path):
    """--x-norms lo,hi and --labels paper:lo,hi reach the configuration; bad ones are
    refused before anything runs, naming the knob."""
    runner = CliRunner()
    small = ["--n", "6", "--d", "9", "--runs", "1", "--record", "3"]
    args = ["simulate", *small, "--x-norms", "0.5,3", "--labels", "paper:0.25,0.75"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert cfg["x_norms"] == [0.5, 3.0] and cfg["label_range"] == [0.25, 0.75]
    assert cfg["labels"] == "paper"
    for bad, knob in (
        (["--x-norms", "3,1"], "x_norms"),
        (["--labels", "paper:2,1"], "label_range"),
        (["--labels", "teacher:1,2"], "labels"),  # only the paper's labels take a range
        (["--labels", "teacher", "--label-range", "1,3"], "label_range"),
    ):
        res = runner.invoke(app, ["simulate", *small, *bad, "--out", str(tmp_path / "bad")])
        assert res.exit_code == 2 and f"{knob}:" in res.output, res.output


# --------------------------------------------------------------------------- planted

DESIGN = study.Design(ns=(32, 64, 128, 256), arm_ns=(64, 256), runs=24)
PLANTED = {"x_scale": 1.0, "x_spread": -0.3, "y_scale": 0.5, "y_spread": 0.0}


def _planted(exponents=PLANTED, n_exponent=0.25, seed=0) -> pd.DataFrame:
    """A runs table: C_emp = 10 n^0.25 Π_arm param^exponents[arm] × LogNormal(0, 0.1),
    ⟨μ⟩ = n^−0.6 likewise."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in study.cells(DESIGN):
        x = tuple(cell.get("x_norms", study.BASE))
        y = tuple(cell.get("label_range", study.BASE))
        params = {"x_scale": x[0], "x_spread": x[0] / x[1], "y_scale": y[0], "y_spread": y[1]}
        base = {"x_scale": 1.0, "x_spread": 0.5, "y_scale": 1.0, "y_spread": 2.0}
        scale = np.prod([(params[k] / base[k]) ** e for k, e in exponents.items()])
        noise = rng.lognormal(0, 0.1, DESIGN.runs)
        rows.append(
            pd.DataFrame(
                {
                    "tag": cell["tag"], "n": cell["n"], "run": np.arange(DESIGN.runs),
                    "min_thm1_const": 10 * cell["n"] ** n_exponent * scale * noise,
                    "mu_mean": cell["n"] ** -0.6 * noise, "success": True,
                    "x_norms": json.dumps(list(x)) if "x_norms" in cell else None,
                    "label_range": json.dumps(list(y)) if "label_range" in cell else None,
                }
            )
        )  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_planted_exponents_are_recovered_and_a_null_one_is_not_reported():
    table, summary = study.summarise(_planted(), DESIGN)
    lines, numbers = study.verdict(table, summary)
    for arm, beta in PLANTED.items():
        fit = numbers["exponents"][arm]
        assert fit["ci_low"] <= beta <= fit["ci_high"], (arm, fit)
        assert fit["ci_high"] - fit["ci_low"] < 0.3, (arm, fit)
    assert numbers["agree"] == {
        "x_scale": True,
        "x_spread": False,
        "y_scale": False,
        "y_spread": True,
    }
    n_fit = numbers["n_const"]
    assert n_fit["ci_low"] <= 0.25 <= n_fit["ci_high"]
    assert numbers["n_mu"]["ci_low"] <= -0.6 <= numbers["n_mu"]["ci_high"]
    assert lines[0].startswith("Exponents of the empirical constant")
    assert "does not scale as C in C_x⁻/C_x⁺, C_y⁻." in lines[0]


def test_a_constant_that_scales_as_c_is_reported_so():
    theory = {name: arm.theory for name, arm in study.ARMS.items()}
    table, summary = study.summarise(_planted(theory), DESIGN)
    lines, numbers = study.verdict(table, summary)
    assert all(numbers["agree"].values())
    assert "the constant scales as C does in every range" in lines[0]


# --------------------------------------------------------------------------- end to end

TINY = study.Design(
    ns=(8, 16),
    arm_ns=(8,),
    runs=4,
    values=(("x_scale", (1.0, 2.0)), ("y_spread", (1.0, 2.0))),
)


def test_the_study_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    res = run_study("constants", "quick", tmp_path, progress=False)
    for name in ("runs.parquet", "table.parquet", "constants.png", "study.md"):
        assert (tmp_path / name).exists(), name
    runs = read_parquet(tmp_path / "runs.parquet")
    assert runs["min_thm1_const"].notna().any()
    for table in ("runs.parquet", "table.parquet"):
        cols = read_parquet(tmp_path / table).columns
        assert [c for c in cols if describe(str(c)) is None] == [], table
    # an arm's cells share the base cell's draws (the same θ(0), run by run)
    doubled = runs[(runs["tag"] == "x_scale") & (runs["n"] == 8)].sort_values("run")
    base = runs[(runs["tag"] == "n") & (runs["n"] == 8)].sort_values("run")
    np.testing.assert_array_equal(doubled["assumption1_margin"], base["assumption1_margin"])
    assert res["verdicts"][0].startswith("Exponents of the empirical constant")
    assert read_json(tmp_path / "summary.json")["verdicts"] == res["verdicts"]
    # resumed: the stored cells are reused, nothing is simulated again
    monkeypatch.setattr(study, "simulate_batch", _never)
    again = run_study("constants", "quick", tmp_path, resume=True, progress=False)
    assert again["verdicts"] == res["verdicts"]
    with pytest.raises(ShallowflowInputError, match="resume"):
        run_study("constants", "quick", tmp_path, progress=False)


def _never(*args, **kwargs):
    raise AssertionError("a stored cell was recomputed")

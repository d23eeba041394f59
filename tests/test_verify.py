"""Tests of shallowflow.verify: every check FAILs on a planted violation, and the
ledger writes its reports. The full quick ledger (~3–4 min on 2 CPU cores) is run by
``shallowflow verify``; here a fast subset goes through ``run_verify``."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest

from shallowflow.errors import ShallowflowInputError
from shallowflow.theory import closed_form as cf
from shallowflow.theory.width import width_paper
from shallowflow.verify import CHECKS, CheckResult, Ledger, Verdict, run_verify
from shallowflow.verify.checks import (
    lemma1,
    orthogonal_bounds,
    proposition2,
    scaling,
    theorem1,
    theorem2,
    width,
)
from shallowflow.verify.ledger import Check, run_checks

TINY_ORTH = dict(
    n=8,
    runs=2,
    rtol=1e-10,
    atol=1e-12,
    dtmin=1e-5,
    drift_tol=1e-6,
    etas=(1.0, 0.5),
    gd_horizon=10.0,
    min_order=0.7,
    bound_tol=1e-9,
)


def _quick(name: str) -> dict:
    return next(c for c in CHECKS if c.name == name).params("quick")


def test_lemma1_passes_then_fails_on_impossible_tolerance():
    assert lemma1.lemma1(TINY_ORTH).verdict == Verdict.PASS
    assert lemma1.lemma1({**TINY_ORTH, "drift_tol": 1e-30}).verdict == Verdict.FAIL
    # drift claimed to shrink as η grows: violated
    assert lemma1.lemma1({**TINY_ORTH, "etas": (0.5, 1.0)}).verdict == Verdict.FAIL


def test_orthogonal_bounds_fail_on_a_wrong_bound():
    check = orthogonal_bounds.orthogonal_bounds
    assert check(TINY_ORTH).verdict == Verdict.PASS
    assert check({**TINY_ORTH, "low_factor": 10.0}).verdict == Verdict.FAIL
    assert check({**TINY_ORTH, "upp_factor": 0.1}).verdict == Verdict.FAIL


def test_width_fails_on_wrong_formula_and_biased_signs():
    p = dict(n=20, d=5, ps=(5, 10, 20), trials=400, z=4.0)
    assert width.width_check(p).verdict == Verdict.PASS
    assert width.width_check({**p, "width_fn": width_paper}).verdict == Verdict.FAIL
    assert width.width_check({**p, "width_fn": lambda n, e: 2}).verdict == Verdict.FAIL
    assert width.width_check({**p, "sign_prob": 0.1}).verdict == Verdict.FAIL


def test_theorem1_fails_below_the_width():
    p = dict(ns=(20, 40), d=10**9, eps=0.05, runs=8, record=40, alpha=0.05, min_slope=-0.2)
    res = theorem1.theorem1({**p, "p": 2})
    assert res.verdict == Verdict.FAIL
    assert res.numbers["success_fraction"] < 0.5


def test_proposition2_fails_on_a_wrong_prediction():
    p = {**_quick("proposition2"), "ns": (16, 64, 256)}
    assert proposition2.proposition2(p).verdict == Verdict.PASS
    assert proposition2.proposition2({**p, "predict": lambda beta: -1.0}).verdict == Verdict.FAIL


def test_theorem2_fails_on_a_perturbed_closed_form():
    p = {**_quick("theorem2"), "n_engine": 4, "runs": 1, "n_groups": 2, "group_size": 3}

    def perturbed(*args):
        return cf.group_loss_curve(*args) * (1 + 1e-3)

    assert theorem2.theorem2(p).verdict == Verdict.PASS
    res = theorem2.theorem2({**p, "closed_form": perturbed})
    assert res.verdict == Verdict.FAIL
    assert res.numbers["engine_rel_err_k"] > 5e-4


def test_scaling_fails_on_a_wrong_scale():
    p = {**_quick("scaling"), "steps": 400, "every": 100}
    assert scaling.scaling(p).verdict == Verdict.PASS
    assert scaling.scaling({**p, "scale": float(p["p"])}).verdict == Verdict.FAIL


def test_run_verify_subset_writes_reports(tmp_path: Path):
    ledger = run_verify("quick", out=tmp_path, only="width,proposition2,scaling", progress=False)
    assert ledger.ok
    assert [r.name for r in ledger.results] == ["width", "proposition2", "scaling"]
    md = (tmp_path / "verify.md").read_text()
    page = (tmp_path / "verify.html").read_text()
    for r in ledger.results:
        assert f"`{r.name}`" in md and r.verdict.value in md
        assert r.figure is not None and r.figure.exists()
    assert page.count("data:image/png;base64,") == 3
    b64 = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(b64)[:4] == b"\x89PNG"
    data = json.loads((tmp_path / "verify.json").read_text())
    assert data["ok"] and len(data["checks"]) == 3


def test_ledger_reports_every_check_and_ok_flag(tmp_path: Path):
    verdicts = [Verdict.PASS, Verdict.INCONCLUSIVE] + [Verdict.PASS] * (len(CHECKS) - 2)
    results = tuple(
        CheckResult(c.name, "claim", "criterion", v, {"x": math.pi, "nan": float("nan")})
        for c, v in zip(CHECKS, verdicts, strict=True)
    )
    ledger = Ledger("quick", results)
    assert ledger.ok
    ledger.write(tmp_path)
    md, page = (tmp_path / "verify.md").read_text(), (tmp_path / "verify.html").read_text()
    for c in CHECKS:
        assert f"`{c.name}`" in md and c.name in page
    json.loads((tmp_path / "verify.json").read_text())
    bad = Ledger("quick", results[:-1] + (CheckResult("scaling", "c", "k", Verdict.FAIL, {}),))
    assert not bad.ok and bad.counts()["FAIL"] == 1


def test_crashing_check_is_a_fail_and_bad_names_are_rejected():
    def boom(params, fig_dir):
        raise ValueError("planted")

    ledger = run_checks([Check("boom", boom, {"quick": {}})], "quick", progress=False)
    assert not ledger.ok and "planted" in ledger["boom"].numbers["error"]
    with pytest.raises(ShallowflowInputError, match="only"):
        run_verify("quick", only="nope", progress=False)
    with pytest.raises(ShallowflowInputError, match="preset"):
        run_verify("huge", progress=False)
    assert {c.name for c in CHECKS} == {
        "lemma1",
        "width",
        "theorem1",
        "orthogonal_bounds",
        "proposition2",
        "theorem2",
        "conjecture1",
        "scaling",
    }

"""The activations study: planted growth laws of p_0.9(n) (constant against log n) are told
apart and covered, a null (the same law for both σ) is not reported as a difference, the
exact coverage probability of orthogonal data matches simulation, success by the paper's
T read from a longer run equals a run to T, and the study runs end to end on a tiny
design (two σ)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from shallowflow.columns import describe
from shallowflow.experiments.batch import run_cells
from shallowflow.experiments.studies import activations as study
from shallowflow.experiments.studies import run_study
from shallowflow.experiments.studies.common import select
from shallowflow.storage import read_json, read_parquet
from shallowflow.theory.width import coverage_probability, coverage_width

NS = (32, 64, 128, 256, 512, 1024)
PS = study.PRESETS["paper"].ps
SLOPE = 4.0  # log-odds per doubling of p of the planted success curves
LAWS = {"constant": lambda n: 4.0, "log": lambda n: 3.5 * np.log(n) - 2.0}
TINY = study.Design(
    ns=(16, 32), ps=(1, 4, 16), runs=4, rate_d=40, rate_ns=(20, 40), rate_runs=3,
    activations=("relu", "leaky:0.1"), boot=50,
)  # fmt: skip


def _design(acts, runs=24) -> study.Design:
    return study.Design(NS, PS, runs, rate_d=0, rate_ns=(), rate_runs=0, activations=acts)


def _planted(laws: dict[str, str], rng, runs: int = 24) -> pd.DataFrame:
    """A width part's runs table: per σ, success ~ σ(SLOPE·(log₂ p − log₂ p_0.9(n))
    + logit 0.9) at every (n, p), p_0.9(n) by the σ's law; successes converge at once
    (t_final = 0, so by every horizon), failures are stuck at the horizon."""
    frames = []
    for act, law in laws.items():
        for n in NS:
            x90 = np.log2(LAWS[law](n))
            for p in PS:
                ok = rng.random(runs) < special.expit(
                    SLOPE * (np.log2(p) - x90) + special.logit(0.9)
                )
                frames.append(pd.DataFrame({
                    "tag": f"width {act}", "activation": act, "n": n, "p": p, "run": range(runs),
                    "success": ok, "t_final": np.where(ok, 0.0, 1e3), "horizon": 1e3,
                    "outcome": np.where(ok, "converged", "horizon"), "mu_tail": 0.0,
                    "final_loss": np.where(ok, 0.0, 2.0 / (2 * n)), "coverage0": np.nan,
                }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _law(table, act, law, h=10.0):
    rows = select(table, part="law", activation=act, horizon_T=h)
    return rows[rows["law"] == law].iloc[0]


def test_planted_constant_and_log_laws_are_told_apart_and_covered():
    """leaky 0.1 planted constant (p_0.9 = 4), ReLU planted log (3.5 per e-fold): AIC picks
    each law, the intervals hold the planted level and slope, and the headline says the
    claim holds with ReLU − leaky 0.1 excluding 0."""
    runs = _planted({"leaky:0.1": "constant", "relu": "log"}, np.random.default_rng(0))
    table, summary = study.summarise(runs, _design(("relu", "leaky:0.1")))
    leaky, relu = _law(table, "leaky:0.1", "constant"), _law(table, "relu", "log")
    assert leaky["best"] and leaky["ci_low"] <= 4.0 <= leaky["ci_high"]
    assert relu["ci_low"] <= 3.5 <= relu["ci_high"] and relu["ci_low"] > 2
    # over n = 32–1024 a power n^0.25 mimics the log law: growth, not which of the two
    assert _law(table, "relu", "constant")["delta_aic"] > 10 and relu["delta_aic"] < 2
    need = select(table, part="p_0.9", activation="relu", horizon_T=10.0)
    assert (need["status"] == "located").all()
    truth = LAWS["log"](need["n"])
    assert np.mean((need["ci_low"] <= truth) & (truth <= need["ci_high"])) >= 5 / 6
    lines, numbers = study.verdict(table, summary)
    assert lines[0].startswith("p_0.9(n), the width at which 90% of runs converge")
    assert (
        "leaky 0.1: constant, p_0.9 = " in lines[0]
        and "log-law slope 3.72 [2.59, 4.85]" in lines[0]
    )
    assert lines[0].endswith("the claim holds.")
    assert numbers["claim@10"]["verdict"] == "holds" and numbers["claim@10"]["difference"][1] > 0


def test_a_null_is_not_reported_as_a_difference():
    """Both σ planted with the same log law: the difference of their slopes has an interval
    holding 0, and the claim is reported as failing because leaky 0.1's p_0.9 grows."""
    runs = _planted({"leaky:0.1": "log", "relu": "log"}, np.random.default_rng(1))
    table, summary = study.summarise(runs, _design(("relu", "leaky:0.1")))
    lines, numbers = study.verdict(table, summary)
    diff = numbers["claim@10"]["difference"]
    assert diff[1] <= 0 <= diff[2]
    assert numbers["claim@10"]["verdict"] == "fails"
    assert lines[0].endswith("the claim fails (leaky 0.1's p_0.9 grows).")


def test_the_log_slope_interval_covers_the_planted_slope():
    """20 planted ReLU tables (log law, 3.5 per e-fold): its 95% interval holds 3.5 in at
    least 17 (a 95% interval fails that with probability 1.6%)."""
    rng = np.random.default_rng(2)
    design = _design(("relu",))
    hits = 0
    for _ in range(20):
        table, _ = study.summarise(_planted({"relu": "log"}, rng), design)
        row = _law(table, "relu", "log")
        hits += row["ci_low"] <= 3.5 <= row["ci_high"]
    assert hits >= 17, hits


def test_every_width_succeeds_is_censored_at_the_smallest_p():
    """All runs converge at every p: p_0.9 is censored below the grid (value: its smallest
    p, no lower end) and the σ's growth is 'minimal', with the exact interval of the
    success fraction at p = 1."""
    runs = _planted({"leaky:0.1": "constant"}, np.random.default_rng(3))
    runs["success"], runs["t_final"] = True, 0.0
    table, summary = study.summarise(runs, _design(("leaky:0.1",)))
    need = select(table, part="p_0.9", activation="leaky:0.1", horizon_T=10.0)
    assert (need["status"] == "below").all() and (need["value"] == 1.0).all()
    assert need["ci_low"].isna().all()
    g = study.growth(table, summary, "leaky:0.1", 10.0)
    assert g["kind"] == "minimal" and "1 neuron(s) converged in 144 of 144 runs" in g["text"]
    assert "[97.5%, 100%]" in g["text"]  # (0.025)^(1/144) = 0.9747
    # 4 of 24 fail at p = 1 at one n: p_0.9 located at 1.21 there, its interval holding 1
    runs.loc[(runs["n"] == 32) & (runs["p"] == 1) & (runs["run"] < 4), "success"] = False
    table, summary = study.summarise(runs, _design(("leaky:0.1",)))
    need = select(table, part="p_0.9", activation="leaky:0.1", horizon_T=10.0)
    assert set(need["status"]) == {"located", "below"} and (need["ci_low"] <= 1).sum() == 1
    g = study.growth(table, summary, "leaky:0.1", 10.0)
    assert g["kind"] == "minimal" and "converged in 140 of 144 runs" in g["text"]


def test_coverage_probability_matches_simulation_and_bounds():
    """On orthogonal data every example is covered at θ(0) with the exact probability
    (binomial test, 4σ, 600 runs); it lies above the independent guess (1 − (3/4)^p)^n
    (Jensen) and below the union bound's complement; coverage_width is its least p ≥ q."""
    from shallowflow import make_config, simulate
    from shallowflow.results import runs_table

    n, p, runs = 32, 12, 600
    tab = runs_table(
        simulate(make_config(n=n, d=4 * n, p=p, data="orthogonal", runs=runs, horizon=1.0))
    )
    exact = coverage_probability(n, p)
    assert abs(np.mean(tab["coverage0"] == n) - exact) <= 4 * np.sqrt(exact * (1 - exact) / runs)
    for n, p in ((32, 12), (64, 16), (1024, 32)):
        assert (1 - 0.75**p) ** n < coverage_probability(n, p) <= 1.0
        assert coverage_probability(n, p) >= 1 - n * 0.75**p  # the union bound
    w = coverage_width(1024, 0.9)
    assert coverage_probability(1024, w) >= 0.9 > coverage_probability(1024, w - 1)


def test_success_by_the_paper_horizon_is_read_from_a_longer_run(tmp_path):
    """Two cells on the same draws, horizons 10·T and T: a run succeeds by T exactly when
    the long run converged with t_final ≤ T (GD's trajectory does not see its horizon)."""
    cell = next(c for c in study.cells(TINY) if c["tag"] == "width leaky:0.1" and c["p"] == 4)
    cell = cell | {"n": 64, "d": 256, "runs": 32, "draws": "n=64,p=4"}
    short = cell | {"horizon": float(study.base_steps(64))}
    long = cell | {"horizon": 10.0 * study.base_steps(64)}
    runs = run_cells([long, short], tmp_path, progress=False)
    a, b = (runs[runs["horizon"] == c["horizon"]].sort_values(by="run") for c in (long, short))
    by_t = a["success"].to_numpy() & (a["t_final"].to_numpy() <= study.base_steps(64))
    assert (by_t == b["success"].to_numpy()).all() and 0 < by_t.sum() < a["success"].sum()
    pts = study.success_table(a, (10.0, 1.0))
    assert pts.set_index("horizon_T")["successes"].to_dict() == {
        1.0: by_t.sum(),
        10.0: a["success"].sum(),
    }


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("activations")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(study.PRESETS, "quick", TINY)
        res = run_study("activations", "quick", out, progress=False)
    return out, res


def test_study_writes_its_tables_figure_and_report(tiny_study):
    out, res = tiny_study
    for name in (
        "runs.parquet",
        "table.parquet",
        "summary.json",
        "activations.png",
        "activations.pdf",
    ):
        assert (out / name).exists(), name
    assert read_json(out / "study.json")["verdicts"] == res["verdicts"]
    assert res["verdicts"][0].startswith("p_0.9(n), the width at which 90% of runs converge")
    table, runs = read_parquet(out / "table.parquet"), read_parquet(out / "runs.parquet")
    assert set(runs["activation"]) == {"relu", "leaky:0.1"}
    assert set(table["part"]) == {"p_0.9", "rate"} and len(table[table["part"] == "rate"]) == 2
    assert not np.isinf(table.select_dtypes("number").to_numpy()).any()
    assert [c for c in table.columns if describe(str(c)) is None] == []
    relu = runs[runs["activation"] == "relu"]  # ReLU on orthogonal data: success iff covered
    assert ((relu["coverage0"] == relu["n"]) >= relu["success"]).all()


def test_study_resumes_without_recomputing(tiny_study, monkeypatch):
    out, res = tiny_study
    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    monkeypatch.setattr(study, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
    assert (
        run_study("activations", "quick", out, progress=False, resume=True)["verdicts"]
        == res["verdicts"]
    )


def test_presets_hold_the_asked_design():
    """n = 2^k, k = 5 … 10 in paper (fewer in quick), d = 4n, the seven σ, and a p grid
    that brackets ReLU's exact coverage width at the largest n."""
    paper = study.PRESETS["paper"]
    assert paper.ns == tuple(2**k for k in range(5, 11)) and len(paper.activations) == 7
    for design in study.PRESETS.values():
        assert set(design.ns) <= set(paper.ns) and min(design.ps) == 1
        assert max(design.ps) > coverage_width(max(design.ns), study.Q)
        cells = study.cells(design)
        assert all(c["d"] == 4 * c["n"] for c in cells if c["tag"].startswith("width"))


def test_study_all_gives_activations_its_row_with_who_asked(tiny_study, tmp_path, monkeypatch):
    """``study all`` (only this study, resumed: nothing recomputed) has the question's row
    with who asked it and the headline."""
    import shutil

    from shallowflow.experiments.studies.questions import run_all

    src, _ = tiny_study
    shutil.copytree(src, tmp_path / "activations")
    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    monkeypatch.setattr(study, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr("shallowflow.experiments.studies.STUDIES", {"activations": study})
    run_all("quick", tmp_path, progress=False, resume=True)
    md = (tmp_path / "open_questions.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith(f"| {study.QUESTION[:30]}"))
    assert (
        study.ASKED_BY in row and "p_0.9(n), the width" in row and "(activations/study.md)" in row
    )


def test_a_design_without_the_claims_pair_reports_each_sigma_and_no_claim():
    """A design of ReLU² and GELU only (a user's own): the claim about leaky 0.1 against
    ReLU is not tested, and says so, while each σ still gets its line and the table its
    lines (the table has no rate part, so no n_min column)."""
    runs = _planted({"relu_power:2": "log", "gelu": "constant"}, np.random.default_rng(2))
    table, summary = study.summarise(runs, _design(("relu_power:2", "gelu")))
    lines, numbers = study.verdict(table, summary)
    assert lines[0].endswith(
        "the authors' claim (leaky 0.1 against ReLU) is not tested: the design lacks "
        "leaky 0.1 and ReLU."
    )
    assert numbers["claim@10"]["verdict"] == "untested"
    assert any(line.startswith("ReLU²: by 10·T: ") for line in lines)
    assert any(line.startswith("GELU: by 10·T: ") for line in lines)
    lines = study.table_lines(table)
    assert len(lines) == len(table)
    assert all(" · n = " in line for line in lines if line.startswith("p_0.9"))

"""The initialisation study (is Assumption 1 needed?): a planted shift of one
initialisation's threshold is found with its sign and covered by its interval, identical
or independent initialisations with one threshold are not reported as an effect, the
mechanism's regression finds a planted effect of the violating fraction, the
``a_sign_changes`` column counts a hand-checked sign change, and the study runs end to
end on a tiny design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from shallowflow import make_config, simulate
from shallowflow.columns import describe
from shallowflow.experiments.studies import initialisation as study
from shallowflow.experiments.studies import run_study
from shallowflow.experiments.studies.common import first
from shallowflow.results import runs_table
from shallowflow.start import UserArrays
from shallowflow.storage import read_json, read_parquet

NS = tuple(range(150, 451, 30))
BASE_N, SLOPE = 300.0, 0.04
VIOLATING = {"paper": 0.0, "a_0.1": 0.99, "balanced": 0.0}


def _planted(thresholds: dict[str, float], runs=160, shared=True, seed=0) -> pd.DataFrame:
    """Success ~ logistic(SLOPE (N_tag − n)) per initialisation; one uniform per (n, run)
    shared by every initialisation (their shared draws), or one per initialisation."""
    rng = np.random.default_rng(seed)
    u = rng.random((len(NS), runs))
    frames = []
    for tag, big_n in thresholds.items():
        draw = u if shared else rng.random(u.shape)
        prob = special.expit(SLOPE * (big_n - np.asarray(NS, float)))
        for i, n in enumerate(NS):
            ok = draw[i] < prob[i]
            frames.append(
                pd.DataFrame(
                    {
                        "tag": tag,
                        "n": n,
                        "d": 40,
                        "p": 30,
                        "run": np.arange(runs),
                        "success": ok,
                        "final_loss": np.where(ok, 0.0, 1.5 / (2 * n)),  # 1.5× the level
                        "outcome": np.where(ok, "converged", "horizon"),
                        "mu_tail": 0.01,
                        "loss0": 1.0,
                        "assumption1_fraction": 1.0 - VIOLATING[tag],
                        "a_sign_changes": np.where(tag == "a_0.1", rng.poisson(3.0, runs), 0),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _design(tags, boot=300) -> study.Design:
    return study.Design(d=40, n_ref=BASE_N, factors=(1.0,), runs=160, inits=tags, boot=boot)


def test_a_planted_shift_of_the_threshold_is_found_with_its_sign_and_covered():
    """N(a-scale 0.1) = 0.9·N(paper): the ratio's interval holds 0.9 and excludes 1, each
    threshold's interval holds its planted value, and the verdict says it lowers N."""
    runs = _planted({"paper": BASE_N, "a_0.1": 0.9 * BASE_N})
    table, summary = study.summarise(runs, _design(("paper", "a_0.1")))
    ratio = first(table, part="ratio", variant="a_0.1")
    assert ratio["ci_low"] <= 0.9 <= ratio["ci_high"] < 1.0
    for tag, big_n in (("paper", BASE_N), ("a_0.1", 0.9 * BASE_N)):
        row = first(table, part="threshold", variant=tag)
        assert row["ci_low"] <= big_n <= row["ci_high"], tag
    head = first(table, part="threshold", variant="a_0.1")
    assert head["violating_fraction"] == pytest.approx(0.99)
    lines, numbers = study.verdict(table, summary)
    assert lines[0].startswith("N(a-scale 0.1) = ")
    assert "breaking Assumption 1 for 99% of neurons" in lines[0]
    assert "lowering it" in lines[0] and numbers["resolved"]["a_0.1"]
    fails = int((~runs["success"]).sum())
    assert any(line.startswith(f"Failures: {fails} of the {fails} failed runs") for line in lines)
    assert "1.5× (a-scale 0.1)" in next(line for line in lines if line.startswith("Failures"))
    # the mechanism: the violating fraction carries the planted shift of −10% per 99%
    shift = first(table, part="shift", variant="violating: violating")
    assert shift["ci_low"] <= -0.1 / 0.99 <= shift["ci_high"] < 0


@pytest.mark.parametrize("shared", [True, False], ids=["identical", "independent"])
def test_initialisations_with_one_threshold_are_not_reported_as_an_effect(shared):
    """Identical outcomes (shared draws) give a ratio of exactly 1; independent draws
    with the same curve give an interval that holds 1. Neither is an effect."""
    tags = ("paper", "balanced", "a_0.1")
    runs = _planted(dict.fromkeys(tags, BASE_N), shared=shared, seed=3)
    table, summary = study.summarise(runs, _design(tags))
    for tag in tags[1:]:
        ratio = first(table, part="ratio", variant=tag)
        assert ratio["ci_low"] <= 1.0 <= ratio["ci_high"], tag
        if shared:
            assert ratio["ci_low"] == ratio["ci_high"] == 1.0
    lines, numbers = study.verdict(table, summary)
    assert "no detectable effect; the data exclude shifts below" in lines[0]
    assert not any(numbers["resolved"].values())
    assert lines[-1].startswith("Not told apart from the paper's")


@pytest.mark.parametrize(("a0", "flips"), [(-0.05, 1), (0.05, 0)])
def test_a_sign_changes_counts_the_neurons_whose_a_changed_sign(a0, flips):
    """Orthogonal x_1 = e_1 (y = 1), x_2 = e_2 (y = −1). Neuron 0 sees x_1 alone with a
    small a_0: da_0/dt = r_1/2 > 0 drives it up, through 0 when it starts below;
    neuron 1 fits y_2 with its sign; neuron 2 sees neither example and never moves."""
    X, y = np.eye(2), np.array([1.0, -1.0])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    a = np.array([a0, -1.0, 0.7])
    cfg = make_config(
        n=2, d=2, p=3, data="file", data_file="<planted>", labels="file", init="file",
        state_file="<planted>", runs=1, x64=True, lr=0.1, horizon=200.0, stop_loss=1e-10,
        keep_state=True,
    )  # fmt: skip
    res = simulate(cfg, UserArrays(X=X, y=y, W=W, a=a))
    row = runs_table(res).iloc[0]
    end = np.asarray(res.states["a"][0])
    assert row["success"] and end[0] > 0 and end[1] < 0 and end[2] == 0.7
    assert row["a_sign_changes"] == flips == np.sum(np.sign(end) != np.sign(a))
    assert describe("a_sign_changes") is not None


TINY = study.Design(
    d=10, n_ref=20.0, factors=(0.5, 1.0, 1.5), runs=4, inits=("paper", "a_0.1"), boot=40
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setitem(study.PRESETS, "quick", TINY)
    out = tmp_path_factory.mktemp("initialisation_study")
    try:
        res = run_study("initialisation", "quick", out, progress=False)
    finally:
        mp.undo()
    return out, res


def test_the_study_runs_end_to_end_on_shared_draws(tiny):
    out, res = tiny
    for name in ("runs.parquet", "table.parquet", "initialisation.png", "study.md"):
        assert (out / name).exists(), name
    runs = read_parquet(out / "runs.parquet")
    assert set(runs["tag"]) == {"paper", "a_0.1"}
    # a-scale 0.1 shares the paper's draws (data, W, the signs of a): the same coverage
    pivot = runs.pivot_table(index=["n", "run"], columns="tag", values="coverage0")
    np.testing.assert_array_equal(pivot["paper"], pivot["a_0.1"])
    assert (runs.loc[runs["tag"] == "paper", "assumption1_fraction"] == 1).all()
    assert (runs.loc[runs["tag"] == "paper", "stop_rule"] == "authors").all()
    table = read_parquet(out / "table.parquet")
    assert [c for c in table.columns if describe(str(c)) is None] == []
    assert read_json(out / "summary.json")["verdicts"] == res["verdicts"]


def test_study_all_gives_the_question_its_row_with_who_asked(tiny, tmp_path, monkeypatch):
    """``study all`` (only this study, resumed from the tiny study's cells: nothing
    recomputed) has the question's row with who asked it and the headline."""
    import shutil

    from shallowflow.experiments import batch
    from shallowflow.experiments.studies.questions import run_all

    src, _ = tiny
    shutil.copytree(src, tmp_path / "initialisation")
    monkeypatch.setitem(study.PRESETS, "quick", TINY)
    monkeypatch.setattr(batch, "simulate_batch", lambda *a, **k: pytest.fail("recomputed"))
    monkeypatch.setattr("shallowflow.experiments.studies.STUDIES", {study.NAME: study})
    run_all("quick", tmp_path, progress=False, resume=True)
    md = (tmp_path / "open_questions.md").read_text()
    question = study.QUESTION[:30].replace("|", "\\|")  # bars escaped in a Markdown cell
    row = next(line for line in md.splitlines() if line.startswith(f"| {question}"))
    assert study.ASKED_BY in row and "(initialisation/study.md)" in row and "N(a-scale" in row


def test_presets_hold_the_asked_grid_and_initialisations():
    """The issue's design: n = 0.6, 0.8, 1.0 and 1.2 × the paper init's N, six inits."""
    for design in study.PRESETS.values():
        asked = {round(design.n_ref * f) for f in (0.6, 0.8, 1.0, 1.2)}
        assert asked <= set(design.ns) and set(design.inits) == set(study.INITS)

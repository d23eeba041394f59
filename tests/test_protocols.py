"""The paper preset of every protocol is SPEC §5 to the letter; quick keeps its shape."""

from __future__ import annotations

import math

import pytest

from shallowflow.config import horizon_steps
from shallowflow.errors import ShallowflowInputError
from shallowflow.experiments.batch import plan_cells
from shallowflow.experiments.cells import Cell, cell_config
from shallowflow.experiments.figures import FIGURES, protocol, protocols
from shallowflow.theory.width import width


def configs(figure: str, preset: str = "paper", solver: str = "gd"):
    return [(c, cell_config(c)) for c in protocol(figure, preset, solver).cells]


def assert_common(cell: dict, cfg) -> None:
    """SPEC §5 common: ±U[1,2] labels, asymmetric init, GD with η = 1, horizon T(n, p)."""
    assert (
        cfg.data.labels == "paper" and cfg.init.init == "asymmetric" and cfg.init.w_law == "uniform"
    )
    assert cfg.solver.solver == "gd" and cfg.solver.lr == 1.0
    assert cell["seed"] == 0


def test_fig3_paper():
    cells = configs("fig3")
    assert [cfg.data.n for _, cfg in cells] == list(range(1300, 2101, 50))
    for cell, cfg in cells:
        assert_common(cell, cfg)
        assert cfg.data.d == 100 and cfg.data.data == "sphere" and cfg.run.runs == 80
        assert (
            cfg.init.p
            == width(cfg.data.n, 0.05)
            == math.floor(math.log(cfg.data.n / 0.05) / math.log(4 / 3)) + 1
        )
        assert cfg.solver.horizon == horizon_steps(cfg.data.n, cfg.init.p)
        assert cfg.solver.stop_loss == 1 / (2 * cfg.data.n) and cfg.init.w_scale == 1.0


def test_fig4_paper():
    cells = configs("fig4")
    ds = sorted({cfg.data.d for _, cfg in cells})
    assert ds == list(range(10, 101, 10))
    for d in ds:
        ns = [cfg.data.n for _, cfg in cells if cfg.data.d == d]
        assert ns == list(range(d, 30 * d - 200 + 1, d))
    for cell, cfg in cells:
        assert_common(cell, cfg)
        assert cfg.init.p == 30 and cfg.run.runs == 20 and cfg.data.data == "sphere"
        assert cfg.solver.horizon == horizon_steps(cfg.data.n, 30)
        assert cfg.solver.stop_loss == 1 / (2 * cfg.data.n)


def test_fig5_paper():
    proto = protocol("fig5", "paper")
    cells = configs("fig5")
    assert sorted({cfg.init.p for _, cfg in cells}) == list(range(50, 401, 10))
    assert proto.group == "p" and proto.notes
    for p in range(50, 401, 10):
        ns = sorted(cfg.data.n for _, cfg in cells if cfg.init.p == p)
        assert len(ns) >= 5 and ns[0] < ns[-1]
    for cell, cfg in cells:
        assert_common(cell, cfg)
        assert cfg.data.d == 30 and cfg.run.runs == 20 and cfg.data.data == "sphere"
        assert cfg.solver.horizon == horizon_steps(cfg.data.n, cfg.init.p)
        assert cfg.solver.stop_loss == 1 / (2 * cfg.data.n)


def test_fig6_paper():
    cells = configs("fig6")
    assert [cfg.data.n for _, cfg in cells] == list(range(1000, 2001, 100))
    for cell, cfg in cells:
        assert_common(cell, cfg)
        assert cfg.data.d == 2000 and cfg.data.data == "orthogonal" and cfg.run.runs == 500
        assert cfg.init.p == width(cfg.data.n, 0.05)
        assert cfg.init.w_scale == 0.01 and cfg.init.require_coverage
        assert cfg.solver.horizon == 10 * horizon_steps(cfg.data.n, cfg.init.p)
        assert cfg.solver.stop_loss == pytest.approx(1e-6 / (2 * cfg.data.n), rel=1e-12)
        assert cfg.run.geometry == "diagonal"


def test_fig2_is_closed_form():
    proto = protocol("fig2", "paper")
    assert proto.kind == "closed_form"
    assert proto.params["magnitudes"] == (1.0, 2.0)
    assert max(proto.params["ns"]) == 1e18 and min(proto.params["ns"]) == 1e2


@pytest.mark.parametrize("figure", list(FIGURES)[1:])
def test_quick_keeps_the_protocol_and_few_shapes(figure):
    quick, paper = protocol(figure, "quick"), protocol(figure, "paper")
    assert quick.title == paper.title and quick.claim == paper.claim and quick.group == paper.group
    assert quick.shapes <= 15 and quick.total_runs < paper.total_runs
    for cell in quick.cells:
        cfg = cell_config(cell)
        assert cfg.solver.solver == "gd" and cfg.init.init == "asymmetric"
        # the same knobs but the sizes and the stop (the paper preset's stop rule: below)
        sizes = ("n", "d", "p", "runs", "stop_loss", "stop_rule")
        assert {k: v for k, v in cell.items() if k not in sizes} == {
            k: v for k, v in paper.cells[0].items() if k not in sizes
        }


def test_cells_are_distinct_and_seeded_per_cell():
    for proto in protocols("all", "paper"):
        ids = {Cell(c).cell_id for c in proto.cells}
        assert len(ids) == len(proto.cells)
    a, b = protocol("fig3", "quick").cells[:2]
    assert cell_config(a).run.seed != cell_config(b).run.seed
    assert cell_config(a).run.seed == cell_config(dict(reversed(list(a.items())))).run.seed
    # different shapes, one compiled bucket (the quick Fig. 3 pads less than 2x)
    assert len(set(plan_cells(protocol("fig3", "quick").cells))) == 1


def test_flow_solver_and_bad_names():
    assert all(cfg.solver.solver == "flow" for _, cfg in configs("fig3", "quick", "flow"))
    with pytest.raises(ShallowflowInputError, match="figure"):
        protocol("fig7")
    with pytest.raises(ShallowflowInputError, match="preset"):
        protocol("fig3", "huge")
    with pytest.raises(ShallowflowInputError, match="solver"):
        protocol("fig3", "quick", "adam")


def test_cells_with_one_draws_tag_share_their_draws():
    """A ``draws`` tag names the draw group of a cell: cells that differ in the solver or
    the W scale but share it start from the same data and first layer (paired), and
    the seed still depends only on the sweep seed and the tag; without it, each cell
    has its own draws, as before."""
    import jax
    import numpy as np

    from shallowflow.start import make_run

    base = dict(data="orthogonal", n=12, d=20, runs=2, record=3, seed=7, x64=True)
    a = cell_config(base | {"draws": "n=12"})
    b = cell_config(base | {"draws": "n=12", "lr": 0.5, "w_scale": 0.1})
    c = cell_config(base | {"lr": 0.5})
    assert a.run.seed == b.run.seed != c.run.seed
    assert cell_config(base | {"draws": "n=12", "seed": 8}).run.seed != a.run.seed
    with jax.enable_x64(True):
        key = jax.random.fold_in(jax.random.key(a.run.seed), 1)  # the engine's run 1
        sa, sb = jax.device_get((make_run(key, a), make_run(key, b)))
    np.testing.assert_array_equal(sa.prob.z, sb.prob.z)  # the same data
    np.testing.assert_array_equal(sa.state.a, sb.state.a)  # the same second layer
    np.testing.assert_allclose(sb.state.v, 0.1 * sa.state.v, rtol=1e-15)  # W × 0.1


@pytest.mark.parametrize("figure", ["fig3", "fig4", "fig5", "fig6"])
def test_paper_preset_judges_success_by_the_authors_rule_and_quick_is_unchanged(figure):
    """Issue 17 §3: the paper preset's GD cells stop by the authors' rule; the quick
    preset's cells do not name a stop rule (their ids and the golden tables stay), and
    the flows keep theirs."""
    assert {cfg.solver.stop_rule for _, cfg in configs(figure)} == {"authors"}
    quick = protocol(figure, "quick").cells
    assert all("stop_rule" not in c for c in quick)
    assert {cell_config(c).solver.stop_rule for c in quick} == {"inclusive"}
    flow = protocol(figure, "paper", "flow").cells
    assert {cell_config(c).solver.stop_rule for c in flow} == {"inclusive"}


def test_grouped_by_names_the_threshold_group_and_refuses_a_protocol_without_one():
    assert protocol("fig4", "quick").grouped_by == "d"
    assert protocol("fig5", "quick").grouped_by == "p"
    with pytest.raises(ValueError, match="'fig3' has no group"):
        _ = protocol("fig3", "quick").grouped_by

"""The adaptive search's plan by cost (shallowflow.planning.plan_by_cost): every cell's
bucket holds it, the plan is a pure function of the cells, and it groups cells as its
cost model says it should, never costing more than either trivial plan."""

from __future__ import annotations

import math

import pytest

from shallowflow.config import make_config
from shallowflow.experiments import adaptive as ad
from shallowflow.experiments.cells import cell_config
from shallowflow.experiments.figures import protocol
from shallowflow.planning import COMPILE_COST, Bucket, _cost, plan, plan_by_cost
from shallowflow.trajectory import signature


def _modelled(cfgs, buckets) -> float:
    """The cost model's time of a plan: one compilation per bucket, every cell's runs at
    its bucket's padded size."""
    total = 0.0
    for bucket in dict.fromkeys(buckets):
        members = [c for c, b in zip(cfgs, buckets, strict=True) if b == bucket]
        weight = sum(c.run.runs * c.solver.horizon for c in members)
        total += _cost(members[0], bucket.shape, weight)
    return total


def _grid(figure: str) -> list:
    proto = protocol(figure, "paper")
    return [
        cell_config(c | {"runs": ad._adaptive_batch(proto, cells)})
        for _, cells in ad._groups(proto)
        for c in cells
    ]


@pytest.mark.parametrize("figure", ["fig4", "fig5"])
def test_every_cell_runs_in_a_bucket_that_holds_it_and_the_plan_is_repeatable(figure):
    cfgs = _grid(figure)
    buckets = plan_by_cost(cfgs)
    assert buckets == plan_by_cost(list(cfgs))
    for cfg, bucket in zip(cfgs, buckets, strict=True):
        assert isinstance(bucket, Bucket) and bucket.sig == signature(cfg)
        own = (cfg.data.n, cfg.data.d, cfg.init.p, cfg.data.test_n)
        assert all(o <= s for o, s in zip(own, bucket.shape, strict=True))
        assert bucket.max_steps >= cfg.solver.spec.max_steps(cfg.solver.horizon)
        members = sum(c.run.runs for c, b in zip(cfgs, buckets, strict=True) if b == bucket)
        assert 1 <= bucket.chunk <= members + 1  # rounded up to the devices' count


@pytest.mark.parametrize("figure", ["fig4", "fig5"])
def test_the_plan_costs_less_than_each_cell_alone_one_bucket_or_the_sweep_plan(figure):
    cfgs = _grid(figure)
    by_cost = _modelled(cfgs, plan_by_cost(cfgs))
    alone = sum(_cost(c, plan([c])[0].shape, c.run.runs * c.solver.horizon) for c in cfgs)
    assert by_cost < alone
    assert by_cost < _modelled(cfgs, plan(cfgs, max_waste=math.inf))  # one bucket
    assert by_cost < _modelled(cfgs, plan(cfgs))  # the sweep's 2x rule on the same cells


def test_merges_follow_the_cost_model():
    """Cells of one shape share a bucket; two sizes far apart, both run long, get a
    bucket each; a small cell run briefly joins a large one rather than compile."""
    same = [make_config(n=60, d=10, p=8, runs=4, seed=s) for s in range(3)]
    assert len(set(plan_by_cost(same))) == 1
    long = dict(d=10, runs=50, horizon=4000.0)
    apart = [make_config(n=40, p=5, **long), make_config(n=1500, p=300, **long)]
    assert len(set(plan_by_cost(apart))) == 2
    brief = [make_config(n=40, p=5, d=10, runs=1, horizon=10.0), apart[1]]
    assert len(set(plan_by_cost(brief))) == 1
    assert _cost(apart[0], plan([apart[0]])[0].shape, 0.0) == COMPILE_COST  # runs nothing

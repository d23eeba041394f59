"""Sequential designs side by side: each sees the answers it would see alone, the rounds
batch their requests, and an error anywhere is raised, never swallowed or hung on."""

from __future__ import annotations

import pytest

from shallowflow.experiments.lockstep import lockstep


def _walk(start: int, steps: int):
    """A toy sequential design: each request depends on the previous answer."""

    def design(request):
        x, seen = start, []
        for _ in range(steps):
            x = request(x)
            seen.append(x)
        return seen

    return design


def _answer(key: int) -> int:
    return (3 * key + 1) % 97


def test_each_design_sees_what_it_sees_alone_and_rounds_batch_requests():
    designs = [_walk(s, k) for s, k in ((1, 4), (5, 1), (9, 7), (2, 0))]
    alone = [d(_answer) for d in designs]
    rounds = []

    def evaluate(round_):
        rounds.append([i for i, _ in round_])
        return [_answer(key) for _, key in round_]

    assert lockstep(designs, evaluate) == alone
    assert len(rounds) == 7  # the longest design's requests, not the sum (12)
    assert rounds[0] == [0, 1, 2] and rounds[1] == [0, 2] and rounds[-1] == [2]


def test_an_evaluation_error_stops_every_design_and_is_raised():
    def evaluate(round_):
        raise ValueError("engine broke")

    with pytest.raises(ValueError, match="engine broke"):
        lockstep([_walk(1, 3), _walk(2, 3)], evaluate)


def test_a_design_error_is_raised_after_the_others_finish():
    def bad(request):
        request(1)
        raise KeyError("design broke")

    finished = []

    def good(request):
        finished.append(_walk(3, 4)(request))
        return finished[-1]

    with pytest.raises(KeyError, match="design broke"):
        lockstep([bad, good], lambda r: [_answer(k) for _, k in r])
    assert finished and len(finished[0]) == 4

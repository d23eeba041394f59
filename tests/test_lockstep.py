"""Sequential designs side by side: each sees the answers it would see alone, the rounds
batch their requests, and an error anywhere is raised, never swallowed or hung on."""

from __future__ import annotations

import threading

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
        return reversed(list(enumerate(_answer(key) for _, key in round_)))  # any order

    assert lockstep(designs, evaluate) == alone
    assert len(rounds) == 7  # the longest design's requests, not the sum (12)
    assert rounds[0] == [0, 1, 2] and rounds[1] == [0, 2] and rounds[-1] == [2]


def test_an_evaluation_error_stops_every_design_and_is_raised():
    def evaluate(round_):
        yield 0, _answer(round_[0][1])  # one design is answered, then the engine fails
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
        lockstep([bad, good], lambda r: enumerate(_answer(k) for _, k in r))
    assert finished and len(finished[0]) == 4


def test_a_design_goes_on_while_the_rest_of_its_round_is_evaluated():
    """An answer handed over early lets its design compute and make its next request
    before the round's last answer exists (the statistics overlap the engine), and the
    designs still see what they see alone, in rounds as before."""
    designs = [_walk(1, 3), _walk(4, 3)]
    alone = [d(_answer) for d in designs]
    asked_again = threading.Event()
    inner = designs[0]

    def first(request):
        def watched(key):
            if watched.calls == 1:
                asked_again.set()  # design 0's second request, made mid-round
            watched.calls += 1
            return request(key)

        watched.calls = 0
        return inner(watched)

    rounds = []

    def evaluate(round_):
        rounds.append([i for i, _ in round_])
        yield 0, _answer(round_[0][1])
        if len(rounds) == 1:
            assert asked_again.wait(timeout=10.0)
        for j, (_, key) in enumerate(round_[1:], start=1):
            yield j, _answer(key)

    assert lockstep([first, designs[1]], evaluate) == alone
    assert rounds == [[0, 1]] * 3


@pytest.mark.parametrize("answers", [[], [0, 0]], ids=["unanswered", "twice"])
def test_an_evaluate_that_misanswers_its_round_is_an_error(answers):
    def evaluate(round_):
        return [(j, _answer(round_[j][1])) for j in answers]

    with pytest.raises(RuntimeError, match="evaluate: answered"):
        lockstep([_walk(1, 2), _walk(2, 2)], evaluate)

"""Sequential designs run side by side, their evaluations batched round by round.

A sequential design (the adaptive threshold search of one group) asks for evaluations
one request at a time, each request depending on the answers before it. Run alone,
every request is one small engine call. :func:`lockstep` runs several designs at once,
each in a thread of its own that blocks on its requests: once every design still
running is waiting, the requests of that *round* are evaluated together by one
``evaluate`` call (the engine batches them into few compiled calls), which hands each
answer over as soon as it is ready: its design goes on to its statistics and its next
request while the round's other evaluations still run (on Fig. 5's paper preset the
statistics are a tenth of the time; overlapped, they use the core that the engine's
slower runs leave idle). The next round waits until every design still running is
waiting again.

Each design sees exactly the answers it would see alone, in the same order, so its
sequence of requests (hence every seed and every result) does not depend on the other
designs, on the rounds or on when an answer arrives: only the batching does. The
threads only do statistics; all simulation happens in the calling thread, in
``evaluate``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["Request", "lockstep"]

R = TypeVar("R")
Request = Callable[[Any], Any]  # a design's way to ask: request(key) -> answer


class _Aborted(Exception):
    """Raised inside a design whose evaluation failed elsewhere."""


def lockstep(
    designs: Sequence[Callable[[Request], R]],
    evaluate: Callable[[list[tuple[int, Any]]], Iterable[tuple[int, Any]]],
) -> list[R]:
    """Run ``designs`` (each ``design(request) -> result``) side by side; ``evaluate``
    takes a round's ``[(design index, key), ...]`` and yields ``(position in the round,
    answer)`` for each, in any order, as each is ready (a generator, so that a design
    resumes while the others' evaluations run). Returns the designs' results in order;
    the first error raised is raised again."""
    count = len(designs)
    cond = threading.Condition()
    pending: dict[int, Any] = {}
    answers: dict[int, Any] = {}
    results: list[Any] = [None] * count
    errors: list[BaseException | None] = [None] * count
    finished: set[int] = set()

    def request(i: int, key: Any) -> Any:
        with cond:
            pending[i] = key
            cond.notify_all()
            cond.wait_for(lambda: i in answers)
            answer = answers.pop(i)
        if isinstance(answer, _Aborted):
            raise answer
        return answer

    def body(i: int) -> None:
        try:
            results[i] = designs[i](lambda key: request(i, key))
        except BaseException as exc:  # handed to the calling thread
            errors[i] = exc
        finally:
            with cond:
                finished.add(i)
                cond.notify_all()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    failure: BaseException | None = None
    while True:
        with cond:
            cond.wait_for(lambda: len(finished) + len(pending) == count)
            if len(finished) == count:
                break
            round_ = sorted(pending.items())
            pending.clear()
        answered: set[int] = set()
        try:
            for j, value in evaluate(round_) if failure is None else ():
                if j in answered or not 0 <= j < len(round_):
                    raise RuntimeError(
                        f"evaluate: answered position {j} of {len(round_)} twice or out of range"
                    )
                with cond:
                    answered.add(j)
                    answers[round_[j][0]] = value
                    cond.notify_all()
            if failure is None and len(answered) < len(round_):
                raise RuntimeError(
                    f"evaluate: answered {len(answered)} of the round's {len(round_)} requests"
                )
        except BaseException as exc:  # stop every design, then raise it
            failure = exc
        with cond:
            for j, (i, _) in enumerate(round_):
                if j not in answered:
                    answers[i] = _Aborted("evaluation failed")
            cond.notify_all()
    for t in threads:
        t.join()
    if failure is not None:
        raise failure
    for err in errors:
        if err is not None and not isinstance(err, _Aborted):
            raise err
    return results

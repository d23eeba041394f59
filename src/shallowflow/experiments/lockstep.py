"""Sequential designs run side by side, their evaluations batched round by round.

A sequential design (the adaptive threshold search of one group) asks for evaluations
one request at a time, each request depending on the answers before it. Run alone,
every request is one small engine call. :func:`lockstep` runs several designs at once,
each in a thread of its own that blocks on its requests: once every design still
running is waiting, the requests of that *round* are evaluated together by one
``evaluate`` call (the engine batches them into few compiled calls), then each design
gets its answer and goes on to its next request.

Each design sees exactly the answers it would see alone, in the same order, so its
sequence of requests (hence every seed and every result) does not depend on the other
designs or on the rounds: only the batching does. The threads only do statistics; all
simulation happens in the calling thread, in ``evaluate``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Request", "lockstep"]

R = TypeVar("R")
Request = Callable[[Any], Any]  # a design's way to ask: request(key) -> answer


class _Aborted(Exception):
    """Raised inside a design whose evaluation failed elsewhere."""


def lockstep(
    designs: Sequence[Callable[[Request], R]],
    evaluate: Callable[[list[tuple[int, Any]]], list[Any]],
) -> list[R]:
    """Run ``designs`` (each ``design(request) -> result``) side by side; ``evaluate``
    takes a round's ``[(design index, key), ...]`` and returns their answers in order.
    Returns the designs' results in order; the first error raised is raised again."""
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
        try:
            values = evaluate(round_) if failure is None else None
        except BaseException as exc:  # stop every design, then raise it
            failure, values = exc, None
        with cond:
            for k, (i, _) in enumerate(round_):
                answers[i] = values[k] if values is not None else _Aborted("evaluation failed")
            cond.notify_all()
    for t in threads:
        t.join()
    if failure is not None:
        raise failure
    for err in errors:
        if err is not None and not isinstance(err, _Aborted):
            raise err
    return results

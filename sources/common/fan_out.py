"""Requests in flight at once, answers handled on one thread.

Workers only send requests; whatever reads an answer into state, counters or rows runs on the
consuming thread, so a concurrent run decides exactly what a sequential one would. No library
fits: dlt parallelizes whole resources, not the pages of one resource's listings, and a
listing's next page depends on what its last one said.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

_WAKE = 0.05  # seconds a worker waits for the consumer before it looks whether it was closed


@dataclass
class Step(Generic[K]):
    """One item a walk produced (`done` False), or the end of a walk (`error` if it failed).
    After an item the consumer must call `go_on` before that walk produces its next."""

    key: K
    item: Any = None
    done: bool = False
    error: BaseException | None = None
    _reply: queue.Queue[bool] | None = field(default=None, repr=False)

    def go_on(self, more: bool) -> None:
        if self._reply is not None:
            self._reply.put(more)


def stepped(keys: Iterable[K], walk: Callable[[K], Iterator[Any]], concurrency: int,
            name: str = "walk") -> Iterator[Step[K]]:
    """Walk every key's iterator (one per key, each on a worker thread, `concurrency` at a
    time); its items arrive here one by one in the order each walk makes them, and a walk goes
    on only when its last item was answered with `go_on(True)`. Closing this iterator stops
    every walk after its request in flight."""
    steps: queue.Queue[Step[K]] = queue.Queue()
    closed = threading.Event()

    def run(key: K) -> None:
        if closed.is_set():
            return
        walker = walk(key)
        error: BaseException | None = None
        try:
            for item in walker:
                reply: queue.Queue[bool] = queue.Queue(1)
                steps.put(Step(key, item, _reply=reply))
                if not _answer(reply, closed):
                    break
        except BaseException as exc:  # handed to the consumer
            error = exc
        finally:
            walker.close()
        steps.put(Step(key, done=True, error=error))

    keys = list(keys)
    if not keys:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(keys))),
                              thread_name_prefix=name)
    try:
        for key in keys:
            pool.submit(run, key)
        ended = 0
        while ended < len(keys):
            step = steps.get()
            ended += step.done
            yield step
    finally:
        closed.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _answer(reply: queue.Queue[bool], closed: threading.Event) -> bool:
    while not closed.is_set():
        try:
            return reply.get(timeout=_WAKE)
        except queue.Empty:
            continue
    return False


@dataclass
class Outcome(Generic[T, R]):
    item: T
    result: R | None = None
    error: BaseException | None = None


def completed(fn: Callable[[T], R], items: Iterable[T], concurrency: int,
              name: str = "fetch") -> Iterator[Outcome[T, R]]:
    """`fn(item)` for every item, `concurrency` in flight, outcomes in the order they finish
    (an error is an outcome too). Items are taken from `items` only as slots free up, so a
    long input is never held whole; closing this iterator drops what has not started."""
    source = iter(items)
    if concurrency <= 1:
        for item in source:
            try:
                yield Outcome(item, fn(item))
            except Exception as exc:  # handed to the consumer
                yield Outcome(item, error=exc)
        return
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)
    running: dict[Future[R], T] = {}
    try:
        for item in source:
            running[pool.submit(fn, item)] = item
            if len(running) < concurrency:
                continue
            yield from _harvest(running)
        while running:
            yield from _harvest(running)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _harvest(running: dict[Future[R], T]) -> Iterator[Outcome[T, R]]:
    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
    for future in done:
        item = running.pop(future)
        error = future.exception()
        yield Outcome(item, None if error else future.result(), error)


def round_robin(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """`items` reordered to take one of each key in turn (keys in order of first appearance):
    work limited per key then keeps every key busy instead of queueing behind one."""
    groups: dict[Hashable, deque[T]] = {}
    for item in items:
        groups.setdefault(key(item), deque()).append(item)
    order: list[T] = []
    queues = list(groups.values())
    while queues:
        order.extend(q.popleft() for q in queues)
        queues = [q for q in queues if q]
    return order

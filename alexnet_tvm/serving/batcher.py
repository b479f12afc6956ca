"""Dynamic batching: requests queued on the event loop, libraries run on a worker thread.

One batcher per model. Its loop takes the queued requests that fit the model's largest
batch, waiting up to ``max_delay`` for more when the batch is not full, and runs them as
one call of :meth:`ServedModel.run_rows` on a single worker thread (the TVM library is
parallel inside; two calls at once would only fight over the cores). While that call
runs, new requests queue up, so under load the next batch fills by itself even with a
zero delay. The queue is bounded: a request that finds it full is refused at once (503),
never parked, so a router can send it to another replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from alexnet_tvm.batching import stack_rows

from .errors import Overloaded
from .metrics import ServeMetrics
from .models import ServedModel

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    x: np.ndarray
    future: asyncio.Future


class Batcher:
    """Gathers concurrent requests of one model into batches and runs them off the event loop."""

    def __init__(self, model: ServedModel, max_queue: int, max_delay_ms: float, metrics: ServeMetrics):
        self.model = model
        self.max_queue = max_queue
        self.max_delay_s = max_delay_ms / 1e3
        self.metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{model.name}")
        self._task: asyncio.Task | None = None
        self._draining = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.model.name}")

    def drain(self) -> None:
        """Stop waiting for fuller batches: run what is queued now (requests already read still
        come in and are answered; the listening socket is what closes)."""
        self._draining = True
        self._wake.set()

    async def close(self) -> None:
        """Stop the loop (after the server drained) and the worker thread."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def infer(self, x: np.ndarray) -> np.ndarray:
        """Logits for the rows of ``x``; :class:`Overloaded` at once if the queue is full."""
        if len(self._queue) >= self.max_queue:
            raise Overloaded(f"model {self.model.name!r}: queue full ({self.max_queue} requests waiting)")
        item = _Pending(x, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._gauge()
        self._wake.set()
        try:
            return await item.future
        except asyncio.CancelledError:  # timed out or the client went away: leave the queue now
            if item in self._queue:
                self._queue.remove(item)
                self._gauge()
            raise

    def _gauge(self) -> None:
        self.metrics.queue_depth.labels(self.model.name).set(len(self._queue))

    def _queued_rows(self) -> int:
        return sum(len(p.x) for p in self._queue)

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._gather()
            batch = self._take()
            if batch:
                await self._run(batch)

    async def _gather(self) -> None:
        """Wait until the queue fills the largest batch, or ``max_delay`` has passed, or draining."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_s
        while self._queued_rows() < self.model.max_batch and not self._draining:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending]:
        """Queued requests, oldest first, while their rows fit the largest batch."""
        batch: list[_Pending] = []
        rows = 0
        while self._queue and rows + len(self._queue[0].x) <= self.model.max_batch:
            item = self._queue.popleft()
            if not item.future.done():
                batch.append(item)
                rows += len(item.x)
        self._gauge()
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        """One library call for the whole batch; each request gets its own rows back."""
        rows = [p.x for p in batch]
        n = sum(len(x) for x in rows)
        name = self.model.name
        self.metrics.batch_size.labels(name).observe(n)
        self.metrics.padding.labels(name).inc(self._padding(n))
        try:
            logits = await asyncio.get_running_loop().run_in_executor(self._executor, self._run_rows, rows)
        except Exception as e:  # noqa: BLE001 - a failed call fails its requests, not the server
            log.exception("model %s: inference failed", name)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(RuntimeError(f"inference failed: {type(e).__name__}"))
            return
        start = 0
        for p in batch:
            n = len(p.x)
            if not p.future.done():
                p.future.set_result(logits[start:start + n])
            start += n

    def _run_rows(self, rows: list[np.ndarray]) -> np.ndarray:
        """On the worker thread: the requests' rows stacked (one copy, aligned, off the event loop),
        then run."""
        return self.model.run_rows(stack_rows(rows))

    def _padding(self, rows: int) -> int:
        pad = 0
        while rows > 0:
            batch = self.model.pick(rows).batch
            pad += max(batch - rows, 0)
            rows -= batch
        return pad

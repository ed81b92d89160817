"""SideTask: one function run on a thread of its own while the worker thread runs a graph.

Why: ONNX Runtime releases the GIL for the whole of a graph call, so Python work that the graph does not
need can run meanwhile on the other core. A streaming call's harmonic excitation (diffusion/excitation.py,
about 0.5 ms of small numpy operations per hop) is read only by the resynthesis stage at the end of the call,
while the denoiser before it runs about 1.8 ms: started first, the excitation is done before the denoiser
returns (docs/live.md has the measurement).

Thread roles: ``start`` and ``wait`` run on the thread that owns the processor (the engine's worker, or
``render``'s loop); ``fn`` runs on the side thread ("stylehost-side"), one call at a time, and touches only
what the owner leaves alone between ``start`` and ``wait``. The two hand over through two plain locks used as
binary semaphores (no Condition, no allocation per call). The side thread holds ``fn`` by weak reference when
it is a bound method, so a processor that is dropped is collected and its thread ends (``close``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any


class SideTask:
    """``start(*args)`` runs ``fn(*args)`` on the side thread; ``wait()`` returns its result or raises its error."""

    def __init__(self, fn: Callable[..., Any], name: str = "stylehost-side") -> None:
        self._ref: Callable[[], Callable[..., Any] | None]
        if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
            self._ref = weakref.WeakMethod(fn)  # type: ignore[arg-type]
        else:
            self._ref = lambda: fn
        self._name = name
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._args: tuple[Any, ...] = ()
        self._result: Any = None
        self._error: BaseException | None = None
        self._pending = False
        self._closed = False
        self._thread: threading.Thread | None = None  # started by the first ``start``: an unused task costs nothing

    def start(self, *args: Any) -> None:
        """Hand ``args`` to the side thread and return at once; a result not yet collected is collected first."""
        if self._closed:
            raise RuntimeError("SideTask is closed")
        if self._pending:
            self._collect()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        self._args, self._pending = args, True
        self._go.release()

    def wait(self) -> Any:
        """Block until the started call is done; its result (its exception is raised here, on the owner)."""
        if not self._pending:
            raise RuntimeError("SideTask.wait without start")
        self._collect()
        error, self._error = self._error, None
        if error is not None:
            raise error
        return self._result

    def settle(self) -> None:
        """Wait for a call in flight and drop its result and error (before a reset, after a call that raised)."""
        if self._pending:
            self._collect()
            self._error = None

    def _collect(self) -> None:
        self._done.acquire()
        self._pending = False

    def close(self) -> None:
        """End the side thread (after any call in flight); safe to call twice and from a finalizer."""
        if self._closed:
            return
        self._closed = True
        if self._thread is threading.current_thread():  # the owner was collected on the side thread itself
            self._go.release()  # the loop returns at its next turn
            return
        if self._thread is not None:
            if self._pending:
                self._collect()
            self._go.release()  # wakes the loop, which sees _closed and returns
            self._thread.join(timeout=1.0)

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            if self._closed:
                return
            fn = self._ref()
            try:
                if fn is None:
                    raise RuntimeError("SideTask's owner is gone")
                self._result = fn(*self._args)
            except BaseException as exc:  # handed to the owner, which raises it in wait()
                self._error = exc
            del fn
            self._done.release()

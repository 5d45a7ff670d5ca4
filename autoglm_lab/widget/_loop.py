"""The live loop: a daemon thread that calls ``tick(deadline)`` at a target rate.

Why a thread and not an asyncio task (ipykernel 7, JupyterLab 4.4+):

* ipykernel 7 runs user code on the main thread's event loop. A task on that loop only runs while
  no cell is executing, so the dashboard would freeze during any long cell, and every simulator
  step (synchronous Python) would block the loop and delay comm messages (button clicks, slider
  moves) until it returned.
* A thread keeps drawing while other cells run; the GIL is handed over every few milliseconds
  (``sys.getswitchinterval``), so cells and comm handlers stay responsive.
* Sending from a thread is safe: ipykernel routes every IOPub message through its IOPub thread
  (the ``BackgroundSocket``), so ``widget.send(...)`` from here reaches the front end in order.
* State shared with comm handlers (pool, simulator) is guarded by the pool's RLock and the
  dashboard's lock; the loop holds them only for one step or one frame at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["LiveLoop"]

log = logging.getLogger("autoglm_lab.widget")


class LiveLoop:
    """Call ``tick(deadline_s)`` about ``fps`` times a second on a background thread; ``deadline_s``
    (a ``time.perf_counter()`` value) is when the next frame is due."""

    def __init__(self, tick: Callable[[float], None], fps: float = 10.0, name: str = "autoglm-dashboard") -> None:
        self._tick = tick
        self.fps = fps
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.achieved_fps = 0.0
        self.error: BaseException | None = None

    @property
    def running(self) -> bool:
        """Started and not asked to stop (a loop that stopped itself may still finish its frame)."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        if self.running:
            return
        old = self._thread
        if old is not None and old is not threading.current_thread():
            old.join(5.0)  # a loop that stopped itself ends its last frame first: never two loops
        self._stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the loop to end and wait for it (from the loop's own thread: it ends after this frame);
        True when it has ended or will."""
        self._stop.set()
        thread = self._thread
        if thread is threading.current_thread():
            return True
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("live loop did not stop within %.1f s", timeout_s)
                return False
        self._thread = None
        return True

    def _run(self) -> None:
        due = time.perf_counter() + 1.0 / self.fps
        window_start, window_frames = time.perf_counter(), 0
        while not self._stop.is_set():
            try:
                self._tick(due)  # works (a simulator) until `due`, then draws one frame
            except Exception as err:  # a broken frame must not spin: stop and say why
                self.error = err
                log.exception("live loop stopped: frame failed")
                break
            self.frames += 1
            window_frames += 1
            now = time.perf_counter()
            if now - window_start >= 1.0:
                self.achieved_fps = window_frames / (now - window_start)
                window_start, window_frames = now, 0
            if now < due:  # nothing to work on: wait for this frame's slot
                self._stop.wait(due - now)
            due += 1.0 / self.fps
            if due < time.perf_counter():  # fell behind: no burst of frames to catch up
                due = time.perf_counter() + 1.0 / self.fps

"""The common base of the canvas views: validated actions in, binary custom messages out.

Frames travel on a *bus*: by default a view's own comm; `CanvasView.ride(carrier)` puts a view's
frames on another view's comm (the dashboard puts the heatmap's and the trace's on the page
map's), so that `FrameBus.batch()` can send everything one dashboard frame changed as one comm
message. Per message the kernel pays JSON, signing and a hand-over to its IOPub thread, and the
server and browser a parse each; three views at 20 frames/s were 60 of those a second.

Wire messages (kernel -> front end, custom comm messages):

```
{"type": kind}                 [frame]             a view's own frame on its own comm
{"type": kind, "key": key}     [frame]             a riding view's frame on the carrier's comm
{"type": "batch", "parts": [[kind, key or null], ...]}  [frame, ...]   several frames, in order
```

A riding view learns its carrier and key from its ``bus`` trait (``["anywidget:<model id>",
key]``) and listens there; ``js/src/model.js`` (`onMessage`) unpacks batches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anywidget
import traitlets as t

from ._messages import Check, NoFrontEndState, validate_action

__all__ = ["CanvasView", "FrameBus"]


class FrameBus:
    """Sends the frames of one or more views on one comm (its ``carrier``'s), in order; inside
    ``batch()`` it collects them and sends them as one message when the batch ends."""

    def __init__(self, carrier: anywidget.AnyWidget) -> None:
        self.carrier = carrier
        self._lock = threading.Lock()  # frames from the live-loop thread vs replies on the main thread
        self._parts: list[tuple[str, str | None, bytes]] | None = None

    def send(self, kind: str, key: str | None, data: bytes) -> None:
        with self._lock:  # held while sending: frames leave in the order they were made
            if self._parts is not None:
                self._parts.append((kind, key, data))
                return
            self._send_one(kind, key, data)

    def _send_one(self, kind: str, key: str | None, data: bytes) -> None:
        self.carrier.send({"type": kind} if key is None else {"type": kind, "key": key}, buffers=[data])

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Frames sent meanwhile (by any thread) leave as one message at the end."""
        with self._lock:
            if self._parts is not None:  # nested: the outer batch sends
                nested = True
            else:
                nested, self._parts = False, []
        try:
            yield
        finally:
            if not nested:
                with self._lock:
                    parts, self._parts = self._parts or [], None
                    if len(parts) == 1:
                        self._send_one(*parts[0])
                    elif parts:
                        self.carrier.send({"type": "batch", "parts": [[kind, key] for kind, key, _ in parts]},
                                          buffers=[data for _, _, data in parts])


class CanvasView(NoFrontEndState, anywidget.AnyWidget):  # type: ignore[misc]
    """An anywidget whose front end only sends actions (custom messages), never trait updates.

    Every incoming comm message passes `check_comm_message`, every action `validate_action`
    against `_actions()`; trait updates from the front end are refused (the views never make any),
    so a stray or hostile message cannot change state behind the kernel's back.

    ``lock`` guards the view's state and frames (default: its own); a dashboard passes its own lock
    so that the view's action handlers (comm thread) and its frames (live loop) take turns.
    """

    width_px = t.Int(880).tag(sync=True)   # CSS width of the canvas, pixels
    height_px = t.Int(300).tag(sync=True)  # CSS height (page map: target height), pixels
    bus = t.List(t.Unicode(), []).tag(sync=True)  # [] (frames on this comm) or [carrier ref, key]

    def __init__(self, *, lock: threading.RLock | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # frames from the live-loop thread vs actions on the comm thread
        self._send_lock = lock if lock is not None else threading.RLock()
        self.frame_bus = FrameBus(self)
        self._bus_key: str | None = None
        self.on_msg(self._on_custom)

    def ride(self, carrier: CanvasView) -> None:
        """Send this view's frames on ``carrier``'s comm (and in its batches) from now on."""
        with self._send_lock:
            self.frame_bus = carrier.frame_bus
            self._bus_key = self.model_id
            self.bus = [f"anywidget:{carrier.model_id}", self.model_id]

    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        return {"request_full": {}}

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        checked = validate_action(type(self).__name__, content, self._actions())
        if checked is not None:
            self._on_action(*checked)

    def _send_frame(self, kind: str, data: bytes) -> None:
        self.frame_bus.send(kind, self._bus_key, data)

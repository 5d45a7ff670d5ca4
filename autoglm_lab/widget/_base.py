"""The common base of the canvas views: validated actions in, binary custom messages out."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import anywidget
import traitlets as t

from ._messages import Check, log, validate_action

__all__ = ["CanvasView"]


class CanvasView(anywidget.AnyWidget):  # type: ignore[misc]
    """An anywidget whose front end only sends actions (custom messages), never trait updates.

    Every incoming message goes through `validate_action` against `_actions()`; trait updates
    from the front end are refused (the views never make any), so a stray or hostile message
    cannot change state behind the kernel's back.
    """

    width_px = t.Int(880).tag(sync=True)   # CSS width of the canvas, pixels
    height_px = t.Int(300).tag(sync=True)  # CSS height (page map: target height), pixels

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._send_lock = threading.RLock()  # frames from the live-loop thread vs replies on the main thread
        self.on_msg(self._on_custom)

    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        return {"request_full": {}}

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        checked = validate_action(type(self).__name__, content, self._actions())
        if checked is not None:
            self._on_action(*checked)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        log.warning("%s refused a front-end state update of %s: this view only takes actions",
                    type(self).__name__, sorted(sync_data))
        # put the front end back in step with the kernel
        self.send_state([k for k in sync_data if k in self.keys])

    def _send_frame(self, kind: str, data: bytes) -> None:
        self.send({"type": kind}, buffers=[data])

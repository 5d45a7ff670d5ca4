"""`PageMap`: every page of the pool on a canvas, fed by binary frames built from snapshots."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from ..pool import PageState, PoolSnapshot
from ._assets import esm
from ._base import CanvasView
from ._codec import PageFrame, encode_delta, encode_full, palette_indices
from ._format import format_bytes
from ._messages import Check, HoverReply, choice, integer
from ._palette import COLOR_MODES, PALETTE, legend_for
from ._view import SIDE_PX, DashboardView, ViewContext, ViewSetup, chart_layout

if TYPE_CHECKING:
    from ..pool import PagedPool

__all__ = ["PageMap", "PageMapView"]

_STATE_NAMES = {int(s): s.name.lower() for s in PageState}
MODULE = "pagemap"  # js/src/pagemap.js


class PageMap(CanvasView):
    """The page map. ``PageMap(pool)`` draws a pool; ``refresh()`` sends what changed since the last
    frame; ``update(snapshot)`` draws a snapshot you took yourself.

    Frames (see `_codec`): one byte per page (a palette index), or runs of changed pages when few
    changed. Hover asks the kernel what lies under the pointer; a click selects that block.
    """

    _esm = esm(MODULE)
    num_pages = t.Int(0).tag(sync=True)                    # pages in the pool drawn
    segments = t.List(t.List(t.Int())).tag(sync=True)      # [[first_page, num_pages], ...]
    color_by = t.Enum(COLOR_MODES, "state").tag(sync=True) # "state" | "tag" | "age"
    palette = t.List(t.Unicode(), list(PALETTE)).tag(sync=True)  # palette index -> "#rrggbb"
    legend = t.List(t.List(t.Unicode()), legend_for("state")).tag(sync=True)  # [[label, colour]]
    selection = t.List(t.Int()).tag(sync=True)             # [block_id, first_page, num_pages] or []
    height_px = t.Int(360).tag(sync=True)

    def __init__(self, pool: PagedPool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool = pool
        self.snapshot: PoolSnapshot | None = None  # the snapshot of the frame on screen
        self.last_frame: PageFrame | None = None
        self._values: np.ndarray | None = None
        self._frame_id = 0
        self._force_full = True
        self._select_callbacks: list[Callable[[dict[str, Any] | None], None]] = []
        self.observe(self._on_color_by, names="color_by")

    # ------------------------------------------------------------------ kernel side API
    def refresh(self) -> PageFrame | None:
        """Snapshot the pool and send the frame (None when nothing changed)."""
        if self.pool is None:
            raise ValueError("this PageMap has no pool; call update(snapshot) or build it as PageMap(pool)")
        return self.update(self.pool.snapshot())

    def update(self, snap: PoolSnapshot) -> PageFrame | None:
        """Encode ``snap`` against the frame on screen and send it: a delta when few pages changed,
        a full frame otherwise; nothing when neither the pool nor the colours changed."""
        with self._send_lock:
            prev = self.snapshot
            if (prev is not None and not self._force_full and prev.seq == snap.seq
                    and prev.num_pages == snap.num_pages and self.color_by != "age"):
                return None
            values = palette_indices(snap, self.color_by)
            if values is snap.page_state:
                values = values.copy()  # keep our own: the next delta compares against it
            self._sync_layout(snap)
            self._frame_id = (self._frame_id + 1) & 0xFFFFFFFF
            mode = COLOR_MODES.index(self.color_by)
            frame = None
            if not self._force_full and self._values is not None:
                frame = encode_delta(self._values, values, frame_id=self._frame_id,
                                     base_id=self.last_frame.frame_id if self.last_frame else 0,
                                     seq=snap.seq, mode=mode)
                if frame is not None and frame.n_runs == 0 and prev is not None and prev.seq == snap.seq:
                    self._frame_id = (self._frame_id - 1) & 0xFFFFFFFF
                    return None  # age colours did not move
            if frame is None:
                frame = encode_full(values, frame_id=self._frame_id, seq=snap.seq, mode=mode)
            self._force_full = False
            self._values = values
            self.snapshot = snap
            self.last_frame = frame
            self._follow_selection(snap)
            self._send_frame("frame", frame.data)
            return frame

    def on_select(self, callback: Callable[[dict[str, Any] | None], None]) -> None:
        """Call ``callback(block_info or None)`` when the selected block changes."""
        self._select_callbacks.append(callback)

    def block_at(self, page: int) -> HoverReply:
        """What the frame on screen shows at ``page``: state, and the block holding it if any."""
        snap = self.snapshot
        if snap is None or not 0 <= page < snap.num_pages:
            return {"type": "hover", "page": -1}
        reply: HoverReply = {"type": "hover", "page": page, "state": _STATE_NAMES[int(snap.page_state[page])],
                             "block_id": int(snap.page_block[page])}
        row = _block_row(snap, page)
        if row is not None:
            reply.update(_block_info(snap, row))
        return reply

    # ------------------------------------------------------------------ front-end actions
    def _actions(self) -> Mapping[str, Mapping[str, Check]]:
        last = max(self.num_pages - 1, 0)
        return {
            "request_full": {},
            "hover": {"page": integer(0, last)},
            "select": {"page": integer(0, last)},
            "color_by": {"value": choice(COLOR_MODES)},
        }

    def _on_action(self, action: str, fields: dict[str, Any]) -> None:
        if action == "request_full":
            self._resend_full()
        elif action == "hover":
            self.send(dict(self.block_at(fields["page"])))
        elif action == "select":
            self._select_page(fields["page"])
        elif action == "color_by":
            self.color_by = fields["value"]

    # ------------------------------------------------------------------ internals
    def _resend_full(self) -> None:
        with self._send_lock:
            self._force_full = True
            if self.snapshot is not None:
                self.update(self.snapshot)

    def _on_color_by(self, change: dict[str, Any]) -> None:
        self.legend = legend_for(change["new"], self.snapshot.tags if self.snapshot else ())
        self._resend_full()

    def _sync_layout(self, snap: PoolSnapshot) -> None:
        segments = [[int(f), int(n)] for f, n in zip(snap.segment_first_page, snap.segment_num_pages, strict=True)]
        if segments != self.segments or snap.num_pages != self.num_pages:
            self._force_full = True
            with self.hold_sync():
                self.num_pages = snap.num_pages
                self.segments = segments
        if self.color_by == "tag" and (self.snapshot is None or snap.tags != self.snapshot.tags):
            self.legend = legend_for("tag", snap.tags)

    def _select_page(self, page: int) -> None:
        # under the frame lock: the block is picked, and shown, from the snapshot on screen, and
        # no frame replaces that snapshot meanwhile
        with self._send_lock:
            snap = self.snapshot
            row = _block_row(snap, page) if snap is not None and 0 <= page < snap.num_pages else None
            if row is None or snap is None:
                self.selection = []
            else:
                self.selection = [int(snap.block_id[row]), int(snap.block_first_page[row]),
                                  int(snap.block_num_pages[row])]
            self._notify_select(snap)

    def _follow_selection(self, snap: PoolSnapshot) -> None:
        """Keep the outline on the selected block when compaction moves it; drop it once freed."""
        if not self.selection:
            return
        rows = np.flatnonzero(snap.block_id == self.selection[0])
        new = [] if rows.size == 0 else [self.selection[0], int(snap.block_first_page[rows[0]]),
                                         int(snap.block_num_pages[rows[0]])]
        if new != self.selection:
            self.selection = new
            self._notify_select(snap)

    def selected_block(self, snap: PoolSnapshot | None = None) -> dict[str, Any] | None:
        """The selected block as found in ``snap`` (default: the snapshot on screen): a dict of
        block_id, first_page, num_pages, nbytes, tag, age_s; None when nothing is selected or the
        block is not in ``snap`` (freed)."""
        selection, snap = list(self.selection), self.snapshot if snap is None else snap
        if not selection or snap is None:
            return None
        rows = np.flatnonzero(snap.block_id == selection[0])  # by id: the block may have moved
        return {"block_id": selection[0], **_block_info(snap, int(rows[0]))} if rows.size else None

    def _notify_select(self, snap: PoolSnapshot | None) -> None:
        info = self.selected_block(snap)
        for callback in self._select_callbacks:
            callback(info)


def _block_info(snap: PoolSnapshot, row: int) -> HoverReply:
    tag = int(snap.block_tag[row])
    nbytes = int(snap.block_nbytes[row])
    return {"tag": (snap.tags[tag] if tag >= 0 else None) or "", "nbytes": nbytes, "size": format_bytes(nbytes),
            "num_pages": int(snap.block_num_pages[row]), "first_page": int(snap.block_first_page[row]),
            "age_s": float(snap.time_s - snap.block_created_s[row])}


def _block_row(snap: PoolSnapshot, page: int) -> int | None:
    """Row of the block table holding ``page`` (blocks are sorted by first page), or None."""
    row = int(np.searchsorted(snap.block_first_page, page, side="right")) - 1
    if row < 0 or page >= snap.block_first_page[row] + snap.block_num_pages[row]:
        return None
    return row


class PageMapView(DashboardView):
    """The page map in a dashboard: draws each new snapshot; its comm carries the other views' frames."""

    name = "page_map"
    module = MODULE
    row = 0

    def __init__(self, setup: ViewSetup) -> None:
        self.widget = PageMap(setup.pool, width_px=setup.width_px - SIDE_PX - 24, height_px=340, lock=setup.lock,
                              layout=chart_layout(420))
        self.sent: PageFrame | None = None  # the frame the last update sent (None: nothing new)

    def update(self, ctx: ViewContext) -> None:
        if ctx.fresh:
            self.sent = self.widget.update(ctx.snapshot)

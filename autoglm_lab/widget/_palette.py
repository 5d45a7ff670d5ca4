"""Palette layout of the page map: one byte per page indexes this table.

```
index   0..S-1      page states, one per `PageState` (FREE, USED, TAIL, PINNED, ...)   (colour_by="state")
        S..S+47     48 tag colours, tag i -> TAG_BASE + i % 48                         (colour_by="tag")
        then 32     age steps, newest (AGE_BASE) to oldest                             (colour_by="age")
```

The page states' colours and labels are here only; a state the pool adds needs its row in
``_STATE_STYLE`` (importing the widget fails loudly until it has one).
"""

from __future__ import annotations

import colorsys

from ..pool import PageState

__all__ = ["PALETTE", "STATE_COLORS", "STATE_LABELS", "TAG_BASE", "TAG_COLORS", "AGE_BASE", "AGE_STEPS",
           "COLOR_MODES", "legend_for"]

COLOR_MODES = ("state", "tag", "age")  # the page frame's mode byte indexes this
_STATE_STYLE = {  # PageState name -> (colour, legend label)
    "FREE": ("#e5e9f0", "free"),
    "USED": ("#3b82f6", "used"),
    "TAIL": ("#f59e0b", "tail (internal waste)"),
    "PINNED": ("#7c3aed", "pinned"),
    "CACHED": ("#67e8f9", "cached (evictable)"),
}
STATE_COLORS = tuple(_STATE_STYLE[s.name][0] for s in PageState)  # by PageState value
STATE_LABELS = tuple(_STATE_STYLE[s.name][1] for s in PageState)
TAG_BASE = len(STATE_COLORS)
TAG_COLORS = 48
AGE_BASE = TAG_BASE + TAG_COLORS
AGE_STEPS = 32


def _hex(r: float, g: float, b: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in (r, g, b)))


def _tag_colors() -> list[str]:
    # golden-angle hues at two lightness levels: neighbours in tag order look different
    out = []
    for i in range(TAG_COLORS):
        hue = (i * 0.381966) % 1.0
        light = 0.52 if i % 2 == 0 else 0.40
        out.append(_hex(*colorsys.hls_to_rgb(hue, light, 0.70)))
    return out


def _age_colors() -> list[str]:
    # young = bright yellow, old = deep purple (viridis end points and middle)
    stops = [(0xfd, 0xe7, 0x25), (0x21, 0x91, 0x8c), (0x44, 0x01, 0x54)]
    out = []
    for i in range(AGE_STEPS):
        x = i / (AGE_STEPS - 1) * (len(stops) - 1)
        k = min(int(x), len(stops) - 2)
        f = x - k
        out.append(_hex(*((stops[k][j] * (1 - f) + stops[k + 1][j] * f) / 255 for j in range(3))))
    return out


PALETTE: tuple[str, ...] = (*STATE_COLORS, *_tag_colors(), *_age_colors())


def legend_for(mode: str, tags: tuple[str | None, ...] = (), max_tags: int = 6) -> list[list[str]]:
    """[label, colour] pairs the page map shows next to its mode buttons (tag ids no live block
    carries, None in a snapshot's ``tags``, are left out)."""
    free = ["free", STATE_COLORS[0]]
    if mode == "state":
        return [[label, color] for label, color in zip(STATE_LABELS, STATE_COLORS, strict=True)]
    if mode == "tag":
        live = [(i, t) for i, t in enumerate(tags) if t is not None]
        items = [[t, PALETTE[TAG_BASE + i % TAG_COLORS]] for i, t in live[:max_tags]]
        if len(live) > max_tags:
            items.append([f"+{len(live) - max_tags} more tags", "#94a3b8"])
        return [free, ["untagged", STATE_COLORS[1]], *items]
    return [free, ["newest", PALETTE[AGE_BASE]], ["oldest", PALETTE[AGE_BASE + AGE_STEPS - 1]]]

"""What the front end may send, and the checks every message passes before it changes anything.

Wire messages (JSON content of custom comm messages, front end -> kernel):

```
{"action": "request_full"}                    any view: resend everything (a view opened late)
{"action": "hover",    "page": int}           page map: ask what lies under the pointer
{"action": "select",   "page": int}           page map: select the block holding the page
{"action": "color_by", "value": str}          page map: "state" | "tag" | "age"
```

A message with an unknown action, a missing or extra field, a wrong type or an out-of-range value
is refused: a warning is logged and nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict

__all__ = ["Check", "integer", "number", "choice", "validate_action", "HoverReply", "refuse"]

log = logging.getLogger("autoglm_lab.widget")

Check = Callable[[Any], Any]  # returns the accepted value or raises ValueError


class HoverReply(TypedDict, total=False):
    """Kernel -> front end answer to ``hover`` (custom message ``type="hover"``)."""

    type: Literal["hover"]
    page: int
    state: str
    block_id: int
    tag: str
    nbytes: int
    num_pages: int
    first_page: int
    age_s: float


def integer(low: int, high: int) -> Check:
    """An int (not a bool, not a float) in [low, high]."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {type(value).__name__} {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{value} is outside [{low}, {high}]")
        return value
    return check


def number(low: float, high: float) -> Check:
    """A finite int or float (not a bool) in [low, high]."""
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{value} is outside [{low}, {high}]")
        return value
    return check


def choice(options: Sequence[Any]) -> Check:
    """One of ``options`` exactly (same type: True is not 1)."""
    def check(value: Any) -> Any:
        for option in options:
            if type(value) is type(option) and value == option:
                return value
        raise ValueError(f"{value!r} is not one of {list(options)}")
    return check


def refuse(where: str, content: Any, reason: str) -> None:
    log.warning("%s refused front-end message %.200r: %s", where, content, reason)


def validate_action(where: str, content: Any, actions: Mapping[str, Mapping[str, Check]]
                    ) -> tuple[str, dict[str, Any]] | None:
    """(action, checked fields), or None after logging why the message was refused."""
    if not isinstance(content, dict):
        refuse(where, content, f"expected an object, got {type(content).__name__}")
        return None
    action = content.get("action")
    if not isinstance(action, str) or action not in actions:
        refuse(where, content, f"unknown action {action!r}; known: {sorted(actions)}")
        return None
    spec = actions[action]
    fields = {k: v for k, v in content.items() if k != "action"}
    extra = sorted(set(fields) - set(spec))
    missing = sorted(set(spec) - set(fields))
    if extra or missing:
        refuse(where, content, f"action {action!r} takes fields {sorted(spec)}; extra {extra}, missing {missing}")
        return None
    checked = {}
    for name, check in spec.items():
        try:
            checked[name] = check(fields[name])
        except ValueError as err:
            refuse(where, content, f"{action}.{name}: {err}")
            return None
    return action, checked

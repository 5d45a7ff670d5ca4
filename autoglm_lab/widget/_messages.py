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

Every comm message from the front end first passes `check_comm_message` (the widget-protocol
envelope: ``{"method": "update", "state": {...}, "buffer_paths": [...]}``, ``{"method":
"request_state"}`` or ``{"method": "custom", "content": ...}``), so that a malformed one is refused
here, never by an exception inside ipywidgets' handlers; `FrontEndGuard` applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict

__all__ = ["Check", "integer", "number", "choice", "argument", "validate_action", "HoverReply", "refuse",
           "check_comm_message", "state_keys", "FrontEndGuard", "NoFrontEndState", "run_logged"]

log = logging.getLogger("autoglm_lab.widget")


def run_logged(what: str, fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` from a comm handler (a button, a slider): a failure is logged, not lost in the
    front end's message loop."""
    try:
        fn(*args)
    except Exception:
        log.exception("%s failed", what)

Check = Callable[[Any], Any]  # returns the accepted value or raises ValueError


class HoverReply(TypedDict, total=False):
    """Kernel -> front end answer to ``hover`` (custom message ``type="hover"``)."""

    type: Literal["hover"]
    page: int
    state: str
    block_id: int
    tag: str
    nbytes: int
    size: str          # nbytes as the widget writes sizes (`format_bytes`)
    num_pages: int
    first_page: int
    age_s: float


def integer(low: int, high: int | None = None) -> Check:
    """An int (not a bool, not a float) in [low, high] (no upper end when ``high`` is None)."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {type(value).__name__} {value!r}")
        if high is None and value < low:
            raise ValueError(f"{value} is below {low}")
        if high is not None and not low <= value <= high:
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


def argument(name: str, value: Any, check: Check) -> Any:
    """``check(value)`` for a kernel-side argument; its ValueError names the argument."""
    try:
        return check(value)
    except ValueError as err:
        raise ValueError(f"{name}={value!r} is not allowed: {err}") from None


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


# widget protocol 2.x, front end -> kernel: the fields each method may carry besides "method"
_PROTOCOL = {"update": ({"state"}, {"buffer_paths"}), "request_state": (set(), set()), "custom": ({"content"}, set())}


def state_keys(state: Any) -> list[str]:
    """The keys of a front-end ``state``; ValueError unless it is an object with string keys."""
    if not isinstance(state, dict):
        raise ValueError(f"state must be an object, got {type(state).__name__}")
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise ValueError(f"state keys must be strings, got {bad!r}")
    return list(state)


def _check_buffer_paths(state: dict[str, Any], paths: Any, buffers: Any) -> None:
    if not isinstance(paths, list) or not isinstance(buffers, list | tuple):
        raise ValueError("buffer_paths must be a list (and the buffers a list)")
    if len(paths) != len(buffers):
        raise ValueError(f"{len(paths)} buffer paths for {len(buffers)} buffers")
    for path in paths:
        if not isinstance(path, list) or not path:
            raise ValueError(f"buffer path {path!r} is not a non-empty list")
        obj: Any = state
        for i, key in enumerate(path):
            last = i == len(path) - 1
            if isinstance(obj, dict) and isinstance(key, str) and (last or key in obj):
                pass
            elif (isinstance(obj, list) and isinstance(key, int) and not isinstance(key, bool)
                  and 0 <= key < len(obj)):
                pass
            else:
                raise ValueError(f"buffer path {path!r} does not lead into the state")
            if not last:
                obj = obj[key]


def check_comm_message(where: str, msg: Any) -> bool:
    """True when ``msg`` is a well-formed widget-protocol message; else log why and return False.
    Only the envelope is checked here: the state's values are the widget's ``set_state``'s to check."""
    try:
        content = msg.get("content") if isinstance(msg, dict) else None
        data = content.get("data") if isinstance(content, dict) else None
        if not isinstance(data, dict):
            raise ValueError(f"expected an object with a method, got {type(data).__name__}")
        method = data.get("method")
        if not isinstance(method, str) or method not in _PROTOCOL:
            raise ValueError(f"unknown method {method!r}; known: {sorted(_PROTOCOL)}")
        required, optional = _PROTOCOL[method]
        fields = set(data) - {"method"}
        extra, missing = sorted(map(str, fields - required - optional)), sorted(required - fields)
        if extra or missing:
            raise ValueError(f"method {method!r}: extra fields {extra}, missing {missing}")
        if method == "update":
            state_keys(data["state"])
            if "buffer_paths" in data:
                _check_buffer_paths(data["state"], data["buffer_paths"], msg.get("buffers", []))
    except ValueError as err:
        refuse(where, msg.get("content") if isinstance(msg, dict) else msg, str(err))
        return False
    return True


class FrontEndGuard:
    """Mixin for a widget: every comm message passes `check_comm_message` before ipywidgets sees it."""

    def _front_name(self) -> str:
        return type(self).__name__

    def _handle_msg(self, msg: Any) -> None:
        if check_comm_message(self._front_name(), msg):
            super()._handle_msg(msg)  # type: ignore[misc]

    def _handle_custom_msg(self, content: Any, buffers: Any) -> None:
        if not self._msg_callbacks.callbacks:  # type: ignore[attr-defined]
            refuse(self._front_name(), content, "this widget takes no custom messages")
            return
        super()._handle_custom_msg(content, buffers)  # type: ignore[misc]


class NoFrontEndState(FrontEndGuard):
    """Mixin for a widget that takes no state from the front end: every update is refused and the
    front end is put back in step with the kernel."""

    def set_state(self, sync_data: Any) -> None:
        try:
            keys = state_keys(sync_data)
        except ValueError as err:
            refuse(self._front_name(), sync_data, str(err))
            return
        refuse(self._front_name(), sync_data, f"{sorted(keys)}: this widget takes no state from the front end")
        self.send_state([k for k in keys if k in self.keys])  # type: ignore[attr-defined]

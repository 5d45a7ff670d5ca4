"""ipywidgets controls that check what the front end sends before a value reaches the kernel.

Standard sliders clamp an out-of-range value and dropdowns accept any index they are sent; these
subclasses refuse such a message instead (logged warning, the front end reset to the kernel's
value), so nothing a browser sends can change the pool without passing `PoolConfig` validation.
Every comm message passes `check_comm_message` first (`FrontEndGuard`); the ``Fixed*`` containers
and labels take no state from the front end at all.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from ._messages import FrontEndGuard, NoFrontEndState, choice, integer, number, refuse, state_keys

__all__ = ["check_value", "GuardedFloatSlider", "GuardedFloatLogSlider", "GuardedIntSlider", "GuardedDropdown",
           "GuardedToggleButtons", "GuardedToggleButton", "GuardedButton", "FixedHTML", "FixedHBox", "FixedVBox",
           "FixedGridBox"]


class _Guard(FrontEndGuard):
    """Mixin: ``set_state`` from the front end passes ``_check_front`` or changes nothing."""

    _front_keys: frozenset[str] = frozenset({"value"})

    def _front_name(self) -> str:
        return f"control {getattr(self, 'description', '') or type(self).__name__!r}"

    def _check_front(self, key: str, value: Any) -> None:
        raise NotImplementedError

    def check_value(self, value: Any) -> None:
        """Raise ValueError unless ``value`` is one the front end could send (kernel-side ``set``)."""
        self._check_front("value", value)

    def set_state(self, sync_data: Any) -> None:
        try:
            keys = state_keys(sync_data)
        except ValueError as err:
            refuse(self._front_name(), sync_data, str(err))
            return
        try:
            extra = sorted(set(keys) - self._front_keys)
            if extra:
                raise ValueError(f"{extra} may not be set from the front end")
            for key, value in sync_data.items():
                self._check_front(key, value)
        except ValueError as err:
            refuse(self._front_name(), sync_data, str(err))
            self.send_state([k for k in keys if k in self.keys])  # type: ignore[attr-defined]
            return
        super().set_state(sync_data)  # type: ignore[misc]


class GuardedFloatSlider(_Guard, w.FloatSlider):
    def _check_front(self, key: str, value: Any) -> None:
        number(self.min, self.max)(value)


class GuardedFloatLogSlider(_Guard, w.FloatLogSlider):
    def _check_front(self, key: str, value: Any) -> None:
        number(self.base ** self.min, self.base ** self.max)(value)


class GuardedIntSlider(_Guard, w.IntSlider):
    def _check_front(self, key: str, value: Any) -> None:
        integer(self.min, self.max)(value)


class _GuardedSelection(_Guard):
    _front_keys = frozenset({"index"})

    def _check_front(self, key: str, value: Any) -> None:
        integer(0, len(self.options) - 1)(value)  # type: ignore[attr-defined]

    def check_value(self, value: Any) -> None:
        values = [o[1] if isinstance(o, tuple) else o for o in self.options]  # type: ignore[attr-defined]
        choice(values)(value)


class GuardedDropdown(_GuardedSelection, w.Dropdown):
    pass


class GuardedToggleButtons(_GuardedSelection, w.ToggleButtons):
    pass


class GuardedToggleButton(_Guard, w.ToggleButton):
    def _check_front(self, key: str, value: Any) -> None:
        choice((True, False))(value)


class GuardedButton(NoFrontEndState, w.Button):
    """A button whose only accepted message is ``{"event": "click"}``."""

    def _front_name(self) -> str:
        return f"button {self.description!r}"

    def _handle_button_msg(self, _: Any, content: Any, buffers: Any) -> None:
        if content != {"event": "click"}:
            refuse(f"button {self.description!r}", content, "the only button message is {'event': 'click'}")
            return
        self.click()


class FixedHTML(NoFrontEndState, w.HTML):
    """An HTML label the front end cannot change."""


class FixedHBox(NoFrontEndState, w.HBox):
    """A row whose children and style the front end cannot change."""


class FixedVBox(NoFrontEndState, w.VBox):
    """A column whose children and style the front end cannot change."""


class FixedGridBox(NoFrontEndState, w.GridBox):
    """A grid whose children and style the front end cannot change."""


def check_value(control: Any, value: Any) -> None:
    """Raise ValueError unless ``control`` would accept ``value`` from the front end."""
    if isinstance(control, _Guard):
        control.check_value(value)

"""The teaching notebooks run under nbval (``--nbval-lax``: only cells marked ``# NBVAL_CHECK_OUTPUT``
are compared with their stored output; every cell must run without error).

The notebooks read ``AUTOGLM_LAB_HEADLESS`` to pick their headless path (no front end: step the
simulator synchronously instead of playing the live loop, shorter optional runs); the kernels
nbval starts inherit it from here.
"""

from __future__ import annotations

import os

os.environ.setdefault("AUTOGLM_LAB_HEADLESS", "1")

"""Plots used by the notebooks.

Each function draws on a fresh (or given) matplotlib axes and returns the figure, so a notebook cell
ends with ``plt.show()`` and a test can inspect the figure without a display.
"""

from __future__ import annotations

import matplotlib

matplotlib.rcParams.setdefault("figure.dpi", 100)

"""Matplotlib for files only, and figures as PNG bytes: shared by the map pictures and the run report."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")   # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()

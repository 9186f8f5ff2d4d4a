"""Pictures of class confidence maps (the paper's Figure 4), with the boxes located from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.patches import Rectangle

from nin.files import atomic_write_bytes
from nin.pictures import plt, png_bytes

if TYPE_CHECKING:
    from nin.maps.photo import PhotoMaps

TRUE_COLOUR, PRED_COLOUR, WRONG_COLOUR = "tab:green", "tab:blue", "tab:red"


@dataclass
class MapRow:
    """One input image and what the model made of it."""
    image: np.ndarray               # (H, W) or (H, W, 3) uint8, as shown
    maps: np.ndarray                # (K, H, W): upsampled confidence maps
    probabilities: np.ndarray       # (K,)
    classes: list[int]              # which maps to draw, in order
    boxes: list[tuple[int, tuple]]  # (class, box) pairs to draw on the image
    true_class: int | None
    title: str = ""


CAPTION_POINTS = 8   # caption size; a column is 1.6 inches, so a figure of six columns is ~1,000 px at 100 dpi


def render_rows(rows: list[MapRow], class_names: list[str], top_fraction: float | None = None):
    """A matplotlib Figure: per row, the image with its boxes, then the chosen maps on one colour scale."""
    columns = 1 + max(len(r.classes) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns, 2.0 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for row, ax_row in zip(rows, axes):
        predicted = int(row.probabilities.argmax())
        ax = ax_row[0]
        ax.imshow(row.image, cmap="gray" if row.image.ndim == 2 else None, vmin=0, vmax=255)
        for k, (cls, (x0, y0, x1, y1)) in enumerate(row.boxes):
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=1.5 if k == 0 else 0.8,
                                   edgecolor=PRED_COLOUR if k == 0 else "yellow"))
        truth = f"true {class_names[row.true_class]}\n" if row.true_class is not None else ""
        right = row.true_class is None or row.true_class == predicted
        ax.set_title(f"{row.title}{truth}pred {class_names[predicted]} {100 * row.probabilities[predicted]:.0f}%",
                     fontsize=CAPTION_POINTS, color="black" if right else WRONG_COLOUR)
        shown = row.maps[row.classes]
        low, high = float(min(shown.min(), 0)), float(max(shown.max(), 1e-6))
        for ax, cls in zip(ax_row[1:], row.classes):
            ax.imshow(row.maps[cls], cmap="inferno", vmin=low, vmax=high)
            marks = ("*" if cls == predicted else "") + (" (true)" if cls == row.true_class else "")
            colour = TRUE_COLOUR if cls == row.true_class else PRED_COLOUR if cls == predicted else "black"
            ax.set_title(f"{class_names[cls]}{marks}\np={row.probabilities[cls]:.2f}", fontsize=CAPTION_POINTS,
                         color=colour)
    caption = "class confidence maps" + (f", top {100 * top_fraction:.0f}% of each map shown" if top_fraction else "")
    fig.suptitle(f"{caption}; * predicted class, box from its map", fontsize=CAPTION_POINTS + 1)
    fig.tight_layout()
    return fig


OVERLAY_ALPHA = 0.5   # how much of the photo shows through its class map


def render_photos(photos: list[tuple[str, "PhotoMaps"]]):
    """A matplotlib Figure: per photo, the model's input view, then each top class's map laid over the photo at
    the photo's own resolution, the box from the predicted class's map on the first; how the photo was fitted
    to the model input is said under each row."""
    panel = 3.0   # inches: the height of a photo panel
    widths = [panel * (1 + len(p.classes) * p.photo.shape[1] / p.photo.shape[0]) for _, p in photos]
    fig = plt.figure(figsize=(max(widths), (panel + 0.9) * len(photos)), layout="constrained")
    rows = fig.subfigures(len(photos), 1, squeeze=False)[:, 0]
    for (title, p), sub in zip(photos, rows):
        aspect = p.photo.shape[1] / p.photo.shape[0]
        axes = sub.subplots(1, 1 + len(p.classes), width_ratios=[1] + [aspect] * len(p.classes))
        for ax in axes:
            ax.set_axis_off()
        grey = p.photo.ndim == 2
        size = p.model_input.shape[0]
        axes[0].imshow(p.model_input, cmap="gray" if grey else None, vmin=0, vmax=255)
        axes[0].set_title(f"model input\n{size} x {size}", fontsize=CAPTION_POINTS)
        low, high = float(min(p.maps_at_photo.min(), 0)), float(max(p.maps_at_photo.max(), 1e-6))
        for k, ax in enumerate(axes[1:]):
            ax.imshow(p.photo, cmap="gray" if grey else None, vmin=0, vmax=255)
            ax.imshow(p.maps_at_photo[k], cmap="jet", alpha=OVERLAY_ALPHA, vmin=low, vmax=high)
            if k == 0:
                x0, y0, x1, y1 = p.box
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, linewidth=2,
                                       edgecolor="white"))
            ax.set_title(f"{'* ' if k == 0 else ''}{p.names[k]} {100 * p.probabilities[k]:.1f}%",
                         fontsize=CAPTION_POINTS + 2, color=PRED_COLOUR if k == 0 else "black")
        sub.suptitle(title, fontsize=CAPTION_POINTS + 2)
        sub.supxlabel(f"{p.fitted}; one colour scale a photo; * predicted class, box from its map",
                      fontsize=CAPTION_POINTS)
    return fig


def save_figure(fig, path) -> None:
    """Write a figure as PNG through a temporary file, so a crash never leaves half a picture."""
    atomic_write_bytes(path, png_bytes(fig, dpi=110))

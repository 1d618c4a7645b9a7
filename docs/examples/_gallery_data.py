"""Where the gallery's real images are: ``shared/data`` beside the repository (not shipped with
zse; read SOURCES.md there for each image's origin and licence)."""

from __future__ import annotations

from pathlib import Path


def find(relative: str):
    """The path of a test image, or None when the test data are not beside the repository."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        candidate = folder / "shared" / "data" / relative
        if candidate.is_file():
            return candidate
    return None


def side_by_side(images, titles, suptitle, cmaps=None):
    """Images in one row with their titles, on their own percentile grey scales."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.6))
    for k, (ax, image, title) in enumerate(zip(axes, images, titles)):
        low, high = np.percentile(image, [1, 99])
        ax.imshow(image, cmap=(cmaps or ["gray"] * len(images))[k], vmin=low, vmax=high)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig

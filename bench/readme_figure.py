"""Render docs/demo.png for README.md: noisy | zse mean | zse variance on the demo scene.

    python bench/readme_figure.py

Same scene, model and settings as `zse demo` (synthetic TEM scene; --model auto picks GPMM for
these electron counts, 8 x 8 patches, 30 epochs, seed 0), so the figure needs no external image
and carries no licence restrictions.
"""

from pathlib import Path

from PIL import Image, ImageDraw

import zse
from zse.cli import DEMO_MAX_ITER


def main():
    noisy, clean = zse.synthetic_tem(seed=0)
    model = zse.GPMM(max_iter=DEMO_MAX_ITER, random_state=0)
    out = zse.reconstruct(noisy, model, stats=("mean", "var"), patch_size=8)
    panels = [zse.io.preview_uint8(a) for a in (noisy, out["mean"], out["var"])]
    scale = 2
    h, w = panels[0].shape
    canvas = Image.new("L", (3 * w * scale + 2 * 8, h * scale + 22), color=255)
    draw = ImageDraw.Draw(canvas)
    titles = (
        "noisy (20 e-/px)",
        f"zse mean ({zse.psnr(clean, out['mean']):.1f} dB vs {zse.psnr(clean, noisy):.1f})",
        "zse variance",
    )
    for k, (panel, title) in enumerate(zip(panels, titles)):
        x = k * (w * scale + 8)
        canvas.paste(Image.fromarray(panel).resize((w * scale, h * scale), Image.NEAREST), (x, 22))
        draw.text((x + 4, 4), title, fill=0)
    path = Path(__file__).resolve().parents[1] / "docs" / "demo.png"
    canvas.save(path)
    print(path)


if __name__ == "__main__":
    main()

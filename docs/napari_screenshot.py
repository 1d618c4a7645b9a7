"""docs/napari_widget.png: napari with the "Denoise (zse)" widget after a run.

pip install ".[napari]"
xvfb-run -a python docs/napari_screenshot.py     # or on a desktop: python docs/napari_screenshot.py
"""

from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

import zse

OUT = Path(__file__).resolve().parent / "napari_widget.png"

noisy, _ = zse.data.synthetic_tem((256, 256), dose=5.0, seed=0)
from napari.settings import get_settings  # noqa: E402

get_settings().application.gui_notification_level = "none"
viewer = napari.Viewer(show=True)
viewer.window.resize(1400, 800)
layer = viewer.add_image(noisy, name="synthetic TEM (5 e/px)")
_, widget = viewer.window.add_plugin_dock_widget("zse", "Denoise")
widget.model_box.setCurrentText("gpmm")
widget.n_components.setValue(32)
widget.run()
while widget._worker is not None:
    QApplication.processEvents()
mean = viewer.layers[f"{layer.name} mean (zse)"]
var = viewer.layers[f"{layer.name} var (zse)"]
var.visible = False
layer.visible = False
viewer.reset_view()
QApplication.processEvents()
image = viewer.screenshot(canvas_only=False, flash=False)
napari.utils.io.imsave(str(OUT), np.asarray(image))
print(f"wrote {OUT} ({widget.status.text()})")
viewer.close()

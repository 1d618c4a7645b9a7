"""The napari plugin, headless: the widget from napari's plugin menu, runs that equal
zse.reconstruct, stacks and volumes with the input's scale, cancel, and the MRC reader.

Needs ``pip install ".[napari]" pytest-qt`` and a display; skipped otherwise. CI (.ci/run):
``xvfb-run -a python -m pytest -o "filterwarnings=ignore::DeprecationWarning" -p
napari.utils._testsupport tests/napari_plugin``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
if not os.environ.get("DISPLAY"):
    pytest.skip("the napari tests need a display (xvfb-run)", allow_module_level=True)

import mrcfile  # noqa: E402

import zse  # noqa: E402
from zse import _napari  # noqa: E402

# napari and vispy warn about their own setup (themes, OpenGL); those are not zse's to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _counts(shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).sum(axis=0)
    return rng.poisson(4.0 + 3.0 * np.sin(grid / 7.0) ** 2).astype(np.float64)


def _widget(viewer):
    dock, widget = viewer.window.add_plugin_dock_widget("zse", "Denoise")
    return widget


def _run(qtbot, widget, timeout=120_000):
    widget.run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


def _pmm(widget, components=4, epochs=3, patch=4):
    widget.model_box.setCurrentText("pmm")
    widget.n_components.setValue(components)
    widget.max_iter.setValue(epochs)
    widget.patch.setValue(patch)


def test_widget_in_the_plugin_menu_gives_reconstructs_mean(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image = _counts((512, 512))
    layer = viewer.add_image(image, name="micrograph", scale=(1.5, 1.5), translate=(10, 20))
    widget = _widget(viewer)
    assert widget.layer_box.currentText() == "micrograph"
    _pmm(widget)
    _run(qtbot, widget)
    assert widget.status.text().startswith("done"), widget.status.text()
    expected = zse.reconstruct(
        image, zse.PMM(4, max_iter=3, random_state=0), stats=("mean", "var"), patch_size=4
    )
    mean = viewer.layers["micrograph mean (zse)"]
    var = viewer.layers["micrograph var (zse)"]
    assert np.array_equal(mean.data, expected["mean"])
    assert np.array_equal(var.data, expected["var"])
    for out in (mean, var):
        assert tuple(out.scale) == tuple(layer.scale)
        assert tuple(out.translate) == tuple(layer.translate)
    assert widget.progress_bar.value() == widget.progress_bar.maximum()


@pytest.mark.parametrize("mode", _napari.MODES)
def test_stacks_and_volumes(make_napari_viewer, qtbot, mode):
    viewer = make_napari_viewer()
    data = _counts((6, 40, 36))
    viewer.add_image(data, name="stack", scale=(4.0, 2.0, 2.0))
    widget = _widget(viewer)
    _pmm(widget)
    widget.mode.setCurrentText(mode)
    widget.stat_boxes["var"].setChecked(False)
    _run(qtbot, widget)
    assert widget.status.text().startswith("done"), widget.status.text()
    mean = viewer.layers["stack mean (zse)"]
    assert mean.data.shape == data.shape and tuple(mean.scale) == (4.0, 2.0, 2.0)
    assert "stack var (zse)" not in viewer.layers
    expected = _napari.denoise_array(data, widget.settings())
    assert np.array_equal(mean.data, expected["mean"])
    if mode == _napari.MODES[2]:  # per section: each section is its own 2-D reconstruction
        first = zse.reconstruct(data[0], zse.PMM(4, max_iter=3, random_state=0), patch_size=4)
        assert np.array_equal(mean.data[0], first["mean"])


def test_cancel_stops_the_work_and_adds_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(_counts((256, 256)), name="big")
    widget = _widget(viewer)
    widget.model_box.setCurrentText("sssc")
    widget.H.setValue(16)
    widget.max_iter.setValue(1000)
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    assert widget.status.text().startswith("cancelled"), widget.status.text()
    assert [layer.name for layer in viewer.layers] == ["big"]
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_bad_settings_are_reported_not_raised(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(_counts((32, 32)), name="small")
    widget = _widget(viewer)
    widget.model_box.setCurrentText("model file")  # no file chosen
    _run(qtbot, widget)
    assert widget.status.text().startswith("failed: choose a model file")
    assert len(viewer.layers) == 1


def test_mrc_reader_gives_the_voxel_size_as_scale(tmp_path):
    path = tmp_path / "tomo.rec"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
        mrc.set_volume()
        mrc.voxel_size = (2.0, 3.0, 5.0)
    reader = _napari.get_reader(str(path))
    assert reader is not None and _napari.get_reader(str(tmp_path / "a.tif")) is None
    [(data, meta, kind)] = reader(str(path))
    assert kind == "image" and data.shape == (4, 5, 6)
    assert meta["scale"] == (5.0, 3.0, 2.0)  # (z, y, x) from the header's (x, y, z)

"""The napari plugin (``pip install "zse[napari]"``; manifest ``napari.yaml``): a dock widget
"Denoise (zse)" acting on the selected image layer, and a reader for MRC files.

The widget runs :func:`zse.reconstruct` in a worker thread (the viewer stays responsive), shows
its progress (fit epochs, estimated bands) and stops it on "Cancel" (the progress callable
raises); the statistics come back as layers with the input's scale and translation. The work
itself is :func:`denoise_array`, free of Qt, so what the widget computes is what
``zse.reconstruct`` computes with the same settings.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

import zse

from .models import choose_model
from .models.base import DEFAULT_PATCH_SIZE

MODELS = ("auto", "sssc", "gpmm", "pmm", "model file")
STATS = ("mean", "var", "median", "pvar", "count")
# How a 3-D layer is read: a volume (3-D patches), a stack with one model for every section
# (2-D patches), or a stack with one model per section.
MODES = ("volume", "stack, one model", "stack, model per section")
MRC_PATTERNS = ("*.mrc", "*.mrcs", "*.rec", "*.st", "*.ali", "*.map")


class Cancelled(Exception):
    """The user stopped the work."""


def build_model(name: str, data, *, H=64, n_components=64, max_iter=None, seed=0, model_file=None):
    """The model the widget's settings describe (``auto``: the command line's choice)."""
    if name == "model file":
        if not model_file:
            msg = "choose a model file (written by zse fit or zse.save_model)"
            raise ValueError(msg)
        return zse.load_model(model_file)
    if name == "auto":
        name, _ = choose_model(np.asarray(data, dtype=np.float64))
    extra = {} if max_iter is None else {"max_iter": int(max_iter)}
    if name == "sssc":
        return zse.SSSC(H=int(H), random_state=seed, **extra)
    if name in ("gpmm", "pmm"):
        cls = zse.GPMM if name == "gpmm" else zse.PMM
        return cls(int(n_components), random_state=seed, **extra)
    msg = f"unknown model {name!r}; expected one of {', '.join(MODELS)}"
    raise ValueError(msg)


def denoise_array(data, settings: dict, progress=None) -> dict:
    """Denoise one layer's array with the widget's ``settings``; returns stat -> array.

    ``settings``: ``model``, ``H``, ``n_components``, ``max_iter`` (None: the model's default),
    ``patch`` (0: the default), ``stats``, ``mode`` (3-D layers), ``seed``, ``model_file``.
    ``progress(phase, done, total)`` as :func:`zse.reconstruct`'s.
    """
    data = np.asarray(data)
    if data.ndim not in (2, 3):
        msg = f"the layer is {data.ndim}-D; zse denoises 2-D images, stacks and 3-D volumes"
        raise ValueError(msg)
    stats = tuple(settings["stats"])
    if not stats:
        msg = "choose at least one statistic"
        raise ValueError(msg)
    p = int(settings.get("patch") or 0)

    def model_for(array):
        return build_model(
            settings["model"],
            array,
            H=settings.get("H", 64),
            n_components=settings.get("n_components", 64),
            max_iter=settings.get("max_iter"),
            seed=settings.get("seed", 0),
            model_file=settings.get("model_file"),
        )

    if data.ndim == 2:
        out = zse.reconstruct(
            data, model_for(data), stats=stats, patch_size=p or None, progress=progress
        )
        return {s: out[s] for s in stats}
    mode = settings.get("mode", MODES[0])
    if mode == MODES[0]:
        out = zse.reconstruct(
            data, model_for(data), stats=stats, patch_size=p or None, progress=progress
        )
        return {s: out[s] for s in stats}
    patch = (1, p or DEFAULT_PATCH_SIZE, p or DEFAULT_PATCH_SIZE)
    if mode == MODES[1]:
        out = zse.reconstruct(
            data, model_for(data), stats=stats, patch_size=patch, progress=progress
        )
        return {s: out[s] for s in stats}
    sections = []
    for index, section in enumerate(data):

        def report(phase, done, total, index=index):
            if progress is not None:
                progress(f"section {index + 1}/{len(data)}: {phase}", done, total)

        sections.append(
            zse.reconstruct(
                section, model_for(section), stats=stats, patch_size=patch[1:], progress=report
            )
        )
    return {s: np.stack([r[s] for r in sections]) for s in stats}


def _import_qt():
    from qtpy.QtCore import QObject, Signal

    class Relay(QObject):
        """Carries progress from the worker thread to the widget (a queued connection)."""

        progressed = Signal(str, int, int)

    return Relay


def _make_widget_class():
    from qtpy.QtWidgets import (
        QCheckBox,
        QComboBox,
        QFileDialog,
        QFormLayout,
        QHBoxLayout,
        QLabel,
        QLineEdit,
        QProgressBar,
        QPushButton,
        QSpinBox,
        QWidget,
    )

    Relay = _import_qt()

    class DenoiseWidget(QWidget):
        """Denoise (zse): the selected image layer in, mean/variance (and more) layers out."""

        def __init__(self, napari_viewer):
            super().__init__()
            self.viewer = napari_viewer
            self._cancel = threading.Event()
            self._worker = None
            self._relay = Relay()
            self._relay.progressed.connect(self._show_progress)
            form = QFormLayout(self)
            self.layer_box = QComboBox()
            form.addRow("image layer", self.layer_box)
            self.model_box = QComboBox()
            self.model_box.addItems(MODELS)
            form.addRow("model", self.model_box)
            self.model_file = QLineEdit()
            browse = QPushButton("…")
            browse.clicked.connect(self._browse)
            row = QHBoxLayout()
            row.addWidget(self.model_file)
            row.addWidget(browse)
            form.addRow("model file", row)
            self.patch = QSpinBox()
            self.patch.setRange(0, 32)
            self.patch.setSpecialValueText("default")
            form.addRow("patch size", self.patch)
            self.H = QSpinBox()
            H = zse.SSSC.parameter("H")  # range, default and tooltip from SSSC's table
            self.H.setRange(H.check.low, H.check.high)
            self.H.setValue(H.default)
            self.H.setToolTip(H.help)
            form.addRow("SSSC units H", self.H)
            self.n_components = QSpinBox()
            self.n_components.setRange(1, 4096)
            self.n_components.setValue(64)
            form.addRow("mixture components", self.n_components)
            self.max_iter = QSpinBox()
            self.max_iter.setRange(0, 100000)
            self.max_iter.setSpecialValueText("default")
            form.addRow("epochs", self.max_iter)
            self.mode = QComboBox()
            self.mode.addItems(MODES)
            form.addRow("3-D layers", self.mode)
            self.stat_boxes = {}
            stats_row = QHBoxLayout()
            for stat in STATS:
                box = QCheckBox(stat)
                box.setChecked(stat in ("mean", "var"))
                self.stat_boxes[stat] = box
                stats_row.addWidget(box)
            form.addRow("statistics", stats_row)
            self.run_button = QPushButton("Denoise")
            self.run_button.clicked.connect(self.run)
            self.cancel_button = QPushButton("Cancel")
            self.cancel_button.setEnabled(False)
            self.cancel_button.clicked.connect(self.cancel)
            buttons = QHBoxLayout()
            buttons.addWidget(self.run_button)
            buttons.addWidget(self.cancel_button)
            form.addRow(buttons)
            self.progress_bar = QProgressBar()
            form.addRow(self.progress_bar)
            self.status = QLabel("")
            self.status.setWordWrap(True)
            form.addRow(self.status)
            self.viewer.layers.events.inserted.connect(self._refresh_layers)
            self.viewer.layers.events.removed.connect(self._refresh_layers)
            self._refresh_layers()

        # -- settings ---------------------------------------------------------------------------
        def _refresh_layers(self, event=None):
            import napari

            current = self.layer_box.currentText()
            names = [
                layer.name
                for layer in self.viewer.layers
                if isinstance(layer, napari.layers.Image) and not layer.rgb
            ]
            self.layer_box.clear()
            self.layer_box.addItems(names)
            if current in names:
                self.layer_box.setCurrentText(current)

        def _browse(self):
            path, _ = QFileDialog.getOpenFileName(self, "zse model file", "", "zse models (*.zse)")
            if path:
                self.model_file.setText(path)
                self.model_box.setCurrentText("model file")

        def settings(self) -> dict:
            return {
                "model": self.model_box.currentText(),
                "model_file": self.model_file.text() or None,
                "patch": self.patch.value(),
                "H": self.H.value(),
                "n_components": self.n_components.value(),
                "max_iter": self.max_iter.value() or None,
                "mode": self.mode.currentText(),
                "stats": [s for s, box in self.stat_boxes.items() if box.isChecked()],
                "seed": 0,
            }

        # -- work -------------------------------------------------------------------------------
        def run(self):
            from napari.qt.threading import create_worker

            name = self.layer_box.currentText()
            if not name:
                self.status.setText("no image layer to denoise")
                return
            layer = self.viewer.layers[name]
            settings = self.settings()
            self._cancel.clear()

            def progress(phase, done, total):
                if self._cancel.is_set():
                    raise Cancelled("cancelled")
                self._relay.progressed.emit(phase, done, total)

            # Errors (a cancel among them) go to _failed and the status line, not to the console.
            worker = create_worker(
                denoise_array, np.asarray(layer.data), settings, progress, _ignore_errors=True
            )
            worker.returned.connect(lambda out: self._add_layers(layer, out))
            worker.errored.connect(self._failed)
            worker.finished.connect(self._finished)
            self._worker = worker
            self.run_button.setEnabled(False)
            self.cancel_button.setEnabled(True)
            self.status.setText(f"denoising {name} …")
            self.progress_bar.setValue(0)
            worker.start()

        def cancel(self):
            self._cancel.set()
            self.status.setText("cancelling …")

        def _show_progress(self, phase, done, total):
            self.progress_bar.setMaximum(max(1, total))
            self.progress_bar.setValue(done)
            self.progress_bar.setFormat(f"{phase}: %v/%m")

        def _add_layers(self, layer, out):
            for stat, image in out.items():
                self.viewer.add_image(
                    image,
                    name=f"{layer.name} {stat} (zse)",
                    scale=layer.scale,
                    translate=layer.translate,
                    colormap="gray" if stat in ("mean", "median") else "magma",
                )
            self.status.setText(f"done: {', '.join(out)} of {layer.name}")

        def _failed(self, error):
            if isinstance(error, Cancelled):
                self.status.setText("cancelled; nothing was added")
            else:
                self.status.setText(f"failed: {error}")

        def _finished(self):
            self.run_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            self._worker = None

    return DenoiseWidget


def __getattr__(name):
    # The Qt widget class is built on first use, so importing this module needs no Qt.
    if name == "DenoiseWidget":
        cls = _make_widget_class()
        globals()["DenoiseWidget"] = cls
        return cls
    raise AttributeError(name)


def get_reader(path):
    """npe2 reader: MRC files as image layers with the voxel size as the layer's scale."""
    if isinstance(path, list) or Path(str(path)).suffix.lower() not in {
        p[1:] for p in MRC_PATTERNS
    }:
        return None
    return read_mrc


def read_mrc(path):
    info = zse.io.read_info(path)
    data = zse.io.read_image(path) if info.kind == "image" else zse.io.read_volume(path)
    meta = {"name": Path(str(path)).stem, "metadata": {"zse_kind": info.kind}}
    if info.voxel_size is not None:
        x, y, z = info.voxel_size
        meta["scale"] = (y, x) if data.ndim == 2 else (z, y, x)
    return [(data.astype(np.float32), meta, "image")]

"""Fit once, apply to many: zse fit writes a model file that zse denoise --model-file applies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

import zse
from zse.cli import main
from zse.models.files import MODEL_FORMAT, ModelFileError

FAST_SSSC = ["--H", "4", "--n-states", "4", "--n-parents", "2", "--max-iter", "2"]
FAST_GPMM = ["--n-components", "4", "--max-iter", "2"]


def counts_image(shape=(96, 96), seed=0, dose=30.0):
    noisy, _ = zse.synthetic_tem(shape, dose=dose, seed=seed)
    return noisy


# -- 4. fit once, apply to many ------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=2, random_state=3),
        zse.PMM(4, max_iter=3, random_state=3, gain=2.0, offset=1.0),
        zse.GPMM(4, max_iter=3, random_state=3, class_alpha=True),
        zse.Identity(),
    ],
    ids=["sssc", "pmm", "gpmm", "identity"],
)
def test_model_file_round_trip_gives_identical_estimates(tmp_path, model):
    image = counts_image(seed=8) + 2
    model.fit(zse.extract_patches(image, 6))
    zse.save_model(model, tmp_path / "m.zse", patch_size=(6, 6))
    loaded = zse.load_model(tmp_path / "m.zse")
    assert type(loaded) is type(model) and loaded.patch_size_ == (6, 6)
    assert loaded.get_params() == model.get_params()
    other = counts_image(seed=9) + 2
    np.testing.assert_array_equal(
        loaded.estimate(zse.extract_patches(other, 6)),
        model.estimate(zse.extract_patches(other, 6)),
    )
    a = zse.reconstruct(other, model, patch_size=6, n_threads=1)
    b = zse.reconstruct(other, loaded, patch_size=6, n_threads=2)
    for stat in a:
        np.testing.assert_array_equal(a[stat], b[stat])


def test_bad_model_files_are_refused_clearly(tmp_path):
    model = zse.PMM(4, max_iter=2, random_state=0).fit(zse.extract_patches(counts_image(), 6))
    good = zse.save_model(model, tmp_path / "good.zse")
    with pytest.raises(ModelFileError, match="not a readable zse model file"):
        (tmp_path / "junk.zse").write_bytes(b"PK\x03\x04 not really a zip")
        zse.load_model(tmp_path / "junk.zse")
    with pytest.raises(FileNotFoundError):
        zse.load_model(tmp_path / "missing.zse")
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"][()]))

    def rewrite(name, **changes):
        edited = dict(meta, **changes)
        np.savez(tmp_path / name, **{**arrays, "meta": np.array(json.dumps(edited))})
        return tmp_path / name

    with pytest.raises(ModelFileError, match="version 0 .* reads version 1"):
        zse.load_model(rewrite("old.npz", version=0))
    with pytest.raises(ModelFileError, match="not a zse model file"):
        zse.load_model(rewrite("other.npz", format="something-else"))
    with pytest.raises(ModelFileError, match="unknown kind"):
        zse.load_model(rewrite("kind.npz", model="os.system"))
    with pytest.raises(ModelFileError, match="inconsistent"):
        zse.load_model(rewrite("shape.npz", params=dict(meta["params"], n_components=7)))
    # Object arrays would need pickle, which loading never allows.
    np.savez(
        tmp_path / "pickled.npz", meta=np.array(json.dumps(meta)), array__W_=np.array([object()])
    )
    with pytest.raises(ModelFileError):
        zse.load_model(tmp_path / "pickled.npz")
    assert meta["format"] == MODEL_FORMAT


def test_zse_fit_then_denoise_with_the_model_file(tmp_path, capsys):
    for seed in (10, 11):
        tifffile.imwrite(tmp_path / f"train{seed}.tif", counts_image(seed=seed).astype(np.uint16))
    tifffile.imwrite(tmp_path / "new.tif", counts_image(seed=12).astype(np.uint16))
    model_path = tmp_path / "model.zse"
    assert main(["fit", str(tmp_path / "train*.tif"), "-o", str(model_path), "-q", *FAST_GPMM]) == 0
    loaded = zse.load_model(model_path)
    assert isinstance(loaded, zse.GPMM) and loaded.patch_size_ == (8, 8)
    out = tmp_path / "o"
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "new.tif"),
                "-o",
                str(out),
                "-q",
                "--model-file",
                str(model_path),
            ]
        )
        == 0
    )
    expected = zse.reconstruct(counts_image(seed=12).astype(np.uint16), loaded, patch_size=8)[
        "mean"
    ]
    np.testing.assert_array_equal(
        tifffile.imread(out / "new_mean.tif"), expected.astype(np.float32)
    )
    record = json.loads((out / "new.zse.json").read_text())
    assert record["model_file"] == str(model_path) and record["model_choice"] is None
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "new.tif"),
                "-o",
                str(tmp_path / "p"),
                "-q",
                "--model-file",
                str(model_path),
                "--H",
                "8",
            ]
        )
        == 2
    )
    assert "would not be used: --H" in capsys.readouterr().err

"""The image-native pipeline: 3-D patches, streamed estimate + merge, training on a subset."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import zse
from zse import _core
from zse.reconstruct import training_positions


def numpy_patches(volume, patch):
    windows = sliding_window_view(volume, patch)
    return windows.reshape(-1, int(np.prod(patch)))


def numpy_merge(estimates, shape, patch, median_kind="average"):
    """Per-voxel lists of estimates by brute force, then the statistics."""
    lists = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        lists[idx] = []
    corners = list(np.ndindex(tuple(s - p + 1 for s, p in zip(shape, patch))))
    for n, corner in enumerate(corners):
        for d, offset in enumerate(np.ndindex(tuple(patch))):
            lists[tuple(c + o for c, o in zip(corner, offset))].append(estimates[n, d])
    out = {k: np.zeros(shape) for k in ("mean", "var", "median", "count")}
    for idx in np.ndindex(shape):
        v = np.array(lists[idx])
        out["mean"][idx] = v.mean()
        out["var"][idx] = v.var()
        out["count"][idx] = len(v)
        s = np.sort(v)
        m = len(s)
        out["median"][idx] = (
            s[(m - 1) // 2]
            if (median_kind == "lower" or m % 2)
            else 0.5 * (s[m // 2 - 1] + s[m // 2])
        )
    return out


@pytest.mark.parametrize(
    ("shape", "patch"),
    [
        ((5, 7, 6), (2, 3, 2)),
        ((4, 4, 4), (4, 4, 4)),
        ((6, 5, 9), (3, 3, 3)),
        ((3, 8, 7), (1, 2, 5)),
    ],
)
def test_3d_extract_matches_numpy(rng, shape, patch):
    volume = rng.normal(size=shape)
    np.testing.assert_array_equal(zse.extract_patches(volume, patch), numpy_patches(volume, patch))


@pytest.mark.parametrize("median_kind", ["average", "lower"])
@pytest.mark.parametrize(
    ("shape", "patch"), [((5, 7, 6), (2, 3, 2)), ((6, 5, 9), (3, 3, 3)), ((3, 8, 7), (1, 2, 5))]
)
def test_3d_merge_matches_brute_force(rng, shape, patch, median_kind):
    N = int(np.prod([s - p + 1 for s, p in zip(shape, patch)]))
    estimates = rng.normal(size=(N, int(np.prod(patch))))
    stats = ("mean", "var", "median", "count")
    got = zse.merge_patches(estimates, shape, patch, stats, median_kind=median_kind)
    ref = numpy_merge(estimates, shape, patch, median_kind)
    for stat in stats:
        np.testing.assert_allclose(got[stat], ref[stat], rtol=1e-12, atol=1e-12, err_msg=stat)
    assert got["count"].min() == 1 and got["count"].max() <= np.prod(patch)


def test_3d_merge_of_exact_patches_gives_the_volume_and_is_thread_invariant(rng):
    volume = rng.normal(size=(7, 9, 8))
    patches = zse.extract_patches(volume, (3, 2, 4))
    one = zse.merge_patches(
        patches, volume.shape, (3, 2, 4), ("mean", "var", "median"), n_threads=1
    )
    two = zse.merge_patches(
        patches, volume.shape, (3, 2, 4), ("mean", "var", "median"), n_threads=2
    )
    np.testing.assert_allclose(one["mean"], volume, rtol=0, atol=1e-15)
    assert one["var"].max() < 1e-28
    for stat in one:
        np.testing.assert_array_equal(one[stat], two[stat])


def test_2d_patch_on_a_volume_says_what_to_do(rng):
    with pytest.raises(ValueError, match=r"is 2-D but the input is a 3-D volume; give a 3-D patch"):
        zse.reconstruct(rng.normal(size=(5, 6, 7)), zse.Identity(), patch_size=(3, 3))
    with pytest.raises(ValueError, match="smaller than the patch size"):
        zse.reconstruct(rng.normal(size=(2, 6, 7)), zse.Identity(), patch_size=3)


def _models():
    return {
        "identity": lambda: zse.Identity(),
        "pmm": lambda: zse.PMM(4, max_iter=4, random_state=0),
        "gpmm": lambda: zse.GPMM(4, max_iter=4, learn_alpha=False, random_state=0),
        # All 2^H states: the estimate does not depend on how states are searched.
        "sssc": lambda: zse.SSSC(
            4, n_states=16, n_parents=4, n_children=1, max_iter=4, random_state=0
        ),
    }


def counts_volume(shape, seed=0):
    rng = np.random.default_rng(seed)
    smooth = np.exp(np.cumsum(rng.normal(scale=0.3, size=shape), axis=-1) / 3)
    return rng.poisson(4 * smooth / smooth.mean()).astype(float)


@pytest.mark.parametrize("name", ["identity", "pmm", "gpmm", "sssc"])
@pytest.mark.parametrize(
    ("shape", "patch"),
    [((13, 11), (3, 4)), ((9, 10), (3, 3)), ((5, 7, 6), (2, 3, 2)), ((4, 6, 5), (2, 2, 2))],
)
def test_streamed_path_equals_the_patch_matrix_path(name, shape, patch):
    volume = counts_volume(shape)
    stats = ("mean", "var", "median", "count") + (() if name == "identity" else ("pvar",))
    model = _models()[name]()
    got = zse.reconstruct(volume, model, patch_size=patch, stats=stats, n_train=10**9)
    # The same fitted model through the (n_patches, D) matrices.
    patches = zse.extract_patches(volume, patch)
    if name == "identity":
        est, var = patches, None
    else:
        est, var = model.estimate(patches, return_variance=True)
    ref = zse.merge_patches(est, volume.shape, patch, ("mean", "var", "median", "count"))
    if var is not None:
        ref["pvar"] = zse.merge_patches(var, volume.shape, patch, ("mean",))["mean"] + ref["var"]
    for stat in stats:
        scale = max(1.0, float(np.abs(ref[stat]).max()))
        np.testing.assert_allclose(got[stat], ref[stat], rtol=0, atol=1e-12 * scale, err_msg=stat)


@pytest.mark.parametrize("name", ["identity", "pmm", "gpmm", "sssc"])
def test_streamed_path_is_thread_invariant(name):
    volume = counts_volume((40, 37), seed=2)
    outs = []
    for threads in (1, 2):
        model = _models()[name]()
        model.set_params(**({"n_threads": threads} if name != "identity" else {}))
        outs.append(
            zse.reconstruct(
                volume,
                model,
                patch_size=4,
                stats=("mean", "var", "median"),
                n_train=500,
                n_threads=threads,
            )
        )
    for stat in outs[0]:
        np.testing.assert_array_equal(outs[0][stat], outs[1][stat])


@pytest.mark.parametrize("patience", [0, 2])
def test_sssc_with_search_is_thread_invariant_on_a_volume_and_an_image(patience):
    for shape, patch in (((6, 20, 18), (2, 3, 3)), ((48, 45), (4, 4))):
        volume = counts_volume(shape, seed=3)
        outs = []
        for threads in (1, 2):
            model = zse.SSSC(
                8, n_states=8, n_parents=4, max_iter=3, random_state=1, n_threads=threads,
                search_patience=patience,
            )  # fmt: skip
            outs.append(
                zse.reconstruct(
                    volume,
                    model,
                    patch_size=patch,
                    stats=("mean", "pvar"),
                    n_train=300,
                    n_threads=threads,
                )
            )
        for stat in outs[0]:
            np.testing.assert_array_equal(outs[0][stat], outs[1][stat])


def test_search_patience_ends_searches_early_and_only_when_it_can():
    """Patience P > n_warm_sweeps can never end a search: bit-identical to P = 0; a small P ends
    searches whose sets stopped changing, so the estimate changes, slightly."""
    image = counts_volume((64, 64), seed=5)
    model = zse.SSSC(16, n_states=8, n_parents=4, max_iter=5, random_state=2, n_warm_sweeps=6)
    full = zse.reconstruct(image, model, stats="mean", n_train=500)["mean"]
    outs = {}
    for patience in (0, 7, 1):
        model.set_params(search_patience=patience)
        outs[patience] = model.estimate_volume(
            image[None], (1, 8, 8), ["mean"], np.zeros(0, np.int64), "average", 2
        )["mean"][0]
    np.testing.assert_array_equal(outs[0], outs[7])
    assert not np.array_equal(outs[0], outs[1])
    assert np.sqrt(np.mean((outs[1] - outs[0]) ** 2)) < 0.1 * np.std(full)


def test_training_positions_are_seeded_sorted_and_distinct():
    a = training_positions(10**6, 5000, seed=3)
    assert len(a) == 5000 and np.all(np.diff(a) > 0) and a[0] >= 0 and a[-1] < 10**6
    np.testing.assert_array_equal(a, training_positions(10**6, 5000, seed=3))
    assert not np.array_equal(a, training_positions(10**6, 5000, seed=4))
    np.testing.assert_array_equal(training_positions(100, "auto", 0), np.arange(100))
    assert (
        len(training_positions(10**6, "auto", 0)) == zse.reconstruct.__globals__["AUTO_TRAIN_MAX"]
    )
    for bad in ("all", 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_train"):
            training_positions(100, bad, 0)


def test_auto_training_size_is_the_models():
    from zse.models import AUTO_TRAIN_MAX

    assert zse.SSSC().auto_train_size == zse.SSSC.auto_train_size < AUTO_TRAIN_MAX
    assert zse.GPMM(4).auto_train_size == zse.Identity().auto_train_size == AUTO_TRAIN_MAX
    image = np.random.default_rng(0).normal(size=(140, 140))  # 137^2 = 18769 patches of 4x4
    model = zse.SSSC(4, n_states=4, n_parents=2, n_children=1, max_iter=1, random_state=0)
    zse.reconstruct(image, model, patch_size=4, stats=("mean",))
    assert model.K_.shape[0] == zse.SSSC.auto_train_size


def test_subset_training_is_deterministic_and_uses_the_subset():
    volume = counts_volume((40, 40), seed=5)
    runs = [zse.SSSC(6, n_states=8, n_parents=4, max_iter=3, random_state=7) for _ in range(2)]
    outs = [zse.reconstruct(volume, m, patch_size=4, n_train=200, stats=("mean",)) for m in runs]
    np.testing.assert_array_equal(outs[0]["mean"], outs[1]["mean"])
    assert runs[0].K_.shape[0] == 200
    positions = training_positions(37 * 37, 200, 7)
    train = zse.extract_patches(volume, 4)[positions]
    refit = zse.SSSC(6, n_states=8, n_parents=4, max_iter=3, random_state=7).fit(train)
    np.testing.assert_array_equal(refit.W_, runs[0].W_)


def test_reconstruct_refuses_work_that_does_not_fit_in_memory(monkeypatch):
    import sys

    module = sys.modules["zse.reconstruct"]
    monkeypatch.setattr(module, "available_memory", lambda: 10 * 1024 * 1024)
    with pytest.raises(MemoryError, match=r"needs about .*n_train .*--n-train"):
        zse.reconstruct(np.zeros((600, 600)), zse.SSSC(), stats=("mean", "var", "pvar"))


def test_plan_does_not_depend_on_threads_except_the_wave():
    a = _core.stream_plan((1, 500, 400), (1, 6, 6), True, False, "auto", 1)
    b = _core.stream_plan((1, 500, 400), (1, 6, 6), True, False, "auto", 8)
    assert a["band_length"] == b["band_length"] and a["n_bands"] == b["n_bands"]
    assert a["wave"] == 1 and b["wave"] == 8


def test_cli_denoises_an_mrc_volume_into_mrc_volumes(tmp_path):
    import mrcfile

    from zse.cli import main

    volume = counts_volume((9, 12, 11), seed=4).astype(np.float32)
    with mrcfile.new(tmp_path / "tomo.rec") as mrc:
        mrc.set_data(volume)
    out = tmp_path / "out"
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "tomo.rec"),
                "-o",
                str(out),
                "--patch-size",
                "3,3,3",
                "--model",
                "identity",
                "--stats",
                "mean,var,count",
                "-q",
            ]
        )
        == 0
    )
    with mrcfile.open(out / "tomo_mean.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, volume)
        assert mrc.is_volume()
    with mrcfile.open(out / "tomo_count.mrc") as mrc:
        assert mrc.data.shape == volume.shape and mrc.data.max() == 27
    assert (out / "tomo_mean.png").is_file()
    # A tomogram goes through the 3-D path with 4 x 4 x 4 patches by default.
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "tomo.rec"),
                "-o",
                str(tmp_path / "o2"),
                "--model",
                "identity",
                "-q",
            ]
        )
        == 0
    )
    import json

    assert json.loads((tmp_path / "o2" / "tomo.zse.json").read_text())["patch_size"] == [4, 4, 4]


def test_cli_n_train_reaches_the_model(tmp_path):
    import json

    import tifffile

    from zse.cli import main

    tifffile.imwrite(tmp_path / "a.tif", counts_volume((30, 30)).astype(np.float32))
    args = [
        "denoise",
        str(tmp_path / "a.tif"),
        "-o",
        str(tmp_path / "o"),
        "--model",
        "sssc",
        "--H",
        "4",
        "--n-states",
        "4",
        "--n-parents",
        "2",
        "--max-iter",
        "2",
        "--n-train",
        "100",
        "-q",
    ]
    assert main(args) == 0
    assert json.loads((tmp_path / "o" / "a.zse.json").read_text())["n_train"] == 100
    with pytest.raises(SystemExit):
        main([*args[:-3], "--n-train", "0"])


def test_training_patches_search_n_train_sweeps_from_their_trained_states():
    """Trained on every patch, the streamed estimate with one sweep per training patch equals
    the matrix estimate of those patches (same states, same random streams), merged; zero
    sweeps keeps the trained states and changes the result."""
    image = counts_volume((30, 30), seed=3)
    model = zse.SSSC(8, n_states=6, n_parents=3, max_iter=4, random_state=1)
    one = zse.reconstruct(image, model, patch_size=5, stats="mean", n_train="auto")["mean"]
    assert model.K_.shape[0] == 26 * 26  # every patch was a training patch
    patches = zse.extract_patches(image, 5)
    merged = zse.merge_patches(model.estimate(patches), image.shape, 5, ("mean",))["mean"]
    np.testing.assert_allclose(one, merged, rtol=1e-12, atol=1e-12)
    positions = np.arange(26 * 26, dtype=np.int64)
    model.set_params(n_train_sweeps=0)
    none = model.estimate_volume(image[None], (1, 5, 5), ["mean"], positions, "average", 2)
    assert not np.allclose(none["mean"][0], one)

"""Every bad input gets a clear exception naming the problem."""

import numpy as np
import pytest

import zse


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros(10), ValueError, "must be 2-D"),
        (np.zeros((2, 3, 4, 5)), ValueError, "must be 2-D"),
        (np.zeros((0, 5)), ValueError, "empty"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "NaN or inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "NaN or inf"),
        (np.zeros((4, 4), dtype=complex), TypeError, "real numbers"),
        (np.zeros((4, 4), dtype=bool), TypeError, "real numbers"),
        (np.array([[1, None], [2, 3]], dtype=object), TypeError, "real numbers"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "real numbers"),
    ],
)
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        zse.extract_patches(image, 1)
    with pytest.raises(error, match=match):
        zse.reconstruct(image, zse.Identity(), patch_size=1)


@pytest.mark.parametrize(
    ("patch_size", "error", "match"),
    [
        (0, ValueError, "must be >= 1"),
        (-3, ValueError, "must be >= 1"),
        ((2, 0), ValueError, "must be >= 1"),
        (2.5, TypeError, "must be an integer"),
        ("6", TypeError, "patch_size must be"),
        ((1, 2, 3), TypeError, "patch_size must be"),
        (True, TypeError, "patch_size must be"),
    ],
)
def test_bad_patch_sizes(patch_size, error, match):
    with pytest.raises(error, match=match):
        zse.extract_patches(np.zeros((8, 8)), patch_size)


def test_image_smaller_than_patch():
    with pytest.raises(ValueError, match=r"smaller than the patch size 6x6"):
        zse.extract_patches(np.zeros((5, 40)), 6)
    with pytest.raises(ValueError, match=r"smaller than the patch size"):
        zse.reconstruct(np.zeros((5, 5)), zse.Identity(), patch_size=6)
    with pytest.raises(ValueError, match=r"smaller than the patch size"):
        zse.merge_patches(np.zeros((1, 36)), (5, 5), 6)


def test_estimates_with_wrong_shape():
    with pytest.raises(ValueError, match=r"needs shape \(12, 4\)"):
        zse.merge_patches(np.zeros((12, 5)), (4, 5), 2)
    with pytest.raises(ValueError, match=r"needs shape \(12, 4\)"):
        zse.merge_patches(np.zeros((11, 4)), (4, 5), 2)
    with pytest.raises(ValueError, match=r"needs shape"):
        zse.merge_patches(np.zeros(48), (4, 5), 2)


def test_non_finite_estimates_are_rejected_by_the_kernel():
    estimates = np.zeros((12, 4))
    estimates[7, 1] = np.nan
    for stat in ("mean", "var", "median"):
        with pytest.raises(ValueError, match="NaN or inf"):
            zse.merge_patches(estimates, (4, 5), 2, stat)
    estimates[7, 1] = 1e300  # finite, but its square overflows the variance sums
    with pytest.raises(ValueError, match="overflow"):
        zse.merge_patches(estimates, (4, 5), 2, "var")


def test_bad_estimate_dtypes():
    with pytest.raises(TypeError, match="real numbers"):
        zse.merge_patches(np.zeros((12, 4), dtype=complex), (4, 5), 2)


@pytest.mark.parametrize(
    ("stats", "error", "match"),
    [
        (("mean", "average"), ValueError, "unknown stat 'average'"),
        ((), ValueError, "stats is empty"),
        ((1,), TypeError, "must be strings"),
        (5, TypeError, "stats must be"),
    ],
)
def test_unknown_stats(stats, error, match):
    with pytest.raises(error, match=match):
        zse.merge_patches(np.zeros((12, 4)), (4, 5), 2, stats)
    with pytest.raises(error, match=match):
        zse.reconstruct(np.zeros((4, 5)), zse.Identity(), stats=stats, patch_size=2)


def test_pvar_needs_a_model_with_predictive_variance():
    with pytest.raises(ValueError, match="pvar"):
        zse.reconstruct(np.zeros((4, 5)), zse.Identity(), stats=("mean", "pvar"), patch_size=2)


def test_bad_weights():
    with pytest.raises(ValueError, match="finite and > 0"):
        zse.merge_patches(np.zeros((12, 4)), (4, 5), 2, weights=np.r_[np.ones(11), 0.0])
    with pytest.raises(ValueError, match=r"expected \(12,\)"):
        zse.merge_patches(np.zeros((12, 4)), (4, 5), 2, weights=np.ones(5))
    with pytest.raises(ValueError, match="not for median"):
        zse.merge_patches(np.zeros((12, 4)), (4, 5), 2, "median", weights=np.ones(12))


def test_bad_median_kind_and_image_shape():
    with pytest.raises(ValueError, match="median_kind"):
        zse.merge_patches(np.zeros((12, 4)), (4, 5), 2, "median", median_kind="upper")
    with pytest.raises(ValueError, match="image_shape"):
        zse.merge_patches(np.zeros((12, 4)), (4, 5, 1, 2), 2)


@pytest.mark.parametrize(
    ("n_threads", "error"),
    [(0, ValueError), (-1000, ValueError), (1.5, TypeError), ("2", TypeError)],
)
def test_bad_thread_counts(n_threads, error):
    with pytest.raises(error, match="n_threads"):
        zse.extract_patches(np.zeros((4, 4)), 2, n_threads=n_threads)


def test_negative_thread_count_means_all_but():
    out = zse.extract_patches(np.ones((4, 4)), 2, n_threads=-1)
    assert out.shape == (9, 4)


def test_model_without_the_interface():
    with pytest.raises(TypeError, match="fit.*estimate"):
        zse.reconstruct(np.zeros((4, 4)), object(), patch_size=2)


def test_unfitted_model_estimate():
    with pytest.raises(zse.NotFittedError, match="not fitted"):
        zse.Identity().estimate(np.zeros((3, 4)))


def test_fitted_model_with_other_patch_size():
    model = zse.Identity().fit(np.zeros((5, 9)))
    with pytest.raises(ValueError, match="fitted on patches of 9 pixels"):
        zse.reconstruct(np.zeros((8, 8)), model, patch_size=2)


def test_cpp_precondition_surfaces_as_value_error():
    from zse import _core

    with pytest.raises(ValueError, match="must be 2-D"):
        _core.extract_patches(np.zeros((2, 2, 2)), 1, 1, 1)
    with pytest.raises(ValueError, match="smaller than the patch"):
        _core.extract_patches(np.zeros((2, 2)), 3, 1, 1)
    with pytest.raises(ValueError, match="unknown stat"):
        _core.merge_patches(np.zeros((1, 4)), 2, 2, 2, 2, ["mode"], None, "average", 1)
    with pytest.raises(TypeError):  # .noconvert(): no hidden copy of a float32 array
        _core.extract_patches(np.zeros((4, 4), dtype=np.float32), 2, 2, 1)

import numpy as np
import pytest

import zse


def numpy_patches(image, ph, pw):
    rows, cols = image.shape
    return np.array(
        [
            image[r0 : r0 + ph, c0 : c0 + pw].ravel()
            for r0 in range(rows - ph + 1)
            for c0 in range(cols - pw + 1)
        ]
    )


def numpy_merge(estimates, shape, ph, pw):
    """Gather every pixel's estimates explicitly and reduce them with NumPy."""
    rows, cols = shape
    values = [[[] for _ in range(cols)] for _ in range(rows)]
    n = 0
    for r0 in range(rows - ph + 1):
        for c0 in range(cols - pw + 1):
            patch = estimates[n].reshape(ph, pw)
            for i in range(ph):
                for j in range(pw):
                    values[r0 + i][c0 + j].append(patch[i, j])
            n += 1
    mean = np.array([[np.mean(v) for v in row] for row in values])
    median = np.array([[np.median(v) for v in row] for row in values])
    var = np.array([[np.var(v) for v in row] for row in values])
    lower = np.array([[np.sort(v)[(len(v) - 1) // 2] for v in row] for row in values])
    count = np.array([[len(v) for v in row] for row in values], dtype=float)
    return mean, median, var, lower, count


def coverage_formula(shape, ph, pw):
    """ALGORITHM.md §2.2: m(r, c) = #valid r0 * #valid c0."""
    rows, cols = shape
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    n_r0 = np.minimum(r, rows - ph) - np.maximum(0, r - ph + 1) + 1
    n_c0 = np.minimum(c, cols - pw) - np.maximum(0, c - pw + 1) + 1
    return (n_r0 * n_c0).astype(float)


SHAPES_AND_PATCHES = [
    ((16, 16), (4, 4)),
    ((13, 17), (3, 5)),
    ((9, 7), (6, 2)),
    ((5, 5), (5, 5)),
    ((1, 8), (1, 3)),
]


@pytest.mark.parametrize(("shape", "patch"), SHAPES_AND_PATCHES)
def test_extract_matches_numpy(rng, shape, patch):
    image = rng.normal(size=shape)
    patches = zse.extract_patches(image, patch)
    np.testing.assert_array_equal(patches, numpy_patches(image, *patch))


@pytest.mark.parametrize(("shape", "patch"), SHAPES_AND_PATCHES)
def test_identity_round_trip_is_exact(rng, shape, patch):
    image = rng.normal(loc=50.0, scale=20.0, size=shape)
    out = zse.merge_patches(
        zse.extract_patches(image, patch), shape, patch, ("mean", "median", "var", "count")
    )
    np.testing.assert_array_equal(out["mean"], image)
    np.testing.assert_array_equal(out["median"], image)
    np.testing.assert_array_equal(out["var"], np.zeros(shape))
    np.testing.assert_array_equal(out["count"], coverage_formula(shape, *patch))


def test_coverage_corners_and_interior():
    count = zse.merge_patches(np.zeros((36, 16)), (9, 9), 4, "count")["count"]
    assert count[0, 0] == count[-1, -1] == count[0, -1] == count[-1, 0] == 1
    assert count[4, 4] == 16
    assert count.sum() == 36 * 16


@pytest.mark.parametrize(("shape", "patch"), SHAPES_AND_PATCHES)
def test_merge_matches_numpy_reference(rng, shape, patch):
    n = (shape[0] - patch[0] + 1) * (shape[1] - patch[1] + 1)
    estimates = rng.normal(loc=3.0, scale=2.0, size=(n, patch[0] * patch[1]))
    mean, median, var, lower, count = numpy_merge(estimates, shape, *patch)
    out = zse.merge_patches(estimates, shape, patch, ("mean", "median", "var", "count"))
    np.testing.assert_allclose(out["mean"], mean, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(out["var"], var, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(out["median"], median)
    np.testing.assert_array_equal(out["count"], count)
    low = zse.merge_patches(estimates, shape, patch, "median", median_kind="lower")["median"]
    np.testing.assert_array_equal(low, lower)


def test_variance_is_population_variance_and_zero_at_corners(rng):
    estimates = rng.normal(size=(9, 4))
    var = zse.merge_patches(estimates, (4, 4), 2, "var")["var"]
    assert var[0, 0] == 0.0 and var[3, 3] == 0.0
    # Pixel (1, 1) is covered by patches 0, 1, 3, 4 at in-patch offsets 3, 2, 1, 0.
    values = [estimates[0, 3], estimates[1, 2], estimates[3, 1], estimates[4, 0]]
    assert var[1, 1] == pytest.approx(np.var(values), rel=1e-12)


def test_variance_is_accurate_with_a_large_offset(rng):
    # Naive sum-of-squares would lose every digit here; the shifted algorithm must not.
    n = 8 * 8
    estimates = 1e9 + rng.normal(scale=1e-3, size=(n, 9))
    _, _, var_ref, _, _ = numpy_merge(estimates - 1e9, (10, 10), 3, 3)
    var = zse.merge_patches(estimates, (10, 10), 3, "var")["var"]
    np.testing.assert_allclose(var, var_ref, rtol=1e-5, atol=1e-15)


def test_weighted_mean_and_var(rng):
    shape, patch = (7, 8), (3, 3)
    n = 5 * 6
    estimates = rng.normal(size=(n, 9))
    weights = rng.uniform(0.5, 2.0, size=n)
    out = zse.merge_patches(estimates, shape, patch, ("mean", "var"), weights=weights)
    # Reference: weighted moments of each pixel's estimates.
    r, c = 3, 4
    vals, ws = [], []
    for r0 in range(5):
        for c0 in range(6):
            i, j = r - r0, c - c0
            if 0 <= i < 3 and 0 <= j < 3:
                vals.append(estimates[r0 * 6 + c0, i * 3 + j])
                ws.append(weights[r0 * 6 + c0])
    vals, ws = np.array(vals), np.array(ws)
    wmean = np.sum(ws * vals) / ws.sum()
    assert out["mean"][r, c] == pytest.approx(wmean, rel=1e-12)
    assert out["var"][r, c] == pytest.approx(np.sum(ws * (vals - wmean) ** 2) / ws.sum(), rel=1e-10)
    uniform = zse.merge_patches(estimates, shape, patch, ("mean",), weights=np.full(n, 3.0))["mean"]
    np.testing.assert_allclose(
        uniform, zse.merge_patches(estimates, shape, patch, "mean")["mean"], rtol=1e-14
    )


def test_results_identical_for_one_and_two_threads(rng):
    image = rng.normal(size=(61, 53))
    p1 = zse.extract_patches(image, (5, 4), n_threads=1)
    p2 = zse.extract_patches(image, (5, 4), n_threads=2)
    np.testing.assert_array_equal(p1, p2)
    estimates = p1 + rng.normal(size=p1.shape)
    stats = ("mean", "median", "var", "count")
    m1 = zse.merge_patches(estimates, image.shape, (5, 4), stats, n_threads=1)
    m2 = zse.merge_patches(estimates, image.shape, (5, 4), stats, n_threads=2)
    for name in stats:
        np.testing.assert_array_equal(m1[name], m2[name])


def test_integer_and_float32_inputs_are_converted_once(rng):
    image = rng.integers(0, 255, size=(12, 12)).astype(np.uint8)
    np.testing.assert_array_equal(
        zse.extract_patches(image, 3), zse.extract_patches(image.astype(np.float64), 3)
    )
    f32 = zse.extract_patches(image.astype(np.float32), 3)
    assert f32.dtype == np.float64


def test_non_contiguous_views_are_handled(rng):
    image = rng.normal(size=(20, 30))
    view = image[::2, ::3]
    np.testing.assert_array_equal(
        zse.extract_patches(view, 2), numpy_patches(np.ascontiguousarray(view), 2, 2)
    )

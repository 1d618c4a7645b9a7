"""Mistakes a user makes with the API and the command line are refused before any work, with a
message that names the argument and what it expects (not a message of NumPy, pybind11 or
Python's argument binding)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import zse
from zse.cli import main

IMAGE = np.random.default_rng(0).normal(100.0, 5.0, size=(24, 24))


@pytest.mark.parametrize("cls", [zse.SSSC, zse.GPMM, zse.PMM])
def test_a_model_class_instead_of_an_instance_is_named(cls):
    with pytest.raises(
        TypeError, match=rf"the class zse\.{cls.__name__}: .* zse\.{cls.__name__}\(\)"
    ):
        zse.reconstruct(IMAGE, cls)


def test_a_progress_that_is_not_callable_is_refused_before_the_fit():
    model = zse.SSSC(H=4, n_states=8, max_iter=1, random_state=0)
    with pytest.raises(TypeError, match=r"progress must be None or a callable.*got 5"):
        zse.reconstruct(IMAGE, model, progress=5)
    assert not zse.models.is_fitted(model)
    with pytest.raises(TypeError, match=r"progress must be None or a callable.*got 'yes'"):
        model.fit(zse.extract_patches(IMAGE, 4), progress="yes")
    assert not zse.models.is_fitted(model)


def test_an_image_given_as_model_file_says_what_it_is(tmp_path, capsys):
    image = tmp_path / "micrograph.tif"
    tifffile.imwrite(image, IMAGE.astype(np.float32))
    with pytest.raises(zse.ModelFileError, match="not a zse model file .it is a TIFF image"):
        zse.load_model(image)
    argv = ["denoise", str(image), "-o", str(tmp_path / "o"), "--model-file", str(image)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "not a zse model file (it is a TIFF image)" in err and "unsafely" not in err


def test_a_count_beyond_a_c_int_is_refused_by_name(tmp_path, capsys):
    too_large = 9223372036854775808
    with pytest.raises(ValueError, match=r"search_patience must be an int >= 0 and at most"):
        zse.SSSC(H=4, n_states=8, search_patience=too_large).fit(zse.extract_patches(IMAGE, 4))
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, IMAGE.astype(np.float32))
    argv = ["denoise", str(image), "-o", str(tmp_path / "o"), "--model", "sssc", "-q"]
    assert main([*argv, "--search-patience", str(too_large)]) == 2
    err = capsys.readouterr().err
    assert "search_patience must be an int >= 0 and at most 2147483647" in err
    assert "incompatible function arguments" not in err


def test_a_sparse_matrix_is_refused_as_sparse():
    sparse = pytest.importorskip("scipy.sparse")
    patches = sparse.csr_matrix(np.ones((20, 16)))
    with pytest.raises(TypeError, match=r"patches must be a dense array.*toarray\(\)"):
        zse.SSSC(H=4, n_states=8, n_parents=4).fit(patches)
    with pytest.raises(TypeError, match=r"image must be a dense array"):
        zse.reconstruct(sparse.csr_matrix(IMAGE), "sssc")

"""Damaged model files and checkpoints are clear errors (a generator of damages and a hypothesis
property test over mutated headers)."""

import json
import warnings

import numpy as np
import pytest
import tifffile

import zse
from zse.cli import main
from zse.models import CheckpointError
from zse.models.files import ModelFileError


def write_image(path, seed=0, shape=(40, 40)):
    image = 100 + 10 * np.random.default_rng(seed).normal(size=shape)
    tifffile.imwrite(path, image.astype(np.float32))
    return path.read_bytes()


# -- damaged model files and checkpoints ---------------------------------------------------------
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    patches = np.random.default_rng(1).poisson(6.0, size=(300, 16)).astype(float)
    fitted = {
        "SSSC": zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=2, random_state=0),
        "PMM": zse.PMM(3, max_iter=2, random_state=0),
        "GPMM": zse.GPMM(3, max_iter=2, random_state=0, class_alpha=True, alpha_max=1e3),
        "Identity": zse.Identity(),
    }
    paths = {}
    for name, model in fitted.items():
        with pytest.warns(UserWarning) if name == "GPMM" else _no_warning():
            model.fit(patches)
        paths[name] = zse.save_model(model, folder / f"{name}.zse", patch_size=(4, 4))
    return paths


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def read_archive(path):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("meta")[()])), arrays


def write_archive(path, meta, arrays):
    with open(path, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def _damaged(meta, arrays):
    """(description, meta, arrays) of files damaged the ways issue 21 lists, and more."""
    name = next(iter(a for a in arrays))
    yield "meta is a list", [meta], arrays
    yield "params is a string", {**meta, "params": "H=4"}, arrays
    yield "scalars is a list", {**meta, "scalars": [1, 2]}, arrays
    yield "model is a number", {**meta, "model": 3}, arrays
    yield "patch size is a string", {**meta, "patch_size": "4x4"}, arrays
    yield "patch size of other pixels", {**meta, "patch_size": [2, 2]}, arrays
    yield "patch size with a bool", {**meta, "patch_size": [True, 16]}, arrays
    yield (
        "a scalar named like a method",
        {
            **meta,
            "scalars": {**meta["scalars"], "estimate": 1},
        },
        arrays,
    )
    yield "an unknown parameter", {**meta, "params": {**meta["params"], "fit": 1}}, arrays
    yield (
        "a parameter of a list type",
        {**meta, "params": {**meta["params"], "verbose": [1]}},
        arrays,
    )
    yield "a missing array", meta, {k: v for k, v in arrays.items() if k != name}
    yield "an array renamed like a method", meta, {**arrays, "array__fit": arrays[name]}
    yield (
        "a scalar of the wrong type",
        {
            **meta,
            "scalars": {k: "x" for k in meta["scalars"]},
        },
        arrays,
    )
    yield "a missing scalar", {**meta, "scalars": {}}, arrays
    yield "an array of the wrong shape", meta, {**arrays, name: arrays[name][..., :1]}
    yield "a non-finite array", meta, {**arrays, name: np.full_like(arrays[name], np.nan)}
    yield "a string array", meta, {**arrays, name: np.array(["a"] * 3)}


@pytest.mark.parametrize("kind", ["SSSC", "PMM", "GPMM"])
def test_damaged_model_files_are_model_file_errors(saved_models, tmp_path, kind):
    meta, arrays = read_archive(saved_models[kind])
    for description, bad_meta, bad_arrays in _damaged(meta, arrays):
        path = tmp_path / "bad.zse"
        write_archive(path, bad_meta, bad_arrays)
        with pytest.raises(ModelFileError, match=str(path).replace("\\", "\\\\")) as caught:
            zse.load_model(path)
        assert caught.value is not None, description


def test_damaged_model_file_on_the_command_line_is_exit_2(saved_models, tmp_path, capsys):
    meta, arrays = read_archive(saved_models["PMM"])
    write_archive(tmp_path / "bad.zse", {**meta, "scalars": [1]}, arrays)
    write_image(tmp_path / "a.tif")
    code = main(
        ["denoise", str(tmp_path / "a.tif"), "-o", str(tmp_path / "o"), "--model-file"]
        + [str(tmp_path / "bad.zse"), "-q"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "zse: error:" in err and "this is a bug" not in err.lower()


def _mutate(value, choice):
    """A JSON value of another type (choice picks which)."""
    options = [None, True, -1, 3.5, "x", [1, "a"], {"k": [None]}, [], {}]
    return options[choice % len(options)]


@pytest.mark.parametrize("kind", ["SSSC", "GPMM"])
def test_mutated_model_headers_load_correctly_or_raise_model_file_errors(
    saved_models, tmp_path_factory, kind
):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    meta, arrays = read_archive(saved_models[kind])
    reference = zse.load_model(saved_models[kind])
    patches = np.random.default_rng(2).poisson(6.0, size=(20, 16)).astype(float)
    folder = tmp_path_factory.mktemp("mutated")
    keys = ["format", "version", "model", "params", "patch_size", "scalars"]
    keys += [f"params.{k}" for k in meta["params"]] + [f"scalars.{k}" for k in meta["scalars"]]

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(st.lists(st.tuples(st.sampled_from(keys), st.integers(0, 50)), min_size=1, max_size=3))
    def check(mutations):
        mutated = json.loads(json.dumps(meta))
        for key, choice in mutations:
            where, _, sub = key.partition(".")
            if sub and isinstance(mutated.get(where), dict):
                mutated[where][sub] = _mutate(mutated[where].get(sub), choice)
            elif not sub:
                mutated[where] = _mutate(mutated.get(where), choice)
        path = folder / "m.zse"
        write_archive(path, mutated, arrays)
        try:
            loaded = zse.load_model(path)
        except ModelFileError:
            return
        # A mutation that still loads gives a model of the declared kinds that estimates, or
        # refuses these patches with a clear ValueError (e.g. a mutated gain/offset makes them
        # negative counts): never another exception.
        assert type(loaded) is type(reference)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                estimate = loaded.estimate(patches)
            except ValueError:
                return
        assert estimate.shape == patches.shape and np.all(np.isfinite(estimate))

    check()


def test_damaged_checkpoints_are_checkpoint_errors(tmp_path):
    patches = np.random.default_rng(0).poisson(5.0, size=(300, 9)).astype(float)
    ckpt = tmp_path / "c.ckpt"
    zse.SSSC(H=3, n_states=4, n_parents=2, max_iter=2, random_state=0, checkpoint=ckpt).fit(patches)
    meta, arrays = read_archive(ckpt)
    key = next(iter(arrays))
    cases = [
        ("header is a list", [meta], arrays),
        ("epoch is a string", {**meta, "epoch": "2"}, arrays),
        ("epoch is missing", {k: v for k, v in meta.items() if k != "epoch"}, arrays),
        ("objectives hold a string", {**meta, "objectives": ["a", 1.0]}, arrays),
        ("objectives too short", {**meta, "objectives": [1.0]}, arrays),
        ("settings is a list", {**meta, "settings": [1]}, arrays),
        ("seed is negative", {**meta, "seed": -1}, arrays),
        ("converged is a number", {**meta, "converged": 1}, arrays),
        ("an array is missing", meta, {k: v for k, v in arrays.items() if k != key}),
        ("an unknown array", meta, {**arrays, "state__fit": arrays[key]}),
        ("an array of another shape", meta, {**arrays, key: arrays[key].ravel()[:1]}),
        ("an array of another kind", meta, {**arrays, key: arrays[key].astype(np.int8)}),
    ]
    for description, bad_meta, bad_arrays in cases:
        write_archive(ckpt, bad_meta, bad_arrays)
        with pytest.raises(CheckpointError, match="checkpoint"):
            zse.SSSC(
                H=3,
                n_states=4,
                n_parents=2,
                max_iter=3,
                random_state=0,
                checkpoint=ckpt,
                resume=True,
            ).fit(patches)
        assert description

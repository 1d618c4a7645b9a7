"""The estimator contract shared by every model, without depending on scikit-learn.

:class:`BaseEstimator` builds a model's ``__init__`` and checks from its parameter table
(:mod:`zse.models.params`), reads ``get_params``/``set_params``/``repr`` from the signature, and
holds the capabilities the pipeline, the command line and the file writers ask a model for
(``estimate_volume``, ``summary``, ``fields_image``, ``memory_parts``, ``default_patch``,
``auto_train_size``, ``provides_variance``): they never probe a model's attributes.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import numbers
from dataclasses import dataclass

import numpy as np

from .params import docstring_section, make_init

# Patch extents when none are given (bench/README.md, "Patch size").
DEFAULT_PATCH_SIZE = 8
DEFAULT_PATCH_SIZE_3D = 4
# n_train="auto" trains on every patch position up to this many, on a seeded random subset
# beyond (bench/README.md, "Image-native pipeline").
AUTO_TRAIN_MAX = 65536
PARAMETERS_MARKER = "    <parameters>\n"


@dataclass(frozen=True)
class Slab:
    """A slab of a volume too large for memory: the output slices [begin, end) of a volume of
    ``n_slices`` slices, estimated from an array that holds its slices from ``first_slice`` on
    (those the bands of the output slices read; zse.slabs)."""

    begin: int
    end: int
    n_slices: int
    first_slice: int


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit``."""


class BaseEstimator:
    """A model of image patches declared by its parameter table ``parameters``.

    A subclass that defines ``parameters`` (a tuple of ``zse.models.params.Param``) gets
    an ``__init__`` that stores every argument unchanged under its name and does no work, and
    the "Parameters" section of its docstring (where the docstring has the line
    ``<parameters>``). Learned values get a trailing underscore.
    """

    parameters: tuple = ()
    # What the pipeline may ask of the model (class-level capabilities).
    provides_variance = False
    auto_train_size = AUTO_TRAIN_MAX

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "parameters" in vars(cls):
            names = [row.name for row in cls.parameters]
            if len(set(names)) != len(names):
                msg = f"{cls.__name__}: a parameter is declared twice in {names}"
                raise TypeError(msg)
            cls.__init__ = make_init(cls.parameters)
            cls.__init__.__qualname__ = f"{cls.__name__}.__init__"
            if cls.__doc__ and PARAMETERS_MARKER in cls.__doc__:
                section = docstring_section(cls.parameters)
                indented = "".join("    " + line + "\n" for line in section.split("\n"))
                cls.__doc__ = cls.__doc__.replace(PARAMETERS_MARKER, indented)

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @classmethod
    def parameter(cls, name: str):
        """The table row of parameter ``name`` (KeyError for a name the model lacks)."""
        for row in cls.parameters:
            if row.name == name:
                return row
        raise KeyError(f"{cls.__name__} has no parameter {name!r}")

    @classmethod
    def learned_params(cls) -> list[str]:
        """Parameters that change what a fit learns (a checkpoint must match them)."""
        return [row.name for row in cls.parameters if row.learned]

    @classmethod
    def stored_params(cls) -> list[str]:
        """Parameters a model file keeps (not how a fit ran: threads, logging, checkpoints)."""
        return [row.name for row in cls.parameters if row.stored]

    @classmethod
    def estimation_params(cls) -> list[str]:
        """Parameters that change how a fitted model estimates (they apply to a model file)."""
        return [row.name for row in cls.parameters if row.estimation]

    def _check_params(self) -> dict:
        """Every parameter checked by its table row, then their relations; returns the checked
        values by name (ValueError or TypeError naming the parameter)."""
        values = {row.name: row.check(getattr(self, row.name), row.name) for row in self.parameters}
        self._check_relations(values)
        return values

    def _check_relations(self, values: dict) -> None:
        """Checks between parameters (a model with such rules overrides this)."""

    # -- capabilities --------------------------------------------------------------------------
    @classmethod
    def default_patch(cls, ndim: int) -> tuple:
        """The patch extents used when none are given, for 2-D images or 3-D volumes."""
        return (DEFAULT_PATCH_SIZE,) * 2 if ndim == 2 else (DEFAULT_PATCH_SIZE_3D,) * 3

    @classmethod
    def fitting_defaults(cls, given: dict) -> list[tuple]:
        """Defaults the model lowers when the parameters a user ``given`` make them invalid:
        ``(name, value, reason)`` each (none here; SSSC has such rules)."""
        return []

    def fit_seed(self) -> int:
        """The seed of what is drawn for this model outside its fit (the training positions):
        ``random_state`` when it is an int >= 0, else 0."""
        state = self.get_params().get("random_state")
        if isinstance(state, numbers.Integral) and not isinstance(state, bool) and state >= 0:
            return int(state)
        return 0

    def memory_parts(self, n_train: int, n_features: int) -> dict:
        """Bytes the model needs beyond the pipeline's buffers during a reconstruction."""
        return {}

    def extra_images(self) -> int:
        """Image-sized float64 arrays the streamed estimate keeps beyond the outputs (the
        nonlocal estimate's guide; SSSC's also every patch's log-evidence)."""
        return 0

    def summary(self) -> dict:
        """What the .zse.json record says about the model: its name, settings and what it
        learned."""
        return {
            "name": type(self).__name__,
            "params": {
                k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                for k, v in self.get_params().items()
                if k != "comm"
            },
        }

    def fields_image(self):
        """The learned fields, one per row, strongest first, and how to show them
        (``"symmetric"``: mid-grey is 0; ``"range"``: each from its minimum to maximum); None
        for a model without fields."""
        return None

    def noise_description(self):
        """The learned noise model as ``<stem>_noise.png`` shows it (see
        :func:`zse.io.noise_picture`); None for a model whose noise its kind fixes (Poisson
        counts) or that has none."""
        return None

    def streams(self) -> bool:
        """True when :meth:`estimate_volume` streams (volumes and MPI need it); a subclass that
        overrides ``estimate`` but not the streamed kernel gets the patch-matrix path, so its
        own estimate is what is used."""

        def owner(name):
            for cls in type(self).__mro__:
                if name in vars(cls):
                    return cls
            return None

        kernel = owner("_stream_volume")
        return kernel is not None and kernel is owner("estimate")

    def estimate_volume(
        self,
        volume,
        patch,
        stats,
        positions,
        median_kind,
        n_threads,
        share=(0, 1),
        progress=None,
        slab=None,
    ) -> dict:
        """Estimate every patch of a (Z, R, Q) volume and merge the estimates into the per-pixel
        statistics (ALGORITHM.md §2.6): streamed when :meth:`streams`, else through the
        (n_patches, D) matrices (2-D only, one process).

        ``positions`` are the sorted training positions when the model was just fitted on
        exactly those patches; ``share`` is (this rank, ranks): the rank's bands of rows;
        ``slab`` (a ``zse.slabs.Slab``): ``volume`` is a slab of a larger volume and the result its
        output slices.
        """
        if self.streams():
            request = stream_request(stats, median_kind, share, progress, slab)
            return self._stream_volume(volume, patch, positions, n_threads, request)
        if slab is not None:
            msg = f"{type(self).__name__} has no streamed estimate; slabs need a zse model"
            raise TypeError(msg)
        return estimate_by_matrix(self, volume, patch, stats, median_kind, n_threads)

    @contextlib.contextmanager
    def fitting_on(self, comm):
        """Fit on ``comm``'s ranks inside the block (models without MPI training: no-op)."""
        yield

    def set_estimation(self, **options) -> None:
        """Set the given estimation settings the model has (see :meth:`estimation_params`);
        None values and settings of other models are left out."""
        known = set(self.estimation_params())
        self.set_params(**{k: v for k, v in options.items() if v is not None and k in known})

    def set_threads(self, n_threads) -> None:
        """Threads of later estimates (models without a thread setting ignore it)."""
        if "n_threads" in self._param_names():
            self.n_threads = n_threads

    def _record_patch_shape(self, patch) -> None:
        """Remember the patch extents the model was fitted on (``patch_size_``)."""
        self.patch_size_ = tuple(int(p) for p in patch)

    def fitted_patch(self):
        """The patch extents the model was fitted on, when known (else None)."""
        return vars(self).get("patch_size_")

    def _check_patch_shape(self, patch) -> None:
        """ValueError when ``patch`` differs from the extents the model was fitted on (a 4 x 4
        model on 2 x 8 patches has the right pixel count and the wrong fields)."""
        known = self.fitted_patch()
        patch = tuple(int(p) for p in patch)
        if known is not None and _planar(known) != _planar(patch):
            msg = (
                f"the model was fitted on {'x'.join(map(str, known))} patches, not "
                f"{'x'.join(map(str, patch))}"
            )
            raise ValueError(msg)

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                msg = f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}"
                raise ValueError(msg)
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults.get(name, inspect.Parameter.empty) is not value
            and defaults.get(name) != value
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """scikit-learn's estimator tags (used only when scikit-learn is installed).

        zse estimators are unsupervised transformers of patch matrices: ``fit(X, y=None)``,
        no target, float input without NaN.
        """
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(),
            input_tags=InputTags(allow_nan=False),
            requires_fit=True,
        )

    def _more_tags(self) -> dict:
        # scikit-learn < 1.6 reads tags from here.
        return {"requires_y": False, "allow_nan": False, "X_types": ["2darray"]}


def _planar(patch) -> tuple:
    """A (1, rows, columns) patch of a stack's section is the (rows, columns) patch."""
    patch = tuple(int(p) for p in patch)
    return patch[1:] if len(patch) == 3 and patch[0] == 1 else patch


def is_fitted(estimator) -> bool:
    """True when ``estimator`` has learned attributes (names ending in ``_``)."""
    if hasattr(estimator, "__sklearn_is_fitted__"):
        return bool(estimator.__sklearn_is_fitted__())
    return any(name.endswith("_") and not name.startswith("__") for name in vars(estimator))


def check_is_fitted(estimator) -> None:
    if not is_fitted(estimator):
        msg = f"this {type(estimator).__name__} instance is not fitted yet; call fit(patches) first"
        raise NotFittedError(msg)


def check_n_features(estimator, n_features: int) -> None:
    """The fitted check and the patch-size check shared by every model's estimate."""
    check_is_fitted(estimator)
    if n_features != estimator.n_features_in_:
        msg = (
            f"patches have {n_features} pixels, the model was fitted on {estimator.n_features_in_}"
        )
        raise ValueError(msg)


def fingerprint(array: np.ndarray) -> str:
    """A digest of the values and shape of a C-contiguous array (identifies training data)."""
    digest = hashlib.blake2b(memoryview(array).cast("B"), digest_size=16).hexdigest()
    return digest + str(array.shape)


def stream_request(stats, median_kind, share, progress, slab=None):
    """The outputs of a streamed estimate as the kernels take them."""
    from .. import _core

    request = _core.StreamRequest(
        stats=list(stats),
        median_kind=median_kind,
        part=int(share[0]),
        n_parts=int(share[1]),
        progress=progress,
    )
    if slab is not None:
        request.slice_begin, request.slice_end = int(slab.begin), int(slab.end)
        request.volume_slices, request.input_first_slice = int(slab.n_slices), int(slab.first_slice)
    return request


def estimate_by_matrix(model, volume, patch, stats, median_kind, n_threads) -> dict:
    """The (n_patches, D) path of a model without a streamed estimate (2-D images only): every
    patch cut, estimated with ``model.estimate`` and merged."""
    from ..patches import extract_patches, merge_patches

    image = volume[0]
    patch = tuple(patch)[-2:]
    patches = extract_patches(image, patch, n_threads=n_threads)
    if "pvar" in stats:
        estimates, predictive = model.estimate(patches, return_variance=True)
    else:
        estimates, predictive = model.estimate(patches), None
    del patches
    merge_stats = [s for s in stats if s != "pvar"]
    if "pvar" in stats and "var" not in merge_stats:
        merge_stats.append("var")
    merged = merge_patches(
        estimates, image.shape, patch, merge_stats, median_kind=median_kind, n_threads=n_threads
    )
    if predictive is not None:
        # Law of total variance over the patches covering a pixel (ALGORITHM.md §2.5, V2).
        mean_predictive = merge_patches(
            predictive, image.shape, patch, ("mean",), n_threads=n_threads
        )["mean"]
        merged["pvar"] = mean_predictive + merged["var"]
    return {name: merged[name][None] for name in stats}


class ForeignModel(BaseEstimator):
    """A model that is not a zse model (any object with ``fit(patches)`` and
    ``estimate(patches)``), seen through the capabilities the pipeline asks for: the
    patch-matrix path, no MPI, the defaults of :class:`BaseEstimator`."""

    def __init__(self, model):
        if isinstance(model, type):
            name = f"{model.__module__.split('.')[0]}.{model.__name__}"
            if name.startswith("zse."):
                name = f"zse.{model.__name__}"
            msg = (
                f"model must be a model instance, got the class {name}: pass an instance such as "
                f"{name}() (with its parameters, e.g. {name}(random_state=0)) or a model's name"
            )
            raise TypeError(msg)
        if not (
            callable(getattr(model, "fit", None)) and callable(getattr(model, "estimate", None))
        ):
            msg = f"model must have fit(patches) and estimate(patches) methods, got {model!r}"
            raise TypeError(msg)
        self.model = model
        # The model says whether estimate(..., return_variance=True) works (a class attribute).
        self.provides_variance = bool(getattr(model, "provides_variance", False)) or bool(
            getattr(model, "_provides_variance", False)
        )

    def fit(self, patches, progress=None, patch_shape=None):
        self.model.fit(patches)
        return self

    def estimate(self, patches, *, return_variance=False):
        if return_variance:
            return self.model.estimate(patches, return_variance=True)
        return self.model.estimate(patches)

    def __sklearn_is_fitted__(self) -> bool:
        return is_fitted(self.model)

    @property
    def n_features_in_(self):
        return getattr(self.model, "n_features_in_", None)

    def streams(self) -> bool:
        return False

    def summary(self) -> dict:
        return {"name": type(self.model).__name__, "params": {}}

    def _record_patch_shape(self, patch) -> None:
        """A foreign model's attributes are its own: nothing is recorded."""

    def fitted_patch(self):
        return None

    def get_params(self, deep: bool = True) -> dict:
        return {}


def as_model(model) -> BaseEstimator:
    """``model`` itself when it is a zse model, else the model wrapped for the pipeline.

    The wrapper (``ForeignModel``) gives an object with ``fit`` and ``estimate`` the methods
    the pipeline asks a model for.
    """
    return model if isinstance(model, BaseEstimator) else ForeignModel(model)

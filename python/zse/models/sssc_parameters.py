"""SSSC's parameter table (zse.models.params) and its rule for defaults a small model cannot
take."""

from __future__ import annotations

import numpy as np

from .em import em_parameters
from .groups import group_parameters
from .params import Choice, Int, Param, Real

SELECTIONS = ("fit", "rand")
MUTATIONS = ("randflip", "sparseflip", "cross", "cross_randflip", "cross_sparseflip")
UPDATES = ("exact", "reference")
INITS = ("evo", "patches")
ESTIMATION_SEARCHES = ("neighbours", "evolution")
NOISE_MODELS = ("auto", "white", "correlated", "poisson-gaussian")

SSSC_PARAMETERS = (
    Param("H", 64, Int(1, 256), "latent units (generative fields)", positional=True),
    Param(
        "n_states",
        32,
        Int(1),
        "states S kept per patch",
        doc="At most 2^H; S = 2^H gives exact EM.",
    ),
    Param("n_parents", 10, Int(1), "parents drawn per generation of the state search (<= S)"),
    Param("n_children", 2, Int(1), "children per parent (flip mutations)"),
    Param("n_generations", 1, Int(1), "generations of the state search per epoch"),
    Param(
        "selection",
        "fit",
        Choice(SELECTIONS),
        "parent selection",
        doc="Fitness-proportional without replacement, or uniform.",
        cli="advanced",
    ),
    Param("mutation", "randflip", Choice(MUTATIONS), "mutation operator", cli="advanced"),
    Param(
        "bitflip_prob",
        None,
        Real(0.0, 1.0, low_open=True, high_open=True, none_ok=True),
        "overall bit-flip probability of the sparseflip mutations (required by them)",
        cli="advanced",
    ),
    Param(
        "p_init",
        None,
        Real(0.0, 1.0, low_open=True, high_open=True, none_ok=True),
        "probability of an active unit in the initial states",
        cli="advanced",
        default_text="1/H",
    ),
    Param(
        "updates",
        "reference",
        Choice(UPDATES),
        "M-step variant",
        doc="The published updates (full Psi, sigma2 from outer products of posterior means, "
        "which over-estimates the noise and smooths a little more), or exact EM with a diagonal "
        "Psi and the exact sigma2 (the free energy cannot decrease with all states; about 30% "
        "faster). The default is the one with the higher mean PSNR on bench/denoise_table.py "
        "(29.20 vs 29.17 dB on house, peppers and cameraman at sigma 15, 25, 50; see "
        "bench/README.md).",
        cli="advanced",
    ),
    Param(
        "init",
        "evo",
        Choice(INITS),
        "initial parameters",
        doc="tvlearn/evo's standard one (every field near the mean patch plus noise; "
        "ALGORITHM.md §3.7), or data-driven: the bias is the mean patch and the fields are H "
        "distinct training patches minus the mean, drawn with the seed (§3.7).",
        cli="advanced",
    ),
    Param(
        "noise",
        "auto",
        Choice(NOISE_MODELS),
        "noise model: white, correlated (stationary, learned), poisson-gaussian or auto",
        doc="'white': eps ~ N(0, sigma2 I). 'correlated': eps ~ N(0, sigma2 C) with C a "
        "stationary correlation over the patch (C_ij depends on the offset between pixels i "
        "and j only, within noise_support pixels along each axis), learned with the other "
        "parameters: the E-step runs on whitened patches, estimates are formed in the data's "
        "coordinates (ALGORITHM.md §3.14). 'poisson-gaussian': noise whose variance grows with "
        "the brightness (alpha (x - offset) + alpha^2 s2, measured on the training patches): "
        "the model works on the generalized Anscombe transform of the data and its estimates "
        "come back through the exact unbiased inverse (§3.15); the transformed noise's "
        "correlation as with 'auto'. 'auto': each of the two where the evidence says so "
        "(neighbouring pixels' correlation >= 0.4; a variance growing 1.5x over the "
        "brightness), else white.",
    ),
    Param(
        "noise_support",
        3,
        Int(1, 16),
        "offsets (pixels along each axis) the learned noise correlation may reach",
        cli="advanced",
    ),
    Param(
        "noise_update",
        "first",
        Choice(("first", "em")),
        "keep the noise correlation's first estimate, or update it every epoch (EM)",
        doc="'em' replaces C every epoch by the expected residual covariance averaged over "
        "equal offsets (ALGORITHM.md §3.14); it lets texture the fields do not explain drain "
        "into the noise (bench/README.md, 'Coloured noise'), so the default keeps the first "
        "estimate and learns only sigma2.",
        cli="advanced",
    ),
    Param(
        "n_estimate_states",
        None,
        Int(1, none_ok=True),
        "states kept per patch while estimating (<= n_states)",
        doc="A training patch keeps the best of its learned states under the fitted "
        "parameters (ALGORITHM.md §4.11). Measured with one fitted model (bench/README.md "
        '"ES3C engine", round 5): 16 states instead of 32 changed PSNR by -0.010 to +0.002 dB '
        "on Set12 and ssTEM cases and estimated 1.1-1.4x faster (real TEM crops and those "
        "cases); with n_warm_sweeps=15 they gained 0.007-0.067 dB in about the old time.",
        learned=False,
        estimation=True,
        default_text="min(16, n_states); n_states with estimation_search='evolution'",
    ),
    Param(
        "n_estimate_sweeps",
        10,
        Int(1),
        "search sweeps for patches not trained on, from fresh states",
        doc="In estimate, score, and for the first patch of a band in zse.reconstruct.",
        learned=False,
        estimation=True,
    ),
    Param(
        "n_warm_sweeps",
        10,
        Int(0),
        "search sweeps for a patch started from its neighbour's states",
        doc="The neighbour shares all but one row or column of pixels with it (ALGORITHM.md "
        "§2.6). Measured with the neighbours search on house, sigma 25 (H=64, trained on the "
        "16 384-patch subset): 10 sweeps 32.053 dB, 30: 32.064 (every patch with its trained "
        "states: 32.066); the evolutionary search needs about 30 sweeps for 31.962 "
        '(bench/README.md "ES3C engine").',
        learned=False,
        estimation=True,
    ),
    Param(
        "n_train_sweeps",
        1,
        Int(0),
        "search sweeps for a training patch, from its trained states",
        doc="In zse.reconstruct, with the learned parameters fixed (0: its trained states as "
        "they are).",
        cli="advanced",
        learned=False,
        estimation=True,
    ),
    Param(
        "estimation_search",
        "neighbours",
        Choice(ESTIMATION_SEARCHES),
        "how estimation improves a patch's states: every single-unit flip of its best states "
        "(neighbours) or the evolutionary search of training (evolution)",
        doc="One sweep of 'neighbours' tries every flip of the best state not tried yet, scored "
        "together from that state's terms, and ends when every state near the best was tried "
        "(deterministic, ALGORITHM.md §4.10); training always uses the evolutionary search.",
        learned=False,
        estimation=True,
    ),
    Param(
        "search_patience",
        0,
        Int(0),
        "end a patch's estimation search after this many sweeps in a row that left its "
        "states unchanged (0: every sweep)",
        doc="ALGORITHM.md §4.9.",
        learned=False,
        estimation=True,
    ),
    *group_parameters("their binary state (which fields are on)"),
    Param(
        "group_sweeps",
        6,
        Int(0),
        "rounds of the nonlocal estimate's search: every single-unit flip of the group's best "
        "state, scored on the whole group",
        learned=False,
        estimation=True,
    ),
    *em_parameters(
        max_iter=100,
        tol_help="stop early when the free energy gained less than tol nats per pixel and "
        "epoch, averaged over the last 5 epochs",
        verbose_help="print the free energy, noise level, search statistics and time of every "
        "epoch",
    ),
)


def lowered_defaults(given: dict) -> list[tuple]:
    """Defaults that a small H or S cannot take (more states than 2^H, more parents than
    states, more single-bit children than units), lowered to the largest valid value.

    ``given`` holds the parameters a user set; returns ``(name, value, reason)`` for each
    default to lower. Values the user gave are never changed.
    """
    defaults = {row.name: row.default for row in SSSC_PARAMETERS}
    H = given.get("H", defaults["H"])
    lowered = []
    if not (isinstance(H, int) and 1 <= H < 63):
        return lowered
    S = given.get("n_states", defaults["n_states"])
    if "n_states" not in given and defaults["n_states"] > 2**H:
        S = 2**H
        lowered.append(("n_states", S, f"H={H} has {S} states in all"))
    if "n_parents" not in given and defaults["n_parents"] > S:
        lowered.append(("n_parents", S, f"n_states={S}"))
    mutation = given.get("mutation", defaults["mutation"])
    if "n_children" not in given and mutation == "randflip" and defaults["n_children"] > H:
        lowered.append(("n_children", H, f"H={H}"))
    return lowered


def estimation_states(values: dict) -> int:
    """The states kept per patch while estimating: ``n_estimate_states``, or by default
    min(16, n_states) for the neighbours search and n_states for the evolutionary one (which
    draws n_parents parents from the set)."""
    if values["n_estimate_states"] is not None:
        return int(values["n_estimate_states"])
    S = int(values["n_states"])
    return S if values["estimation_search"] == "evolution" else min(16, S)


def check_relations(values: dict) -> None:
    """The relations between SSSC's parameters (each value alone is checked by its row):
    ValueError naming the parameters and the valid range."""
    H, S = values["H"], values["n_states"]
    if H < 63 and S > 2**H:
        msg = f"n_states={S} exceeds the 2^H={2**H} possible states; use n_states <= {2**H}"
        raise ValueError(msg)
    if values["n_parents"] > S:
        msg = f"n_parents={values['n_parents']} exceeds n_states={S}; use n_parents <= {S}"
        raise ValueError(msg)
    if values["mutation"] == "randflip" and values["n_children"] > H:
        msg = f"randflip needs n_children <= H, got {values['n_children']} > {H}"
        raise ValueError(msg)
    if "sparseflip" in values["mutation"] and values["bitflip_prob"] is None:
        msg = f"mutation {values['mutation']!r} needs bitflip_prob in (0, 1)"
        raise ValueError(msg)
    S_est = values["n_estimate_states"]
    if S_est is not None and S_est > S:
        msg = f"n_estimate_states={S_est} exceeds n_states={S}; use n_estimate_states <= {S}"
        raise ValueError(msg)
    evolving = values["estimation_search"] == "evolution"
    if evolving and estimation_states(values) < values["n_parents"]:
        msg = (
            f"the evolutionary estimation search draws n_parents={values['n_parents']} "
            f"parents from n_estimate_states={S_est}; use n_estimate_states >= n_parents"
        )
        raise ValueError(msg)


def check_learned_shapes(model) -> None:
    """The learned arrays of a fitted SSSC (read from a model file) against each other and the
    parameters; the learned scalars as floats, the scales positive."""
    D, H = model.n_features_in_, int(model.H)
    expected = {
        "W_": (D, H),
        "_W_std": (D, H),
        "pi_": (H,),
        "mu_": (H,),
        "Psi_": (H, H),
        "bias_": (D,),
        "_bias_std": (D,),
        "_noise_corr": (D, D),
        "_gat": (3,),
    }
    for name, shape in expected.items():
        if np.shape(getattr(model, name)) != shape:
            found = np.shape(getattr(model, name))
            msg = f"{name} has shape {found}, expected {shape} (H={H}, D={D})"
            raise ValueError(msg)
    for name in ("sigma2_", "_sigma2_std", "data_scale_", "data_offset_"):
        setattr(model, name, float(getattr(model, name)))
    if not (model._sigma2_std > 0 and model.data_scale_ > 0):
        msg = "sigma2_ and data_scale_ must be > 0"
        raise ValueError(msg)
    gat = np.asarray(model._gat, dtype=np.float64)
    if not (np.all(np.isfinite(gat)) and gat[0] >= 0 and gat[2] >= 0):
        msg = "the Anscombe parameters (alpha, offset, s2) need alpha >= 0 and s2 >= 0"
        raise ValueError(msg)
    C = np.asarray(model._noise_corr)
    if not (np.allclose(C, C.T) and np.allclose(np.diag(C), 1.0)):
        msg = "the noise correlation must be symmetric with a unit diagonal"
        raise ValueError(msg)
    if np.linalg.eigvalsh(C).min() <= 0:
        msg = "the noise correlation must be positive definite"
        raise ValueError(msg)

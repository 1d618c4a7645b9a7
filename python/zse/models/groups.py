"""The nonlocal estimate every zse model shares (ALGORITHM.md §2.7, §3.16, §5.6): its parameter
rows and the two passes — a first estimate with every patch alone is the guide the groups are
matched on, then every patch is estimated with its group."""

from __future__ import annotations

import numpy as np

from .. import _core
from .params import Choice, Int, Param


def group_parameters(cause: str) -> tuple:
    """The rows of the nonlocal estimate; ``cause`` names what a group shares."""
    return (
        Param(
            "group_size",
            1,
            Int(1),
            f"patches per group in the nonlocal estimate: each patch and its group_size - 1 most "
            f"similar ones share {cause} (1: every patch alone)",
            doc="With group_size > 1, zse.reconstruct estimates the image twice: a first "
            "estimate (every patch alone) is the guide the groups are matched on, then every "
            "patch's estimate weighs its group sharing its cause against its members being "
            "unrelated, by their evidences (ALGORITHM.md §3.16). Needs the whole image in "
            "memory (no slabs). Off by default: it gains on synthetic Gaussian and coloured "
            'noise and loses on some real data (bench/README.md "Nonlocal SSSC").',
            learned=False,
            estimation=True,
        ),
        Param(
            "group_window",
            None,
            Int(1, none_ok=True),
            "half-width of the search window of the nonlocal estimate, in pixels along every axis",
            learned=False,
            estimation=True,
            default_text="10 for 2-D patches, 3 for 3-D ones",
        ),
        Param(
            "group_members",
            "nearest",
            Choice(("nearest", "disjoint")),
            "which patches may join a group: the most similar in the window, or only those that "
            "share no pixel with the reference (so their noise is not the reference's own)",
            doc="Overlapping members share noise, which the group counts as independent "
            "evidence. Measured with SSSC (bench/README.md \"Nonlocal SSSC\"): 'disjoint' helps "
            "on the real cryo-ET slice (flattest-block noise 0.46 of the input's against 0.64 "
            "with 'nearest' and 0.49 with every patch alone) and loses most of the gain on "
            "Gaussian-noise photographs.",
            learned=False,
            estimation=True,
        ),
    )


def group_window(model, patch) -> tuple:
    """The search window's half-widths (z, rows, columns) for a (Pz, Ph, Pw) patch."""
    window = model.group_window
    if window is None:
        window = 3 if patch[0] > 1 else 10
    return (int(window) if patch[0] > 1 else 0, int(window), int(window))


def nonlocal_estimate(model, volume, stream, first_pass, second_pass):
    """The two passes of the nonlocal estimate of a (Z, R, Q) volume.

    ``first_pass(request)`` estimates the whole image with every patch alone for the given
    request (the mean only) and returns its result; ``second_pass(request, guide)`` estimates it
    with groups matched on ``guide`` (the first pass's mean, a C-contiguous float64 volume).
    Progress counts both passes.
    """
    if stream.volume_slices >= 0:
        msg = (
            f"group_size={model.group_size} needs the whole image in memory; a volume read "
            "in slabs takes group_size=1"
        )
        raise ValueError(msg)
    progress = stream.progress
    # The first pass runs over every band, also on an MPI rank (a member's window may lie in
    # another rank's bands).
    first = _core.StreamRequest(stats=["mean"], merge=stream.merge)
    first_total = [0]
    if progress is not None:

        def first_progress(done, total):
            first_total[0] = total
            progress(done, 2 * total)

        first.progress = first_progress
    guide = first_pass(first)["mean"]
    guide = np.ascontiguousarray(guide.reshape(volume.shape), dtype=np.float64)
    if progress is not None:

        def second_progress(done, total):
            progress(first_total[0] + done, first_total[0] + total)

        stream.progress = second_progress
    try:
        return second_pass(stream, guide)
    finally:
        stream.progress = progress

"""The markdown report of bench/compare.py (bench/RESULTS.md) from the rows of its CSV."""

from __future__ import annotations

import numpy as np

from _common import machine_line
from compare_cases import HRTEM, POISSON_CROP, Case, output_path
from compare_methods import estimate_sigma

# --------------------------------------------------------------------------- report


def _f(value, fmt):
    return format(float(value), fmt) if value not in ("", None) else "–"


def _table(rows, cases, methods, cell, mean_key=None):
    names = [m for m in ["noisy", *methods] if any(r["method"] == m for r in rows)]
    lines = ["| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    by_key = {(r["case"], r["method"]): r for r in rows}
    for case in cases:
        if not any(r["case"] == case for r in rows):
            continue
        lines.append(
            f"| {case} | "
            + " | ".join(cell(by_key[(case, m)]) if (case, m) in by_key else "n/a" for m in names)
            + " |"
        )
    if mean_key:
        cells = []
        for m in names:
            values = [
                float(by_key[(c, m)][mean_key])
                for c in cases
                if (c, m) in by_key and by_key[(c, m)][mean_key] != ""
            ]
            complete = len(values) == sum(1 for c in cases if any(r["case"] == c for r in rows))
            cells.append(f"**{np.mean(values):.2f}**" if values and complete else "–")
        lines.append(f"| **mean {mean_key.upper()}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sigma_note(case: Case) -> str:
    path = output_path(case, "noisy", "mean")
    if not path.exists():
        return f"{case.name}: not computed"
    return f"{case.name}: σ̂ = {estimate_sigma(np.load(path).astype(np.float64)):.2f}"


def summary(rows, order, method_names) -> list[str]:
    """Mean PSNR per group and method over the cases each method ran on, and zse's margin."""
    groups = [
        g
        for g in ("gaussian", "coloured", "poisson", "poisson MTF", "real pair", "volume")
        if any(r["group"] == g for r in rows)
    ]
    if not groups:
        return []
    lines = [
        "## Summary: mean PSNR (dB) per group",
        "",
        "| method | "
        + " | ".join(
            f"{g} ({len({r['case'] for r in rows if r['group'] == g})} cases)" for g in groups
        )
        + " |",
        "|---|" + "---|" * len(groups),
    ]
    means = {}
    for m in ["noisy", *method_names]:
        cells = []
        for g in groups:
            cases = {r["case"] for r in rows if r["group"] == g}
            values = [
                float(r["psnr"])
                for r in rows
                if r["group"] == g and r["method"] == m and r["psnr"] != ""
            ]
            if values and len(values) == len(cases):
                means[(m, g)] = float(np.mean(values))
                cells.append(f"{means[(m, g)]:.2f}")
            else:
                cells.append("n/a")
        if any(c != "n/a" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "What a user gets — `zse.reconstruct(image)` at its defaults, model and noise auto (on the "
        "Gaussian and coloured tables the count test chooses SSSC on every case: the zse SSSC row) "
        "— against the best peer, per group (positive: zse ahead):",
        "",
    ]
    for g in groups:
        default = "zse SSSC" if g in ("gaussian", "coloured") else "zse (defaults, model auto)"
        peer_best = max(
            (
                (v, m)
                for (m, gg), v in means.items()
                if gg == g and m != "noisy" and not m.startswith("zse")
            ),
            default=None,
        )
        if (default, g) in means and peer_best:
            value = means[(default, g)]
            lines.append(
                f"- {g}: {value:.2f} dB vs {peer_best[1]} {peer_best[0]:.2f} dB "
                f"({value - peer_best[0]:+.2f} dB)"
            )
    lines += ["", "Best zse model against the best peer, per group (positive: zse ahead):", ""]
    for g in groups:
        zse_best = max(
            ((v, m) for (m, gg), v in means.items() if gg == g and m.startswith("zse")),
            default=None,
        )
        peer_best = max(
            (
                (v, m)
                for (m, gg), v in means.items()
                if gg == g and m not in ("noisy",) and not m.startswith("zse")
            ),
            default=None,
        )
        if zse_best and peer_best:
            lines.append(
                f"- {g}: {zse_best[1]} {zse_best[0]:.2f} dB vs {peer_best[1]} {peer_best[0]:.2f} dB "
                f"({zse_best[0] - peer_best[0]:+.2f} dB)"
            )
    return [*lines, ""]


def sigma_and_variance_section(rows, cases) -> list[str]:
    """Learned sigma of zse SSSC against the truth, and the variance images' Spearman column."""
    have = [r for r in rows if r["learned_sigma"] or r["var_spearman"]]
    if not have:
        return []
    by_key = {(r["case"], r["method"]): r for r in rows}
    lines = [
        "## Learned σ and the variance image",
        "",
        "zse SSSC learns σ (never given): its `sqrt(sigma2_)` against the true σ (Poisson cases: in the "
        "Anscombe domain, where σ = 1). `var ρ`: Spearman rank correlation between a model's variance image "
        "(`var`) and the clean image's local edge energy (|∇|² averaged over the 8 × 8 patch) — does the "
        "variance trace structure rather than noise (issue 11's target: ≥ 0.8)?",
        "",
        "| case | true σ | SSSC learned σ | error | SSSC var ρ | PMM var ρ | GPMM var ρ |",
        "|---|---|---|---|---|---|---|",
    ]
    true_sigma = {c.name: c.sigma for c in cases}
    for case in [c.name for c in cases]:
        sssc = by_key.get((case, "zse SSSC"))
        if sssc is None or not (sssc["learned_sigma"] or sssc["var_spearman"]):
            continue
        truth = true_sigma.get(case)
        learned = sssc["learned_sigma"]
        error = (
            f"{100 * (float(learned) / truth - 1):+.1f} %" if learned and truth is not None else "–"
        )
        rho = [
            _f(by_key[(case, m)]["var_spearman"], ".3f") if (case, m) in by_key else "n/a"
            for m in ("zse SSSC", "zse PMM", "zse GPMM")
        ]
        lines.append(
            f"| {case} | {_f(truth, 'g') if truth is not None else '–'} | {_f(learned, '.3f')} | "
            f"{error} | " + " | ".join(rho) + " |"
        )
    return [*lines, ""]


def peer_margins(rows, order, method_names, skipped) -> list[str]:
    """Where zse wins and loses against each peer: per peer, the cases both ran, PSNR margins of
    the best zse model on each case, and the time ratio."""
    by_key = {(r["case"], r["method"]): r for r in rows}
    zse_names = [m for m in method_names if m.startswith("zse")]
    lines = [
        "## zse against each peer",
        "",
        "Per peer, over the cases where it ran and has a reference: the best zse model on each case "
        "(SSSC, PMM or GPMM, whichever is ahead there) minus the peer, in dB (positive: zse ahead), and "
        "the peer's time over that zse model's time, summed over those cases.",
        "",
        "| peer | cases | zse ahead | mean margin dB | smallest | largest | where zse loses most | "
        "peer time / zse time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer in [m for m in method_names if not m.startswith("zse")]:
        margins, peer_s, zse_s = [], 0.0, 0.0
        for case in order:
            p = by_key.get((case, peer))
            if p is None or p["psnr"] == "":
                continue
            best = max(
                (
                    by_key[(case, z)]
                    for z in zse_names
                    if (case, z) in by_key and by_key[(case, z)]["psnr"]
                ),
                key=lambda r: float(r["psnr"]),
                default=None,
            )
            if best is None:
                continue
            margins.append((float(best["psnr"]) - float(p["psnr"]), case))
            peer_s += float(p["seconds"])
            zse_s += float(best["seconds"])
        if not margins:
            continue
        values = np.array([m for m, _ in margins])
        worst = min(margins)
        lines.append(
            f"| {peer} | {len(margins)} | {int((values > 0).sum())} of {len(margins)} | "
            f"{values.mean():+.2f} | {values.min():+.2f} | {values.max():+.2f} | "
            f"{worst[1]} ({worst[0]:+.2f}) | {peer_s / zse_s:.2f} |"
        )
    if skipped:
        lines += [
            "",
            "Skipped in this run (their packages are not installed; bench/requirements-peers.txt): "
            + ", ".join(skipped)
            + ".",
        ]
    return [*lines, ""]


def render_report(rows, cases, methods, quick, n_threads, skipped=()) -> str:
    import importlib.metadata

    import skimage

    method_names = [m.name for m in methods]
    settings = {m.name: m.settings for m in methods}
    order = [c.name for c in cases]
    out = [
        "# zse against common denoisers"
        + (" (quick mode: small crops and models, not a result)" if quick else ""),
        "",
        f"Produced by `python bench/compare.py{' --quick' if quick else ''}` from the cases and seeds declared in that "
        "script (noise from `numpy.random.default_rng(0)`, a fresh generator per case); every number below is read "
        f"from `bench/results/compare{'_quick' if quick else ''}.csv`.",
        "",
        f"Machine: {machine_line()}; zse with {n_threads} threads; peers: bm3d {importlib.metadata.version('bm3d')}, "
        f"scikit-image {skimage.__version__} (single-threaded).",
        "",
        "Columns: PSNR in dB / SSIM against the clean reference; seconds and peak memory (MiB of resident memory above "
        "the level before the call, from the kernel's high-water mark) per method and case.",
        "",
        "Method settings:",
        "",
    ]
    for m, current in settings.items():
        out.append(f"- **{m}**: {current}")
        older = {}  # rows not (yet) re-measured with the current settings
        for r in rows:
            if r["method"] == m and r["settings"] != current:
                older.setdefault(r["settings"], []).append(r["case"])
        for other, names in older.items():
            out.append(f"  - measured with *{other}* instead: {', '.join(names)}")
    out += [
        "",
        "Peers see the true σ only in the Gaussian cases (BM3D (true σ)); everything else estimates σ with "
        "`skimage.restoration.estimate_sigma`. On the Poisson cases the peers and zse SSSC run on the Anscombe "
        "transform (σ = 1 there, which BM3D (true σ) is given) followed by the closed-form unbiased inverse; "
        "PMM and GPMM run on the counts. PMM/GPMM need counts, so they do not apply to the Gaussian and real-EM cases "
        "(n/a).",
        "",
    ]
    out += summary(rows, order, method_names)
    groups = [
        ("gaussian", "Gaussian noise (Set12, σ = 15, 25, 50, not clipped; data range 255)"),
        (
            "poisson",
            f"Poisson noise ({POISSON_CROP}×{POISSON_CROP} crops; counts = poisson(dose · clean / mean(clean)); "
            "PSNR against the rate image, data range max − min)",
        ),
        (
            "coloured",
            "Coloured Gaussian noise (256×256: the ISBI slice 0 crop, house, peppers; σ 15 and 25 "
            "through the transfer exp(−2π²b²|f|²), b = 0.5, 0.8, 1.2: lag-1 correlation 0.39, "
            "0.67, 0.84; data range 255). BM3D (true PSD) is told the noise power spectrum; "
            "BM3D (estimated PSD) gets one estimated from the image; zse is blind",
        ),
        (
            "poisson MTF",
            "Poisson counts seen through a detector MTF (the counts filtered by the transfer "
            "b = 0.8; PSNR against the rate filtered alike, data range max − min): correlated "
            "noise on values that are no longer integers",
        ),
        (
            "real pair",
            "Real pair: FMD confocal raw frame against the 50-frame average (data range 255)",
        ),
        (
            "volume",
            "Volumes: a synthetic 64³ cell-like phantom (`phantom_volume`: shells, particles, "
            "filaments) with Gaussian noise (σ = 25, data range 255) and with Poisson noise (dose 2; "
            "PSNR against the rate); zse with 4×4×4 patches",
        ),
    ]
    out += sigma_and_variance_section(rows, cases)
    for group, title in groups:
        g = [r for r in rows if r["group"] == group]
        if not g:
            continue
        out += [
            f"## {title}",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['psnr'], '.2f')} / {_f(r['ssim'], '.3f')}",
                "psnr",
            ),
            "",
        ]
        if group == "poisson":
            where = "; ".join(
                f"{name}: rows {top}–{top + POISSON_CROP - 1}, columns {left}–{left + POISSON_CROP - 1}"
                for name, (_, top, left) in HRTEM.items()
            )
            out += [
                f"HRTEM crops ({where}): the particle with vacuum above and the support interface below, and the "
                "left facet, the only region where the two simulations differ. ISBI: central crops.",
                "",
            ]
        if group == "real pair":
            out += [
                "The noise of this frame grows with the signal (Poisson–Gaussian). The blind peers get one σ "
                "estimated from the whole image and no variance-stabilising transform (the detector gain is not "
                "known); zse's models learn the noise from the image (SSSC one σ in the image domain, PMM and "
                "GPMM Poisson statistics of the raw values).",
                "",
            ]
        out += [
            "Seconds / peak MiB:",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['seconds'], '.1f')} / {_f(r['peak_mib'], '.0f')}",
            ),
            "",
        ]
    g = [r for r in rows if r["group"] == "real EM"]
    if g:
        out += [
            "## Real EM without ground truth",
            "",
            "No PSNR is possible. Sharpness: `skimage.measure.blur_effect` (0 = sharp, 1 = blurry; the noisy input is "
            "sharp because noise is). Noise left in flat regions: the 10% of 16×16 tiles with the least structure in a "
            "Gaussian-smoothed (σ = 2 px) copy of the noisy image, per tile the standard deviation around a fitted plane, "
            "RMS over the tiles, in grey levels. Cells: blur effect / flat-region noise. The cryo-ET slice (Ke et al., "
            "Nature 2020, CZ CryoET Data Portal dataset 10006) is binned 2×2 (464×480): its noise is correlated over "
            "about two pixels. The giant-virus TEM crops (central 320×320 of the 641×641 crops) are internal test "
            "images whose outputs are not published.",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['blur'], '.3f')} / {_f(r['flat_noise'], '.2f')}",
            ),
            "",
            "The blind peers rely on `estimate_sigma` (a wavelet median estimate from the finest scale), which "
            "reads correlated noise as signal; its estimate for each noisy input: "
            + "; ".join(_sigma_note(c) for c in cases if c.group == "real EM" and c.name in order)
            + ".",
            "",
            "Seconds / peak MiB:",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['seconds'], '.1f')} / {_f(r['peak_mib'], '.0f')}",
            ),
            "",
        ]
    seconds = sum(float(r["seconds"]) for r in rows)
    out += [f"Total method time in this table: {seconds / 60:.1f} min.", ""]
    out += peer_margins(rows, order, method_names, skipped)
    return "\n".join(out)

"""
A real cryo-ET slice: coloured noise learned from the image
===========================================================

A slice of a cryo-electron tomogram with SARS-CoV-2 virions at a cell edge (Ke et al., Nature
2020; CZ CryoET Data Portal dataset 10006, CC0). A tomogram's noise is correlated between
neighbouring pixels (its reconstruction interpolates); SSSC at its defaults (``noise="auto"``)
measures that, learns a stationary noise covariance and denoises in whitened coordinates. The
noise left in the flattest background blocks is given relative to the input's.
"""

import numpy as np
from _gallery_data import find, side_by_side

import zse

path = find("em/cryoet_sarscov2_TS001_slice133_928x960.tif")
if path is None:
    print("the test data (shared/data) are not beside the repository: nothing to show")
else:
    image = zse.io.read_image(path)[300:620, 300:620]
    model = zse.SSSC(random_state=0, n_threads=2)
    result = zse.reconstruct(image, model, n_threads=2)
    noise = model.summary()["noise"]
    print(f"noise model: {noise['model']}, neighbour correlation {noise['neighbour_correlation']}")
    print(f"learned noise sigma {np.sqrt(model.sigma2_):.2f}, active units {model.pi_.sum():.2f}")

    def flat_noise(picture, block=32, fraction=0.1):
        """RMS of the plane-free residual in the input's flattest blocks."""
        y, x = np.mgrid[:block, :block]
        design = np.column_stack([np.ones(block * block), y.ravel(), x.ravel()])

        def residual(b):
            return b.ravel() - design @ np.linalg.lstsq(design, b.ravel(), rcond=None)[0]

        corners = [
            (i, j)
            for i in range(0, image.shape[0] - block + 1, block)
            for j in range(0, image.shape[1] - block + 1, block)
        ]
        corners.sort(key=lambda c: residual(image[c[0] : c[0] + block, c[1] : c[1] + block]).std())
        kept = corners[: max(1, int(fraction * len(corners)))]
        return np.sqrt(
            np.mean([residual(picture[i : i + block, j : j + block]).var() for i, j in kept])
        )

    print(f"background noise: {flat_noise(result['mean']) / flat_noise(image):.2f} of the input's")

    # %%
    # Input, mean and variance (its square root, on its own scale): the variance traces the
    # membranes and the virions' envelopes.
    side_by_side(
        [image, result["mean"], np.sqrt(result["var"])],
        ["input", "zse mean", "zse variance (square root)"],
        "cryo-ET slice 133 (Ke et al. 2020, CZ CryoET Data Portal 10006, CC0)",
    )

    # %%
    # The learned noise as ``zse denoise`` draws it in ``<stem>_noise.png``: the noise power
    # spectrum (a low-pass blob: correlated noise), the correlation over the patch's offsets, and
    # the noise variance against the brightness.
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.imshow(zse.io.noise_picture(model.noise_description()), cmap="gray")
    ax.set_axis_off()

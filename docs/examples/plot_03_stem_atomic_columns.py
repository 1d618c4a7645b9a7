"""
Atomic-resolution STEM: shot noise on a lattice
================================================

A real annular dark-field STEM image of a perovskite-like lattice with shot noise (test data of
atomap, Nord et al. 2017, GPL-3.0). Its values are not counts, so the automatic choice is SSSC;
its noise model (white, coloured or signal-dependent) is chosen from the image as well.
"""

import numpy as np
from _gallery_data import find, side_by_side

import zse

path = find("em/stem_adf_atomap_test_ADF_cropped_400x380_float32.tif")
if path is None:
    print("the test data (shared/data) are not beside the repository: nothing to show")
else:
    image = zse.io.read_image(path)
    result = zse.reconstruct(image, n_threads=2)
    model = result.model
    print(f"model chosen: {result.model_choice['model']} ({result.model_choice['reason']})")
    noise = model.noise_evidence_
    print(f"noise: {model.noise_model_} ({noise['reason']})")
    print(f"signal dependence: {noise['signal_dependence']['reason']}")
    side_by_side(
        [image, result["mean"], np.sqrt(result["var"])],
        ["input", "zse mean", "zse variance (square root)"],
        "STEM ADF (atomap test data, Nord et al. 2017, GPL-3.0)",
    )

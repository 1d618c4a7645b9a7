"""
A volume with 3-D patches
=========================

Tomograms are volumes: zse treats them with 3-D patches (4 x 4 x 4 by default), so a voxel is
estimated from its neighbours in every direction. A small synthetic volume of shells and
particles with Gaussian noise; the central section is shown.
"""

import numpy as np
from _gallery_data import side_by_side

import zse

rng = np.random.default_rng(0)
z, y, x = np.mgrid[0:32, 0:48, 0:48].astype(float)
clean = 60.0 + 40.0 * x / 48
for centre, radius in [((16, 16, 16), 8), ((14, 30, 32), 6), ((18, 34, 12), 5)]:
    distance = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    clean[np.abs(distance - radius) < 1.2] = 200.0
noisy = clean + rng.normal(0, 30, clean.shape)

model = zse.SSSC(32, max_iter=40, random_state=0, n_threads=2)
result = zse.reconstruct(noisy, model, patch_size=(4, 4, 4), n_threads=2)
noisy_db, mean_db = zse.psnr(clean, noisy, 255), zse.psnr(clean, result["mean"], 255)
print(f"PSNR noisy {noisy_db:.2f} dB, mean {mean_db:.2f} dB")
middle = clean.shape[0] // 2
side_by_side(
    [noisy[middle], result["mean"][middle], result["var"][middle]],
    ["noisy (central section)", "zse mean", "zse variance"],
    "a 32 x 48 x 48 volume, 4 x 4 x 4 patches",
)

"""
Fit once, apply many: a model file
==================================

A model learned on one image applies to others of the same kind: every image is treated alike
and only the estimation is paid per image. Here a Gamma-Poisson mixture is fitted on one
synthetic scene, saved, loaded and applied to a second scene with another layout.
"""

import tempfile
from pathlib import Path

from _gallery_data import side_by_side

import zse

first, _ = zse.synthetic_tem(shape=(160, 160), seed=1)
second, clean = zse.synthetic_tem(shape=(160, 160), seed=2)

model = zse.GPMM(32, random_state=0, n_threads=2)
zse.reconstruct(first, model, stats="mean", patch_size=8)
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "session.zse"
    zse.save_model(model, path, patch_size=(8, 8))
    loaded = zse.load_model(path)
result = zse.reconstruct(second, loaded, patch_size=8)
print(
    f"second scene: PSNR noisy {zse.psnr(clean, second):.2f} dB, "
    f"mean {zse.psnr(clean, result['mean']):.2f} dB with the first scene's model"
)

# %%
# Patches drawn from the learned generative model (``sample``) look like the scene's patches.
import matplotlib.pyplot as plt  # noqa: E402

samples = loaded.sample(16, random_state=0).reshape(16, 8, 8)
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, patch in zip(axes.ravel(), samples):
    ax.imshow(patch, cmap="gray")
    ax.set_axis_off()
fig.suptitle("16 patches drawn from the loaded model", fontsize=10)

side_by_side(
    [second, result["mean"], result["var"]],
    ["second scene", "mean (first scene's model)", "variance"],
    "a model file applied to another image",
)

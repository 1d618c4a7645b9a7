"""Write the benchmark images the C++ binaries read as raw little-endian float64.

    python bench/export_raw.py   ->  bench/results/house_0.4_sigma25.f64  (102 x 102)

House (../shared/data/classic) rescaled by 0.4 with bicubic interpolation, plus white Gaussian
noise of sigma 25 from numpy default_rng(0): the published ES3C demo setting (bench_estep -a).
"""

import numpy as np
from PIL import Image

import zse
from _common import RESULTS, SHARED_DATA


def main():
    house = zse.io.read_image(SHARED_DATA / "classic" / "set12_02_house_256.png")
    small = np.asarray(Image.fromarray(house).resize((102, 102), Image.BICUBIC), dtype=np.float64)
    noisy = small + np.random.default_rng(0).normal(0.0, 25.0, small.shape)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "house_0.4_sigma25.f64"
    noisy.astype("<f8").tofile(path)
    print(f"{path} {noisy.shape[0]} {noisy.shape[1]}")


if __name__ == "__main__":
    main()

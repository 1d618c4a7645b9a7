"""Check that a built zse._core runs on x86-64 CPUs without AVX2 (the baseline path).

The hot kernels are compiled twice (ZSE_HOT_CLONES in cpp/include/zse/simd.hpp): an x86-64-v3
clone (AVX2, FMA) and the default one, picked at load time. Everything else is compiled for the
baseline. So instructions on 256-bit ymm registers may appear only inside the clones' function
bodies. The check reads the static core library (object files keep every function's symbol; the
stripped extension module does not):

    python .ci/check_baseline.py build-ci/libzse_core.a
"""

from __future__ import annotations

import re
import subprocess
import sys


def main(path: str) -> int:
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", path],
                             capture_output=True, text=True, check=True).stdout
    function, offenders, clones = None, set(), set()
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            function = header.group(1)
            continue
        if function and "%ymm" in line:
            if "arch_x86_64_v3" in function:
                clones.add(function)
            else:
                offenders.add(function)
    if offenders:
        print("AVX2 (ymm) instructions outside the x86-64-v3 clones:", *sorted(offenders)[:20], sep="\n  ")
        return 1
    print(f"baseline ok: ymm registers only in {len(clones)} x86-64-v3 clone(s); default clones serve older CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

// Four-lane double vectors through the GCC/Clang vector extension: the same source compiles to
// AVX2 registers in an AVX2 clone and to pairs of SSE2 registers in the baseline build.
#pragma once

#include <cstring>

// Always inlined: a 32-byte vector returned by an out-of-line baseline-ISA helper to an AVX clone
// crosses two different calling conventions (GCC's -Wpsabi note); inlined, a helper takes the ISA
// of the kernel it is inlined into. Without this, -O0 builds crashed (found by ASan in CI).
#if defined(__GNUC__)
#define ZSE_SIMD_INLINE inline __attribute__((always_inline))
#else
#define ZSE_SIMD_INLINE inline
#endif

namespace zse::simd {

typedef double v4d __attribute__((vector_size(32)));
// Same type with 8-byte alignment, for loads and stores at any double address.
typedef double v4d_unaligned __attribute__((vector_size(32), aligned(8)));

ZSE_SIMD_INLINE v4d load(const double* p) {
    return *reinterpret_cast<const v4d_unaligned*>(p);
}
ZSE_SIMD_INLINE void store(double* p, v4d v) {
    *reinterpret_cast<v4d_unaligned*>(p) = v;
}
ZSE_SIMD_INLINE v4d broadcast(double x) {
    return v4d{x, x, x, x};
}
ZSE_SIMD_INLINE double sum(v4d v) {
    return (v[0] + v[1]) + (v[2] + v[3]);
}
ZSE_SIMD_INLINE v4d max(v4d a, v4d b) {
    return a > b ? a : b;
}

typedef long long v4i __attribute__((vector_size(32)));

/// exp(x) for -708 <= x <= 0 (lanes outside give garbage: callers fix them up). Range reduction
/// x = k ln2 + r, |r| <= ln2 / 2, then a degree-13 Taylor polynomial (truncation < 1.1e-16
/// relative) and 2^k assembled from its exponent bits. Relative error about 2e-16.
ZSE_SIMD_INLINE v4d exp_nonpositive(v4d x) {
    constexpr double log2e = 1.4426950408889634074;
    constexpr double ln2_hi = 6.93147180369123816490e-01;  // ln2 with the low bits cleared ...
    constexpr double ln2_lo = 1.90821492927058770002e-10;  // ... and the rest
    constexpr double shifter = 0x1.8p52;  // adding it rounds to an integer held in the low bits
    const v4d shifted = x * log2e + shifter;
    const v4d k = shifted - shifter;
    const v4d r = (x - k * ln2_hi) - k * ln2_lo;
    v4d p = broadcast(1.0 / 6227020800.0);  // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // A cast between vector types of equal size reinterprets the bits (GCC/Clang vector extension).
    const v4i k_int = (v4i)shifted - 0x4338000000000000LL;
    const v4i scale_bits = (k_int + 1023) << 52;
    return p * (v4d)scale_bits;
}

}  // namespace zse::simd

// Hot kernels are compiled twice, for x86-64-v3 (AVX2 + FMA) and the baseline ISA, and the CPU
// picks one at load time, so binaries stay portable (no -march=native). "arch=x86-64-v3" is
// dispatched on CPU features; "arch=haswell" would be dispatched on the CPU model and never chosen
// on AMD processors. Exceptions must not unwind through such a function: the kernels marked with
// it never throw.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ZSE_HOT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ZSE_HOT_CLONES
#endif

// Before a loop whose arrays do not overlap: GCC honours __restrict on function parameters, not
// on local pointers, and would otherwise leave loops that update several arrays scalar.
#if defined(__GNUC__) && !defined(__clang__)
#define ZSE_INDEPENDENT_ITERATIONS _Pragma("GCC ivdep")
#else
#define ZSE_INDEPENDENT_ITERATIONS
#endif

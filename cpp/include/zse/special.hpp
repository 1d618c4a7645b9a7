// Special functions in double precision, safe to call from several threads.
#pragma once

#include <cmath>
#include <limits>

namespace zse {

/// log Gamma(x) for x > 0. glibc's lgamma writes the global `signgam`, a data race under OpenMP;
/// lgamma_r keeps the sign local.
inline double log_gamma(double x) {
#if defined(__GLIBC__) || defined(__APPLE__)
    int sign = 0;
    return ::lgamma_r(x, &sign);
#else
    return std::lgamma(x);
#endif
}

/// Digamma psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series through the
/// x^-14 term (the first omitted term is below 5e-17 there).
inline double digamma(double x) {
    if (!(x > 0.0)) return std::numeric_limits<double>::quiet_NaN();
    double result = 0.0;
    while (x < 10.0) {
        result -= 1.0 / x;
        x += 1.0;
    }
    const double inv = 1.0 / x, y = inv * inv;
    // psi(x) ~ log x - 1/(2x) - sum_k B_2k / (2k x^2k)
    const double series =
        y *
        (1.0 / 12 - y * (1.0 / 120 -
                         y * (1.0 / 252 -
                              y * (1.0 / 240 - y * (1.0 / 132 - y * (691.0 / 32760 - y / 12.0))))));
    return result + std::log(x) - 0.5 * inv - series;
}

}  // namespace zse

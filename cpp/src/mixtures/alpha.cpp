// GPMM's Gamma shape: Brent's root of the profile equation (ALGORITHM.md §6.5).
#include <algorithm>
#include <cmath>
#include <vector>

#include "zse/mixtures.hpp"
#include "zse/special.hpp"

namespace zse {

double solve_alpha(const std::vector<double>& values, const double* weights,
                   const std::vector<double>& R, const std::vector<double>& T, index_t c_begin,
                   index_t c_end, double alpha_min, double alpha_max, bool& capped) {
    auto g = [&](double alpha) {
        const double psi_alpha = digamma(alpha);
        double sum = 0.0;
        for (std::size_t k = 0; k < values.size(); ++k) {
            if (weights[k] != 0.0 && values[k] != 0.0) {
                sum += weights[k] * (digamma(alpha + values[k]) - psi_alpha);
            }
        }
        for (index_t c = c_begin; c < c_end; ++c) {
            if (R[c] > 0.0) sum += R[c] * std::log(alpha / (alpha + T[c] / R[c]));
        }
        return sum;
    };
    capped = false;
    double a = alpha_min, b = alpha_max;
    double fa = g(a), fb = g(b);
    if (fb > 0.0) {  // no sign change: the totals are not over-dispersed; alpha -> infinity
        capped = true;
        return alpha_max;
    }
    if (fa <= 0.0) return alpha_min;
    // Brent's method: inverse quadratic interpolation, falling back to bisection.
    double c = a, fc = fa, d = b - a, e = d;
    for (int iter = 0; iter < 200; ++iter) {
        if ((fb > 0.0) == (fc > 0.0)) {
            c = a;
            fc = fa;
            d = e = b - a;
        }
        if (std::fabs(fc) < std::fabs(fb)) {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        const double tol = 2.0 * 1e-15 * std::fabs(b) + 1e-12 * std::fabs(b);
        const double m = 0.5 * (c - b);
        if (std::fabs(m) <= tol || fb == 0.0) return b;
        if (std::fabs(e) >= tol && std::fabs(fa) > std::fabs(fb)) {
            double p, qq, r;
            const double s = fb / fa;
            if (a == c) {
                p = 2.0 * m * s;
                qq = 1.0 - s;
            } else {
                qq = fa / fc;
                r = fb / fc;
                p = s * (2.0 * m * qq * (qq - r) - (b - a) * (r - 1.0));
                qq = (qq - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if (p > 0.0)
                qq = -qq;
            else
                p = -p;
            if (2.0 * p < std::min(3.0 * m * qq - std::fabs(tol * qq), std::fabs(e * qq))) {
                e = d;
                d = p / qq;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += std::fabs(d) > tol ? d : (m > 0 ? tol : -tol);
        fb = g(b);
    }
    return b;
}

}  // namespace zse

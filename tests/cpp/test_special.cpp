#include <cmath>
#include <random>

#include "check.hpp"
#include "zse/simd.hpp"
#include "zse/special.hpp"

int main() {
    // Vector exp against std::exp over its whole domain [-708, 0].
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> uni(-708.0, 0.0);
    double worst = 0.0;
    for (int k = 0; k < 100000; ++k) {
        const double x = k < 4 ? -0.0 - k * 1e-300 : uni(rng);
        const zse::simd::v4d e = zse::simd::exp_nonpositive(zse::simd::broadcast(x));
        worst = std::max(worst, std::fabs(e[0] - std::exp(x)) / std::exp(x));
    }
    CHECK(worst < 5e-16);
    CHECK(zse::simd::exp_nonpositive(zse::simd::broadcast(0.0))[0] == 1.0);

    // Digamma: known values and the recurrence psi(x + 1) = psi(x) + 1 / x.
    const double euler = 0.57721566490153286061;
    CHECK_CLOSE(zse::digamma(1.0), -euler, 1e-15);
    CHECK_CLOSE(zse::digamma(0.5), -euler - 2.0 * std::log(2.0), 1e-15);
    for (double x : {1e-6, 0.3, 2.7, 11.0, 1e4}) {
        // psi(x) = psi(x + 1) - 1/x, compared relative to |psi(x)| (adding 1/x to psi(x) instead
        // would cancel most digits for small x).
        CHECK_CLOSE(zse::digamma(x), zse::digamma(x + 1.0) - 1.0 / x, 1e-14);
        // Derivative of log Gamma by a central difference.
        const double h = 1e-5 * std::max(1.0, x);
        if (x > 1e-3) {
            CHECK_CLOSE(zse::digamma(x), (zse::log_gamma(x + h) - zse::log_gamma(x - h)) / (2 * h),
                        1e-8);
        }
    }
    CHECK(std::isnan(zse::digamma(-1.0)));
    TEST_MAIN_END();
}

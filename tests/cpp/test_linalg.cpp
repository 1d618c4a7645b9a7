// The small dense linear algebra of zse/linalg.hpp against direct definitions.
#include <cmath>
#include <random>
#include <vector>

#include "check.hpp"
#include "zse/linalg.hpp"

using zse::index_t;

int main() {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (index_t k : {1, 2, 3, 7, 12, 20}) {
        // A = B B^T + I is positive definite; its factor must reproduce it.
        std::vector<double> B(k * k), A(k * k, 0.0);
        for (double& b : B) b = normal(rng);
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) {
                for (index_t p = 0; p < k; ++p) A[i * k + j] += B[i * k + p] * B[j * k + p];
                if (i == j) A[i * k + j] += 1.0;
            }
        std::vector<double> L = A;
        CHECK(zse::linalg::cholesky(L.data(), k));
        for (index_t i = 0; i < k; ++i)
            for (index_t j = 0; j < k; ++j) {
                double v = 0.0;
                for (index_t p = 0; p < k; ++p) v += L[i * k + p] * L[j * k + p];
                CHECK_CLOSE(v, A[i * k + j], 1e-12);
                if (j > i) CHECK(L[i * k + j] == 0.0);
            }
        // log det A = 2 sum log L_ii, also when the diagonal spans float64's whole range (where
        // a plain product of the diagonal would overflow or underflow).
        double sum = 0.0;
        for (index_t i = 0; i < k; ++i) sum += std::log(L[i * k + i]);
        CHECK_CLOSE(zse::linalg::log_det_from_cholesky(L.data(), k), 2.0 * sum, 1e-13);
        std::vector<double> D(k * k, 0.0);
        double extreme = 0.0;
        for (index_t i = 0; i < k; ++i) {
            const double d =
                std::pow(10.0, (i % 2 ? 1.0 : -1.0) * (100.0 + 10.0 * static_cast<double>(i)));
            D[i * k + i] = d;
            extreme += std::log(d);
        }
        CHECK_CLOSE(zse::linalg::log_det_from_cholesky(D.data(), k), 2.0 * extreme, 1e-13);
        for (index_t i = 0; i < k; ++i) D[i * k + i] = 1e120;  // products leave [1e-150, 1e150]
        CHECK_CLOSE(zse::linalg::log_det_from_cholesky(D.data(), k),
                    2.0 * static_cast<double>(k) * std::log(1e120), 1e-13);
    }
    // Not positive definite: refused.
    double M[4] = {1.0, 2.0, 2.0, 1.0};
    CHECK(!zse::linalg::cholesky(M, 2));
    TEST_MAIN_END();
}

// Always-on test assertions (assert() vanishes under NDEBUG, which Release builds define).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace zse_test {
inline int failures = 0;
}

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++zse_test::failures;                                                         \
        }                                                                                 \
    } while (0)

#define CHECK_CLOSE(a, b, tol)                                                            \
    do {                                                                                  \
        const double va_ = (a), vb_ = (b);                                                \
        if (!(std::fabs(va_ - vb_) <= (tol) * (1.0 + std::fabs(vb_)))) {                  \
            std::fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.17g vs %s = %.17g\n", \
                         __FILE__, __LINE__, #a, va_, #b, vb_);                           \
            ++zse_test::failures;                                                         \
        }                                                                                 \
    } while (0)

#define CHECK_THROWS(expr)                                                                    \
    do {                                                                                      \
        bool threw_ = false;                                                                  \
        try {                                                                                 \
            expr;                                                                             \
        } catch (const std::invalid_argument&) {                                              \
            threw_ = true;                                                                    \
        }                                                                                     \
        if (!threw_) {                                                                        \
            std::fprintf(stderr, "%s:%d: expected std::invalid_argument from %s\n", __FILE__, \
                         __LINE__, #expr);                                                    \
            ++zse_test::failures;                                                             \
        }                                                                                     \
    } while (0)

#define TEST_MAIN_END()                                                       \
    do {                                                                      \
        if (zse_test::failures) {                                             \
            std::fprintf(stderr, "%d check(s) failed\n", zse_test::failures); \
            return 1;                                                         \
        }                                                                     \
        std::printf("all checks passed\n");                                   \
        return 0;                                                             \
    } while (0)

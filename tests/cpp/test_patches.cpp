#include <vector>

#include "check.hpp"
#include "zse/patches.hpp"

int main() {
    using zse::index_t;
    // A 5x7 image with 2x3 patches: every patch pixel must equal image[r0 + i, c0 + j].
    const index_t R = 5, Q = 7, Ph = 2, Pw = 3;
    std::vector<double> image(R * Q);
    for (index_t k = 0; k < R * Q; ++k) image[k] = 0.5 * static_cast<double>(k) - 3.0;
    const zse::PatchGrid grid(R, Q, Ph, Pw);
    CHECK(grid.n_patches() == (R - Ph + 1) * (Q - Pw + 1));
    CHECK(grid.patch_size() == Ph * Pw);
    for (int threads : {1, 2, 3}) {
        std::vector<double> patches(grid.n_patches() * grid.patch_size(), -1.0);
        zse::extract_patches(image.data(), grid, patches.data(), threads);
        for (index_t r0 = 0; r0 < grid.corner_rows(); ++r0)
            for (index_t c0 = 0; c0 < grid.corner_cols(); ++c0)
                for (index_t i = 0; i < Ph; ++i)
                    for (index_t j = 0; j < Pw; ++j) {
                        const index_t n = r0 * grid.corner_cols() + c0;
                        CHECK(patches[n * grid.patch_size() + i * Pw + j] ==
                              image[(r0 + i) * Q + c0 + j]);
                    }
    }
    // Coverage counts: corners 1, interior D, and the sum over pixels is N * D.
    CHECK(grid.coverage(0, 0) == 1);
    CHECK(grid.coverage(R - 1, Q - 1) == 1);
    CHECK(grid.coverage(2, 3) == Ph * Pw);
    index_t total = 0;
    for (index_t r = 0; r < R; ++r)
        for (index_t c = 0; c < Q; ++c) total += grid.coverage(r, c);
    CHECK(total == grid.n_patches() * grid.patch_size());

    CHECK_THROWS(zse::PatchGrid(4, 4, 5, 2));
    CHECK_THROWS(zse::PatchGrid(4, 4, 0, 2));
    CHECK_THROWS(zse::extract_patches(image.data(), grid, image.data(), 0));
    TEST_MAIN_END();
}

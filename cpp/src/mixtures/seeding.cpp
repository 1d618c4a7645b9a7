// k-means++ seeding of the mixtures' components from the patches (ALGORITHM.md §5.3, §6.6).
#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "detail.hpp"
#include "zse/parallel.hpp"
#include "zse/reduction.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace {

// d2[n] = min(d2[n], |y_n - center|^2) for n in [begin, end); returns the sum of the new d2.
ZSE_HOT_CLONES double update_min_distances(const double* __restrict Y, index_t begin, index_t end,
                                           index_t D, const double* __restrict center,
                                           double* __restrict d2) {
    double total = 0.0;
    for (index_t n = begin; n < end; ++n) {
        const double* y = Y + n * D;
        simd::v4d acc = simd::broadcast(0.0);
        index_t d = 0;
        for (; d + 4 <= D; d += 4) {
            const simd::v4d diff = simd::load(y + d) - simd::load(center + d);
            acc += diff * diff;
        }
        double dist = simd::sum(acc);
        for (; d < D; ++d) dist += (y[d] - center[d]) * (y[d] - center[d]);
        d2[n] = std::min(d2[n], dist);
        total += d2[n];
    }
    return total;
}

}  // namespace

std::vector<index_t> kmeans_plusplus(const double* Y, index_t N, index_t D, index_t C,
                                     std::uint64_t seed, int n_threads, index_t max_candidates) {
    require(C >= 1 && C <= N, "k-means++ needs 1 <= C <= N (C=" + std::to_string(C) +
                                  ", N=" + std::to_string(N) + ")");
    std::mt19937_64 rng(seed);
    auto uniform = [&rng]() { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
    if (max_candidates > 0 && N > max_candidates && max_candidates >= C) {
        // Each seeding step streams every candidate, so seeding from all N patches costs C full
        // passes over the data (more than several EM epochs). Seed from a random subset instead;
        // the seeds are still patches of the image.
        std::vector<index_t> pool(static_cast<std::size_t>(N));
        for (index_t n = 0; n < N; ++n) pool[n] = n;
        for (index_t k = 0; k < max_candidates; ++k) {  // partial Fisher-Yates shuffle
            const index_t j = k + static_cast<index_t>(uniform() * static_cast<double>(N - k));
            std::swap(pool[k], pool[std::min(j, N - 1)]);
        }
        pool.resize(static_cast<std::size_t>(max_candidates));
        std::sort(pool.begin(), pool.end());
        std::vector<double> subset(static_cast<std::size_t>(max_candidates * D));
        for (index_t k = 0; k < max_candidates; ++k)
            std::copy(Y + pool[k] * D, Y + (pool[k] + 1) * D, subset.begin() + k * D);
        std::vector<index_t> chosen =
            kmeans_plusplus(subset.data(), max_candidates, D, C, rng(), n_threads, 0);
        for (index_t& index : chosen) index = pool[index];
        return chosen;
    }
    std::vector<index_t> chosen;
    chosen.reserve(C);
    chosen.push_back(static_cast<index_t>(uniform() * static_cast<double>(N)));
    std::vector<double> d2(static_cast<std::size_t>(N), std::numeric_limits<double>::infinity());
    const FixedChunks chunks = mixture_chunks(N);
    const index_t n_chunks = chunks.count;
    std::vector<double> chunk_sum(static_cast<std::size_t>(n_chunks));
    while (true) {
        const double* center = Y + chosen.back() * D;
        parallel_for(n_chunks, n_threads, [&](index_t k) {
            chunk_sum[k] =
                update_min_distances(Y, chunks.begin(k), chunks.end(k), D, center, d2.data());
        });
        if (static_cast<index_t>(chosen.size()) == C) break;
        double total = 0.0;
        for (double s : chunk_sum) total += s;
        require(total > 0.0, "the patches hold fewer than C=" + std::to_string(C) +
                                 " distinct patches; use fewer components");
        double u = uniform() * total;
        index_t k = 0;
        while (k + 1 < n_chunks && u >= chunk_sum[k]) u -= chunk_sum[k++];
        index_t pick = -1;
        for (index_t n = chunks.begin(k); n < chunks.end(k); ++n) {
            if (d2[n] > 0.0) pick = n;  // last positive-weight patch guards against rounding
            if (u < d2[n]) break;
            u -= d2[n];
        }
        require(pick >= 0, "k-means++ found no patch with positive distance");
        chosen.push_back(pick);
    }
    return chosen;
}

}  // namespace zse

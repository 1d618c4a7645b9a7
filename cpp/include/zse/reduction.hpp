// Fixed-chunk reductions: the one place that decides in which order per-patch statistics are
// summed, which is what makes every result independent of the thread and rank counts
// (ALGORITHM.md §7.2).
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "zse/common.hpp"
#include "zse/parallel.hpp"

namespace zse {

/// N items split into `count` chunks of `size` items (the last one shorter), fixed by N alone.
struct FixedChunks {
    index_t n_items = 0;
    index_t size = 1;
    index_t count = 1;
    index_t begin(index_t c) const { return std::min(n_items, c * size); }
    index_t end(index_t c) const { return std::min(n_items, (c + 1) * size); }
};

/// At most `max_count` chunks of at least `min_size` items (one chunk for N <= min_size).
inline FixedChunks fixed_chunks(index_t N, index_t min_size, index_t max_count = 32) {
    FixedChunks chunks;
    chunks.n_items = N;
    chunks.count = std::clamp<index_t>((N + min_size - 1) / min_size, 1, max_count);
    chunks.size = std::max<index_t>(1, (N + chunks.count - 1) / chunks.count);
    return chunks;
}

/// The chunks [first, last) one of `n_parts` workers (MPI ranks) owns: contiguous and in rank
/// order, so concatenating every part's partials in rank order gives them in chunk order.
struct ChunkShare {
    index_t first = 0;
    index_t last = 0;
};

inline ChunkShare share_of(const FixedChunks& chunks, int part, int n_parts) {
    require(n_parts >= 1 && part >= 0 && part < n_parts, "part must be in [0, n_parts)");
    ChunkShare share;
    share.first = chunks.count * part / n_parts;
    share.last = chunks.count * (part + 1) / n_parts;
    return share;
}

/// One partial result per chunk of `share`, computed in parallel by body(c, partial) and
/// returned in chunk order. A chunk is worked on by one thread from its first item to its last,
/// so a partial depends on the chunk's items only.
template <class Partial, class Body>
std::vector<Partial> chunk_partials(ChunkShare share, int n_threads, Body&& body) {
    std::vector<Partial> partials(
        static_cast<std::size_t>(std::max<index_t>(0, share.last - share.first)));
    parallel_for(static_cast<index_t>(partials.size()), n_threads,
                 [&](index_t i) { body(share.first + i, partials[static_cast<std::size_t>(i)]); });
    return partials;
}

/// ((p0 + p1) + p2) + ...: the one summation order of every statistic, whether the partials
/// come from one process or were gathered from many.
template <class Partial, class Add>
Partial sum_in_chunk_order(std::vector<Partial>& partials, Add&& add) {
    require(!partials.empty(), "no partial statistics to sum");
    Partial total = std::move(partials[0]);
    for (std::size_t c = 1; c < partials.size(); ++c) add(total, partials[c]);
    return total;
}

}  // namespace zse

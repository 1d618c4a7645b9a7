// A parallel loop that never lets an exception escape an OpenMP region.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

#include "zse/common.hpp"

namespace zse {

/// Runs body(i) for i in [0, n) on at most n_threads threads (dynamic schedule in chunks of
/// `chunk`; never more threads than iterations).
///
/// An exception thrown by body would call std::terminate if it left the OpenMP region, so the
/// first one is captured, the remaining iterations are skipped, and it is rethrown after the
/// region. The assignment of iterations to threads does not influence results as long as body(i)
/// writes only to memory owned by iteration i, which is how every zse kernel uses this helper.
template <class Body>
void parallel_for(index_t n, int n_threads, Body&& body, index_t chunk = 1) {
    require(n_threads >= 1, "n_threads must be >= 1");
    if (chunk < 1) chunk = 1;
    if (static_cast<index_t>(n_threads) > n) n_threads = static_cast<int>(n > 0 ? n : 1);
    std::exception_ptr error;
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, chunk)
#endif
    for (index_t i = 0; i < n; ++i) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
            body(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            failed.store(true, std::memory_order_relaxed);
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace zse

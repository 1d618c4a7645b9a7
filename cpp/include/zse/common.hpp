// Shared basics of the zse core: index type, precondition checks, OpenMP detection.
// Pure C++17: nothing here (or anywhere under cpp/ except bindings.cpp) includes Python headers.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace zse {

using index_t = std::int64_t;

/// True when the core was compiled with OpenMP.
constexpr bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

/// The OpenMP runtime's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP.
inline int omp_max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Precondition check for kernel entry points. Throws std::invalid_argument, which the
/// bindings surface as ValueError: a violated precondition is a caller mistake, not a crash.
inline void require(bool condition, const std::string& message) {
    if (!condition) throw std::invalid_argument(message);
}

}  // namespace zse

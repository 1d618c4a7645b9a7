// A small std::chrono harness shared by the benchmark binaries: --key value arguments, best-of-n
// timing, and a STREAM-like read-bandwidth probe so kernels can be quoted as a fraction of what the
// machine streams in the same run.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "zse/common.hpp"

namespace bench {

class Args {
 public:
    Args(int argc, char** argv) {
        for (int i = 1; i + 1 < argc; i += 2) {
            std::string key = argv[i];
            if (key.rfind("--", 0) != 0) {
                std::fprintf(stderr, "expected --key value, got %s\n", argv[i]);
                std::exit(2);
            }
            values_[key.substr(2)] = argv[i + 1];
        }
        if (argc % 2 == 0) {
            std::fprintf(stderr, "argument %s has no value\n", argv[argc - 1]);
            std::exit(2);
        }
    }
    long get(const std::string& key, long fallback) const {
        auto it = values_.find(key);
        return it == values_.end() ? fallback : std::strtol(it->second.c_str(), nullptr, 10);
    }
    std::vector<int> get_list(const std::string& key, const std::string& fallback) const {
        auto it = values_.find(key);
        std::stringstream ss(it == values_.end() ? fallback : it->second);
        std::vector<int> out;
        for (std::string item; std::getline(ss, item, ',');) out.push_back(std::stoi(item));
        return out;
    }

 private:
    std::map<std::string, std::string> values_;
};

/// Best wall time in seconds of `reps` runs of fn.
inline double best_seconds(int reps, const std::function<void()>& fn) {
    double best = 1e300;
    for (int k = 0; k < reps; ++k) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        const auto t1 = std::chrono::steady_clock::now();
        best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
    return best;
}

/// Read bandwidth (bytes/s) of summing `data` with n_threads: the streaming reference for kernels
/// that read a large array once.
inline double read_bandwidth(const std::vector<double>& data, int n_threads, int reps) {
    volatile double sink = 0;
    const zse::index_t n = static_cast<zse::index_t>(data.size());
    const double* p = data.data();
    const double t = best_seconds(reps, [&] {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) reduction(+ : s0, s1, s2, s3) schedule(static)
#endif
        for (zse::index_t i = 0; i < n / 4 * 4; i += 4) {
            s0 += p[i];
            s1 += p[i + 1];
            s2 += p[i + 2];
            s3 += p[i + 3];
        }
        sink = sink + s0 + s1 + s2 + s3;
    });
    (void)n_threads;
    return static_cast<double>(n) * sizeof(double) / t;
}

}  // namespace bench

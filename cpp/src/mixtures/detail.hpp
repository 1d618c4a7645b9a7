// Internals of the mixture kernels shared by their source files (never installed): the
// parameters rearranged for the blocked products, the one register-tiled product they all use,
// and a block's posteriors (ALGORITHM.md §5.1, §6.2, §6.7).
#pragma once

#include <algorithm>
#include <vector>

#include "zse/mixtures.hpp"

namespace zse {
namespace mixtures_detail {

constexpr index_t kBlock = 64;    // patches per block: a block of log-joints stays in L2
constexpr index_t kTileRows = 4;  // register tiles of the products: 4 rows x 8 columns
constexpr index_t kTileCols = 8;
// exp(x) is exactly 0 in double for x below about -745.13; skipping those exps changes nothing.
constexpr double kExpUnderflow = -746.0;

inline index_t round_up(index_t x, index_t m) {
    return (x + m - 1) / m * m;
}

// Parameters rearranged once per call into the operands of the blocked products.
//
// A block of patches is copied into Yb (kBlock x D_ext) with two extra columns: the patch total t
// at column D and 1 at column D + 1. Then one product r^T Yb gives, per component, sum r y
// (columns < D), T_c = sum r t (column D) and R_c = sum r (column D + 1).
struct Prepared {
    index_t C = 0, D = 0, C_pad = 0, D_ext = 0;
    bool gamma = false, class_alpha = false;
    std::vector<double> log_WT;  // D x C_pad: B operand of the log-joint product (zero padding)
    std::vector<double> bias;    // C: log pi_c + class constants
    std::vector<double> slope;   // C: multiplies (alpha_c + t) (GPMM), 0 (PMM)
    std::vector<double> alpha;   // C
    std::vector<double> V;   // C_pad x D_ext: what the estimate averages (W or W / (beta + W_c))
    std::vector<double> V2;  // C_pad x D_ext: V squared
    double global_alpha = 0.0;
};

Prepared prepare(const MixtureParams& p);

// The register-tiled products of a block (all three written once, in blocks.cpp):
// out[n][c] = sum_d Yb[n][d] log_WT[d][c] (n < rows, a multiple of 4; c < C_pad, of 8).
void log_joint_product(const double* Yb, index_t rows, index_t D, index_t D_ext,
                       const double* log_WT, index_t C_pad, double* out);
// S[c][e] += sum_n r[n][c] Yb[n][e] for c < C_pad, e < D_ext: statistics of a block.
void accumulate_statistics(const double* r, index_t rows, index_t C_pad, const double* Yb,
                           index_t D_ext, double* S);
// X[n][e] = sum_c A[n][c] V[c][e] for n < rows, e < D_ext: estimates (and second moments).
void weighted_components(const double* A, index_t rows, index_t C_pad, const double* V,
                         index_t D_ext, double* X);

struct BlockWorkspace {
    std::vector<double> Yb, r, log_norm;
    explicit BlockWorkspace(const Prepared& q)
        : Yb(static_cast<std::size_t>(kBlock * q.D_ext)),
          r(static_cast<std::size_t>(kBlock * q.C_pad)),
          log_norm(kBlock) {}
    double total(index_t i, const Prepared& q) const { return Yb[i * q.D_ext + q.D]; }
};

// Copies patches [n_begin, n_begin + nb) into the extended block, computes their log-joints and
// turns them in place into responsibilities (rows and columns of padding hold 0). Returns the
// padded row count.
index_t block_posteriors(const double* Y, index_t n_begin, index_t nb, const Prepared& q,
                         BlockWorkspace& ws);

template <class Body>
void for_each_block(index_t begin, index_t end, Body&& body) {
    for (index_t n = begin; n < end; n += kBlock) body(n, std::min(kBlock, end - n));
}

}  // namespace mixtures_detail
}  // namespace zse

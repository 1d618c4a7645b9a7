// Internals of the SSSC kernels shared by their source files (never installed, never included
// outside cpp/src), part 1: a state's terms (the k x k form of ALGORITHM.md §3.2, §3.9), the
// parameter-derived arrays shared by the threads of an E-step, the O(k^2) updates between a
// parent and its children (§3.12) and the neighbour tables (§3.13).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "zse/linalg.hpp"
#include "zse/sssc.hpp"

namespace zse {
namespace sssc_detail {

constexpr index_t kMaxWords = 4;  // H <= 256
constexpr double kMinusInf = -std::numeric_limits<double>::infinity();
constexpr double kLog2Pi = 1.8378770664093454836;
// The neighbours search expands states within this many nats of a patch's best state: one
// further below holds less than e^-10 of the best one's posterior weight (ALGORITHM.md §4.10).
constexpr double kExpandWindow = 10.0;

// Everything about a state s that does not depend on the patch (ALGORITHM.md §3.2, §3.9), in the
// k x k form: never a D x D matrix. Arrays live in an arena; see StateCache. The units of A are
// stored in the order the terms were built in (ascending for states computed from scratch, a
// parent's order plus the new unit for a child built from its parent, §3.12): every quantity is
// invariant to that order.
struct StateTerms {
    index_t k = 0;
    bool valid = true;
    bool has_diag = false;    // room for diag(W_A Lambda W_A^T) after the other arrays
    bool diag_ready = false;  // ... filled (lazily, only for states that reach the moments)
    double constant = 0.0;    // (log|Psi_s| + log|M_s|) / 2 - sum_A log(pi / (1 - pi))
    double mu_c = 0.0;        // mu_A^T (W^T W)[A, A] mu_A
    std::size_t offset = 0;   // arena offset of: active (k, as doubles), mu_A (k), c (k),
                              // Lambda = M_s^-1 (k x k, symmetric), Psi_s^-1 (k x k, only when
                              // Psi is not diagonal), diag(W_A Lambda W_A^T) (D, if has_diag)
    // A child of the patch part whose terms are not built yet (§3.12): its parent's record,
    // the added unit and its own record.
    bool pending = false;
    index_t parent_rec = -1, unit = -1, rec = -1;
};

struct PatchData {
    const double* y;
    std::vector<double> Wy;  // W^T y (H)
    double yy;               // |y|^2
};

// Scratch space of compute_state_terms (one per thread).
struct TermsScratch {
    std::vector<index_t> active;
    std::vector<double> psi, psi_inv, column, factor;
};

// Parameter-derived arrays shared (read-only) by all threads during one E-step, with the terms
// of every state of at most two units (ALGORITHM.md §3.9): trained models are sparse (house
// sigma 25, H=64: 81 % of the state-set slots hold one or two units), and such states recur
// across patches, so computing them once per E-step replaces most cache misses.
struct Derived {
    const SSSCParams* p = nullptr;
    std::vector<double> WtW;               // H x H
    std::vector<double> logit;             // log(pi / (1 - pi))
    std::vector<double> log_psi, inv_psi;  // of Psi's diagonal (where it is > 0)
    double inv_s2 = 1.0;
    double log_c = 0.0;  // c(theta) = sum log(1 - pi) - D/2 log(2 pi sigma2)
    bool want_diag = false;
    bool diagonal_psi = false;  // exact updates keep Psi diagonal: no Cholesky of Psi_s needed
    // Terms of the states with k <= 2, Lambda included, diag(W_A Lambda W_A^T) never (it is
    // formed on the fly for them); entry 0 is the zero state, 1 + h the state {h}, then the
    // pairs {h1 < h2} in lexicographic order (small_index).
    std::vector<StateTerms> small;
    std::vector<double> small_arena;

    index_t n_small() const { return static_cast<index_t>(small.size()); }
    // The small-table entry of a state with `k` <= 2 units, the lowest `h1`.
    index_t small_index(index_t k, index_t h1, index_t h2) const {
        const index_t H = p->H;
        if (k == 0) return 0;
        if (k == 1) return 1 + h1;
        return 1 + H + h1 * (2 * H - h1 - 1) / 2 + (h2 - h1 - 1);
    }
};

Derived derive(const SSSCParams& p, bool want_diag);

// Arena doubles of a state with k units: active (k, as doubles), mu_A (k), c (k), Lambda (k x k),
// Psi_s^-1 (k x k) unless Psi is diagonal and, when `with_diag`, diag(W_A Lambda W_A^T) (D).
inline std::size_t terms_size(index_t k, index_t D, bool full_psi, bool with_diag) {
    return static_cast<std::size_t>(3 * k + (full_psi ? 2 : 1) * k * k + (with_diag ? D : 0));
}
inline const double* lambda_of(const StateTerms& t, const double* base) {
    return base + 3 * t.k;
}
// The arrays of a state with k units at `base`, in the order of terms_size.
template <class T>
struct TermsArrays {
    T *active, *mu, *c, *Lambda, *psi_inv;
    TermsArrays(T* base, index_t k)
        : active(base),
          mu(base + k),
          c(base + 2 * k),
          Lambda(base + 3 * k),
          psi_inv(base + 3 * k + k * k) {}
};
inline const double* psi_inv_of(const StateTerms& t, const double* base) {
    return base + 3 * t.k + t.k * t.k;
}

// The state's terms (ALGORITHM.md §3.2, §3.9) into `base` (terms_size doubles) for the k active
// units A (ascending), computed from scratch.
void compute_state_terms(const Derived& dv, const index_t* A, index_t k, StateTerms& t,
                         double* base, TermsScratch& scratch);

// The terms of a child that adds unit h to a parent state (`parent`, its arrays at `pbase`) in
// O(k^2): a bordered update of Psi_s^-1 and Lambda with the determinant lemma (ALGORITHM.md
// §3.12). Returns false, leaving `base` unused, when the update is not numerically safe (a
// Schur complement that is not clearly positive); the child is then computed from scratch.
bool extend_state_terms(const Derived& dv, const StateTerms& parent, const double* pbase, index_t h,
                        StateTerms& t, double* base);

// The terms of a child that removes the unit at position j of the parent's units, in O(k^2)
// (§3.12); false when the downdate is not numerically safe (then: from scratch).
bool shrink_state_terms(const Derived& dv, const StateTerms& parent, const double* pbase, index_t j,
                        StateTerms& t, double* base);

// The log-pseudo-joint of the child that adds unit h to a parent (terms at `pbase`, its
// Lambda b for this patch in `v_parent`) without building the child's terms, in 3k^2 + O(k)
// (§3.12); the child's Lambda b goes to `v_child` (k + 1 doubles). NaN when the update is not
// numerically safe.
double child_log_pseudo_joint(const Derived& dv, const StateTerms& parent, const double* pbase,
                              const double* v_parent, index_t h, const PatchData& pd,
                              std::vector<double>& scratch, double* v_child);

// Scratch space of the neighbour scores (one per thread).
struct NeighbourScratch {
    std::vector<double> buffer, patch, removal, table;
};

// What the scores of all children that add one unit to a parent need apart from the patch
// (ALGORITHM.md §3.13), in neighbour_table_size doubles: k x H blocks Lambda G, Lambda U (zero
// for a diagonal Psi) and w = Lambda_1 q, then per unit h: t, s + u^T Lambda u, the child's
// constant (NaN where the update of §3.12 is not numerically safe), mu^T W^T W mu, c_h and the
// column sums G.LU, G.LG, w.G and mu_A.G.
struct NeighbourTable {
    index_t k = 0;
    const double *LG, *LU, *w;
    const double *t, *den, *constant, *mu_c, *c, *GLU, *GLG, *wG, *mu_g;
};
std::size_t neighbour_table_size(index_t k, index_t H);
NeighbourTable neighbour_table_view(const double* base, index_t k, index_t H);
void build_neighbour_table(const Derived& dv, const StateTerms& parent, const double* pbase,
                           NeighbourScratch& scratch, double* out);

// The log-pseudo-joint of every child that adds one unit h to a parent state (terms at `pbase`,
// its table `tb`) for the patch `pd`, into lpj[h] (H values), in one pass vectorised across h:
// -inf for the parent's own units, NaN where the update is not numerically safe (such a child
// is evaluated the exact way). Leaves in `scratch` what added_unit_lambda_b needs.
void score_added_units(const Derived& dv, const StateTerms& parent, const double* pbase,
                       const NeighbourTable& tb, const PatchData& pd, NeighbourScratch& scratch,
                       double* lpj);
// The child's Lambda b (k + 1 doubles, in the order of extend_state_terms) for unit h of the
// parent last scored with `scratch`.
void added_unit_lambda_b(const Derived& dv, const NeighbourTable& tb,
                         const NeighbourScratch& scratch, index_t h, double* v_child);
// The log-pseudo-joint of every child that removes one unit of a parent state, into lpj[j] for
// the unit at position j of the parent's (k values), O(k^2) each (ALGORITHM.md §3.13); NaN where
// the downdate is not numerically safe.
void score_removed_units(const Derived& dv, const StateTerms& parent, const double* pbase,
                         const PatchData& pd, NeighbourScratch& scratch, double* lpj);

// w_A^T Lambda w_A for one row w of W (the state's units `active`, stored as doubles): one entry
// of diag(W_A Lambda W_A^T), cached by fill_diag or formed on the fly for the shared table.
inline double row_spread(const double* w, const double* active, const double* Lambda, index_t k) {
    double s = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wi = w[static_cast<index_t>(active[i])];
        for (index_t j = 0; j < k; ++j)
            s += wi * Lambda[i * k + j] * w[static_cast<index_t>(active[j])];
    }
    return s;
}

// second[d] += q ((W_out,A kappa)_d^2 + (W_out,A Lambda W_out,A^T)_dd) for every d: one state's
// part of a patch's second moments (ALGORITHM.md §3.8); `diag` the cached diagonal or nullptr.
inline void add_second_moments(const SSSCParams& p, const double* active, const double* Lambda,
                               const double* kappa, index_t k, const double* diag, double q,
                               double* second) {
    const index_t H = p.H;
    for (index_t d = 0; d < p.D; ++d) {
        const double* w = p.fields_out() + d * H;
        double wk = 0.0;
        for (index_t i = 0; i < k; ++i) wk += w[static_cast<index_t>(active[i])] * kappa[i];
        const double spread = diag != nullptr ? diag[d] : row_spread(w, active, Lambda, k);
        second[d] += q * (wk * wk + spread);
    }
}

// diag(W_A Lambda W_A^T) into the state's room for it (t.has_diag).
void fill_diag(const Derived& dv, StateTerms& t, double* base);

}  // namespace sssc_detail
}  // namespace zse

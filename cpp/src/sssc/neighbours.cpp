// Every child of a state that adds one unit, scored in one pass over the units (ALGORITHM.md
// §3.13): the bordered-inverse score of §3.12 for all H candidate units at once, as products of
// k x k matrices with k x H blocks of W^T W and Psi, so the work vectorises across units.
#include <cmath>
#include <limits>

#include "detail.hpp"
#include "zse/simd.hpp"

namespace zse {
namespace sssc_detail {

// Row-block product out (k x H) = M (k x k) B (k x H), all row-major. Sixteen columns at a time
// stay in four vector registers across the k terms, so that each output is stored once.
static ZSE_SIMD_INLINE void square_times_block(const double* __restrict M,
                                               const double* __restrict B, index_t k, index_t H,
                                               double* __restrict out) {
    using simd::v4d;
    const index_t blocked = H - H % 16;
    for (index_t i = 0; i < k; ++i) {
        double* o = out + i * H;
        const double* m = M + i * k;
        for (index_t h0 = 0; h0 < blocked; h0 += 16) {
            v4d a0 = simd::broadcast(0.0), a1 = a0, a2 = a0, a3 = a0;
            for (index_t j = 0; j < k; ++j) {
                const v4d mj = simd::broadcast(m[j]);
                const double* b = B + j * H + h0;
                a0 += mj * simd::load(b);
                a1 += mj * simd::load(b + 4);
                a2 += mj * simd::load(b + 8);
                a3 += mj * simd::load(b + 12);
            }
            simd::store(o + h0, a0);
            simd::store(o + h0 + 4, a1);
            simd::store(o + h0 + 8, a2);
            simd::store(o + h0 + 12, a3);
        }
        for (index_t h = blocked; h < H; ++h) {
            double sum = 0.0;
            for (index_t j = 0; j < k; ++j) sum += m[j] * B[j * H + h];
            o[h] = sum;
        }
    }
}

std::size_t neighbour_table_size(index_t k, index_t H) {
    return static_cast<std::size_t>((3 * k + 9) * H);
}

NeighbourTable neighbour_table_view(const double* base, index_t k, index_t H) {
    NeighbourTable t;
    t.k = k;
    t.LG = base;
    t.LU = base + k * H;
    t.w = base + 2 * k * H;
    const double* per_unit = base + 3 * k * H;
    t.t = per_unit;
    t.den = per_unit + H;
    t.constant = per_unit + 2 * H;
    t.mu_c = per_unit + 3 * H;
    t.c = per_unit + 4 * H;
    t.GLU = per_unit + 5 * H;
    t.GLG = per_unit + 6 * H;
    t.wG = per_unit + 7 * H;
    t.mu_g = per_unit + 8 * H;
    return t;
}

// The parts of §3.12's child score that do not depend on the patch, for every unit h at once
// (ALGORITHM.md §3.13): with G = W^T W[A, :] / sigma2, P = Psi[A, :], U = Psi_A^-1 P,
// Lambda G, Lambda U, w = Lambda_1 q per column, t, s + u^T Lambda u, the child's constant,
// mu^T W^T W mu, c_h and the column sums G.LU, G.LG, w.G and mu_A.G.
ZSE_HOT_CLONES void build_neighbour_table(const Derived& dv, const StateTerms& parent,
                                          const double* pbase, NeighbourScratch& scratch,
                                          double* out) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H, k = parent.k;
    const bool full = !dv.diagonal_psi;
    const TermsArrays<const double> pa(pbase, k);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double s2 = p.sigma2, inv_s2 = dv.inv_s2;
    const std::size_t block = static_cast<std::size_t>(k * H);
    double* __restrict LG = out;
    double* __restrict LU = out + block;
    double* __restrict W = out + 2 * block;
    double* __restrict t = out + 3 * block;
    double* __restrict den = t + H;
    double* __restrict constant = den + H;
    double* __restrict mu_c = constant + H;
    double* __restrict c = mu_c + H;
    double* __restrict GLU = c + H;
    double* __restrict GLG = GLU + H;
    double* __restrict wG = GLG + H;
    double* __restrict mu_g = wG + H;
    scratch.buffer.resize(3 * block + 4 * static_cast<std::size_t>(H));
    double* __restrict G = scratch.buffer.data();
    double* __restrict P = G + block;
    double* __restrict U = P + block;
    double* __restrict s = U + block;
    double* __restrict uLu = s + H;
    double* __restrict Luq = uLu + H;
    double* __restrict inv_s = Luq + H;
    for (index_t i = 0; i < k; ++i) {
        const index_t a = static_cast<index_t>(pa.active[i]);
        const double* wtw = dv.WtW.data() + a * H;  // W^T W is symmetric: row a is column a
        for (index_t h = 0; h < H; ++h) G[i * H + h] = wtw[h] * inv_s2;
    }
    square_times_block(pa.Lambda, G, k, H, LG);
    for (index_t h = 0; h < H; ++h) {
        s[h] = p.Psi[h * H + h];
        uLu[h] = Luq[h] = GLU[h] = GLG[h] = wG[h] = mu_g[h] = 0.0;
    }
    if (full) {
        for (index_t i = 0; i < k; ++i) {
            const double* row = p.Psi + static_cast<index_t>(pa.active[i]) * H;
            for (index_t h = 0; h < H; ++h) P[i * H + h] = row[h];
        }
        square_times_block(pa.psi_inv, P, k, H, U);
        square_times_block(pa.Lambda, U, k, H, LU);
        for (index_t i = 0; i < k; ++i) {
            ZSE_INDEPENDENT_ITERATIONS
            for (index_t h = 0; h < H; ++h) {
                s[h] -= P[i * H + h] * U[i * H + h];
                uLu[h] += U[i * H + h] * LU[i * H + h];
            }
        }
    } else {
        std::fill(LU, LU + block, 0.0);
        std::fill(U, U + block, 0.0);
    }
    // q = G - U / s, Lambda q = LG - LU / s; w = Lambda q - LU (LU^T q) / den. The divisions
    // are taken once per unit (inv_s, then Luq / den in Luq) so that the k x H loops vectorise.
    for (index_t h = 0; h < H; ++h) inv_s[h] = 1.0 / s[h];
    for (index_t i = 0; i < k; ++i) {
        ZSE_INDEPENDENT_ITERATIONS
        for (index_t h = 0; h < H; ++h) {
            const double q = G[i * H + h] - U[i * H + h] * inv_s[h];
            Luq[h] += LU[i * H + h] * q;
        }
    }
    ZSE_INDEPENDENT_ITERATIONS
    for (index_t h = 0; h < H; ++h) {
        den[h] = s[h] + uLu[h];
        Luq[h] /= den[h];
        t[h] = inv_s[h] + dv.WtW[h * H + h] * inv_s2;  // r, then r - q^T w below
    }
    for (index_t i = 0; i < k; ++i) {
        const double mu_i = pa.mu[i];
        const double* __restrict G_i = G + i * H;
        const double* __restrict U_i = U + i * H;
        const double* __restrict LU_i = LU + i * H;
        const double* __restrict LG_i = LG + i * H;
        double* __restrict W_i = W + i * H;
        ZSE_INDEPENDENT_ITERATIONS
        for (index_t h = 0; h < H; ++h) {
            const double lu = LU_i[h], g = G_i[h];
            const double q = g - U_i[h] * inv_s[h];
            const double w = (LG_i[h] - lu * inv_s[h]) - lu * Luq[h];
            W_i[h] = w;
            t[h] -= q * w;
            GLU[h] += g * lu;
            GLG[h] += g * LG_i[h];
            wG[h] += w * g;
            mu_g[h] += mu_i * g;
        }
    }
    for (index_t h = 0; h < H; ++h) {
        const double psi_hh = p.Psi[h * H + h], r = inv_s[h] + dv.WtW[h * H + h] * inv_s2;
        const double mu_h = p.mu[h];
        c[h] = s2 * mu_g[h] + dv.WtW[h * H + h] * mu_h;
        mu_c[h] = parent.mu_c + s2 * mu_h * mu_g[h] + mu_h * c[h];
        constant[h] = parent.constant + 0.5 * std::log(den[h] * t[h]) - dv.logit[h];
        const bool safe =
            psi_hh > 0.0 && s[h] > 1e-10 * psi_hh && t[h] > 1e-10 * r && std::isfinite(constant[h]);
        if (!safe) constant[h] = nan;  // the child is evaluated the exact way
    }
}

ZSE_HOT_CLONES void score_added_units(const Derived& dv, const StateTerms& parent,
                                      const double* pbase, const NeighbourTable& tb,
                                      const PatchData& pd, NeighbourScratch& scratch, double* lpj) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H, k = parent.k;
    const bool full = !dv.diagonal_psi;
    const TermsArrays<const double> pa(pbase, k);
    const double s2 = p.sigma2, inv_s2 = dv.inv_s2;
    scratch.patch.resize(2 * static_cast<std::size_t>(k) + 4 * static_cast<std::size_t>(H));
    double* __restrict b = scratch.patch.data();  // the parent's b
    double* __restrict v = b + k;                 // the parent's Lambda b
    double* __restrict Gv = v + k;                // G^T v
    double* __restrict LUb = Gv + H;              // (Lambda U)^T b
    double* __restrict wb = LUb + H;              // w^T b, per column
    double* __restrict e_over_t = wb + H;
    double mu_wy = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(pa.active[i])];
        b[i] = wy - pa.c[i];
        mu_wy += pa.mu[i] * wy;
    }
    double bv = 0.0;
    for (index_t i = 0; i < k; ++i) {
        double sum = 0.0;
        for (index_t j = 0; j < k; ++j) sum += pa.Lambda[i * k + j] * b[j];
        v[i] = sum;
        bv += b[i] * sum;
    }
    for (index_t h = 0; h < H; ++h) Gv[h] = LUb[h] = wb[h] = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double* wtw = dv.WtW.data() + static_cast<index_t>(pa.active[i]) * H;
        const double vi = v[i] * inv_s2, bi = b[i];
        const double* lu = tb.LU + i * H;
        const double* w = tb.w + i * H;
        ZSE_INDEPENDENT_ITERATIONS
        for (index_t h = 0; h < H; ++h) {
            Gv[h] += wtw[h] * vi;
            wb[h] += w[h] * bi;
        }
        if (full) {
            ZSE_INDEPENDENT_ITERATIONS
            for (index_t h = 0; h < H; ++h) LUb[h] += lu[h] * bi;
        }
    }
    ZSE_INDEPENDENT_ITERATIONS
    for (index_t h = 0; h < H; ++h) {
        const double mu_h = p.mu[h];
        const double Lub = LUb[h] - s2 * mu_h * tb.GLU[h];
        const double bL1b = bv - 2.0 * s2 * mu_h * Gv[h] + s2 * s2 * mu_h * mu_h * tb.GLG[h] -
                            Lub * Lub / tb.den[h];
        const double e = (wb[h] - s2 * mu_h * tb.wG[h]) - (pd.Wy[h] - tb.c[h]);
        e_over_t[h] = e / tb.t[h];
        const double b_lambda_b = bL1b + e * e_over_t[h];
        const double residual = pd.yy - 2.0 * (mu_wy + mu_h * pd.Wy[h]) + tb.mu_c[h];
        const double score =
            -tb.constant[h] - 0.5 * (residual * inv_s2 - b_lambda_b * inv_s2 * inv_s2);
        lpj[h] = std::isfinite(score) ? score : std::numeric_limits<double>::quiet_NaN();
    }
    for (index_t i = 0; i < k; ++i) lpj[static_cast<index_t>(pa.active[i])] = kMinusInf;
}

// Removing the unit h at position j (ALGORITHM.md §3.13, with the notation of
// shrink_state_terms): b' = b + mu_h W^T W[A, h] off j; with x~ the vector x with a zero at j,
// x^T Lambda_a x = x~^T Lambda x~ - (Lambda x~)_j^2 / Lambda_jj, and for a full Psi
// b'^T Lambda' b' = b'^T Lambda_a b' + (w^T Lambda_a b')^2 / d; O(k^2) per position.
void score_removed_units(const Derived& dv, const StateTerms& parent, const double* pbase,
                         const PatchData& pd, NeighbourScratch& scratch, double* lpj) {
    const SSSCParams& p = *dv.p;
    const index_t H = p.H, k = parent.k;
    const bool full = !dv.diagonal_psi;
    const TermsArrays<const double> pa(pbase, k);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inv_s2 = dv.inv_s2;
    scratch.removal.resize(5 * static_cast<std::size_t>(k));
    double* b = scratch.removal.data();
    double* x = b + k;
    double* Lx = x + k;
    double* w = Lx + k;
    double* Lw = w + k;
    double mu_wy = 0.0;
    for (index_t i = 0; i < k; ++i) {
        const double wy = pd.Wy[static_cast<index_t>(pa.active[i])];
        b[i] = wy - pa.c[i];
        mu_wy += pa.mu[i] * wy;
    }
    auto times_lambda = [&](const double* in, double* out) {
        for (index_t i = 0; i < k; ++i) {
            double sum = 0.0;
            for (index_t m = 0; m < k; ++m) sum += pa.Lambda[i * k + m] * in[m];
            out[i] = sum;
        }
    };
    auto dot = [k](const double* a, const double* c) {
        double sum = 0.0;
        for (index_t i = 0; i < k; ++i) sum += a[i] * c[i];
        return sum;
    };
    for (index_t j = 0; j < k; ++j) {
        const index_t h = static_cast<index_t>(pa.active[j]);
        const double mu_h = p.mu[h];
        const double* wtw_h = dv.WtW.data() + h * H;
        const double ljj = pa.Lambda[j * k + j];
        for (index_t i = 0; i < k; ++i)
            x[i] = i == j ? 0.0 : b[i] + wtw_h[static_cast<index_t>(pa.active[i])] * mu_h;
        times_lambda(x, Lx);
        double quad = dot(x, Lx) - Lx[j] * Lx[j] / ljj;  // b'^T Lambda_a b'
        double d;
        if (full) {
            const double psi = pa.psi_inv[j * k + j];
            for (index_t i = 0; i < k; ++i) w[i] = i == j ? 0.0 : pa.psi_inv[i * k + j];
            times_lambda(w, Lw);
            const double wLw = dot(w, Lw) - Lw[j] * Lw[j] / ljj;
            const double wLb = dot(w, Lx) - Lw[j] * Lx[j] / ljj;
            d = psi - wLw;
            if (!(psi > 0.0) || !(d > 1e-10 * psi)) {
                lpj[j] = nan;
                continue;
            }
            quad += wLb * wLb / d;
        } else {
            d = p.Psi[h * H + h] > 0.0 ? 1.0 / p.Psi[h * H + h] : 0.0;
        }
        if (!(ljj > 0.0) || !(d > 0.0)) {
            lpj[j] = nan;
            continue;
        }
        const double mu_c = parent.mu_c - 2.0 * mu_h * pa.c[j] + mu_h * mu_h * wtw_h[h];
        const double residual = pd.yy - 2.0 * (mu_wy - mu_h * pd.Wy[h]) + mu_c;
        const double constant = parent.constant + 0.5 * std::log(ljj * d) + dv.logit[h];
        const double score = -constant - 0.5 * (residual * inv_s2 - quad * inv_s2 * inv_s2);
        lpj[j] = std::isfinite(score) ? score : nan;
    }
}

void added_unit_lambda_b(const Derived& dv, const NeighbourTable& tb,
                         const NeighbourScratch& scratch, index_t h, double* v_child) {
    const SSSCParams& p = *dv.p;
    const index_t k = tb.k, H = p.H;
    const double* b = scratch.patch.data();
    const double* v = b + k;
    const double* LUb = v + k + H;
    const double* e_over_t = LUb + 2 * H;
    const double s2 = p.sigma2, mu_h = p.mu[h];
    // Lambda_1 b_A = v - sigma2 mu_h Lambda g - Lambda u (u^T Lambda b_A) / den (§3.12).
    const double Lub = LUb[h] - s2 * mu_h * tb.GLU[h];
    const double lub_den = Lub / tb.den[h], eot = e_over_t[h];
    for (index_t i = 0; i < k; ++i)
        v_child[i] = v[i] - s2 * mu_h * tb.LG[i * H + h] - tb.LU[i * H + h] * lub_den +
                     tb.w[i * H + h] * eot;
    v_child[k] = -eot;
}

}  // namespace sssc_detail
}  // namespace zse

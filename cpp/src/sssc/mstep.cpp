// The SSSC M-steps: the published updates and exact EM with a diagonal Psi (ALGORITHM.md §3.6).
#include <algorithm>
#include <cmath>

#include "zse/linalg.hpp"
#include "zse/sssc.hpp"

namespace zse {

SSSCUpdate sssc_mstep(const SSSCStats& st, index_t N, const SSSCParams& old, bool exact) {
    const index_t H = old.H, D = old.D;
    require(st.H == H && st.D == D && static_cast<index_t>(st.a_s.size()) == H,
            "statistics do not match the model size");
    require(N >= 1, "N must be >= 1");
    SSSCUpdate u;
    u.W.assign(old.W, old.W + D * H);
    u.pi.resize(H);
    u.mu.assign(old.mu, old.mu + H);
    u.Psi.assign(old.Psi, old.Psi + H * H);

    // Units with no posterior mass keep their parameters (pitfall §8.11) and are reported.
    std::vector<index_t> alive;
    for (index_t h = 0; h < H; ++h) {
        if (st.a_s[h] > 1e-8 && st.B_szsz[h * H + h] > 0.0) alive.push_back(h);
    }
    u.n_dead_units = H - static_cast<index_t>(alive.size());
    const index_t A = static_cast<index_t>(alive.size());

    // W = Y_sz B_szsz^-1 on the live units: Cholesky of B + ridge I, the ridge grown until the
    // factorisation succeeds (B is PSD and singular only in degenerate cases).
    if (A > 0) {
        std::vector<double> B(static_cast<std::size_t>(A * A)), L;
        double max_diag = 0.0;
        for (index_t i = 0; i < A; ++i) {
            for (index_t j = 0; j < A; ++j) B[i * A + j] = st.B_szsz[alive[i] * H + alive[j]];
            max_diag = std::max(max_diag, B[i * A + i]);
        }
        double ridge = 1e-12 * max_diag;
        for (int attempt = 0;; ++attempt) {
            L = B;
            for (index_t i = 0; i < A; ++i) L[i * A + i] += ridge;
            if (linalg::cholesky(L.data(), A)) break;
            require(attempt < 30, "the W update failed: B_szsz is not positive semi-definite");
            ridge = std::max(ridge * 100.0, 1e-300);
        }
        std::vector<double> rhs(A);
        for (index_t d = 0; d < D; ++d) {
            for (index_t i = 0; i < A; ++i) rhs[i] = st.Y_sz[d * H + alive[i]];
            linalg::solve_lower(L.data(), A, rhs.data());
            linalg::solve_upper_transposed(L.data(), A, rhs.data());
            for (index_t i = 0; i < A; ++i) u.W[d * H + alive[i]] = rhs[i];
        }
    }
    const double Nd = static_cast<double>(N);
    for (index_t h = 0; h < H; ++h) u.pi[h] = std::clamp(st.a_s[h] / Nd, 5e-5, 1.0 - 5e-5);
    for (index_t h : alive)
        u.mu[h] = st.a_sz[h] / (st.a_s[h] + std::numeric_limits<double>::epsilon());

    if (exact) {
        // Diagonal Psi, exact EM: psi_h = E[(z_h - mu_h)^2 | s_h = 1].
        std::fill(u.Psi.begin(), u.Psi.end(), 0.0);
        for (index_t h = 0; h < H; ++h) u.Psi[h * H + h] = old.Psi[h * H + h];
        for (index_t h : alive) {
            const double m = u.mu[h];
            const double psi =
                (st.B_szsz[h * H + h] - 2.0 * m * st.a_sz[h] + m * m * st.a_s[h]) / st.a_s[h];
            u.Psi[h * H + h] = std::max(psi, 1e-5);
        }
    } else {
        // Published update (tvlearn/evo, PROSPER): ((mu mu^T) .* B_ss + B_szsz - 2 (mu 1^T) .*
        // B_s,sz) .* inv(B_ss + 1e-5 I), + 1e-5 I; then symmetrised (the reference is not, and
        // a non-symmetric Psi has no Cholesky factor) with diagonal >= 1e-5.
        std::vector<double> Bss(st.B_ss), inv(static_cast<std::size_t>(H * H)), column(H);
        for (index_t h = 0; h < H; ++h) Bss[h * H + h] += 1e-5;
        require(linalg::cholesky(Bss.data(), H), "B_ss + 1e-5 I is not positive definite");
        linalg::inverse_from_cholesky(Bss.data(), H, inv.data(), column.data());
        for (index_t i = 0; i < H; ++i)
            for (index_t j = 0; j < H; ++j) {
                const double m = u.mu[i] * u.mu[j] * st.B_ss[i * H + j] + st.B_szsz[i * H + j] -
                                 2.0 * u.mu[i] * st.B_s_sz[i * H + j];
                u.Psi[i * H + j] = m * inv[i * H + j] + (i == j ? 1e-5 : 0.0);
            }
        for (index_t i = 0; i < H; ++i) {
            for (index_t j = 0; j < i; ++j) {
                const double v = 0.5 * (u.Psi[i * H + j] + u.Psi[j * H + i]);
                u.Psi[i * H + j] = u.Psi[j * H + i] = v;
            }
            u.Psi[i * H + i] = std::max(u.Psi[i * H + i], 1e-5);
        }
    }

    // sigma2 with the new W: tr(B W^T W) needs W^T W.
    std::vector<double> WtW(static_cast<std::size_t>(H * H), 0.0);
    for (index_t d = 0; d < D; ++d)
        for (index_t i = 0; i < H; ++i)
            for (index_t j = 0; j < H; ++j) WtW[i * H + j] += u.W[d * H + i] * u.W[d * H + j];
    auto trace_product = [&](const std::vector<double>& B) {
        double s = 0.0;
        for (index_t i = 0; i < H; ++i)
            for (index_t j = 0; j < H; ++j) s += B[i * H + j] * WtW[j * H + i];
        return s;
    };
    const double ND = Nd * static_cast<double>(D);
    double sigma2;
    if (exact) {
        double w_ysz = 0.0;
        for (index_t i = 0; i < D * H; ++i) w_ysz += u.W[i] * st.Y_sz[i];
        sigma2 = (st.T_yy - 2.0 * w_ysz + trace_product(st.B_szsz)) / ND;
    } else {
        sigma2 = (st.T_yy - trace_product(st.B_mm)) / ND + 1e-5;
    }
    u.sigma2 = std::max(std::isfinite(sigma2) ? sigma2 : 1e-5, 1e-5);
    return u;
}

}  // namespace zse

// The nonlocal estimates (ALGORITHM.md §3.16, §5.6) end to end in C++, so the sanitizer build
// runs them: SSSC and the PMM on a small image with groups, results equal for 1 and 2 threads,
// finite, different from every patch alone; slabs refused. (Their values are checked against
// brute force in tests/test_nonlocal.py.)
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "check.hpp"
#include "zse/mixtures.hpp"
#include "zse/sssc.hpp"

namespace {

using zse::index_t;

struct Outputs {
    std::vector<double> mean, var, pvar;
};

Outputs run_sssc(const std::vector<double>& image, const zse::VolumeGrid& g,
                 const zse::SSSCParams& p, const zse::SSSCImageOptions& opt, int threads) {
    Outputs o;
    const std::size_t size = static_cast<std::size_t>(g.n_voxels());
    o.mean.assign(size, 0.0);
    o.var.assign(size, 0.0);
    o.pvar.assign(size, 0.0);
    zse::StreamOutputs out;
    out.mean = o.mean.data();
    out.var = o.var.data();
    out.pvar = o.pvar.data();
    zse::sssc_estimate_volume(image.data(), g, p, zse::PatchTransform{}, zse::EstimateTransform{},
                              opt, out, threads);
    return o;
}

}  // namespace

int main() {
    const index_t R = 20, Q = 22, P = 3, H = 6, D = P * P;
    const zse::VolumeGrid g(1, R, Q, 1, P, P);
    std::mt19937_64 rng(3);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> image(static_cast<std::size_t>(R * Q));
    for (index_t r = 0; r < R; ++r)
        for (index_t c = 0; c < Q; ++c)
            image[r * Q + c] = std::sin(0.7 * r) * std::cos(0.5 * c) + 0.3 * normal(rng);
    std::vector<double> W(static_cast<std::size_t>(D * H)), pi(H, 0.2), mu(H, 0.5),
        Psi(static_cast<std::size_t>(H * H), 0.0);
    for (double& w : W) w = normal(rng);
    for (index_t h = 0; h < H; ++h) Psi[h * H + h] = 1.0;
    zse::SSSCParams p;
    p.H = H;
    p.D = D;
    p.W = W.data();
    p.pi = pi.data();
    p.mu = mu.data();
    p.Psi = Psi.data();
    p.sigma2 = 0.1;
    zse::SSSCImageOptions opt;
    opt.S = 4;
    opt.p_init = 0.3;
    opt.evo.n_parents = 2;
    opt.evo.n_children = 1;
    std::vector<double> evidence(static_cast<std::size_t>(g.n_patches()), 0.0);
    opt.evidence_out = evidence.data();
    const Outputs alone = run_sssc(image, g, p, opt, 1);
    for (double e : evidence) CHECK(std::isfinite(e));
    opt.evidence_out = nullptr;
    opt.group_size = 5;
    opt.window = zse::MatchWindow{0, 4, 4, false};
    opt.guide = alone.mean.data();
    opt.evidence = evidence.data();
    for (bool disjoint : {false, true}) {
        opt.window.disjoint = disjoint;
        const Outputs one = run_sssc(image, g, p, opt, 1), two = run_sssc(image, g, p, opt, 2);
        bool differs = false;
        for (std::size_t i = 0; i < one.mean.size(); ++i) {
            CHECK(one.mean[i] == two.mean[i] && one.var[i] == two.var[i] &&
                  one.pvar[i] == two.pvar[i]);
            CHECK(std::isfinite(one.mean[i]) && one.pvar[i] >= 0.0);
            differs = differs || one.mean[i] != alone.mean[i];
        }
        CHECK(differs);
    }
    // A slab of the input is refused: members may lie outside it.
    {
        std::vector<double> mean(static_cast<std::size_t>(g.n_voxels()));
        zse::StreamOutputs out;
        out.mean = mean.data();
        out.input_first_slice = 0;
        out.input_slices = R;
        CHECK_THROWS(zse::sssc_estimate_volume(image.data(), g, p, zse::PatchTransform{},
                                               zse::EstimateTransform{}, opt, out, 1));
    }

    // The PMM on counts.
    std::vector<double> counts(image.size());
    for (std::size_t i = 0; i < counts.size(); ++i)
        counts[i] = std::max(0.0, std::floor(5.5 + 2.0 * image[i]));
    const index_t C = 4;
    std::vector<double> rates(static_cast<std::size_t>(C * D)), log_pi(C, std::log(0.25));
    for (index_t c = 0; c < C; ++c)
        for (index_t d = 0; d < D; ++d) rates[c * D + d] = 1.0 + c + 0.3 * d;
    zse::MixtureParams m;
    m.C = C;
    m.D = D;
    m.W = rates.data();
    m.log_pi = log_pi.data();
    std::vector<double> first(counts.size()), grouped1(counts.size()), grouped2(counts.size());
    zse::StreamOutputs out;
    out.mean = first.data();
    zse::mixture_estimate_volume(counts.data(), g, m, zse::PatchTransform{},
                                 zse::EstimateTransform{}, out, 1);
    zse::MixtureGroups groups;
    groups.size = 6;
    groups.window = zse::MatchWindow{0, 5, 5, true};
    groups.guide = first.data();
    out.mean = grouped1.data();
    zse::mixture_estimate_volume(counts.data(), g, m, zse::PatchTransform{},
                                 zse::EstimateTransform{}, out, 1, groups);
    out.mean = grouped2.data();
    zse::mixture_estimate_volume(counts.data(), g, m, zse::PatchTransform{},
                                 zse::EstimateTransform{}, out, 2, groups);
    bool differs = false;
    for (std::size_t i = 0; i < first.size(); ++i) {
        CHECK(grouped1[i] == grouped2[i] && std::isfinite(grouped1[i]));
        differs = differs || grouped1[i] != first[i];
    }
    CHECK(differs);
    TEST_MAIN_END();
}

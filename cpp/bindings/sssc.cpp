// Bindings of SSSC and the evolutionary operators: E-step, M-step, log-joints, the streamed
// estimate.
#include "bindings.hpp"

namespace zse_py {

ArrayU64 sssc_init_states(zse::index_t N, zse::index_t S, zse::index_t H, double p_init,
                          std::uint64_t seed, int n_threads) {
    zse::require(N >= 1, "N must be >= 1");
    const zse::index_t words = zse::state_words(H);
    ArrayU64 K({N, S, words});
    std::uint64_t* k = K.mutable_data();
    {
        py::gil_scoped_release release;
        zse::init_states(k, N, S, H, p_init, seed, n_threads);
    }
    return K;
}

py::dict sssc_estep(const ArrayF64& Y, const ArrayF64& W, const ArrayF64& pi, const ArrayF64& mu,
                    const ArrayF64& Psi, double sigma2, ArrayU64& K, std::uint64_t seed,
                    std::uint64_t epoch, bool evolve, zse::index_t n_sweeps, zse::index_t n_parents,
                    zse::index_t n_children, zse::index_t n_generations,
                    const std::string& selection, const std::string& mutation, double bitflip_prob,
                    bool want_stats, bool want_estimates, bool want_variance, bool want_lpj,
                    int n_threads, const py::object& share) {
    const zse::SSSCParams p = sssc_params(W, pi, mu, Psi, sigma2);
    zse::require(Y.ndim() == 2 && Y.shape(1) == p.D, "patches must be (N, D) with D = W.shape[0]");
    const zse::index_t N = Y.shape(0);
    zse::require(K.ndim() == 3 && K.shape(0) == N && K.shape(2) == zse::state_words(p.H),
                 "K must have shape (N, S, words) matching the patches and H");
    const zse::index_t S = K.shape(1);
    zse::require(n_sweeps >= 1, "n_sweeps must be >= 1");
    zse::EStepOptions opt;
    opt.seed = seed;
    opt.epoch = epoch;
    opt.evolve = evolve;
    opt.n_sweeps = n_sweeps;
    opt.evo =
        evo_config(p, n_parents, n_children, n_generations, selection, mutation, bitflip_prob);
    opt.want_stats = want_stats;
    py::dict out;
    if (want_estimates) {
        ArrayF64 est({N, p.D});
        opt.estimates = est.mutable_data();
        out["estimates"] = est;
        if (want_variance) {
            ArrayF64 var({N, p.D});
            opt.variance = var.mutable_data();
            out["variance"] = var;
        }
    }
    if (want_lpj) {
        ArrayF64 lpj({N, S});
        opt.lpj_out = lpj.mutable_data();
        out["lpj"] = lpj;
    }
    const double* y = Y.data();
    std::uint64_t* k = K.mutable_data();
    if (!share.is_none()) {
        const zse::ChunkShare own = chunk_share(zse::sssc_chunks(N), share);
        std::vector<zse::SSSCStats> partials;
        {
            py::gil_scoped_release release;
            partials = zse::sssc_estep_partials(y, N, p, k, S, opt, own, n_threads);
        }
        out["chunk_stats"] = std::move(partials);
        return out;
    }
    zse::SSSCStats stats;
    {
        py::gil_scoped_release release;
        stats = zse::sssc_estep(y, N, p, k, S, opt, n_threads);
    }
    out["stats"] = std::move(stats);
    return out;
}

zse::SSSCStats sum_sssc_stats(std::vector<zse::SSSCStats> partials, zse::index_t H,
                              zse::index_t D) {
    zse::SSSCStats total = zse::sum_in_chunk_order(
        partials, [](zse::SSSCStats& a, const zse::SSSCStats& b) { a.add(b); });
    total.H = H;
    total.D = D;
    return total;
}

py::dict sssc_mstep(const zse::SSSCStats& stats, zse::index_t N, const ArrayF64& W,
                    const ArrayF64& pi, const ArrayF64& mu, const ArrayF64& Psi, double sigma2,
                    bool exact) {
    const zse::SSSCParams p = sssc_params(W, pi, mu, Psi, sigma2);
    zse::SSSCUpdate u;
    {
        py::gil_scoped_release release;
        u = zse::sssc_mstep(stats, N, p, exact);
    }
    py::dict out;
    out["W"] = copy_matrix(u.W, p.D, p.H);
    out["pi"] = vector_to_array(u.pi);
    out["mu"] = vector_to_array(u.mu);
    out["Psi"] = copy_matrix(u.Psi, p.H, p.H);
    out["sigma2"] = u.sigma2;
    out["n_dead_units"] = u.n_dead_units;
    return out;
}

ArrayF64 sssc_log_joint(const ArrayF64& Y, const ArrayF64& W, const ArrayF64& pi,
                        const ArrayF64& mu, const ArrayF64& Psi, double sigma2,
                        const ArrayU64& states, int n_threads) {
    const zse::SSSCParams p = sssc_params(W, pi, mu, Psi, sigma2);
    zse::require(Y.ndim() == 2 && Y.shape(1) == p.D, "patches must be (N, D)");
    zse::require(states.ndim() == 2 && states.shape(1) == zse::state_words(p.H),
                 "states must be (M, words)");
    const zse::index_t N = Y.shape(0), M = states.shape(0);
    ArrayF64 out({N, M});
    const double* y = Y.data();
    const std::uint64_t* st = states.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        zse::sssc_log_joint(y, N, p, st, M, o, n_threads);
    }
    return out;
}

py::dict sssc_estimate_volume(
    const ArrayF64& volume, const Patch3& patch, const ArrayF64& W, const ArrayF64& pi,
    const ArrayF64& mu, const ArrayF64& Psi, double sigma2, const ArrayF64& bias, double scale,
    const ArrayU64& train_states, const ArrayI64& train_positions, zse::index_t n_states,
    double p_init, std::uint64_t seed, std::uint64_t fresh_seed, zse::index_t n_parents,
    zse::index_t n_children, zse::index_t n_generations, const std::string& selection,
    const std::string& mutation, double bitflip_prob, zse::index_t train_sweeps,
    zse::index_t warm_sweeps, zse::index_t fresh_sweeps, zse::index_t patience,
    const std::vector<std::string>& stats, const std::string& median_kind, int n_threads, int part,
    int n_parts, const py::object& progress) {
    const zse::VolumeGrid g = volume_grid(volume, patch);
    const zse::SSSCParams p = sssc_params(W, pi, mu, Psi, sigma2);
    zse::require(p.D == g.D(), "W must have D = the patch size rows");
    require_shape(bias, {p.D}, "bias");
    zse::require(scale > 0.0 && std::isfinite(scale), "scale must be finite and > 0");
    zse::require(train_positions.ndim() == 1, "train_positions must be 1-D");
    const zse::index_t M = train_positions.shape(0);
    zse::require(train_states.ndim() == 3 && train_states.shape(0) == M &&
                     train_states.shape(1) == n_states &&
                     train_states.shape(2) == zse::state_words(p.H),
                 "train_states must have shape (n_train, n_states, words)");
    zse::require(train_sweeps >= 0 && warm_sweeps >= 0 && fresh_sweeps >= 1 && patience >= 0,
                 "fresh_sweeps must be >= 1, train_sweeps, warm_sweeps and patience >= 0");
    zse::SSSCImageOptions opt;
    opt.S = n_states;
    opt.p_init = p_init;
    opt.seed = seed;
    opt.fresh_seed = fresh_seed;
    opt.evo =
        evo_config(p, n_parents, n_children, n_generations, selection, mutation, bitflip_prob);
    opt.train_positions = train_positions.data();
    opt.train_states = train_states.data();
    opt.n_train = M;
    opt.train_sweeps = train_sweeps;
    opt.warm_sweeps = warm_sweeps;
    opt.fresh_sweeps = fresh_sweeps;
    opt.patience = patience;
    zse::PatchTransform to_model;
    to_model.offset = bias.data();
    to_model.divide = scale;
    zse::EstimateTransform to_data;
    to_data.offset = bias.data();
    to_data.multiply = scale;
    zse::StreamOutputs out;
    py::dict result = stream_outputs(g, stats, median_kind, part, n_parts, out, progress);
    const double* v = volume.data();
    {
        py::gil_scoped_release release;
        zse::sssc_estimate_volume(v, g, p, to_model, to_data, opt, out, n_threads);
    }
    return result;
}

ArrayU64 evo_mutate(const ArrayU64& parents, zse::index_t H, const std::string& mutation,
                    zse::index_t n_children, double bitflip_prob, double crowdedness,
                    std::uint64_t seed) {
    const zse::index_t words = zse::state_words(H);
    zse::require(parents.ndim() == 2 && parents.shape(1) == words, "parents must be (P, words)");
    zse::EvoConfig cfg;
    cfg.mutation = parse_mutation(mutation);
    cfg.n_children = n_children;
    cfg.bitflip_prob = bitflip_prob;
    cfg.crowdedness = crowdedness;
    zse::Rng rng(seed, 0, 0);
    std::vector<std::uint64_t> children;
    zse::mutate(parents.data(), parents.shape(0), H, cfg, rng, children);
    ArrayU64 out({static_cast<zse::index_t>(children.size()) / words, words});
    std::copy(children.begin(), children.end(), out.mutable_data());
    return out;
}

py::array_t<std::int64_t> evo_select(const ArrayF64& lpj, zse::index_t n_parents,
                                     const std::string& selection, std::uint64_t seed,
                                     std::uint64_t item) {
    zse::require(lpj.ndim() == 1, "lpj must be 1-D");
    zse::Rng rng(seed, 0, item);
    std::vector<zse::index_t> parents;
    zse::select_parents(lpj.data(), lpj.shape(0), n_parents, parse_selection(selection), rng,
                        parents);
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(parents.size()));
    std::copy(parents.begin(), parents.end(), out.mutable_data());
    return out;
}

}  // namespace zse_py

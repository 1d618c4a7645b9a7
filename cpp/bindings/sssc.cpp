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

py::dict sssc_estep(const ArrayF64& Y, const SSSCModel& model, ArrayU64& K,
                    const SearchOptions& search, const EStepRequest& request, int n_threads,
                    const py::object& share) {
    const zse::SSSCParams p = sssc_params(model);
    zse::require(Y.ndim() == 2 && Y.shape(1) == p.D, "patches must be (N, D) with D = W.shape[0]");
    const zse::index_t N = Y.shape(0);
    zse::require(K.ndim() == 3 && K.shape(0) == N && K.shape(2) == zse::state_words(p.H),
                 "K must have shape (N, S, words) matching the patches and H");
    const zse::index_t S = K.shape(1);
    zse::require(request.n_sweeps >= 1, "n_sweeps must be >= 1");
    zse::EStepOptions opt;
    opt.seed = request.seed;
    opt.epoch = request.epoch;
    opt.evolve = request.evolve;
    opt.n_sweeps = request.n_sweeps;
    opt.evo = evo_config(p, search);
    opt.want_stats = request.want_stats;
    py::dict out;
    if (request.want_estimates) {
        ArrayF64 est({N, p.D});
        opt.estimates = est.mutable_data();
        out["estimates"] = est;
        if (request.want_variance) {
            ArrayF64 var({N, p.D});
            opt.variance = var.mutable_data();
            out["variance"] = var;
        }
    }
    if (request.want_lpj) {
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

py::dict sssc_mstep(const zse::SSSCStats& stats, zse::index_t N, const SSSCModel& model,
                    bool exact) {
    const zse::SSSCParams p = sssc_params(model);
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

ArrayF64 sssc_log_joint(const ArrayF64& Y, const SSSCModel& model, const ArrayU64& states,
                        int n_threads) {
    const zse::SSSCParams p = sssc_params(model);
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

ArrayF64 sssc_group_log_joint(const ArrayF64& Y, const SSSCModel& model, const ArrayU64& states) {
    const zse::SSSCParams p = sssc_params(model);
    zse::require(Y.ndim() == 2 && Y.shape(1) == p.D && Y.shape(0) >= 1,
                 "a group's patches must be (K, D) with K >= 1");
    zse::require(states.ndim() == 2 && states.shape(1) == zse::state_words(p.H),
                 "states must be (M, words)");
    const zse::index_t K = Y.shape(0), M = states.shape(0);
    ArrayF64 out(M);
    const double* y = Y.data();
    const std::uint64_t* st = states.data();
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        zse::sssc_group_log_joint(y, K, p, st, M, o);
    }
    return out;
}

py::dict sssc_estimate_volume(const ArrayF64& volume, const Patch3& patch, const SSSCModel& model,
                              const ArrayU64& train_states, const ArrayI64& train_positions,
                              const SearchOptions& search, const VolumeSearch& plan,
                              const StreamRequest& stream, int n_threads, const py::object& guide,
                              const py::object& evidence, const py::object& evidence_out) {
    const zse::VolumeGrid g = stream_grid(volume, patch, stream);
    const zse::SSSCParams p = sssc_params(model);
    zse::require(p.D == g.D(), "W must have D = the patch size rows");
    zse::require(py::isinstance<ArrayF64>(model.bias), "the model's bias must be a float64 array");
    const auto bias = model.bias.cast<ArrayF64>();
    require_shape(bias, {p.D}, "bias");
    const double scale = model.scale;
    zse::require(scale > 0.0 && std::isfinite(scale), "scale must be finite and > 0");
    zse::require(train_positions.ndim() == 1, "train_positions must be 1-D");
    const zse::index_t M = train_positions.shape(0);
    zse::require(train_states.ndim() == 3 && train_states.shape(0) == M &&
                     train_states.shape(1) >= plan.n_states &&
                     train_states.shape(2) == zse::state_words(p.H),
                 "train_states must have shape (n_train, S, words) with S >= n_states");
    zse::require(plan.train_sweeps >= 0 && plan.warm_sweeps >= 0 && plan.fresh_sweeps >= 1 &&
                     plan.patience >= 0,
                 "fresh_sweeps must be >= 1, train_sweeps, warm_sweeps and patience >= 0");
    zse::SSSCImageOptions opt;
    opt.S = plan.n_states;
    opt.p_init = plan.p_init;
    opt.seed = plan.seed;
    opt.fresh_seed = plan.fresh_seed;
    opt.evo = evo_config(p, search);
    opt.train_positions = train_positions.data();
    opt.train_states = train_states.data();
    opt.n_train = M;
    opt.train_S = train_states.shape(1);
    opt.train_sweeps = plan.train_sweeps;
    opt.warm_sweeps = plan.warm_sweeps;
    opt.fresh_sweeps = plan.fresh_sweeps;
    opt.patience = plan.patience;
    opt.group_size = plan.group_size;
    opt.window = zse::MatchWindow{std::get<0>(plan.group_window), std::get<1>(plan.group_window),
                                  std::get<2>(plan.group_window), plan.group_disjoint};
    opt.group_sweeps = plan.group_sweeps;
    ArrayF64 guide_array;
    if (plan.group_size > 1) {
        guide_array = checked_guide(guide, volume);
        opt.guide = guide_array.data();
    }
    // Every patch's log-evidence: written by a first pass, read by the nonlocal one.
    auto evidence_array = [&](const py::object& given, const char* name) {
        zse::require(py::isinstance<ArrayF64>(given),
                     std::string(name) + " must be a C-contiguous float64 array");
        auto array = given.cast<ArrayF64>();
        require_shape(array, {g.n_patches()}, name);
        return array;
    };
    ArrayF64 evidence_in, evidence_written;
    if (plan.group_size > 1) {
        evidence_in = evidence_array(evidence, "evidence");
        opt.evidence = evidence_in.data();
    }
    if (!evidence_out.is_none()) {
        evidence_written = evidence_array(evidence_out, "evidence_out");
        opt.evidence_out = evidence_written.mutable_data();
    }
    zse::PatchTransform to_model;
    to_model.offset = bias.data();
    to_model.divide = scale;
    if (!model.whiten.is_none()) {
        zse::require(py::isinstance<ArrayF64>(model.whiten),
                     "the model's whitening factor must be a C-contiguous float64 array");
        const auto whiten = model.whiten.cast<ArrayF64>();
        require_shape(whiten, {p.D, p.D}, "whiten");
        for (zse::index_t d = 0; d < p.D; ++d)
            zse::require(whiten.data()[d * p.D + d] > 0.0,
                         "the whitening factor needs a positive diagonal");
        to_model.whiten = whiten.data();
    }
    zse::EstimateTransform to_data;
    to_data.offset = bias.data();
    to_data.multiply = scale;
    if (!model.gat.is_none()) {
        zse::require(py::isinstance<ArrayF64>(model.gat),
                     "the model's Anscombe parameters must be a float64 array");
        const auto gat = model.gat.cast<ArrayF64>();
        require_shape(gat, {3}, "gat");
        const double* g = gat.data();
        zse::require(g[0] > 0.0 && std::isfinite(g[0]) && std::isfinite(g[1]) &&
                         std::isfinite(g[2]) && g[2] >= 0.0,
                     "the Anscombe parameters need alpha > 0, a finite offset and s2 >= 0");
        to_model.gat_alpha = to_data.gat_alpha = g[0];
        to_model.gat_offset = to_data.gat_offset = g[1];
        to_model.gat_s2 = to_data.gat_s2 = g[2];
    }
    zse::StreamOutputs out;
    py::dict result = stream_outputs(g, stream, out);
    set_input_slab(volume, stream, out);
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

// Bindings of PMM and GPMM: E-step, estimates, seeding and the shape equation.
#include "bindings.hpp"

namespace zse_py {

zse::TotalsIndex index_totals(const ArrayF64& Y) {
    zse::require(Y.ndim() == 2, "patches must be 2-D");
    const double* y = Y.data();
    const zse::index_t N = Y.shape(0), D = Y.shape(1);
    py::gil_scoped_release release;
    return zse::index_totals(y, N, D);
}

ArrayF64 sum_log_factorials(const ArrayF64& Y, int n_threads) {
    zse::require(Y.ndim() == 2, "patches must be 2-D");
    ArrayF64 out(Y.shape(0));
    const double* y = Y.data();
    double* o = out.mutable_data();
    const zse::index_t N = Y.shape(0), D = Y.shape(1);
    {
        py::gil_scoped_release release;
        zse::sum_log_factorials(y, N, D, o, n_threads);
    }
    return out;
}

py::object mixture_estep(const ArrayF64& Y, const MixtureModel& model,
                         const ArrayF64& log_factorials, const zse::TotalsIndex* totals,
                         bool want_hist, int n_threads, const py::object& share) {
    ArrayF64 alpha_storage;
    const zse::MixtureParams p = mixture_params(Y, model, alpha_storage);
    require_shape(log_factorials, {Y.shape(0)}, "log_factorials");
    zse::require(!want_hist || totals != nullptr, "want_hist needs the totals index");
    const double* y = Y.data();
    const double* lf = log_factorials.data();
    const zse::index_t N = Y.shape(0);
    const zse::index_t K = want_hist ? static_cast<zse::index_t>(totals->values.size()) : 0;
    if (!share.is_none()) {
        const zse::ChunkShare own = chunk_share(zse::mixture_chunks(N), share);
        std::vector<zse::MixtureStats> partials;
        {
            py::gil_scoped_release release;
            partials = zse::mixture_estep_partials(y, N, p, lf, totals, want_hist, own, n_threads);
        }
        return py::cast(std::move(partials));
    }
    zse::MixtureStats st;
    {
        py::gil_scoped_release release;
        st = zse::mixture_estep(y, N, p, lf, totals, want_hist, n_threads);
    }
    return mixture_stats_dict(st, p.C, p.D, K);
}

py::dict sum_mixture_stats(std::vector<zse::MixtureStats> partials, zse::index_t C, zse::index_t D,
                           zse::index_t K) {
    const zse::MixtureStats st = zse::sum_in_chunk_order(
        partials, [](zse::MixtureStats& a, const zse::MixtureStats& b) { a.add(b); });
    return mixture_stats_dict(st, C, D, K);
}

py::tuple mixture_estimate(const ArrayF64& Y, const MixtureModel& model, bool want_variance,
                           int n_threads) {
    ArrayF64 alpha_storage;
    const zse::MixtureParams p = mixture_params(Y, model, alpha_storage);
    const zse::index_t N = Y.shape(0);
    ArrayF64 est({N, p.D});
    py::object var = py::none();
    double* var_ptr = nullptr;
    if (want_variance) {
        ArrayF64 v({N, p.D});
        var_ptr = v.mutable_data();
        var = v;
    }
    const double* y = Y.data();
    double* e = est.mutable_data();
    {
        py::gil_scoped_release release;
        zse::mixture_estimate(y, N, p, e, var_ptr, n_threads);
    }
    return py::make_tuple(est, var);
}

ArrayF64 mixture_responsibilities(const ArrayF64& Y, const MixtureModel& model, int n_threads) {
    ArrayF64 alpha_storage;
    const zse::MixtureParams p = mixture_params(Y, model, alpha_storage);
    const zse::index_t N = Y.shape(0);
    ArrayF64 r({N, p.C});
    const double* y = Y.data();
    double* rp = r.mutable_data();
    {
        py::gil_scoped_release release;
        zse::mixture_responsibilities(y, N, p, rp, n_threads);
    }
    return r;
}

py::array_t<std::int64_t> kmeans_plusplus(const ArrayF64& Y, zse::index_t C, std::uint64_t seed,
                                          int n_threads, zse::index_t max_candidates) {
    zse::require(Y.ndim() == 2, "patches must be 2-D");
    const double* y = Y.data();
    const zse::index_t N = Y.shape(0), D = Y.shape(1);
    std::vector<zse::index_t> idx;
    {
        py::gil_scoped_release release;
        idx = zse::kmeans_plusplus(y, N, D, C, seed, n_threads, max_candidates);
    }
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(idx.size()));
    std::copy(idx.begin(), idx.end(), out.mutable_data());
    return out;
}

py::tuple solve_alpha(const ArrayF64& values, const ArrayF64& weights, const ArrayF64& R,
                      const ArrayF64& T, double alpha_min, double alpha_max) {
    zse::require(values.ndim() == 1 && weights.ndim() == 1 && weights.shape(0) == values.shape(0),
                 "values and weights must be 1-D of equal length");
    zse::require(R.ndim() == 1 && T.ndim() == 1 && R.shape(0) == T.shape(0),
                 "R and T must be 1-D of equal length");
    zse::require(0.0 < alpha_min && alpha_min < alpha_max, "need 0 < alpha_min < alpha_max");
    std::vector<double> v(values.data(), values.data() + values.shape(0));
    std::vector<double> r(R.data(), R.data() + R.shape(0));
    std::vector<double> t(T.data(), T.data() + T.shape(0));
    const double* w = weights.data();
    bool capped = false;
    double alpha;
    {
        py::gil_scoped_release release;
        alpha = zse::solve_alpha(v, w, r, t, 0, static_cast<zse::index_t>(r.size()), alpha_min,
                                 alpha_max, capped);
    }
    return py::make_tuple(alpha, capped);
}

py::dict mixture_estimate_volume(const ArrayF64& volume, const Patch3& patch,
                                 const MixtureModel& model, double offset, double gain,
                                 const StreamRequest& stream, int n_threads,
                                 zse::index_t group_size, const Patch3& group_window,
                                 bool group_disjoint, const py::object& guide) {
    const zse::VolumeGrid g = stream_grid(volume, patch, stream);
    ArrayF64 alpha_storage;
    const zse::MixtureParams p = mixture_params(model, alpha_storage);
    zse::require(p.D == g.D(), "W must be (C, D) with D the patch size");
    zse::require(gain > 0.0 && std::isfinite(gain) && std::isfinite(offset),
                 "gain must be finite and > 0, offset finite");
    std::vector<double> offsets(static_cast<std::size_t>(g.D()), offset);
    zse::PatchTransform to_counts;
    to_counts.offset = offsets.data();
    to_counts.multiply = gain;
    zse::EstimateTransform to_grey;
    to_grey.offset = offsets.data();
    to_grey.divide = gain;
    zse::MixtureGroups groups;
    groups.size = group_size;
    groups.window = zse::MatchWindow{std::get<0>(group_window), std::get<1>(group_window),
                                     std::get<2>(group_window), group_disjoint};
    ArrayF64 guide_array;
    if (group_size > 1) {
        guide_array = checked_guide(guide, volume);
        groups.guide = guide_array.data();
    }
    zse::StreamOutputs out;
    py::dict result = stream_outputs(g, stream, out);
    set_input_slab(volume, stream, out);
    const double* v = volume.data();
    {
        py::gil_scoped_release release;
        zse::mixture_estimate_volume(v, g, p, to_counts, to_grey, out, n_threads, groups);
    }
    return result;
}

}  // namespace zse_py

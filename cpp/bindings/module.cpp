// The module table: every entry point of zse._core with its keyword arguments and defaults.
// python/zse/_core.pyi mirrors this table for readers and IDEs.
#include "bindings.hpp"

using namespace zse_py;

namespace {

// An option struct's constructor from keyword arguments: each sets the field of that name (an
// unknown name raises AttributeError); the defaults are the struct's own, declared once.
template <class T>
py::class_<T>& with_keyword_init(py::class_<T>& cls) {
    cls.def(py::init([](const py::kwargs& fields) {
        T value;
        py::object view = py::cast(&value, py::return_value_policy::reference);
        for (const auto& item : fields) py::setattr(view, item.first, item.second);
        return value;
    }));
    return cls;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "zse compiled core (private; use the zse package)";
    m.attr("__version__") = ZSE_VERSION;
    m.attr("has_openmp") = zse::has_openmp();
    m.def("omp_max_threads", &zse::omp_max_threads,
          "OpenMP's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP");
    m.def("compiler", &compiler);
    m.def("extract_patches", &extract_patches, "All overlapping patches, shape (N, D)",
          py::arg("image").noconvert(), py::arg("patch_rows"), py::arg("patch_cols"),
          py::arg("n_threads"));
    m.def("merge_patches", &merge_patches, "Per-pixel statistics of per-patch estimates",
          py::arg("estimates").noconvert(), py::arg("image_rows"), py::arg("image_cols"),
          py::arg("patch_rows"), py::arg("patch_cols"), py::arg("stats"), py::arg("weights"),
          py::arg("median_kind"), py::arg("n_threads"));

    // ---- option structs (bindings.hpp), taken whole by the entry points ---------------------
    py::class_<SSSCModel>(m, "SSSCModel", "SSSC's parameters in the kernels' units (private)")
        .def(py::init([](ArrayF64 W, ArrayF64 pi, ArrayF64 mu, ArrayF64 Psi, double sigma2,
                         py::object bias, double scale, py::object W_out, py::object whiten,
                         py::object gat) {
                 return SSSCModel{W, pi, mu, Psi, sigma2, bias, scale, W_out, whiten, gat};
             }),
             py::arg("W").noconvert(), py::arg("pi").noconvert(), py::arg("mu").noconvert(),
             py::arg("Psi").noconvert(), py::arg("sigma2"), py::arg("bias") = py::none(),
             py::arg("scale") = 1.0, py::arg("W_out") = py::none(), py::arg("whiten") = py::none(),
             py::arg("gat") = py::none())
        .def_readonly("W", &SSSCModel::W)
        .def_readonly("sigma2", &SSSCModel::sigma2)
        .def_readonly("scale", &SSSCModel::scale);
    py::class_<MixtureModel>(m, "MixtureModel", "A (Gamma-)Poisson mixture's parameters (private)")
        .def(py::init([](ArrayF64 W, ArrayF64 log_pi, py::object alpha, double beta) {
                 return MixtureModel{W, log_pi, alpha, beta};
             }),
             py::arg("W").noconvert(), py::arg("log_pi").noconvert(), py::arg("alpha") = py::none(),
             py::arg("beta") = 1.0)
        .def_readonly("W", &MixtureModel::W);
    py::class_<SearchOptions> search(m, "SearchOptions", "The state search (private)");
    with_keyword_init(search)
        .def_readwrite("n_parents", &SearchOptions::n_parents)
        .def_readwrite("n_children", &SearchOptions::n_children)
        .def_readwrite("n_generations", &SearchOptions::n_generations)
        .def_readwrite("selection", &SearchOptions::selection)
        .def_readwrite("mutation", &SearchOptions::mutation)
        .def_readwrite("bitflip_prob", &SearchOptions::bitflip_prob)
        .def_readwrite("method", &SearchOptions::method);
    py::class_<EStepRequest> estep(m, "EStepRequest", "What an SSSC E-step returns (private)");
    with_keyword_init(estep)
        .def_readwrite("seed", &EStepRequest::seed)
        .def_readwrite("epoch", &EStepRequest::epoch)
        .def_readwrite("evolve", &EStepRequest::evolve)
        .def_readwrite("n_sweeps", &EStepRequest::n_sweeps)
        .def_readwrite("want_stats", &EStepRequest::want_stats)
        .def_readwrite("want_estimates", &EStepRequest::want_estimates)
        .def_readwrite("want_variance", &EStepRequest::want_variance)
        .def_readwrite("want_lpj", &EStepRequest::want_lpj);
    py::class_<VolumeSearch> plan(m, "VolumeSearch",
                                  "Starts and lengths of the streamed searches (private)");
    with_keyword_init(plan)
        .def_readwrite("n_states", &VolumeSearch::n_states)
        .def_readwrite("p_init", &VolumeSearch::p_init)
        .def_readwrite("seed", &VolumeSearch::seed)
        .def_readwrite("fresh_seed", &VolumeSearch::fresh_seed)
        .def_readwrite("train_sweeps", &VolumeSearch::train_sweeps)
        .def_readwrite("warm_sweeps", &VolumeSearch::warm_sweeps)
        .def_readwrite("fresh_sweeps", &VolumeSearch::fresh_sweeps)
        .def_readwrite("patience", &VolumeSearch::patience)
        .def_readwrite("group_size", &VolumeSearch::group_size)
        .def_readwrite("group_window", &VolumeSearch::group_window)
        .def_readwrite("group_sweeps", &VolumeSearch::group_sweeps)
        .def_readwrite("group_disjoint", &VolumeSearch::group_disjoint);
    py::class_<StreamRequest> stream(
        m, "StreamRequest", "Outputs, share and progress of a streamed estimate (private)");
    with_keyword_init(stream)
        .def_readwrite("stats", &StreamRequest::stats)
        .def_readwrite("median_kind", &StreamRequest::median_kind)
        .def_readwrite("merge", &StreamRequest::merge)
        .def_readwrite("slice_begin", &StreamRequest::slice_begin)
        .def_readwrite("slice_end", &StreamRequest::slice_end)
        .def_readwrite("volume_slices", &StreamRequest::volume_slices)
        .def_readwrite("input_first_slice", &StreamRequest::input_first_slice)
        .def_readwrite("part", &StreamRequest::part)
        .def_readwrite("n_parts", &StreamRequest::n_parts)
        .def_readwrite("progress", &StreamRequest::progress);

    py::class_<zse::TotalsIndex>(m, "TotalsIndex", "Distinct patch totals (private)")
        .def_property_readonly("values",
                               [](const zse::TotalsIndex& t) { return vector_to_array(t.values); })
        .def_property_readonly("counts",
                               [](const zse::TotalsIndex& t) { return vector_to_array(t.counts); });
    m.def("index_totals", &index_totals, py::arg("Y").noconvert());
    m.def("sum_log_factorials", &sum_log_factorials, py::arg("Y").noconvert(),
          py::arg("n_threads"));
    py::class_<zse::MixtureStats>(m, "MixtureStats",
                                  "Statistics of one chunk of a mixture E-step (private)")
        .def(py::pickle(
            [](const zse::MixtureStats& st) {
                return py::make_tuple(st.R, st.S, st.T, st.hist, st.log_likelihood);
            },
            [](const py::tuple& t) {
                zse::require(t.size() == 5, "not a pickled MixtureStats");
                zse::MixtureStats st;
                st.R = t[0].cast<std::vector<double>>();
                st.S = t[1].cast<std::vector<double>>();
                st.T = t[2].cast<std::vector<double>>();
                st.hist = t[3].cast<std::vector<double>>();
                st.log_likelihood = t[4].cast<double>();
                return st;
            }));
    m.def("mixture_estep", &mixture_estep,
          "Exact E-step; with share=(part, n_parts) the per-chunk statistics of that part only",
          py::arg("Y").noconvert(), py::arg("model"), py::arg("log_factorials").noconvert(),
          py::arg("totals"), py::arg("want_hist"), py::arg("n_threads"),
          py::arg("share") = py::none());
    m.def("sum_mixture_stats", &sum_mixture_stats,
          "Sums per-chunk statistics in chunk order (the same sums as mixture_estep)",
          py::arg("partials"), py::arg("C"), py::arg("D"), py::arg("K"));
    m.def("mixture_estimate", &mixture_estimate, py::arg("Y").noconvert(), py::arg("model"),
          py::arg("want_variance"), py::arg("n_threads"));
    m.def("mixture_responsibilities", &mixture_responsibilities, py::arg("Y").noconvert(),
          py::arg("model"), py::arg("n_threads"));
    m.def("kmeans_plusplus", &kmeans_plusplus, py::arg("Y").noconvert(), py::arg("C"),
          py::arg("seed"), py::arg("n_threads"), py::arg("max_candidates") = 0);
    m.def("solve_alpha", &solve_alpha, py::arg("values").noconvert(),
          py::arg("weights").noconvert(), py::arg("R").noconvert(), py::arg("T").noconvert(),
          py::arg("alpha_min"), py::arg("alpha_max"));

    // ---- SSSC / evolutionary E-step -------------------------------------------------------
    py::class_<zse::SSSCStats>(m, "SSSCStats", "Sufficient statistics of an SSSC E-step (private)")
        .def_property_readonly("a_s",
                               [](const zse::SSSCStats& s) { return vector_to_array(s.a_s); })
        .def_property_readonly("a_sz",
                               [](const zse::SSSCStats& s) { return vector_to_array(s.a_sz); })
        .def_property_readonly(
            "B_ss", [](const zse::SSSCStats& s) { return copy_matrix(s.B_ss, s.H, s.H); })
        .def_property_readonly(
            "B_szsz", [](const zse::SSSCStats& s) { return copy_matrix(s.B_szsz, s.H, s.H); })
        .def_property_readonly(
            "B_mm", [](const zse::SSSCStats& s) { return copy_matrix(s.B_mm, s.H, s.H); })
        .def_property_readonly(
            "B_s_sz", [](const zse::SSSCStats& s) { return copy_matrix(s.B_s_sz, s.H, s.H); })
        .def_property_readonly(
            "Y_sz", [](const zse::SSSCStats& s) { return copy_matrix(s.Y_sz, s.D, s.H); })
        .def_readonly("T_yy", &zse::SSSCStats::T_yy)
        .def_readonly("log_joint_sum", &zse::SSSCStats::log_joint_sum)
        .def_readonly("n_invalid", &zse::SSSCStats::n_invalid)
        .def_readonly("n_new_states", &zse::SSSCStats::n_new_states)
        .def_readonly("n_replaced", &zse::SSSCStats::n_replaced)
        .def_readonly("n_lpj", &zse::SSSCStats::n_lpj)
        .def(py::pickle(
            [](const zse::SSSCStats& s) {
                return py::make_tuple(
                    s.H, s.D, s.a_s, s.a_sz, s.B_ss, s.B_szsz, s.B_mm, s.B_s_sz, s.Y_sz, s.T_yy,
                    s.log_joint_sum,
                    py::make_tuple(s.n_invalid, s.n_new_states, s.n_replaced, s.n_lpj));
            },
            [](const py::tuple& t) {
                zse::require(t.size() == 12, "not a pickled SSSCStats");
                zse::SSSCStats s;
                s.H = t[0].cast<zse::index_t>();
                s.D = t[1].cast<zse::index_t>();
                s.a_s = t[2].cast<std::vector<double>>();
                s.a_sz = t[3].cast<std::vector<double>>();
                s.B_ss = t[4].cast<std::vector<double>>();
                s.B_szsz = t[5].cast<std::vector<double>>();
                s.B_mm = t[6].cast<std::vector<double>>();
                s.B_s_sz = t[7].cast<std::vector<double>>();
                s.Y_sz = t[8].cast<std::vector<double>>();
                s.T_yy = t[9].cast<double>();
                s.log_joint_sum = t[10].cast<double>();
                const auto counts =
                    t[11]
                        .cast<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>>();
                s.n_invalid = std::get<0>(counts);
                s.n_new_states = std::get<1>(counts);
                s.n_replaced = std::get<2>(counts);
                s.n_lpj = std::get<3>(counts);
                return s;
            }));
    m.def("sum_sssc_stats", &sum_sssc_stats,
          "Sums per-chunk statistics in chunk order (the same sums as sssc_estep)",
          py::arg("partials"), py::arg("H"), py::arg("D"));

    m.def("sssc_init_states", &sssc_init_states, py::arg("N"), py::arg("S"), py::arg("H"),
          py::arg("p_init"), py::arg("seed"), py::arg("n_threads"));

    m.def("sssc_estep", &sssc_estep,
          "Truncated E-step (optionally with the evolutionary search) over patches Y (N, D); "
          "K (N, S, words) is updated in place. Returns a dict with 'stats' (or 'chunk_stats' "
          "with share=(part, n_parts)) and the requested 'estimates', 'variance', 'lpj'",
          py::arg("Y").noconvert(), py::arg("model"), py::arg("K").noconvert(), py::arg("search"),
          py::arg("request"), py::arg("n_threads"), py::arg("share") = py::none());

    // --- volumes and streamed estimation (ALGORITHM.md §2.6) ---------------------------------
    m.def("chunk_share_patches", &chunk_share_patches,
          "The patches [begin, end) of part `part`'s chunks of an E-step over N patches",
          py::arg("kernel"), py::arg("N"), py::arg("part"), py::arg("n_parts"));
    m.def("stream_plan", &stream_plan,
          "Bands, wave and buffer sizes of the streamed estimation (for memory estimates)",
          py::arg("shape"), py::arg("patch"), py::arg("want_variances"), py::arg("want_median"),
          py::arg("merge"), py::arg("n_threads"));
    m.def("block_match", &block_match,
          "The k patches most similar to each given patch in a search window of the guide, "
          "shape (M, k); the patch itself first, -1 where the window holds fewer",
          py::arg("guide").noconvert(), py::arg("patch"), py::arg("positions").noconvert(),
          py::arg("window"), py::arg("k"), py::arg("n_threads"), py::arg("disjoint") = false);
    m.def("gather_patches", &gather_patches,
          "The patches at the given global indices, shape (M, D)", py::arg("volume").noconvert(),
          py::arg("patch"), py::arg("positions").noconvert(), py::arg("n_threads"));
    m.def("merge_volume", &merge_volume, "Per-voxel statistics of per-patch estimates of a volume",
          py::arg("estimates").noconvert(), py::arg("shape"), py::arg("patch"), py::arg("stats"),
          py::arg("variances"), py::arg("median_kind"), py::arg("n_threads"));
    m.def("identity_estimate_volume", &identity_estimate_volume, py::arg("volume").noconvert(),
          py::arg("patch"), py::arg("stream"), py::arg("n_threads"));
    m.def("mixture_estimate_volume", &mixture_estimate_volume, py::arg("volume").noconvert(),
          py::arg("patch"), py::arg("model"), py::arg("offset"), py::arg("gain"), py::arg("stream"),
          py::arg("n_threads"), py::arg("group_size") = 1,
          py::arg("group_window") = Patch3{0, 10, 10}, py::arg("group_disjoint") = false,
          py::arg("guide") = py::none());
    m.def("sssc_estimate_volume", &sssc_estimate_volume,
          "Streamed estimate and merge of every patch of a (Z, R, Q) volume with SSSC",
          py::arg("volume").noconvert(), py::arg("patch"), py::arg("model"),
          py::arg("train_states").noconvert(), py::arg("train_positions").noconvert(),
          py::arg("search"), py::arg("plan"), py::arg("stream"), py::arg("n_threads"),
          py::arg("guide") = py::none(), py::arg("evidence") = py::none(),
          py::arg("evidence_out") = py::none());

    m.def("sssc_mstep", &sssc_mstep, py::arg("stats"), py::arg("N"), py::arg("model"),
          py::arg("exact"));

    m.def("sssc_log_joint", &sssc_log_joint, py::arg("Y").noconvert(), py::arg("model"),
          py::arg("states").noconvert(), py::arg("n_threads"));
    m.def("sssc_group_log_joint", &sssc_group_log_joint,
          "log p(s) + sum_i log p(y_i | s) of a group sharing its binary state, per state",
          py::arg("Y").noconvert(), py::arg("model"), py::arg("states").noconvert());

    m.def("evo_mutate", &evo_mutate, py::arg("parents").noconvert(), py::arg("H"),
          py::arg("mutation"), py::arg("n_children"), py::arg("bitflip_prob"),
          py::arg("crowdedness"), py::arg("seed"));

    m.def("evo_select", &evo_select, py::arg("lpj").noconvert(), py::arg("n_parents"),
          py::arg("selection"), py::arg("seed"), py::arg("item") = 0);
}

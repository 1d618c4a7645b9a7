// The only file that includes pybind11: shape checks, output allocation with the GIL held, then the
// pure-C++ kernels with the GIL released. The Python package validates and converts inputs once;
// every array argument here is `.noconvert()` so no hidden copy can happen at the boundary.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <tuple>
#include <vector>

#include "zse/common.hpp"
#include "zse/merge.hpp"
#include "zse/evo.hpp"
#include "zse/mixtures.hpp"
#include "zse/sssc.hpp"
#include "zse/patches.hpp"
#include "zse/tiles.hpp"
#include "zse/volume.hpp"

namespace py = pybind11;

namespace {

using ArrayF64 = py::array_t<double, py::array::c_style>;

zse::PatchGrid make_grid(zse::index_t rows, zse::index_t cols, zse::index_t patch_rows,
                         zse::index_t patch_cols) {
    return zse::PatchGrid(rows, cols, patch_rows, patch_cols);
}

ArrayF64 extract_patches(const ArrayF64& image, zse::index_t patch_rows, zse::index_t patch_cols,
                         int n_threads) {
    zse::require(image.ndim() == 2, "image must be 2-D, got " + std::to_string(image.ndim()) +
                                        "-D");
    const zse::PatchGrid grid = make_grid(image.shape(0), image.shape(1), patch_rows, patch_cols);
    ArrayF64 patches({grid.n_patches(), grid.patch_size()});
    const double* in = image.data();
    double* out = patches.mutable_data();
    {
        py::gil_scoped_release release;
        zse::extract_patches(in, grid, out, n_threads);
    }
    return patches;
}

py::dict merge_patches(const ArrayF64& estimates, zse::index_t image_rows, zse::index_t image_cols,
                       zse::index_t patch_rows, zse::index_t patch_cols,
                       const std::vector<std::string>& stats, const py::object& weights,
                       const std::string& median_kind, int n_threads) {
    const zse::PatchGrid grid = make_grid(image_rows, image_cols, patch_rows, patch_cols);
    zse::require(estimates.ndim() == 2 && estimates.shape(0) == grid.n_patches() &&
                     estimates.shape(1) == grid.patch_size(),
                 "estimates must have shape (" + std::to_string(grid.n_patches()) + ", " +
                     std::to_string(grid.patch_size()) + ") for this image and patch size");
    zse::require(median_kind == "average" || median_kind == "lower",
                 "median_kind must be 'average' or 'lower', got '" + median_kind + "'");

    const double* weights_ptr = nullptr;
    ArrayF64 weights_array;
    if (!weights.is_none()) {
        weights_array = weights.cast<ArrayF64>();  // exact dtype/layout checked by the caller
        zse::require(weights_array.ndim() == 1 && weights_array.shape(0) == grid.n_patches(),
                     "weights must have shape (" + std::to_string(grid.n_patches()) + ",)");
        weights_ptr = weights_array.data();
    }

    py::dict result;
    zse::MergeOutputs out;
    for (const std::string& name : stats) {
        ArrayF64 image({image_rows, image_cols});
        double* ptr = image.mutable_data();
        if (name == "mean") {
            out.mean = ptr;
        } else if (name == "var") {
            out.var = ptr;
        } else if (name == "median") {
            out.median = ptr;
        } else if (name == "count") {
            out.count = ptr;
        } else {
            throw std::invalid_argument("unknown stat '" + name +
                                        "'; expected mean, var, median or count");
        }
        result[py::str(name)] = image;
    }
    const zse::MedianKind kind =
        median_kind == "lower" ? zse::MedianKind::lower : zse::MedianKind::average;
    const double* in = estimates.data();
    {
        py::gil_scoped_release release;
        zse::merge_patches(in, grid, weights_ptr, out, kind, n_threads);
    }
    return result;
}

template <class T>
ArrayF64 vector_to_array(const std::vector<T>& v) {
    ArrayF64 out(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

void require_shape(const ArrayF64& a, std::initializer_list<zse::index_t> shape, const char* name) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    std::size_t i = 0;
    for (zse::index_t extent : shape) ok = ok && a.shape(i++) == extent;
    zse::require(ok, std::string(name) + " has the wrong shape");
}

// Checks the arrays that describe a mixture and points a MixtureParams at them (no copies).
zse::MixtureParams mixture_params(const ArrayF64& Y, const ArrayF64& W, const ArrayF64& log_pi,
                                  const py::object& alpha, double beta, ArrayF64& alpha_storage) {
    zse::require(Y.ndim() == 2 && W.ndim() == 2, "patches and W must be 2-D");
    zse::MixtureParams p;
    p.C = W.shape(0);
    p.D = W.shape(1);
    zse::require(Y.shape(1) == p.D, "patches and W have different numbers of pixels");
    require_shape(log_pi, {p.C}, "log_pi");
    p.W = W.data();
    p.log_pi = log_pi.data();
    if (!alpha.is_none()) {
        alpha_storage = alpha.cast<ArrayF64>();
        require_shape(alpha_storage, {p.C}, "alpha");
        zse::require(beta > 0.0 && std::isfinite(beta), "beta must be finite and > 0");
        p.gamma = true;
        p.alpha = alpha_storage.data();
        p.beta = beta;
    }
    return p;
}

// The chunks of a (part, n_parts) share, checked.
zse::ChunkShare chunk_share(const zse::FixedChunks& chunks, const py::object& share) {
    const auto pn = share.cast<std::tuple<int, int>>();
    return zse::share_of(chunks, std::get<0>(pn), std::get<1>(pn));
}

py::dict mixture_stats_dict(const zse::MixtureStats& st, zse::index_t C, zse::index_t D,
                            zse::index_t K) {
    py::dict out;
    out["R"] = vector_to_array(st.R);
    ArrayF64 S = vector_to_array(st.S);
    out["S"] = S.reshape({C, D});
    out["T"] = vector_to_array(st.T);
    if (K > 0) {
        ArrayF64 h = vector_to_array(st.hist);
        out["hist"] = h.reshape({C, K});
    }
    out["log_likelihood"] = st.log_likelihood;
    return out;
}

using ArrayU64 = py::array_t<std::uint64_t, py::array::c_style>;

zse::SSSCParams sssc_params(const ArrayF64& W, const ArrayF64& pi, const ArrayF64& mu,
                            const ArrayF64& Psi, double sigma2) {
    zse::require(W.ndim() == 2, "W must be 2-D (D, H)");
    zse::SSSCParams p;
    p.D = W.shape(0);
    p.H = W.shape(1);
    require_shape(pi, {p.H}, "pi");
    require_shape(mu, {p.H}, "mu");
    require_shape(Psi, {p.H, p.H}, "Psi");
    p.W = W.data();
    p.pi = pi.data();
    p.mu = mu.data();
    p.Psi = Psi.data();
    p.sigma2 = sigma2;
    return p;
}

zse::Selection parse_selection(const std::string& s) {
    if (s == "fit") return zse::Selection::fit;
    if (s == "rand") return zse::Selection::rand;
    throw std::invalid_argument("selection must be 'fit' or 'rand', got '" + s + "'");
}

zse::Mutation parse_mutation(const std::string& s) {
    if (s == "randflip") return zse::Mutation::randflip;
    if (s == "sparseflip") return zse::Mutation::sparseflip;
    if (s == "cross") return zse::Mutation::cross;
    if (s == "cross_randflip") return zse::Mutation::cross_randflip;
    if (s == "cross_sparseflip") return zse::Mutation::cross_sparseflip;
    throw std::invalid_argument("unknown mutation '" + s + "'");
}

// The evolutionary search settings, checked; sparseflip's target crowdedness is sum(pi).
zse::EvoConfig evo_config(const zse::SSSCParams& p, zse::index_t n_parents, zse::index_t n_children,
                          zse::index_t n_generations, const std::string& selection,
                          const std::string& mutation, double bitflip_prob) {
    zse::EvoConfig evo;
    evo.n_parents = n_parents;
    evo.n_children = n_children;
    evo.n_generations = n_generations;
    evo.selection = parse_selection(selection);
    evo.mutation = parse_mutation(mutation);
    zse::require(evo.mutation != zse::Mutation::randflip || n_children <= p.H,
                 "randflip needs n_children <= H");
    evo.bitflip_prob = bitflip_prob;
    evo.crowdedness = 0.0;
    for (zse::index_t h = 0; h < p.H; ++h) evo.crowdedness += p.pi[h];
    return evo;
}

ArrayF64 copy_matrix(const std::vector<double>& v, zse::index_t rows, zse::index_t cols) {
    ArrayF64 out({rows, cols});
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}


// --- volumes and streamed estimation -----------------------------------------------------------

using ArrayI64 = py::array_t<std::int64_t, py::array::c_style>;
using Patch3 = std::tuple<zse::index_t, zse::index_t, zse::index_t>;

// Every volume argument is 3-D (Z, R, Q): Python passes a 2-D image as the view image[None].
zse::VolumeGrid volume_grid(const ArrayF64& volume, const Patch3& patch) {
    zse::require(volume.ndim() == 3, "volume must be 3-D (Z, R, Q)");
    return zse::VolumeGrid(volume.shape(0), volume.shape(1), volume.shape(2), std::get<0>(patch),
                           std::get<1>(patch), std::get<2>(patch));
}

zse::VolumeGrid shape_grid(const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                           const Patch3& patch) {
    return zse::VolumeGrid(std::get<0>(shape), std::get<1>(shape), std::get<2>(shape),
                           std::get<0>(patch), std::get<1>(patch), std::get<2>(patch));
}

// Allocates the requested output volumes (with the GIL held) and points `out` at them. With
// n_parts > 1 they hold part `part`'s share of the slices only (rows of a 2-D image; MPI ranks).
py::dict stream_outputs(const zse::VolumeGrid& g, const std::vector<std::string>& stats,
                        const std::string& median_kind, int part, int n_parts,
                        zse::StreamOutputs& out) {
    zse::require(median_kind == "average" || median_kind == "lower",
                 "median_kind must be 'average' or 'lower', got '" + median_kind + "'");
    out.median_kind = median_kind == "lower" ? zse::MedianKind::lower : zse::MedianKind::average;
    const zse::SliceRange range = zse::slices_of_part(g, part, n_parts);
    out.slice_begin = range.first;
    out.slice_end = range.last;
    const bool image = g.Z == 1 && g.Pz == 1;  // slices are rows
    const zse::index_t n = range.last - range.first;
    py::dict result;
    for (const std::string& name : stats) {
        ArrayF64 volume = image ? ArrayF64({zse::index_t{1}, n, g.Q}) : ArrayF64({n, g.R, g.Q});
        double* ptr = volume.mutable_data();
        if (name == "mean") out.mean = ptr;
        else if (name == "var") out.var = ptr;
        else if (name == "pvar") out.pvar = ptr;
        else if (name == "median") out.median = ptr;
        else if (name == "count") out.count = ptr;
        else throw std::invalid_argument("unknown stat '" + name + "'");
        result[py::str(name)] = volume;
    }
    return result;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "zse compiled core (private; use the zse package)";
    m.attr("__version__") = ZSE_VERSION;
    m.attr("has_openmp") = zse::has_openmp();
    m.def("omp_max_threads", &zse::omp_max_threads,
          "OpenMP's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP");
    m.def("compiler", []() {
#if defined(__clang__)
        return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
        return std::string("gcc ") + __VERSION__;
#else
        return std::string("unknown");
#endif
    });
    m.def("extract_patches", &extract_patches, "All overlapping patches, shape (N, D)",
          py::arg("image").noconvert(), py::arg("patch_rows"), py::arg("patch_cols"),
          py::arg("n_threads"));
    m.def("merge_patches", &merge_patches, "Per-pixel statistics of per-patch estimates",
          py::arg("estimates").noconvert(), py::arg("image_rows"), py::arg("image_cols"),
          py::arg("patch_rows"), py::arg("patch_cols"), py::arg("stats"), py::arg("weights"),
          py::arg("median_kind"), py::arg("n_threads"));

    py::class_<zse::TotalsIndex>(m, "TotalsIndex", "Distinct patch totals (private)")
        .def_property_readonly("values", [](const zse::TotalsIndex& t) { return vector_to_array(t.values); })
        .def_property_readonly("counts", [](const zse::TotalsIndex& t) { return vector_to_array(t.counts); });
    m.def("index_totals", [](const ArrayF64& Y) {
        zse::require(Y.ndim() == 2, "patches must be 2-D");
        const double* y = Y.data();
        const zse::index_t N = Y.shape(0), D = Y.shape(1);
        py::gil_scoped_release release;
        return zse::index_totals(y, N, D);
    }, py::arg("Y").noconvert());
    m.def("sum_log_factorials", [](const ArrayF64& Y, int n_threads) {
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
    }, py::arg("Y").noconvert(), py::arg("n_threads"));
    py::class_<zse::MixtureStats>(m, "MixtureStats", "Statistics of one chunk of a mixture E-step (private)")
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
    m.def("mixture_estep",
          [](const ArrayF64& Y, const ArrayF64& W, const ArrayF64& log_pi, const py::object& alpha,
             double beta, const ArrayF64& log_factorials, const zse::TotalsIndex* totals,
             bool want_hist, int n_threads, const py::object& share) -> py::object {
              ArrayF64 alpha_storage;
              const zse::MixtureParams p = mixture_params(Y, W, log_pi, alpha, beta, alpha_storage);
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
                      partials = zse::mixture_estep_partials(y, N, p, lf, totals, want_hist, own,
                                                             n_threads);
                  }
                  return py::cast(std::move(partials));
              }
              zse::MixtureStats st;
              {
                  py::gil_scoped_release release;
                  st = zse::mixture_estep(y, N, p, lf, totals, want_hist, n_threads);
              }
              return mixture_stats_dict(st, p.C, p.D, K);
          },
          "Exact E-step; with share=(part, n_parts) the per-chunk statistics of that part only",
          py::arg("Y").noconvert(), py::arg("W").noconvert(), py::arg("log_pi").noconvert(),
          py::arg("alpha"), py::arg("beta"), py::arg("log_factorials").noconvert(),
          py::arg("totals"), py::arg("want_hist"), py::arg("n_threads"),
          py::arg("share") = py::none());
    m.def("sum_mixture_stats",
          [](std::vector<zse::MixtureStats> partials, zse::index_t C, zse::index_t D,
             zse::index_t K) {
              const zse::MixtureStats st = zse::sum_in_chunk_order(
                  partials, [](zse::MixtureStats& a, const zse::MixtureStats& b) { a.add(b); });
              return mixture_stats_dict(st, C, D, K);
          },
          "Sums per-chunk statistics in chunk order (the same sums as mixture_estep)",
          py::arg("partials"), py::arg("C"), py::arg("D"), py::arg("K"));
    m.def("mixture_estimate",
          [](const ArrayF64& Y, const ArrayF64& W, const ArrayF64& log_pi, const py::object& alpha,
             double beta, bool want_variance, int n_threads) {
              ArrayF64 alpha_storage;
              const zse::MixtureParams p = mixture_params(Y, W, log_pi, alpha, beta, alpha_storage);
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
          },
          py::arg("Y").noconvert(), py::arg("W").noconvert(), py::arg("log_pi").noconvert(),
          py::arg("alpha"), py::arg("beta"), py::arg("want_variance"), py::arg("n_threads"));
    m.def("mixture_responsibilities",
          [](const ArrayF64& Y, const ArrayF64& W, const ArrayF64& log_pi, const py::object& alpha,
             double beta, int n_threads) {
              ArrayF64 alpha_storage;
              const zse::MixtureParams p = mixture_params(Y, W, log_pi, alpha, beta, alpha_storage);
              const zse::index_t N = Y.shape(0);
              ArrayF64 r({N, p.C});
              const double* y = Y.data();
              double* rp = r.mutable_data();
              {
                  py::gil_scoped_release release;
                  zse::mixture_responsibilities(y, N, p, rp, n_threads);
              }
              return r;
          },
          py::arg("Y").noconvert(), py::arg("W").noconvert(), py::arg("log_pi").noconvert(),
          py::arg("alpha"), py::arg("beta"), py::arg("n_threads"));
    m.def("kmeans_plusplus",
          [](const ArrayF64& Y, zse::index_t C, std::uint64_t seed, int n_threads,
             zse::index_t max_candidates) {
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
          },
          py::arg("Y").noconvert(), py::arg("C"), py::arg("seed"), py::arg("n_threads"),
          py::arg("max_candidates") = 0);
    m.def("solve_alpha",
          [](const ArrayF64& values, const ArrayF64& weights, const ArrayF64& R, const ArrayF64& T,
             double alpha_min, double alpha_max) {
              zse::require(values.ndim() == 1 && weights.ndim() == 1 &&
                               weights.shape(0) == values.shape(0),
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
                  alpha = zse::solve_alpha(v, w, r, t, 0, static_cast<zse::index_t>(r.size()),
                                           alpha_min, alpha_max, capped);
              }
              return py::make_tuple(alpha, capped);
          },
          py::arg("values").noconvert(), py::arg("weights").noconvert(), py::arg("R").noconvert(),
          py::arg("T").noconvert(), py::arg("alpha_min"), py::arg("alpha_max"));

    // ---- SSSC / evolutionary E-step -------------------------------------------------------
    py::class_<zse::SSSCStats>(m, "SSSCStats", "Sufficient statistics of an SSSC E-step (private)")
        .def_property_readonly("a_s", [](const zse::SSSCStats& s) { return vector_to_array(s.a_s); })
        .def_property_readonly("a_sz", [](const zse::SSSCStats& s) { return vector_to_array(s.a_sz); })
        .def_property_readonly("B_ss", [](const zse::SSSCStats& s) { return copy_matrix(s.B_ss, s.H, s.H); })
        .def_property_readonly("B_szsz", [](const zse::SSSCStats& s) { return copy_matrix(s.B_szsz, s.H, s.H); })
        .def_property_readonly("B_mm", [](const zse::SSSCStats& s) { return copy_matrix(s.B_mm, s.H, s.H); })
        .def_property_readonly("B_s_sz", [](const zse::SSSCStats& s) { return copy_matrix(s.B_s_sz, s.H, s.H); })
        .def_property_readonly("Y_sz", [](const zse::SSSCStats& s) { return copy_matrix(s.Y_sz, s.D, s.H); })
        .def_readonly("T_yy", &zse::SSSCStats::T_yy)
        .def_readonly("log_joint_sum", &zse::SSSCStats::log_joint_sum)
        .def_readonly("n_invalid", &zse::SSSCStats::n_invalid)
        .def_readonly("n_new_states", &zse::SSSCStats::n_new_states)
        .def_readonly("n_replaced", &zse::SSSCStats::n_replaced)
        .def_readonly("n_lpj", &zse::SSSCStats::n_lpj)
        .def(py::pickle(
            [](const zse::SSSCStats& s) {
                return py::make_tuple(s.H, s.D, s.a_s, s.a_sz, s.B_ss, s.B_szsz, s.B_mm, s.B_s_sz,
                                      s.Y_sz, s.T_yy, s.log_joint_sum,
                                      py::make_tuple(s.n_invalid, s.n_new_states, s.n_replaced,
                                                     s.n_lpj));
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
                const auto counts = t[11].cast<std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>>();
                s.n_invalid = std::get<0>(counts);
                s.n_new_states = std::get<1>(counts);
                s.n_replaced = std::get<2>(counts);
                s.n_lpj = std::get<3>(counts);
                return s;
            }));
    m.def("sum_sssc_stats",
          [](std::vector<zse::SSSCStats> partials, zse::index_t H, zse::index_t D) {
              zse::SSSCStats total = zse::sum_in_chunk_order(
                  partials, [](zse::SSSCStats& a, const zse::SSSCStats& b) { a.add(b); });
              total.H = H;
              total.D = D;
              return total;
          },
          "Sums per-chunk statistics in chunk order (the same sums as sssc_estep)",
          py::arg("partials"), py::arg("H"), py::arg("D"));

    m.def("sssc_init_states",
          [](zse::index_t N, zse::index_t S, zse::index_t H, double p_init, std::uint64_t seed,
             int n_threads) {
              zse::require(N >= 1, "N must be >= 1");
              const zse::index_t words = zse::state_words(H);
              ArrayU64 K({N, S, words});
              std::uint64_t* k = K.mutable_data();
              {
                  py::gil_scoped_release release;
                  zse::init_states(k, N, S, H, p_init, seed, n_threads);
              }
              return K;
          },
          py::arg("N"), py::arg("S"), py::arg("H"), py::arg("p_init"), py::arg("seed"),
          py::arg("n_threads"));

    m.def("sssc_estep",
          [](const ArrayF64& Y, const ArrayF64& W, const ArrayF64& pi, const ArrayF64& mu,
             const ArrayF64& Psi, double sigma2, ArrayU64& K, std::uint64_t seed,
             std::uint64_t epoch, bool evolve, zse::index_t n_sweeps, zse::index_t n_parents,
             zse::index_t n_children, zse::index_t n_generations, const std::string& selection,
             const std::string& mutation, double bitflip_prob, bool want_stats,
             bool want_estimates, bool want_variance, bool want_lpj, int n_threads,
             const py::object& share) {
              const zse::SSSCParams p = sssc_params(W, pi, mu, Psi, sigma2);
              zse::require(Y.ndim() == 2 && Y.shape(1) == p.D, "patches must be (N, D) with D = W.shape[0]");
              const zse::index_t N = Y.shape(0);
              zse::require(K.ndim() == 3 && K.shape(0) == N && K.shape(2) == zse::state_words(p.H),
                           "K must have shape (N, S, words) matching the patches and H");
              const zse::index_t S = K.shape(1);
              zse::require(n_parents >= 1 && n_children >= 1 && n_generations >= 1 && n_sweeps >= 1,
                           "n_parents, n_children, n_generations and n_sweeps must be >= 1");
              zse::EStepOptions opt;
              opt.seed = seed;
              opt.epoch = epoch;
              opt.evolve = evolve;
              opt.n_sweeps = n_sweeps;
              opt.evo = evo_config(p, n_parents, n_children, n_generations, selection, mutation,
                                   bitflip_prob);
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
          },
          py::arg("Y").noconvert(), py::arg("W").noconvert(), py::arg("pi").noconvert(),
          py::arg("mu").noconvert(), py::arg("Psi").noconvert(), py::arg("sigma2"),
          py::arg("K").noconvert(), py::arg("seed"), py::arg("epoch"), py::arg("evolve"),
          py::arg("n_sweeps"), py::arg("n_parents"), py::arg("n_children"),
          py::arg("n_generations"), py::arg("selection"), py::arg("mutation"),
          py::arg("bitflip_prob"), py::arg("want_stats"), py::arg("want_estimates"),
          py::arg("want_variance"), py::arg("want_lpj"), py::arg("n_threads"),
          py::arg("share") = py::none());

    // --- volumes and streamed estimation (ALGORITHM.md §2.6) ---------------------------------
    m.def("chunk_share_patches",
          [](const std::string& kernel, zse::index_t N, int part, int n_parts) {
              zse::require(kernel == "sssc" || kernel == "mixture", "kernel must be 'sssc' or 'mixture'");
              const zse::FixedChunks chunks = kernel == "sssc" ? zse::sssc_chunks(N) : zse::mixture_chunks(N);
              const zse::ChunkShare own = zse::share_of(chunks, part, n_parts);
              return py::make_tuple(chunks.begin(own.first), chunks.begin(own.last));
          },
          "The patches [begin, end) of part `part`'s chunks of an E-step over N patches",
          py::arg("kernel"), py::arg("N"), py::arg("part"), py::arg("n_parts"));
    m.def("stream_share",
          [](const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape, const Patch3& patch,
             int part, int n_parts) {
              const zse::SliceRange r = zse::slices_of_part(shape_grid(shape, patch), part, n_parts);
              return py::make_tuple(r.first, r.last);
          },
          "The output slices (rows of an image) [first, last) that part `part` finishes",
          py::arg("shape"), py::arg("patch"), py::arg("part"), py::arg("n_parts"));
    m.def("stream_plan",
          [](const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape, const Patch3& patch,
             bool want_variances, int n_threads) {
              const zse::StreamPlan plan = zse::plan_stream(shape_grid(shape, patch), want_variances, n_threads);
              py::dict d;
              d["band_length"] = plan.band_length;
              d["n_bands"] = plan.n_bands;
              d["wave"] = plan.wave;
              d["ring_bytes"] = plan.ring_bytes;
              d["scratch_bytes"] = plan.scratch_bytes;
              return d;
          },
          "Bands, wave and buffer sizes of the streamed estimation (for memory estimates)",
          py::arg("shape"), py::arg("patch"), py::arg("want_variances"), py::arg("n_threads"));
    m.def("gather_patches",
          [](const ArrayF64& volume, const Patch3& patch, const ArrayI64& positions, int n_threads) {
              const zse::VolumeGrid g = volume_grid(volume, patch);
              zse::require(positions.ndim() == 1, "positions must be 1-D");
              const zse::index_t M = positions.shape(0);
              ArrayF64 out({M, g.D()});
              const double* v = volume.data();
              const std::int64_t* pos = positions.data();
              double* o = out.mutable_data();
              {
                  py::gil_scoped_release release;
                  zse::gather_patches(v, g, pos, M, zse::PatchTransform{}, o, n_threads);
              }
              return out;
          },
          "The patches at the given global indices, shape (M, D)", py::arg("volume").noconvert(),
          py::arg("patch"), py::arg("positions").noconvert(), py::arg("n_threads"));
    m.def("merge_volume",
          [](const ArrayF64& estimates, const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
             const Patch3& patch, const std::vector<std::string>& stats,
             const py::object& variances, const std::string& median_kind, int n_threads) {
              const zse::VolumeGrid g = shape_grid(shape, patch);
              zse::require(estimates.ndim() == 2 && estimates.shape(0) == g.n_patches() &&
                               estimates.shape(1) == g.D(),
                           "estimates must have shape (" + std::to_string(g.n_patches()) + ", " +
                               std::to_string(g.D()) + ")");
              ArrayF64 var_storage;
              const double* var = nullptr;
              if (!variances.is_none()) {
                  var_storage = variances.cast<ArrayF64>();
                  require_shape(var_storage, {g.n_patches(), g.D()}, "variances");
                  var = var_storage.data();
              }
              zse::StreamOutputs out;
              py::dict result = stream_outputs(g, stats, median_kind, 0, 1, out);
              zse::require(out.pvar == nullptr || var != nullptr, "pvar needs the variances");
              const double* e = estimates.data();
              const zse::index_t D = g.D();
              const zse::RowEstimator copy_rows = [&](const zse::RowJob& job) {
                  std::copy(e + job.first * D, e + (job.first + job.count) * D, job.estimates);
                  if (job.variances != nullptr)
                      std::copy(var + job.first * D, var + (job.first + job.count) * D, job.variances);
              };
              // The estimator reads its rows from `estimates`; the volume is never read.
              std::vector<double> zeros(static_cast<std::size_t>(g.n_voxels()), 0.0);
              {
                  py::gil_scoped_release release;
                  zse::estimate_and_merge(zeros.data(), g, zse::PatchTransform{}, copy_rows,
                                          zse::EstimateTransform{}, out, n_threads);
              }
              return result;
          },
          "Per-voxel statistics of per-patch estimates of a volume",
          py::arg("estimates").noconvert(), py::arg("shape"), py::arg("patch"), py::arg("stats"),
          py::arg("variances"), py::arg("median_kind"), py::arg("n_threads"));
    m.def("identity_estimate_volume",
          [](const ArrayF64& volume, const Patch3& patch, const std::vector<std::string>& stats,
             const std::string& median_kind, int n_threads, int part, int n_parts) {
              const zse::VolumeGrid g = volume_grid(volume, patch);
              zse::StreamOutputs out;
              py::dict result = stream_outputs(g, stats, median_kind, part, n_parts, out);
              zse::require(out.pvar == nullptr, "the identity model has no predictive variance");
              const zse::index_t D = g.D();
              const zse::RowEstimator identity = [D](const zse::RowJob& job) {
                  std::copy(job.patches, job.patches + job.count * D, job.estimates);
              };
              const double* v = volume.data();
              {
                  py::gil_scoped_release release;
                  zse::estimate_and_merge(v, g, zse::PatchTransform{}, identity,
                                          zse::EstimateTransform{}, out, n_threads);
              }
              return result;
          },
          py::arg("volume").noconvert(), py::arg("patch"), py::arg("stats"),
          py::arg("median_kind"), py::arg("n_threads"), py::arg("part") = 0,
          py::arg("n_parts") = 1);
    m.def("mixture_estimate_volume",
          [](const ArrayF64& volume, const Patch3& patch, const ArrayF64& W, const ArrayF64& log_pi,
             const py::object& alpha, double beta, double offset, double gain,
             const std::vector<std::string>& stats, const std::string& median_kind, int n_threads,
             int part, int n_parts) {
              const zse::VolumeGrid g = volume_grid(volume, patch);
              ArrayF64 alpha_storage;
              zse::require(W.ndim() == 2 && W.shape(1) == g.D(), "W must be (C, D) with D the patch size");
              zse::MixtureParams p;
              p.C = W.shape(0);
              p.D = W.shape(1);
              require_shape(log_pi, {p.C}, "log_pi");
              p.W = W.data();
              p.log_pi = log_pi.data();
              if (!alpha.is_none()) {
                  alpha_storage = alpha.cast<ArrayF64>();
                  require_shape(alpha_storage, {p.C}, "alpha");
                  p.gamma = true;
                  p.alpha = alpha_storage.data();
                  p.beta = beta;
              }
              zse::require(gain > 0.0 && std::isfinite(gain) && std::isfinite(offset),
                           "gain must be finite and > 0, offset finite");
              std::vector<double> offsets(static_cast<std::size_t>(g.D()), offset);
              zse::PatchTransform to_counts;
              to_counts.offset = offsets.data();
              to_counts.multiply = gain;
              zse::EstimateTransform to_grey;
              to_grey.offset = offsets.data();
              to_grey.divide = gain;
              zse::StreamOutputs out;
              py::dict result = stream_outputs(g, stats, median_kind, part, n_parts, out);
              const double* v = volume.data();
              {
                  py::gil_scoped_release release;
                  zse::mixture_estimate_volume(v, g, p, to_counts, to_grey, out, n_threads);
              }
              return result;
          },
          py::arg("volume").noconvert(), py::arg("patch"), py::arg("W").noconvert(),
          py::arg("log_pi").noconvert(), py::arg("alpha"), py::arg("beta"), py::arg("offset"),
          py::arg("gain"), py::arg("stats"), py::arg("median_kind"), py::arg("n_threads"),
          py::arg("part") = 0, py::arg("n_parts") = 1);
    m.def("sssc_estimate_volume",
          [](const ArrayF64& volume, const Patch3& patch, const ArrayF64& W, const ArrayF64& pi,
             const ArrayF64& mu, const ArrayF64& Psi, double sigma2, const ArrayF64& bias,
             double scale, const ArrayU64& train_states, const ArrayI64& train_positions,
             zse::index_t n_states, double p_init, std::uint64_t seed, std::uint64_t fresh_seed,
             zse::index_t n_parents, zse::index_t n_children, zse::index_t n_generations,
             const std::string& selection, const std::string& mutation, double bitflip_prob,
             zse::index_t train_sweeps, bool warm_start, zse::index_t warm_sweeps,
             zse::index_t fresh_sweeps, const std::vector<std::string>& stats,
             const std::string& median_kind, int n_threads, int part, int n_parts) {
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
              zse::require(n_parents >= 1 && n_children >= 1 && n_generations >= 1 &&
                               train_sweeps >= 0 && warm_sweeps >= 0 && fresh_sweeps >= 1,
                           "search settings must be >= 1 (sweeps of warm or trained sets >= 0)");
              zse::SSSCImageOptions opt;
              opt.S = n_states;
              opt.p_init = p_init;
              opt.seed = seed;
              opt.fresh_seed = fresh_seed;
              opt.evo = evo_config(p, n_parents, n_children, n_generations, selection, mutation,
                                   bitflip_prob);
              opt.train_positions = train_positions.data();
              opt.train_states = train_states.data();
              opt.n_train = M;
              opt.train_sweeps = train_sweeps;
              opt.warm_start = warm_start;
              opt.warm_sweeps = warm_sweeps;
              opt.fresh_sweeps = fresh_sweeps;
              zse::PatchTransform to_model;
              to_model.offset = bias.data();
              to_model.divide = scale;
              zse::EstimateTransform to_data;
              to_data.offset = bias.data();
              to_data.multiply = scale;
              zse::StreamOutputs out;
              py::dict result = stream_outputs(g, stats, median_kind, part, n_parts, out);
              const double* v = volume.data();
              {
                  py::gil_scoped_release release;
                  zse::sssc_estimate_volume(v, g, p, to_model, to_data, opt, out, n_threads);
              }
              return result;
          },
          py::arg("volume").noconvert(), py::arg("patch"), py::arg("W").noconvert(),
          py::arg("pi").noconvert(), py::arg("mu").noconvert(), py::arg("Psi").noconvert(),
          py::arg("sigma2"), py::arg("bias").noconvert(), py::arg("scale"),
          py::arg("train_states").noconvert(), py::arg("train_positions").noconvert(),
          py::arg("n_states"), py::arg("p_init"), py::arg("seed"), py::arg("fresh_seed"),
          py::arg("n_parents"), py::arg("n_children"), py::arg("n_generations"),
          py::arg("selection"), py::arg("mutation"), py::arg("bitflip_prob"),
          py::arg("train_sweeps"), py::arg("warm_start"), py::arg("warm_sweeps"),
          py::arg("fresh_sweeps"), py::arg("stats"), py::arg("median_kind"),
          py::arg("n_threads"), py::arg("part") = 0, py::arg("n_parts") = 1);

    m.def("sssc_mstep",
          [](const zse::SSSCStats& stats, zse::index_t N, const ArrayF64& W, const ArrayF64& pi,
             const ArrayF64& mu, const ArrayF64& Psi, double sigma2, bool exact) {
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
          },
          py::arg("stats"), py::arg("N"), py::arg("W").noconvert(), py::arg("pi").noconvert(),
          py::arg("mu").noconvert(), py::arg("Psi").noconvert(), py::arg("sigma2"), py::arg("exact"));

    m.def("sssc_log_joint",
          [](const ArrayF64& Y, const ArrayF64& W, const ArrayF64& pi, const ArrayF64& mu,
             const ArrayF64& Psi, double sigma2, const ArrayU64& states, int n_threads) {
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
          },
          py::arg("Y").noconvert(), py::arg("W").noconvert(), py::arg("pi").noconvert(),
          py::arg("mu").noconvert(), py::arg("Psi").noconvert(), py::arg("sigma2"),
          py::arg("states").noconvert(), py::arg("n_threads"));

    m.def("evo_mutate",
          [](const ArrayU64& parents, zse::index_t H, const std::string& mutation,
             zse::index_t n_children, double bitflip_prob, double crowdedness, std::uint64_t seed) {
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
          },
          py::arg("parents").noconvert(), py::arg("H"), py::arg("mutation"), py::arg("n_children"),
          py::arg("bitflip_prob"), py::arg("crowdedness"), py::arg("seed"));

    m.def("evo_select",
          [](const ArrayF64& lpj, zse::index_t n_parents, const std::string& selection,
             std::uint64_t seed, std::uint64_t item) {
              zse::require(lpj.ndim() == 1, "lpj must be 1-D");
              zse::Rng rng(seed, 0, item);
              std::vector<zse::index_t> parents;
              zse::select_parents(lpj.data(), lpj.shape(0), n_parents, parse_selection(selection), rng, parents);
              py::array_t<std::int64_t> out(static_cast<py::ssize_t>(parents.size()));
              std::copy(parents.begin(), parents.end(), out.mutable_data());
              return out;
          },
          py::arg("lpj").noconvert(), py::arg("n_parents"), py::arg("selection"), py::arg("seed"),
          py::arg("item") = 0);
}

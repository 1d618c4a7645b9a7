// The bindings' shared declarations: array types, conversion helpers, and every function the
// module table in module.cpp exposes. Only cpp/bindings includes pybind11. Each function checks
// shapes, allocates its outputs with the GIL held, then runs the pure-C++ kernel with the GIL
// released; array arguments are `.noconvert()` in the table, so no hidden copy is made.
#pragma once

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
#include "zse/evo.hpp"
#include "zse/merge.hpp"
#include "zse/mixtures.hpp"
#include "zse/patches.hpp"
#include "zse/sssc.hpp"
#include "zse/tiles.hpp"
#include "zse/volume.hpp"

namespace py = pybind11;

namespace zse_py {

using ArrayF64 = py::array_t<double, py::array::c_style>;
using ArrayU64 = py::array_t<std::uint64_t, py::array::c_style>;
using ArrayI64 = py::array_t<std::int64_t, py::array::c_style>;
using Patch3 = std::tuple<zse::index_t, zse::index_t, zse::index_t>;

// -- the option structs, bound once (module.cpp) and taken whole by the entry points -------------

// SSSC's parameters in the kernels' (standardised) units; `bias` and `scale` map a patch of the
// data to those units and an estimate back (the streamed estimate only; ALGORITHM.md §3.10).
// With a stationary noise covariance (ALGORITHM.md §3.14), `W` are the whitened fields, `W_out`
// the fields in the data's coordinates and `whiten` the factor L that whitens a patch (L^-1 u).
struct SSSCModel {
    ArrayF64 W, pi, mu, Psi;
    double sigma2 = 1.0;
    py::object bias = py::none();
    double scale = 1.0;
    py::object W_out = py::none();
    py::object whiten = py::none();
    // Signal-dependent noise (ALGORITHM.md §3.15): (alpha, offset, s2) of the generalized
    // Anscombe transform the patches pass through before `bias`, or None.
    py::object gat = py::none();
};

// A Poisson (alpha None) or Gamma-Poisson mixture's parameters.
struct MixtureModel {
    ArrayF64 W, log_pi;
    py::object alpha = py::none();
    double beta = 1.0;
};

// The evolutionary search's settings (ALGORITHM.md §4.9), as SSSC's parameters name them.
struct SearchOptions {
    zse::index_t n_parents = 10, n_children = 2, n_generations = 1;
    std::string selection = "fit", mutation = "randflip";
    double bitflip_prob = 0.0;
    std::string method = "evolution";  // or "neighbours" (ALGORITHM.md §4.10)
};

// What one SSSC E-step over a patch matrix does and returns.
struct EStepRequest {
    std::uint64_t seed = 0, epoch = 0;
    bool evolve = true;
    zse::index_t n_sweeps = 1;
    bool want_stats = false, want_estimates = false, want_variance = false, want_lpj = false;
};

// Where the streamed SSSC estimate starts each patch's search, and how long it searches
// (ALGORITHM.md §2.6).
struct VolumeSearch {
    zse::index_t n_states = 32;
    double p_init = 0.0;
    std::uint64_t seed = 0, fresh_seed = 1;
    zse::index_t train_sweeps = 1, warm_sweeps = 30, fresh_sweeps = 10, patience = 0;
    // Nonlocal estimation (ALGORITHM.md §3.16): members per group, the search window's
    // half-widths (z, rows, columns) and the group search's rounds.
    zse::index_t group_size = 1;
    std::tuple<zse::index_t, zse::index_t, zse::index_t> group_window{0, 10, 10};
    zse::index_t group_sweeps = 6;
    bool group_disjoint = false;  // members share no pixel with the reference
};

// The outputs of a streamed estimate: statistics, median kind, merge ("auto", "full",
// "compact"), this rank's share of the bands (or an explicit range of output slices), the slab
// of a volume the array holds, and the progress callable (called with the GIL after every wave).
struct StreamRequest {
    std::vector<std::string> stats{"mean", "var"};
    std::string median_kind = "average";
    std::string merge = "auto";
    int part = 0, n_parts = 1;
    zse::index_t slice_begin = 0, slice_end = -1;  // slice_end >= 0: these slices (not a part)
    zse::index_t volume_slices = -1;     // >= 0: the whole volume's slices; the array is a slab
    zse::index_t input_first_slice = 0;  // the slab's first slice
    py::object progress = py::none();
};

template <class T>
ArrayF64 vector_to_array(const std::vector<T>& v) {
    ArrayF64 out(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

// -- helpers (common.cpp) -------------------------------------------------------------------------
zse::PatchGrid make_grid(zse::index_t rows, zse::index_t cols, zse::index_t patch_rows,
                         zse::index_t patch_cols);
void require_shape(const ArrayF64& a, std::initializer_list<zse::index_t> shape, const char* name);
zse::MixtureParams mixture_params(const ArrayF64& Y, const MixtureModel& model,
                                  ArrayF64& alpha_storage);
// The same without patches (the streamed estimate reads them from the volume).
zse::MixtureParams mixture_params(const MixtureModel& model, ArrayF64& alpha_storage);
zse::ChunkShare chunk_share(const zse::FixedChunks& chunks, const py::object& share);
py::dict mixture_stats_dict(const zse::MixtureStats& st, zse::index_t C, zse::index_t D,
                            zse::index_t K);
zse::SSSCParams sssc_params(const SSSCModel& model);
zse::Selection parse_selection(const std::string& s);
zse::Mutation parse_mutation(const std::string& s);
zse::EvoConfig evo_config(const zse::SSSCParams& p, const SearchOptions& search);
ArrayF64 copy_matrix(const std::vector<double>& v, zse::index_t rows, zse::index_t cols);
zse::VolumeGrid volume_grid(const ArrayF64& volume, const Patch3& patch);
// The grid of the whole volume a streamed estimate works on: the array's, or with
// request.volume_slices the whole volume's of which the array is a slab.
zse::VolumeGrid stream_grid(const ArrayF64& volume, const Patch3& patch,
                            const StreamRequest& request);
zse::MergeMode parse_merge(const std::string& s);
// Points `out` at the slab of slices `volume` holds (when request.volume_slices >= 0).
void set_input_slab(const ArrayF64& volume, const StreamRequest& request, zse::StreamOutputs& out);
// The grid and the outputs of a streamed estimate over `volume` (a whole volume or a slab).
py::dict stream_setup(const ArrayF64& volume, const Patch3& patch, const StreamRequest& request,
                      zse::VolumeGrid& g, zse::StreamOutputs& out);
zse::VolumeGrid shape_grid(const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                           const Patch3& patch);
py::dict stream_outputs(const zse::VolumeGrid& g, const StreamRequest& request,
                        zse::StreamOutputs& out);

// -- patches.cpp -------------------------------------------------------------------------------
std::string compiler();
ArrayF64 extract_patches(const ArrayF64& image, zse::index_t patch_rows, zse::index_t patch_cols,
                         int n_threads);
py::dict merge_patches(const ArrayF64& estimates, zse::index_t image_rows, zse::index_t image_cols,
                       zse::index_t patch_rows, zse::index_t patch_cols,
                       const std::vector<std::string>& stats, const py::object& weights,
                       const std::string& median_kind, int n_threads);
// The guide image of a nonlocal estimate: a finite C-contiguous float64 array of the volume's
// shape.
ArrayF64 checked_guide(const py::object& guide, const ArrayF64& volume);
py::array_t<std::int64_t> block_match(const ArrayF64& guide, const Patch3& patch,
                                      const ArrayI64& positions, const Patch3& window,
                                      zse::index_t k, int n_threads, bool disjoint);
ArrayF64 gather_patches(const ArrayF64& volume, const Patch3& patch, const ArrayI64& positions,
                        int n_threads);
py::dict merge_volume(const ArrayF64& estimates,
                      const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                      const Patch3& patch, const std::vector<std::string>& stats,
                      const py::object& variances, const std::string& median_kind, int n_threads);
py::dict identity_estimate_volume(const ArrayF64& volume, const Patch3& patch,
                                  const StreamRequest& stream, int n_threads);
py::dict stream_plan(const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                     const Patch3& patch, bool want_variances, bool want_median,
                     const std::string& merge, int n_threads);
py::tuple chunk_share_patches(const std::string& kernel, zse::index_t N, int part, int n_parts);

// -- mixtures.cpp -------------------------------------------------------------------------------
zse::TotalsIndex index_totals(const ArrayF64& Y);
ArrayF64 sum_log_factorials(const ArrayF64& Y, int n_threads);
py::object mixture_estep(const ArrayF64& Y, const MixtureModel& model,
                         const ArrayF64& log_factorials, const zse::TotalsIndex* totals,
                         bool want_hist, int n_threads, const py::object& share);
py::dict sum_mixture_stats(std::vector<zse::MixtureStats> partials, zse::index_t C, zse::index_t D,
                           zse::index_t K);
py::tuple mixture_estimate(const ArrayF64& Y, const MixtureModel& model, bool want_variance,
                           int n_threads);
ArrayF64 mixture_responsibilities(const ArrayF64& Y, const MixtureModel& model, int n_threads);
py::array_t<std::int64_t> kmeans_plusplus(const ArrayF64& Y, zse::index_t C, std::uint64_t seed,
                                          int n_threads, zse::index_t max_candidates);
py::tuple solve_alpha(const ArrayF64& values, const ArrayF64& weights, const ArrayF64& R,
                      const ArrayF64& T, double alpha_min, double alpha_max);
py::dict mixture_estimate_volume(const ArrayF64& volume, const Patch3& patch,
                                 const MixtureModel& model, double offset, double gain,
                                 const StreamRequest& stream, int n_threads,
                                 zse::index_t group_size, const Patch3& group_window,
                                 bool group_disjoint, const py::object& guide);

// -- sssc.cpp ----------------------------------------------------------------------------------
ArrayU64 sssc_init_states(zse::index_t N, zse::index_t S, zse::index_t H, double p_init,
                          std::uint64_t seed, int n_threads);
py::dict sssc_estep(const ArrayF64& Y, const SSSCModel& model, ArrayU64& K,
                    const SearchOptions& search, const EStepRequest& request, int n_threads,
                    const py::object& share);
zse::SSSCStats sum_sssc_stats(std::vector<zse::SSSCStats> partials, zse::index_t H, zse::index_t D);
py::dict sssc_mstep(const zse::SSSCStats& stats, zse::index_t N, const SSSCModel& model,
                    bool exact);
ArrayF64 sssc_log_joint(const ArrayF64& Y, const SSSCModel& model, const ArrayU64& states,
                        int n_threads);
ArrayF64 sssc_group_log_joint(const ArrayF64& Y, const SSSCModel& model, const ArrayU64& states);
py::dict sssc_estimate_volume(const ArrayF64& volume, const Patch3& patch, const SSSCModel& model,
                              const ArrayU64& train_states, const ArrayI64& train_positions,
                              const SearchOptions& search, const VolumeSearch& plan,
                              const StreamRequest& stream, int n_threads, const py::object& guide,
                              const py::object& evidence, const py::object& evidence_out);
ArrayU64 evo_mutate(const ArrayU64& parents, zse::index_t H, const std::string& mutation,
                    zse::index_t n_children, double bitflip_prob, double crowdedness,
                    std::uint64_t seed);
py::array_t<std::int64_t> evo_select(const ArrayF64& lpj, zse::index_t n_parents,
                                     const std::string& selection, std::uint64_t seed,
                                     std::uint64_t item);

}  // namespace zse_py

// Conversion and checking helpers shared by the binding functions.
#include "bindings.hpp"

namespace zse_py {

zse::PatchGrid make_grid(zse::index_t rows, zse::index_t cols, zse::index_t patch_rows,
                         zse::index_t patch_cols) {
    return zse::PatchGrid(rows, cols, patch_rows, patch_cols);
}

void require_shape(const ArrayF64& a, std::initializer_list<zse::index_t> shape, const char* name) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    std::size_t i = 0;
    for (zse::index_t extent : shape) ok = ok && a.shape(i++) == extent;
    zse::require(ok, std::string(name) + " has the wrong shape");
}

// Checks the arrays that describe a mixture and points a MixtureParams at them (no copies).
zse::MixtureParams mixture_params(const ArrayF64& Y, const MixtureModel& model,
                                  ArrayF64& alpha_storage) {
    zse::require(Y.ndim() == 2, "patches must be 2-D");
    const zse::MixtureParams p = mixture_params(model, alpha_storage);
    zse::require(Y.shape(1) == p.D, "patches and W have different numbers of pixels");
    return p;
}

zse::MixtureParams mixture_params(const MixtureModel& model, ArrayF64& alpha_storage) {
    const ArrayF64& W = model.W;
    const ArrayF64& log_pi = model.log_pi;
    const py::object& alpha = model.alpha;
    const double beta = model.beta;
    zse::require(W.ndim() == 2, "W must be 2-D (C, D)");
    zse::MixtureParams p;
    p.C = W.shape(0);
    p.D = W.shape(1);
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

zse::SSSCParams sssc_params(const SSSCModel& model) {
    const ArrayF64 &W = model.W, &pi = model.pi, &mu = model.mu, &Psi = model.Psi;
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
    p.sigma2 = model.sigma2;
    if (!model.W_out.is_none()) {
        zse::require(py::isinstance<ArrayF64>(model.W_out),
                     "the model's W_out must be a C-contiguous float64 array");
        const auto W_out = model.W_out.cast<ArrayF64>();
        require_shape(W_out, {p.D, p.H}, "W_out");
        p.W_out = W_out.data();
    }
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
zse::EvoConfig evo_config(const zse::SSSCParams& p, const SearchOptions& search) {
    zse::require(search.n_parents >= 1 && search.n_children >= 1 && search.n_generations >= 1,
                 "n_parents, n_children and n_generations must be >= 1");
    zse::EvoConfig evo;
    evo.n_parents = search.n_parents;
    evo.n_children = search.n_children;
    evo.n_generations = search.n_generations;
    evo.selection = parse_selection(search.selection);
    evo.mutation = parse_mutation(search.mutation);
    zse::require(evo.mutation != zse::Mutation::randflip || search.n_children <= p.H,
                 "randflip needs n_children <= H");
    evo.bitflip_prob = search.bitflip_prob;
    if (search.method == "evolution")
        evo.method = zse::StateSearch::evolution;
    else if (search.method == "neighbours")
        evo.method = zse::StateSearch::neighbours;
    else
        throw std::invalid_argument("the search method must be 'evolution' or 'neighbours', got '" +
                                    search.method + "'");
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

// Every volume argument is 3-D (Z, R, Q): Python passes a 2-D image as the view image[None].
zse::VolumeGrid volume_grid(const ArrayF64& volume, const Patch3& patch) {
    zse::require(volume.ndim() == 3, "volume must be 3-D (Z, R, Q)");
    return zse::VolumeGrid(volume.shape(0), volume.shape(1), volume.shape(2), std::get<0>(patch),
                           std::get<1>(patch), std::get<2>(patch));
}

zse::VolumeGrid stream_grid(const ArrayF64& volume, const Patch3& patch,
                            const StreamRequest& request) {
    zse::require(volume.ndim() == 3, "volume must be 3-D (Z, R, Q)");
    if (request.volume_slices < 0) return volume_grid(volume, patch);
    zse::require(request.input_first_slice >= 0 &&
                     request.input_first_slice + volume.shape(0) <= request.volume_slices,
                 "the slab lies outside the volume's slices");
    return zse::VolumeGrid(request.volume_slices, volume.shape(1), volume.shape(2),
                           std::get<0>(patch), std::get<1>(patch), std::get<2>(patch));
}

zse::MergeMode parse_merge(const std::string& s) {
    if (s == "auto") return zse::MergeMode::automatic;
    if (s == "full") return zse::MergeMode::full;
    if (s == "compact") return zse::MergeMode::compact;
    throw std::invalid_argument("merge must be 'auto', 'full' or 'compact', got '" + s + "'");
}

zse::VolumeGrid shape_grid(const std::tuple<zse::index_t, zse::index_t, zse::index_t>& shape,
                           const Patch3& patch) {
    return zse::VolumeGrid(std::get<0>(shape), std::get<1>(shape), std::get<2>(shape),
                           std::get<0>(patch), std::get<1>(patch), std::get<2>(patch));
}

// Allocates the requested output volumes (with the GIL held) and points `out` at them. With
// n_parts > 1 they hold part `part`'s share of the slices only (rows of a 2-D image; MPI ranks).
py::dict stream_outputs(const zse::VolumeGrid& g, const StreamRequest& request,
                        zse::StreamOutputs& out) {
    const std::vector<std::string>& stats = request.stats;
    const std::string& median_kind = request.median_kind;
    const py::object& progress = request.progress;
    if (!progress.is_none()) {
        // Runs with the GIL released around the kernel: take it for the call. An exception of
        // the callable (a cancel) leaves the kernel as error_already_set and reaches Python.
        // The callable outlives the kernel (in an argument of the binding): held by pointer, so
        // no reference count changes without the GIL.
        const py::object* callable = &progress;
        out.on_wave = [callable](zse::index_t done, zse::index_t total) {
            py::gil_scoped_acquire gil;
            (*callable)(done, total);
        };
    }
    zse::require(median_kind == "average" || median_kind == "lower",
                 "median_kind must be 'average' or 'lower', got '" + median_kind + "'");
    out.median_kind = median_kind == "lower" ? zse::MedianKind::lower : zse::MedianKind::average;
    out.merge = parse_merge(request.merge);
    zse::SliceRange range;
    if (request.slice_end >= 0) {
        zse::require(request.n_parts == 1, "give either part/n_parts or a slice range");
        const bool image = g.Z == 1 && g.Pz == 1;
        zse::require(0 <= request.slice_begin && request.slice_begin <= request.slice_end &&
                         request.slice_end <= (image ? g.R : g.Z),
                     "the slice range lies outside the image");
        range.first = request.slice_begin;
        range.last = request.slice_end;
    } else {
        range = zse::slices_of_part(g, request.part, request.n_parts);
    }
    out.slice_begin = range.first;
    out.slice_end = range.last;

    const bool image = g.Z == 1 && g.Pz == 1;  // slices are rows
    const zse::index_t n = range.last - range.first;
    py::dict result;
    for (const std::string& name : stats) {
        ArrayF64 volume = image ? ArrayF64({zse::index_t{1}, n, g.Q}) : ArrayF64({n, g.R, g.Q});
        double* ptr = volume.mutable_data();
        if (name == "mean")
            out.mean = ptr;
        else if (name == "var")
            out.var = ptr;
        else if (name == "pvar")
            out.pvar = ptr;
        else if (name == "median")
            out.median = ptr;
        else if (name == "count")
            out.count = ptr;
        else
            throw std::invalid_argument("unknown stat '" + name + "'");
        result[py::str(name)] = volume;
    }
    return result;
}

}  // namespace zse_py

namespace zse_py {

void set_input_slab(const ArrayF64& volume, const StreamRequest& request, zse::StreamOutputs& out) {
    if (request.volume_slices >= 0) {
        out.input_first_slice = request.input_first_slice;
        out.input_slices = volume.shape(0);
    }
}

py::dict stream_setup(const ArrayF64& volume, const Patch3& patch, const StreamRequest& request,
                      zse::VolumeGrid& g, zse::StreamOutputs& out) {
    g = stream_grid(volume, patch, request);
    py::dict result = stream_outputs(g, request, out);
    set_input_slab(volume, request, out);
    return result;
}

}  // namespace zse_py

// Estimating every patch of an image with SSSC while streaming over it: training state sets,
// warm-start chains along the bands, fresh states at a band's start (ALGORITHM.md §2.6).
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "detail.hpp"
#include "group.hpp"
#include "zse/tiles.hpp"

namespace zse {

using namespace sssc_detail;

namespace {

double log_sum_exp(const std::vector<double>& values) {
    double top = kMinusInf;
    for (double v : values) top = std::max(top, v);
    if (top == kMinusInf) return kMinusInf;
    double sum = 0.0;
    for (double v : values) sum += std::exp(v - top);
    return top + std::log(sum);
}

// The estimate (and posterior variance) under two hypotheses, the first with probability rho:
// `own` becomes rho * shared + (1 - rho) * own, the variance that of the mixture.
void mix_estimates(double rho, const double* shared, const double* shared_var, double* own,
                   double* own_var, index_t D) {
    if (rho == 0.0) return;
    for (index_t d = 0; d < D; ++d) {
        const double mean = rho * shared[d] + (1.0 - rho) * own[d];
        if (own_var != nullptr) {
            const double second = rho * (shared_var[d] + shared[d] * shared[d]) +
                                  (1.0 - rho) * (own_var[d] + own[d] * own[d]);
            own_var[d] = std::max(0.0, second - mean * mean);
        }
        own[d] = mean;
    }
}

}  // namespace

void sssc_estimate_volume(const double* volume, const VolumeGrid& grid, const SSSCParams& params,
                          const PatchTransform& to_model, const EstimateTransform& to_data,
                          const SSSCImageOptions& opt, const StreamOutputs& out, int n_threads) {
    require(grid.D() == params.D, "the patch size does not match the model's D");
    check_state_settings(opt.S, params.H, opt.p_init);
    for (index_t m = 1; m < opt.n_train; ++m)
        require(opt.train_positions[m - 1] < opt.train_positions[m],
                "training positions must be sorted and distinct");
    EStepOptions eo;
    eo.seed = opt.seed;
    eo.epoch = 1000000000;  // the estimation stream, as in SSSC.estimate
    eo.evolve = true;
    eo.evo = opt.evo;
    eo.want_stats = false;
    eo.want_variance = out.pvar != nullptr;  // the driver asks for variances exactly then
    const EStepRunner runner(params, opt.S, eo);
    const index_t words = state_words(params.H), S = opt.S, D = params.D;
    const std::size_t set_size = static_cast<std::size_t>(S * words);
    // Learned sets larger than the estimation's: a training patch's learned states are scored
    // with the given parameters and the S best kept (ALGORITHM.md §2.6, §4.11).
    const index_t train_S = opt.train_S > 0 ? opt.train_S : S;
    require(train_S >= S, "the learned state sets must hold at least the estimation's S states");
    std::unique_ptr<EStepRunner> ranker;
    if (train_S > S) ranker = std::make_unique<EStepRunner>(params, train_S, eo);
    const std::size_t train_set_size = static_cast<std::size_t>(train_S * words);
    const index_t K = opt.group_size;
    require(K >= 1 && opt.group_sweeps >= 0, "group_size must be >= 1 and group_sweeps >= 0");
    const bool grouped = K > 1;
    if (grouped) {
        require(opt.guide != nullptr && opt.evidence != nullptr,
                "a nonlocal estimate needs a guide image and the first pass's evidences");
        // Members are read anywhere in their window: the whole input must be at hand.
        require(out.input_first_slice == 0 && out.input_slices < 0,
                "a nonlocal estimate needs the whole image, not a slab of it");
    }

    // log p(Y, shared) - sum_i log p(y_i) = group evidence - sum_i evidence_i - (K - 1) L1:
    // the constants each member's log-joint carries once, the group's prior sum log(1 - pi)
    // once (ALGORITHM.md §3.16).
    double log_one_minus_pi = 0.0;
    for (index_t h = 0; h < params.H; ++h) log_one_minus_pi += std::log1p(-params.pi[h]);
    // Per band (one slot at a time): the state cache, the workspace and the warm-start chain.
    struct Slot {
        std::unique_ptr<StateCache> cache;
        std::unique_ptr<Workspace> ws;
        std::vector<std::uint64_t> current, row_start, learned;
        std::vector<double> learned_lpj;
        std::vector<index_t> learned_order;
        // Nonlocal estimation: its own cache (the chain's stays as without groups), the
        // group's members and their patches.
        std::unique_ptr<StateCache> group_cache;
        GroupWorkspace group;
        MatchScratch match;
        std::vector<index_t> members;
        std::vector<double> member_patches, group_estimate, group_variance, final_lpj;
        bool has_prev = false, has_row_start = false;
        index_t cursor = 0;  // next training position >= the current patch
    };
    std::vector<Slot> slots(static_cast<std::size_t>(std::max(1, n_threads)));
    const std::int64_t* pos_begin = opt.train_positions;
    const std::int64_t* pos_end = opt.train_positions + opt.n_train;

    // The S best of a learned set (lpj with the given parameters, ties to the earlier state)
    // into `current`, in that order.
    auto keep_best_learned = [&](const std::uint64_t* learned, const PatchJob& pj, Slot& sl,
                                 SSSCStats& counters) {
        sl.learned.assign(learned, learned + train_set_size);
        sl.learned_lpj.resize(static_cast<std::size_t>(train_S));
        PatchJob scoring;
        scoring.stream = pj.stream;
        scoring.y = pj.y;
        scoring.Kn = sl.learned.data();
        scoring.n_sweeps = 0;
        scoring.lpj = sl.learned_lpj.data();
        ranker->run_patch(scoring, *sl.cache, *sl.ws, counters);
        sl.learned_order.resize(static_cast<std::size_t>(train_S));
        std::iota(sl.learned_order.begin(), sl.learned_order.end(), index_t{0});
        const double* lpj = sl.learned_lpj.data();
        std::stable_sort(sl.learned_order.begin(), sl.learned_order.end(),
                         [lpj](index_t a, index_t b) { return lpj[a] > lpj[b]; });
        for (index_t s = 0; s < S; ++s) {
            const std::uint64_t* state = sl.learned.data() + sl.learned_order[s] * words;
            std::copy(state, state + words, sl.current.begin() + s * words);
        }
    };

    RowEstimator estimator = [&](const RowJob& job) {
        Slot& sl = slots[static_cast<std::size_t>(job.slot)];
        if (!sl.cache) {
            sl.cache = std::make_unique<StateCache>(runner.derived(), words, std::size_t{1} << 12);
            sl.ws = std::make_unique<Workspace>();
            sl.current.resize(set_size);
            sl.row_start.resize(set_size);
            if (grouped) {
                sl.group_cache =
                    std::make_unique<StateCache>(runner.derived(), words, std::size_t{1} << 12);
                sl.members.resize(static_cast<std::size_t>(K));
                sl.member_patches.resize(static_cast<std::size_t>(K * D));
                sl.group_estimate.resize(static_cast<std::size_t>(D));
                sl.group_variance.resize(static_cast<std::size_t>(D));
            }
        }
        if (job.band_start) {
            // Terms kept along the previous band's chains must not reach this band's patches.
            sl.cache->clear_shared();
            sl.has_prev = sl.has_row_start = false;
            sl.cursor = std::lower_bound(pos_begin, pos_end, job.first) - pos_begin;
        }
        SSSCStats counters;
        for (index_t t = 0; t < job.count; ++t) {
            const index_t n = job.first + t;
            while (sl.cursor < opt.n_train && pos_begin[sl.cursor] < n) ++sl.cursor;
            PatchJob pj;
            pj.stream = static_cast<std::uint64_t>(n);
            pj.y = job.patches + t * D;
            pj.Kn = sl.current.data();
            pj.estimates = job.estimates + t * D;
            pj.variance = job.variances != nullptr ? job.variances + t * D : nullptr;
            if (sl.cursor < opt.n_train && pos_begin[sl.cursor] == n) {
                const std::uint64_t* learned =
                    opt.train_states + static_cast<std::size_t>(sl.cursor) * train_set_size;
                if (ranker) {
                    keep_best_learned(learned, pj, sl, counters);
                } else {
                    std::copy(learned, learned + set_size, sl.current.begin());
                }
                pj.n_sweeps = opt.train_sweeps;
            } else if (t > 0 && sl.has_prev) {
                pj.n_sweeps = opt.warm_sweeps;  // `current` still holds the left neighbour's set
            } else if (t == 0 && sl.has_row_start) {
                std::copy(sl.row_start.begin(), sl.row_start.end(), sl.current.begin());
                pj.n_sweeps = opt.warm_sweeps;
            } else {
                init_patch_states(sl.current.data(), pj.stream, S, params.H, opt.p_init,
                                  opt.fresh_seed);
                pj.n_sweeps = opt.fresh_sweeps;
            }
            pj.patience = opt.patience;
            pj.keep_terms = true;  // for the next patch of the chain (ALGORITHM.md §3.12)
            const bool want_evidence = grouped || opt.evidence_out != nullptr;
            if (want_evidence) {
                sl.final_lpj.resize(static_cast<std::size_t>(S));
                pj.lpj = sl.final_lpj.data();
            }
            runner.run_patch(pj, *sl.cache, *sl.ws, counters);
            if (opt.evidence_out != nullptr) opt.evidence_out[n] = log_sum_exp(sl.final_lpj);
            if (grouped) {
                // The group's estimate (ALGORITHM.md §3.16), its search starting from the
                // states the patch's own search left in `current`.
                const index_t found =
                    match_patch(opt.guide, grid, n, opt.window, K, sl.match, sl.members.data());
                std::copy(pj.y, pj.y + D, sl.member_patches.begin());
                for (index_t i = 1; i < found; ++i)
                    read_patch(volume, grid, sl.members[i], to_model,
                               sl.member_patches.data() + i * D);
                load_group(runner.derived(), sl.member_patches.data(), found, sl.group);
                double* group_var = pj.variance != nullptr ? sl.group_variance.data() : nullptr;
                const double shared =
                    group_estimate(runner.derived(), *sl.group_cache, sl.group, sl.current.data(),
                                   S, opt.group_sweeps, sl.group_estimate.data(), group_var);
                // The posterior probability that the group shares its spike (prior odds 1:1)
                // against its members being unrelated patches, each with its own evidence.
                double log_odds = shared - static_cast<double>(found - 1) * log_one_minus_pi;
                for (index_t i = 0; i < found; ++i) log_odds -= opt.evidence[sl.members[i]];
                if (std::isnan(log_odds)) log_odds = kMinusInf;  // no valid state either way
                const double rho = found > 1 ? 1.0 / (1.0 + std::exp(-log_odds)) : 0.0;
                mix_estimates(rho, sl.group_estimate.data(), group_var, pj.estimates, pj.variance,
                              D);
            }
            sl.has_prev = true;
            if (t == 0) {
                std::copy(sl.current.begin(), sl.current.end(), sl.row_start.begin());
                sl.has_row_start = true;
            }
        }
    };
    estimate_and_merge(volume, grid, to_model, estimator, to_data, out, n_threads);
}

}  // namespace zse

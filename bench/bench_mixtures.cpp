// Benchmark of the Poisson-mixture kernels (PMM / GPMM E-step with statistics, estimates).
//
//   bench_mixtures [--size 1024] [--patch 6] [--C 256] [--dose 10] [--threads 1,2] [--reps 2]
//                  [--gamma 0] [--smoke 1]
//
// The image is a synthetic count image (random Gaussian blobs of varying brightness on a
// background, Poisson-sampled at `dose` electrons per pixel), so the posteriors are as peaked as
// on real low-dose micrographs rather than uniform. Reports seconds per EM epoch (the E-step with
// all statistics; the M-step is O(C D)) and the effective rate of the N x C x D log-joint product.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bench_common.hpp"
#include "zse/mixtures.hpp"
#include "zse/patches.hpp"

int main(int argc, char** argv) {
    const bench::Args args(argc, argv);
    const bool smoke = args.get("smoke", 0) != 0;
    const zse::index_t size = args.get("size", smoke ? 96 : 1024), patch = args.get("patch", 6);
    const zse::index_t C = args.get("C", smoke ? 16 : 256);
    const double dose = static_cast<double>(args.get("dose", 10));
    const bool gamma = args.get("gamma", 0) != 0;
    const int reps = static_cast<int>(args.get("reps", smoke ? 1 : 2));
    const std::vector<int> thread_counts = args.get_list("threads", "1,2");

    std::mt19937_64 rng(0);
    std::vector<double> image(static_cast<std::size_t>(size * size), 0.3);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    const int n_blobs = static_cast<int>(size * size / 60);
    for (int b = 0; b < n_blobs; ++b) {
        const double cy = uni(rng) * size, cx = uni(rng) * size, s = 1.0 + 3.0 * uni(rng);
        const double amp = uni(rng) - 0.3;
        for (zse::index_t y = std::max<zse::index_t>(0, cy - 4 * s);
             y < std::min<zse::index_t>(size, cy + 4 * s); ++y)
            for (zse::index_t x = std::max<zse::index_t>(0, cx - 4 * s);
                 x < std::min<zse::index_t>(size, cx + 4 * s); ++x)
                image[y * size + x] +=
                    amp * std::exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / (2 * s * s));
    }
    for (double& v : image) {
        std::poisson_distribution<int> poisson(dose * std::max(0.02, v));
        v = poisson(rng);
    }
    const zse::PatchGrid grid(size, size, patch, patch);
    const zse::index_t N = grid.n_patches(), D = grid.patch_size();
    std::vector<double> Y(static_cast<std::size_t>(N * D));
    zse::extract_patches(image.data(), grid, Y.data(), 2);
    std::vector<double> log_fact(N);
    zse::sum_log_factorials(Y.data(), N, D, log_fact.data(), 2);

    const std::vector<zse::index_t> seeds =
        zse::kmeans_plusplus(Y.data(), N, D, C, 0, 2, std::max<zse::index_t>(64 * C, 65536));
    std::vector<double> W(static_cast<std::size_t>(C * D)), log_pi(C, -std::log(double(C))),
        alpha(C, 20.0);
    for (zse::index_t c = 0; c < C; ++c)
        for (zse::index_t d = 0; d < D; ++d)
            W[c * D + d] = std::max(Y[seeds[c] * D + d], 1e-10 * dose) / (gamma ? 20.0 : 1.0);
    zse::MixtureParams params;
    params.C = C;
    params.D = D;
    params.W = W.data();
    params.log_pi = log_pi.data();
    params.gamma = gamma;
    params.alpha = alpha.data();

    const double macs = static_cast<double>(N) * C * D;
    std::printf(
        "# bench_mixtures: %s, %lldx%lld image, %lldx%lld patches, N=%lld, D=%lld, C=%lld, "
        "dose %.0f, OpenMP %s, reps %d\n",
        gamma ? "GPMM" : "PMM", (long long)size, (long long)size, (long long)patch,
        (long long)patch, (long long)N, (long long)D, (long long)C, dose,
        zse::has_openmp() ? "on" : "off", reps);
    std::printf("%-20s %8s %12s %16s\n", "kernel", "threads", "seconds", "G(N*C*D)/s");
    std::vector<double> est(static_cast<std::size_t>(N * D));
    for (int threads : thread_counts) {
        const double t_kpp = bench::best_seconds(1, [&] {
            zse::kmeans_plusplus(Y.data(), N, D, C, 0, threads,
                                 std::max<zse::index_t>(64 * C, 65536));
        });
        std::printf("%-20s %8d %12.4f %16.2f\n", "kmeans++ init", threads, t_kpp,
                    macs / t_kpp / 1e9);
        const double t_epoch = bench::best_seconds(reps, [&] {
            zse::mixture_estep(Y.data(), N, params, log_fact.data(), nullptr, false, threads);
        });
        std::printf("%-20s %8d %12.4f %16.2f\n", "epoch (E-step+stats)", threads, t_epoch,
                    macs / t_epoch / 1e9);
        const double t_est = bench::best_seconds(reps, [&] {
            zse::mixture_estimate(Y.data(), N, params, est.data(), nullptr, threads);
        });
        std::printf("%-20s %8d %12.4f %16.2f\n", "estimate", threads, t_est, macs / t_est / 1e9);
    }
    return 0;
}

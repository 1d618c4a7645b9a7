// Benchmark of patch extraction and overlap merging.
//
//   bench_patches [--size 2048] [--patch 8] [--threads 1,2] [--reps 3] [--smoke 1]
//
// Reports patches/s and effective bandwidth (bytes of the N x D patch array moved per second),
// next to the streaming read bandwidth of an array of the same size measured in the same run.
#include <cstdio>
#include <random>
#include <vector>

#include "bench_common.hpp"
#include "zse/merge.hpp"
#include "zse/patches.hpp"

int main(int argc, char** argv) {
    const bench::Args args(argc, argv);
    const bool smoke = args.get("smoke", 0) != 0;  // seconds-long CI run
    const zse::index_t size = args.get("size", smoke ? 256 : 2048), patch = args.get("patch", 8);
    const int reps = static_cast<int>(args.get("reps", smoke ? 1 : 3));
    const std::vector<int> thread_counts = args.get_list("threads", "1,2");

    const zse::PatchGrid grid(size, size, patch, patch);
    const zse::index_t N = grid.n_patches(), D = grid.patch_size();
    const double bytes = static_cast<double>(N) * D * sizeof(double);
    std::printf(
        "# bench_patches: %lldx%lld image, %lldx%lld patches, N=%lld, D=%lld, "
        "patch array %.2f GB, OpenMP %s, reps %d\n",
        (long long)size, (long long)size, (long long)patch, (long long)patch, (long long)N,
        (long long)D, bytes / 1e9, zse::has_openmp() ? "on" : "off", reps);

    std::vector<double> image(grid.n_pixels());
    std::mt19937_64 rng(0);
    std::normal_distribution<double> normal(100.0, 25.0);
    for (double& x : image) x = normal(rng);
    std::vector<double> patches(static_cast<std::size_t>(N * D));
    std::vector<double> mean(grid.n_pixels()), var(grid.n_pixels()), median(grid.n_pixels());

    std::printf("%-22s %8s %12s %14s %12s %10s\n", "kernel", "threads", "seconds", "Mpatches/s",
                "GB/s", "of_stream");
    for (int threads : thread_counts) {
        const double stream = bench::read_bandwidth(patches, threads, reps);
        std::printf("%-22s %8d %12s %14s %12.2f %10s\n", "stream_read", threads, "-", "-",
                    stream / 1e9, "1.00");
        const double t_extract = bench::best_seconds(
            reps, [&] { zse::extract_patches(image.data(), grid, patches.data(), threads); });
        std::printf("%-22s %8d %12.4f %14.2f %12.2f %10.2f\n", "extract", threads, t_extract,
                    N / t_extract / 1e6, bytes / t_extract / 1e9, bytes / t_extract / stream);

        zse::MergeOutputs moments;
        moments.mean = mean.data();
        moments.var = var.data();
        const double t_merge = bench::best_seconds(reps, [&] {
            zse::merge_patches(patches.data(), grid, nullptr, moments, zse::MedianKind::average,
                               threads);
        });
        std::printf("%-22s %8d %12.4f %14.2f %12.2f %10.2f\n", "merge_mean_var", threads, t_merge,
                    N / t_merge / 1e6, bytes / t_merge / 1e9, bytes / t_merge / stream);

        zse::MergeOutputs med;
        med.median = median.data();
        const double t_median = bench::best_seconds(reps, [&] {
            zse::merge_patches(patches.data(), grid, nullptr, med, zse::MedianKind::average,
                               threads);
        });
        std::printf("%-22s %8d %12.4f %14.2f %12.2f %10.2f\n", "merge_median", threads, t_median,
                    N / t_median / 1e6, bytes / t_median / 1e9, bytes / t_median / stream);
    }
    return 0;
}

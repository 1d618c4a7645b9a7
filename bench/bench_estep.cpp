// Benchmark of the SSSC evolutionary E-step (ES3C) and M-step.
//
//   bench_estep --setting a|b [--threads 1,2] [--epochs 3] [--warmup 3] [--size n]
//               [--image FILE --rows R --cols Q]
//   bench_estep --smoke 1
//
// Settings (issue 3):
//   a: the published demo: house rescaled by 0.4 (102 x 102), 5x5 patches, H=32, S=20, 10 parents,
//      1 child, 1 generation, randflip, fit selection. Pass the image as raw little-endian float64
//      (bench/export_raw.py writes it); without --image a synthetic image of that size is used.
//   b: a full-resolution TEM-sized job: 1024 x 1024, 6x6 patches, H=64, S=32 (10 parents, 2
//      children, 1 generation), synthetic image.
// The synthetic image is a smooth random scene in [0, 255] plus white Gaussian noise (sigma 25).
// Parameters are initialised as in tvlearn/evo and trained for --warmup epochs before timing, so
// the states are as sparse as in a real run. Reports seconds per epoch (E-step with statistics,
// and M-step), patches/s, log-pseudo-joint evaluations/s, and the E-step's flop rate against a
// measured FMA peak of this machine (flop model in bench/README.md).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "zse/evo.hpp"
#include "zse/patches.hpp"
#include "zse/simd.hpp"
#include "zse/sssc.hpp"

namespace {

// Peak double-precision rate: 12 independent vector FMA chains (x86-64-v3 clone where available).
ZSE_HOT_CLONES double fma_kernel(long iterations) {
    using zse::simd::v4d;
    v4d acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = zse::simd::broadcast(1.0 + i * 1e-3);
    const v4d a = zse::simd::broadcast(0.999999), b = zse::simd::broadcast(1e-7);
    for (long it = 0; it < iterations; ++it)
        for (int i = 0; i < 12; ++i) acc[i] = acc[i] * a + b;
    double s = 0;
    for (int i = 0; i < 12; ++i) s += zse::simd::sum(acc[i]);
    return s;
}

double measure_peak_gflops(int threads) {
    const long iterations = 20000000;
    volatile double sink = 0;
    const double t = bench::best_seconds(2, [&] {
        double s = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) reduction(+ : s)
#endif
        for (int k = 0; k < threads; ++k) s += fma_kernel(iterations);
        sink = sink + s;
    });
    return 12.0 * 4 * 2 * iterations * threads / t / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    const bench::Args args(argc, argv);
    const bool smoke = args.get("smoke", 0) != 0;
    const char setting = smoke ? 's' : static_cast<char>(args.get("setting_b", 0) ? 'b' : 'a');
    std::string setting_name = "a";
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "--setting") setting_name = argv[i + 1];
    const bool b = setting_name == "b" && !smoke;
    (void)setting;
    zse::index_t rows = args.get("size", b ? 1024 : (smoke ? 40 : 102)), cols = rows;
    const zse::index_t patch = b ? 6 : 5, H = b ? 64 : (smoke ? 8 : 32),
                       S = b ? 32 : (smoke ? 8 : 20);
    zse::EvoConfig evo;
    evo.n_parents = b ? 10 : (smoke ? 4 : 10);
    evo.n_children = b ? 2 : 1;
    evo.n_generations = 1;
    const int epochs = static_cast<int>(args.get("epochs", smoke ? 1 : 3));
    const int warmup = static_cast<int>(args.get("warmup", smoke ? 1 : 3));
    const std::vector<int> thread_counts = args.get_list("threads", "1,2");

    std::vector<double> image;
    std::string image_name = "synthetic";
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::string(argv[i]) == "--image") image_name = argv[i + 1];
    }
    if (image_name != "synthetic") {
        rows = args.get("rows", 0);
        cols = args.get("cols", 0);
        image.resize(static_cast<std::size_t>(rows * cols));
        std::ifstream in(image_name, std::ios::binary);
        in.read(reinterpret_cast<char*>(image.data()),
                static_cast<std::streamsize>(image.size() * sizeof(double)));
        if (!in) {
            std::fprintf(stderr, "could not read %lld x %lld doubles from %s\n", (long long)rows,
                         (long long)cols, image_name.c_str());
            return 2;
        }
    } else {
        std::mt19937_64 rng(0);
        std::uniform_real_distribution<double> uni(0.0, 1.0);
        std::normal_distribution<double> noise(0.0, 25.0);
        image.assign(static_cast<std::size_t>(rows * cols), 120.0);
        const int n_blobs = static_cast<int>(rows * cols / 40);
        for (int k = 0; k < n_blobs; ++k) {
            const double cy = uni(rng) * rows, cx = uni(rng) * cols, s = 1.5 + 6 * uni(rng),
                         amp = 160 * (uni(rng) - 0.5);
            for (zse::index_t y = std::max<zse::index_t>(0, cy - 3 * s);
                 y < std::min<zse::index_t>(rows, cy + 3 * s); ++y)
                for (zse::index_t x = std::max<zse::index_t>(0, cx - 3 * s);
                     x < std::min<zse::index_t>(cols, cx + 3 * s); ++x)
                    image[y * cols + x] +=
                        amp * std::exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / (2 * s * s));
        }
        for (double& v : image) v = std::min(255.0, std::max(0.0, v)) + noise(rng);
    }
    const zse::PatchGrid grid(rows, cols, patch, patch);
    const zse::index_t N = grid.n_patches(), D = grid.patch_size();
    std::vector<double> Y(static_cast<std::size_t>(N * D));
    zse::extract_patches(image.data(), grid, Y.data(), 2);

    // tvlearn/evo standard initialisation.
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> pi_dist(0.1, 0.5);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> mean(D, 0.0), var(D, 0.0);
    for (zse::index_t n = 0; n < N; ++n)
        for (zse::index_t d = 0; d < D; ++d) mean[d] += Y[n * D + d] / N;
    for (zse::index_t n = 0; n < N; ++n)
        for (zse::index_t d = 0; d < D; ++d)
            var[d] += (Y[n * D + d] - mean[d]) * (Y[n * D + d] - mean[d]) / (N - 1);
    double sigma2 = 0.001;
    for (double v : var) sigma2 += v / D;
    std::vector<double> W0(static_cast<std::size_t>(D * H)), pi0(H), mu0(H),
        Psi0(static_cast<std::size_t>(H * H), 0.0);
    for (zse::index_t h = 0; h < H; ++h) {
        pi0[h] = pi_dist(rng);
        mu0[h] = normal(rng);
        Psi0[h * H + h] = 1.0;
    }
    for (zse::index_t d = 0; d < D; ++d)
        for (zse::index_t h = 0; h < H; ++h)
            W0[d * H + h] = mean[d] + std::sqrt(sigma2) / 4 * normal(rng);

    std::printf(
        "# bench_estep setting %s: %s %lldx%lld, %lldx%lld patches, N=%lld, D=%lld, H=%lld, "
        "S=%lld, "
        "%lld parents, %lld children, 1 generation, randflip, fit; OpenMP %s\n",
        smoke ? "smoke" : setting_name.c_str(), image_name.c_str(), (long long)rows,
        (long long)cols, (long long)patch, (long long)patch, (long long)N, (long long)D,
        (long long)H, (long long)S, (long long)evo.n_parents, (long long)evo.n_children,
        zse::has_openmp() ? "on" : "off");
    std::printf("%-8s %10s %10s %12s %14s %10s %8s %12s %10s %10s\n", "threads", "s/epoch",
                "E-step s", "M-step s", "patches/s", "Mlpj/s", "mean k", "E GFLOP/s", "peak",
                "of_peak");
    for (int threads : thread_counts) {
        std::vector<double> W = W0, pi = pi0, mu = mu0, Psi = Psi0;
        double s2 = sigma2;
        std::vector<std::uint64_t> K(static_cast<std::size_t>(N * S * zse::state_words(H)));
        zse::init_states(K.data(), N, S, H, 1.0 / H, 7, threads);
        double e_time = 0, m_time = 0, flops = 0, mean_k = 0;
        std::int64_t n_lpj = 0;
        for (int epoch = 1; epoch <= warmup + epochs; ++epoch) {
            zse::SSSCParams p;
            p.H = H;
            p.D = D;
            p.W = W.data();
            p.pi = pi.data();
            p.mu = mu.data();
            p.Psi = Psi.data();
            p.sigma2 = s2;
            zse::EStepOptions opt;
            opt.seed = 7;
            opt.epoch = static_cast<std::uint64_t>(epoch);
            opt.evo = evo;
            double crowd = 0;
            for (double x : pi) crowd += x;
            opt.evo.crowdedness = crowd;
            const auto t0 = std::chrono::steady_clock::now();
            zse::SSSCStats st = zse::sssc_estep(Y.data(), N, p, K.data(), S, opt, threads);
            const auto t1 = std::chrono::steady_clock::now();
            zse::SSSCUpdate u = zse::sssc_mstep(st, N, p, true);
            const auto t2 = std::chrono::steady_clock::now();
            if (epoch > warmup) {
                e_time += std::chrono::duration<double>(t1 - t0).count();
                m_time += std::chrono::duration<double>(t2 - t1).count();
                n_lpj += st.n_lpj;
                // Flop model: W^T y (2DH) per patch; per lpj (k^2 + 6k) at the mean k of the
                // kept states; per kept state the moments (2k^2 + 4k); per patch the statistics
                // over the support u ~ min(H, 3k) (2Du + 4u^2).
                double k_sum = 0;
                for (zse::index_t i = 0; i < N * S; ++i)
                    k_sum +=
                        zse::count_active(K.data() + i * zse::state_words(H), zse::state_words(H));
                const double k = k_sum / (N * S), supp = std::min<double>(H, 3 * k);
                mean_k = k;
                flops += N * 2.0 * D * H + st.n_lpj * (k * k + 6 * k) +
                         N * S * (2 * k * k + 4 * k) + N * (2.0 * D * supp + 4 * supp * supp);
            }
            W = u.W;
            pi = u.pi;
            mu = u.mu;
            Psi = u.Psi;
            s2 = u.sigma2;
        }
        const double peak = measure_peak_gflops(threads);
        const double per_epoch = (e_time + m_time) / epochs;
        std::printf("%-8d %10.4f %10.4f %12.4f %14.0f %10.2f %8.2f %12.2f %10.1f %10.3f\n", threads,
                    per_epoch, e_time / epochs, m_time / epochs, N / (e_time / epochs),
                    n_lpj / e_time / 1e6, mean_k, flops / e_time / 1e9, peak,
                    flops / e_time / 1e9 / peak);
    }
    return 0;
}

// Block matching (ALGORITHM.md §2.7) against a plain sort of every candidate: 2-D and 3-D
// windows, disjoint members, ties, windows with fewer patches than asked for.
#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "check.hpp"
#include "zse/block_match.hpp"

namespace {

using zse::index_t;

std::vector<index_t> plain(const std::vector<double>& guide, const zse::VolumeGrid& g, index_t n,
                           const zse::MatchWindow& w, index_t k) {
    const index_t Rc = g.Rc(), Qc = g.Qc();
    const index_t z0 = n / (Rc * Qc), r0 = (n / Qc) % Rc, c0 = n % Qc;
    std::vector<std::pair<double, index_t>> found;
    for (index_t z = 0; z < g.Zc(); ++z)
        for (index_t r = 0; r < Rc; ++r)
            for (index_t c = 0; c < Qc; ++c) {
                const index_t m = (z * Rc + r) * Qc + c;
                if (m == n || std::abs(z - z0) > w.z || std::abs(r - r0) > w.r ||
                    std::abs(c - c0) > w.c)
                    continue;
                if (w.disjoint && std::abs(z - z0) < g.Pz && std::abs(r - r0) < g.Ph &&
                    std::abs(c - c0) < g.Pw)
                    continue;
                double d = 0.0;
                for (index_t i = 0; i < g.Pz; ++i)
                    for (index_t j = 0; j < g.Ph; ++j)
                        for (index_t l = 0; l < g.Pw; ++l) {
                            const double e = guide[((z + i) * g.R + r + j) * g.Q + c + l] -
                                             guide[((z0 + i) * g.R + r0 + j) * g.Q + c0 + l];
                            d += e * e;
                        }
                found.emplace_back(d, m);
            }
    std::sort(found.begin(), found.end());
    std::vector<index_t> members{n};
    for (std::size_t i = 0; i < found.size() && static_cast<index_t>(members.size()) < k; ++i)
        members.push_back(found[i].second);
    return members;
}

void compare(const std::vector<double>& guide, const zse::VolumeGrid& g, const zse::MatchWindow& w,
             index_t k) {
    zse::MatchScratch scratch;
    std::vector<index_t> members(static_cast<std::size_t>(k));
    for (index_t n = 0; n < g.n_patches(); ++n) {
        const index_t got = zse::match_patch(guide.data(), g, n, w, k, scratch, members.data());
        const std::vector<index_t> expected = plain(guide, g, n, w, k);
        CHECK(got == static_cast<index_t>(expected.size()));
        for (index_t i = 0; i < std::min<index_t>(got, k); ++i) CHECK(members[i] == expected[i]);
    }
}

}  // namespace

int main() {
    std::srand(7);
    auto random_guide = [](index_t size) {
        std::vector<double> v(static_cast<std::size_t>(size));
        for (double& x : v) x = static_cast<double>(std::rand() % 1000) / 100.0;
        return v;
    };
    const zse::VolumeGrid image(1, 15, 17, 1, 3, 4);
    for (bool disjoint : {false, true}) {
        compare(random_guide(15 * 17), image, zse::MatchWindow{0, 4, 3, disjoint}, 6);
        compare(random_guide(15 * 17), image, zse::MatchWindow{0, 30, 30, disjoint}, 300);
        const zse::VolumeGrid volume(6, 8, 9, 2, 3, 3);
        compare(random_guide(6 * 8 * 9), volume, zse::MatchWindow{1, 2, 3, disjoint}, 5);
    }
    // Ties: a periodic guide, where many candidates are at distance 0.
    std::vector<double> periodic(12 * 12);
    for (index_t r = 0; r < 12; ++r)
        for (index_t c = 0; c < 12; ++c)
            periodic[r * 12 + c] = static_cast<double>((r % 3) * (c % 2));
    compare(periodic, zse::VolumeGrid(1, 12, 12, 1, 2, 2), zse::MatchWindow{0, 6, 6, false}, 7);
    zse::MatchScratch scratch;
    std::vector<index_t> members(4);
    CHECK_THROWS(zse::match_patch(periodic.data(), zse::VolumeGrid(1, 12, 12, 1, 2, 2), 0,
                                  zse::MatchWindow{}, 0, scratch, members.data()));
    TEST_MAIN_END();
}

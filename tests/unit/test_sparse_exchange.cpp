// EF-SGD's sparse exchanges (sparse_exchange.hpp): the reduce-scatter and recursive doubling
// against an independent computation of their definition (each index's sum in the tree
// over the ranks that sent it, the global Top-k of the nonzero sums with ties to the lower
// index, the mean over ranks there, the dropped entries back in the residuals), on 1 to 9
// ranks and adversarial inputs; their bytes; errors and skips on every rank.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <gradcomp/distributed.hpp>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "error_message.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

using gc::exchange_kind;

/// Rank r's gradient at step t for one of the adversarial kinds.
std::vector<float> gradient_of(const std::string& kind, std::size_t d, int rank, int step) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(rank) * 7919u + static_cast<std::uint64_t>(step) * 104729u + d);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(d, 0.0f);
  for (std::size_t i = 0; i < d; ++i) {
    if (kind == "normal") {
      g[i] = normal(rng);
    } else if (kind == "ties") {  // few magnitudes: ties at the k-th sum, and sums that cancel
      g[i] = static_cast<float>(static_cast<int>(rng() % 3) + 1) * ((rng() & 1) ? 1.0f : -1.0f);
    } else if (kind == "sparse") {  // fewer nonzero entries than k on some ranks, negative zeros
      g[i] = (rng() % 97 == 0) ? normal(rng) : ((rng() & 1) ? -0.0f : 0.0f);
    } else if (kind == "cancel") {  // ranks 2j and 2j + 1 send opposite values
      std::mt19937_64 pair(static_cast<std::uint64_t>(rank / 2) * 31u + static_cast<std::uint64_t>(step) + i * 1000003u);
      g[i] = static_cast<float>(pair() % 1000) * ((rank % 2) ? -1.0f : 1.0f) * ((i % 2) ? 1.0f : 0.5f);
    } else if (kind == "denormals") {
      g[i] = std::ldexp(normal(rng), -140);
    } else if (kind == "concentrated") {  // the large entries in one layer: equal shards unbalance
      g[i] = normal(rng) * (i >= d - d / 8 ? 100.0f : 0.01f);
    }
  }
  return g;
}

const char* const kinds[] = {"normal", "ties", "sparse", "cancel", "denormals", "concentrated"};

struct rank_state {
  std::vector<float> x, error, mean;
  gc::traffic bytes;
  std::vector<std::size_t> selection;
  std::uint64_t message_bytes_up = 0, message_bytes_down = 0;
};

/// Runs `steps` EF-SGD steps of top_k{k} with the given exchange on n threads.
std::vector<rank_state> run(int n, std::size_t d, std::size_t k, const std::string& kind, gc::exchange_options ex,
                            int steps) {
  std::vector<rank_state> out(static_cast<std::size_t>(n));
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    gc::sgd_options o{.lr = 0.5};
    o.exchange = ex;
    gc::ef_sgd s(gc::top_k{.k = k}, comm, d, o);
    rank_state& me = out[static_cast<std::size_t>(comm.rank())];
    me.x.assign(d, 1.0f);
    for (int t = 0; t < steps; ++t) {
      const auto g = gradient_of(kind, d, comm.rank(), t);
      s.step(gc::exec::seq, std::span<float>(me.x), std::span<const float>(g));
    }
    me.error.assign(s.feedback().error().begin(), s.feedback().error().end());
    me.mean.assign(s.last_mean().begin(), s.last_mean().end());
    me.bytes = s.bytes().last;
    me.selection.assign(s.last_selection().begin(), s.last_selection().end());
    for (const gc::exchange_message& m : s.exchange_messages()) (m.sent ? me.message_bytes_up : me.message_bytes_down) += m.bytes;
  });
  return out;
}

// ---- The independent computation.

/// The tree's sum of one index over the ranks that sent it (nullopt: nobody did), written
/// from the definition: pairs (2v, 2v + 1) for v < P - P', then neighbours pairwise.
std::optional<float> tree_sum_of(std::vector<std::optional<float>> leaves) {
  const auto add = [](std::optional<float> a, std::optional<float> b) -> std::optional<float> {
    if (!a) return b;
    if (!b) return a;
    volatile float s = *a + *b;  // one rounding, no contraction
    return s;
  };
  const std::size_t n = leaves.size(), groups = std::bit_floor(n), folded = n - groups;
  std::vector<std::optional<float>> level;
  for (std::size_t v = 0; v < groups; ++v)
    level.push_back(v < folded ? add(leaves[2 * v], leaves[2 * v + 1]) : leaves[v + folded]);
  while (level.size() > 1) {
    std::vector<std::optional<float>> next;
    for (std::size_t v = 0; v < level.size(); v += 2) next.push_back(add(level[v], level[v + 1]));
    level = next;
  }
  return level[0];
}

struct reference_state {
  std::vector<std::vector<float>> x, error;
  std::vector<float> mean;
  std::vector<std::size_t> selection;
};

/// EF-SGD with top_k{k} on every rank and the global Top-k of the tree sums (k_global, or
/// every nonzero sum), step by step.
reference_state reference(int n, std::size_t d, std::size_t k, std::size_t k_global, const std::string& kind,
                          int steps) {
  reference_state st;
  st.x.assign(static_cast<std::size_t>(n), std::vector<float>(d, 1.0f));
  st.error.assign(static_cast<std::size_t>(n), std::vector<float>(d, 0.0f));
  for (int t = 0; t < steps; ++t) {
    std::vector<gc::sparse_vector<float>> m(static_cast<std::size_t>(n));
    std::vector<std::vector<float>> p(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
      const auto g = gradient_of(kind, d, r, t);
      auto& pr = p[static_cast<std::size_t>(r)];
      pr.resize(d);
      for (std::size_t i = 0; i < d; ++i) {
        volatile float scaled = 0.5f * g[i];
        pr[i] = st.error[static_cast<std::size_t>(r)][i] + scaled;
      }
      gc::top_k{.k = k}.compress(gc::exec::seq, std::span<const float>(pr), m[static_cast<std::size_t>(r)]);
    }
    // Sums and candidates.
    std::vector<std::pair<std::size_t, float>> nonzero;
    for (std::size_t i = 0; i < d; ++i) {
      std::vector<std::optional<float>> leaves(static_cast<std::size_t>(n));
      for (int r = 0; r < n; ++r) {
        const auto& mr = m[static_cast<std::size_t>(r)];
        const auto it = std::lower_bound(mr.indices.begin(), mr.indices.end(), static_cast<std::uint32_t>(i));
        if (it != mr.indices.end() && *it == i)
          leaves[static_cast<std::size_t>(r)] = mr.values[static_cast<std::size_t>(it - mr.indices.begin())];
      }
      const auto s = tree_sum_of(leaves);
      if (s && *s != 0.0f) nonzero.emplace_back(i, *s);
    }
    std::stable_sort(nonzero.begin(), nonzero.end(),
                     [](const auto& a, const auto& b) { return std::fabs(a.second) > std::fabs(b.second); });
    if (nonzero.size() > k_global) nonzero.resize(k_global);
    std::sort(nonzero.begin(), nonzero.end());
    st.selection.clear();
    st.mean.assign(d, 0.0f);
    for (const auto& [i, s] : nonzero) {
      st.selection.push_back(i);
      st.mean[i] = s / static_cast<float>(n);
    }
    for (int r = 0; r < n; ++r) {
      auto& e = st.error[static_cast<std::size_t>(r)];
      e = p[static_cast<std::size_t>(r)];
      const auto& mr = m[static_cast<std::size_t>(r)];
      for (std::size_t j = 0; j < mr.nnz(); ++j) {
        const std::size_t i = mr.indices[j];
        e[i] = p[static_cast<std::size_t>(r)][i] - mr.values[j];  // 0: Top-k sends p exactly
        if (!std::binary_search(st.selection.begin(), st.selection.end(), i)) e[i] += mr.values[j];
      }
      for (std::size_t i = 0; i < d; ++i) st.x[static_cast<std::size_t>(r)][i] -= st.mean[i];
    }
  }
  return st;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

}  // namespace

TEST_CASE("sparse exchanges: the independent computation's bits on every rank, 1 to 9 ranks, adversarial inputs") {
  const std::size_t d = 389;
  for (const char* kind : kinds) {
    for (int n = 1; n <= 9; ++n) {
      for (const std::size_t k : {std::size_t{1}, std::size_t{17}, std::size_t{300}}) {
        for (const std::size_t k_global : {k, gc::exchange_options::keep_all}) {
          CAPTURE(kind);
          CAPTURE(n);
          CAPTURE(k);
          CAPTURE(k_global);
          const int steps = 3;
          const reference_state want = reference(n, d, k, k_global == k ? k : d + 1, kind, steps);
          for (const exchange_kind ex : {exchange_kind::reduce_scatter, exchange_kind::recursive_doubling}) {
            CAPTURE(gc::exchange_name(ex));
            const auto got = run(n, d, k, kind, {.kind = ex, .global_k = k_global == k ? 0 : k_global}, steps);
            for (int r = 0; r < n; ++r) {
              const rank_state& g = got[static_cast<std::size_t>(r)];
              CHECK(same_bits(g.x, want.x[static_cast<std::size_t>(r)]));
              CHECK(same_bits(g.error, want.error[static_cast<std::size_t>(r)]));
              CHECK(same_bits(g.mean, want.mean));
              CHECK(g.selection == want.selection);
              CHECK(g.message_bytes_up == g.bytes.uplink);
              CHECK(g.message_bytes_down == g.bytes.downlink);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("sparse exchanges: keeping every sum is the all-gather's update (its bits on two ranks)") {
  const std::size_t d = 1000, k = 40;
  for (int n : {2, 3, 5, 8}) {
    CAPTURE(n);
    const auto all = run(n, d, k, "normal", {}, 4);
    for (const exchange_kind ex : {exchange_kind::reduce_scatter, exchange_kind::recursive_doubling}) {
      const auto got = run(n, d, k, "normal", {.kind = ex, .global_k = gc::exchange_options::keep_all}, 4);
      for (int r = 0; r < n; ++r) {
        const auto& a = all[static_cast<std::size_t>(r)];
        const auto& b = got[static_cast<std::size_t>(r)];
        if (n == 2) {  // the tree of two ranks is rank order
          CHECK(same_bits(a.x, b.x));
          CHECK(same_bits(a.error, b.error));
        }
        for (std::size_t i = 0; i < d; ++i) {
          CHECK(b.x[i] == doctest::Approx(a.x[i]).epsilon(1e-5));
          CHECK(b.error[i] == a.error[i]);  // nothing is dropped: the same residual
        }
      }
    }
  }
}

TEST_CASE("sparse exchanges: x - mean of the residuals moves like SGD on the mean gradient") {
  const std::size_t d = 500, k = 10;
  const int n = 6, steps = 12;
  for (const exchange_kind ex : {exchange_kind::reduce_scatter, exchange_kind::recursive_doubling}) {
    const auto got = run(n, d, k, "normal", {.kind = ex}, steps);
    std::vector<double> sgd(d, 1.0);
    for (int t = 0; t < steps; ++t)
      for (int r = 0; r < n; ++r) {
        const auto g = gradient_of("normal", d, r, t);
        for (std::size_t i = 0; i < d; ++i) sgd[i] -= 0.5 * g[i] / n;
      }
    for (std::size_t i = 0; i < d; ++i) {
      double mean_error = 0.0;
      for (int r = 0; r < n; ++r) mean_error += got[static_cast<std::size_t>(r)].error[i];
      CHECK(got[0].x[i] - mean_error / n == doctest::Approx(sgd[i]).epsilon(1e-4));
    }
  }
}

TEST_CASE("sparse exchanges: received bytes per rank stay near k as the ranks grow, the all-gather's grow with P") {
  const std::size_t d = 20000, k = 200;
  const std::size_t entry = 8;  // u32 index + float
  for (int n : {2, 4, 8, 16}) {
    CAPTURE(n);
    const auto rs = run(n, d, k, "normal", {.kind = exchange_kind::reduce_scatter}, 3);
    const auto ag = run(n, d, k, "normal", {}, 3);
    for (int r = 0; r < n; ++r) {
      const auto& s = rs[static_cast<std::size_t>(r)];
      // Reduce: about k entries in all (balanced regions); gather: the selection's k.
      // Histograms: at most 4 rounds of 256 float counts.
      CHECK(s.bytes.downlink <= 3 * k * entry + 4 * 1024 + 10 * static_cast<std::size_t>(n));
      CHECK(ag[static_cast<std::size_t>(r)].bytes.downlink ==
            static_cast<std::uint64_t>(n - 1) * gc::sparse_vector<float>::wire_bytes_for(k));
    }
  }
}

TEST_CASE("sparse exchanges: regions follow the previous selection, and balance a concentrated gradient") {
  const std::size_t d = 8000, k = 400;
  const int n = 4;
  gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
    for (const gc::region_balance balance : {gc::region_balance::equal, gc::region_balance::previous_selection}) {
      gc::sgd_options o{.lr = 0.5};
      o.exchange = {.kind = exchange_kind::reduce_scatter, .balance = balance};
      gc::ef_sgd s(gc::top_k{.k = k}, comm, d, o);
      std::vector<float> x(d, 0.0f);
      std::size_t most_received = 0;
      for (int t = 0; t < 4; ++t) {
        const std::vector<std::size_t> before(s.last_selection().begin(), s.last_selection().end());
        const auto g = gradient_of("concentrated", d, comm.rank(), t);
        s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
        const auto regions = s.regions();
        REQUIRE(regions.size() == static_cast<std::size_t>(n) + 1);
        CHECK(regions.front() == 0);
        CHECK(regions.back() == d);
        for (int r = 0; r < n; ++r) {
          if (balance == gc::region_balance::equal || before.empty())
            CHECK(regions[static_cast<std::size_t>(r)] == gc::comm::shard_of(d, n, r).begin);
          else if (r > 0)
            CHECK(regions[static_cast<std::size_t>(r)] == before[static_cast<std::size_t>(r) * before.size() / n]);
        }
        if (t > 0) {
          std::size_t received = 0;
          for (const auto& m : s.exchange_messages())
            if (!m.sent && std::string(m.phase) == "reduce") received += m.nnz;
          most_received = std::max(most_received, received);
        }
      }
      // Equal shards put the whole concentrated layer on the last rank, which receives
      // almost every other rank's k entries; balanced regions give every owner about k in all.
      if (comm.rank() == n - 1) {
        if (balance == gc::region_balance::equal)
          CHECK(most_received >= static_cast<std::size_t>(n - 1) * k * 9 / 10);
        else
          CHECK(most_received <= 2 * k);
      }
    }
  });
}

TEST_CASE("sparse exchanges: a failure or a skip on one rank reaches every rank and changes nothing") {
  const std::size_t d = 300, k = 12;
  for (int n : {2, 3, 5, 6}) {
    for (const exchange_kind ex : {exchange_kind::reduce_scatter, exchange_kind::recursive_doubling}) {
      for (int culprit = 0; culprit < n; ++culprit) {
        CAPTURE(n);
        CAPTURE(culprit);
        CAPTURE(gc::exchange_name(ex));
        gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
          gc::sgd_options o{.lr = 0.5};
          o.exchange.kind = ex;
          gc::ef_sgd s(gc::top_k{.k = k}, comm, d, o);
          std::vector<float> x(d, 1.0f);
          auto g = gradient_of("normal", d, comm.rank(), 0);
          s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g));
          const std::vector<float> x0 = x, e0(s.feedback().error().begin(), s.feedback().error().end());
          const gc::traffic_log bytes0 = s.bytes();
          const std::vector<std::size_t> sel0(s.last_selection().begin(), s.last_selection().end());
          const std::vector<std::size_t> regions0(s.regions().begin(), s.regions().end());
          const auto unchanged = [&] {
            CHECK(std::vector<std::size_t>(s.regions().begin(), s.regions().end()) == regions0);
            CHECK(same_bits(x, x0));
            CHECK(same_bits(s.feedback().error(), e0));
            CHECK(s.bytes().total == bytes0.total);
            CHECK(std::vector<std::size_t>(s.last_selection().begin(), s.last_selection().end()) == sel0);
          };
          g = gradient_of("normal", d, comm.rank(), 1);
          // A gradient of the wrong length on the culprit.
          const std::vector<float> bad(comm.rank() == culprit ? d - 1 : d, 0.25f);
          const std::string what = gt::error_message(
              [&] { s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(comm.rank() == culprit ? bad : g)); });
          CHECK(gt::contains(what, "ef_sgd::step: rank " + std::to_string(culprit) + " failed: "));
          CHECK(gt::contains(what, "the gradient has"));
          unchanged();
          // A NaN on the culprit: skipped everywhere.
          std::vector<float> nan_g = g;
          if (comm.rank() == culprit) nan_g[d / 3] = std::numeric_limits<float>::quiet_NaN();
          CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(nan_g)) == gc::step_status::skipped);
          CHECK(s.skipped_steps() == 1);
          unchanged();
          // And the next step works.
          CHECK(s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g)) == gc::step_status::applied);
        });
      }
    }
  }
}

TEST_CASE("sparse exchanges: ties at the threshold are shared out across owners by index, as one holder takes them") {
  // Gradients of three magnitudes: the k-th largest sum is tied across several regions.
  const std::size_t d = 389, k = 17;
  const int n = 4;
  std::vector<std::vector<float>> x(2, std::vector<float>(d, 0.0f));
  std::vector<std::vector<std::size_t>> selections(2);
  int tie_rounds = 0;
  for (int which = 0; which < 2; ++which) {
    gc::comm::local_group::run(n, [&](gc::comm::local_communicator& comm) {
      gc::sgd_options o{.lr = 0.5};
      o.exchange.kind = which == 0 ? exchange_kind::reduce_scatter : exchange_kind::recursive_doubling;
      gc::ef_sgd s(gc::top_k{.k = k}, comm, d, o);
      std::vector<float> mine(d, 0.0f), g(d);
      for (int t = 0; t < 4; ++t) {
        for (std::size_t i = 0; i < d; ++i) g[i] = static_cast<float>((i * 7 + static_cast<std::size_t>(t + comm.rank())) % 3 + 1);
        s.step(gc::exec::seq, std::span<float>(mine), std::span<const float>(g));
        if (comm.rank() == 0) {
          for (const auto& m : s.exchange_messages()) tie_rounds += std::string(m.phase) == "tie" && m.sent ? 1 : 0;
          selections[static_cast<std::size_t>(which)].insert(selections[static_cast<std::size_t>(which)].end(),
                                                             s.last_selection().begin(), s.last_selection().end());
        }
      }
      if (comm.rank() == 0) x[static_cast<std::size_t>(which)] = mine;
    });
  }
  CHECK(tie_rounds >= 1);
  CHECK(selections[0] == selections[1]);
  CHECK(same_bits(x[0], x[1]));
}

TEST_CASE("sparse exchanges: two failing ranks report the lower one everywhere") {
  for (const exchange_kind ex : {exchange_kind::reduce_scatter, exchange_kind::recursive_doubling}) {
    gc::comm::local_group::run(5, [&](gc::comm::local_communicator& comm) {
      gc::sgd_options o{.lr = 0.5};
      o.exchange.kind = ex;
      gc::ef_sgd s(gc::top_k{.k = 3}, comm, 50, o);
      std::vector<float> x(50, 0.0f), g(comm.rank() == 2 || comm.rank() == 4 ? 49 : 50, 1.0f);
      const std::string what = gt::error_message([&] { s.step(gc::exec::seq, std::span<float>(x), std::span<const float>(g)); });
      CHECK(gt::contains(what, "rank 2 failed"));
    });
  }
}

TEST_CASE("sparse exchanges: what the constructor refuses, on every rank") {
  gc::comm::local_group::run(3, [&](gc::comm::local_communicator& comm) {
    gc::sgd_options o{.lr = 0.1};
    o.exchange.kind = exchange_kind::reduce_scatter;
    CHECK(gt::contains(gt::error_message([&] { gc::ef_sgd s(gc::scaled_sign{}, comm, 10, o); }),
                       "needs a sparsifier whose message is a sparse_vector"));
    CHECK(gt::contains(gt::error_message([&] { gc::ef_sgd s(gc::hard_threshold{.lambda = 1}, comm, 10, o); }),
                       "set exchange_options::global_k"));
    gc::sgd_options odd = o;
    if (comm.rank() == 1) odd.exchange.kind = exchange_kind::recursive_doubling;
    CHECK(gt::contains(gt::error_message([&] { gc::ef_sgd s(gc::top_k{.k = 2}, comm, 10, odd); }),
                       "the exchange kind differs across ranks"));
    gc::sgd_options other_k = o;
    other_k.exchange.global_k = comm.rank() == 2 ? 5 : 4;
    CHECK(gt::contains(gt::error_message([&] { gc::ef_sgd s(gc::top_k{.k = 2}, comm, 10, other_k); }),
                       "the global k differs across ranks"));
    gc::sgd_options bad = o;
    bad.exchange.kind = static_cast<exchange_kind>(7);
    CHECK(gt::contains(gt::error_message([&] { gc::ef_sgd s(gc::top_k{.k = 2}, comm, 10, bad); }),
                       "is not an exchange_kind"));
    gc::sgd_options ef21_opt = o;
    ef21_opt.error_feedback = false;
    CHECK(gt::contains(gt::error_message([&] { gc::ef_sgd s(gc::ef21<gc::top_k>(gc::top_k{.k = 2}, 10), comm, 10, ef21_opt); }),
                       "use the allgather exchange with ef21"));
  });
}

TEST_CASE("sparse exchanges: the global selection's rule, one holder and several") {
  using rule_t = gc::detail::selection_rule<std::uint32_t>;
  const auto none = [](std::span<double>) {};
  // Every candidate when there are at most k.
  const std::vector<std::uint32_t> few{5, 9, 1};
  CHECK(gc::detail::select_largest<std::uint32_t>(few, 3, none).everything);
  // Ties at the k-th key: take some of them.
  const std::vector<std::uint32_t> ties{7, 7, 7, 9, 3};
  const rule_t r = gc::detail::select_largest<std::uint32_t>(ties, 2, none);
  CHECK_FALSE(r.everything);
  CHECK(r.above == 7);
  CHECK(r.has_equal);
  CHECK(r.equal == 7);
  CHECK(r.take_equal == 1);
  CHECK(r.count_equal == 3);
  CHECK(r.rounds == 4);
  // A bin that holds exactly what is needed ends early.
  const std::vector<std::uint32_t> spread{0x01000000u, 0x02000000u, 0x03000000u, 0x03000001u};
  const rule_t e = gc::detail::select_largest<std::uint32_t>(spread, 2, none);
  CHECK(e.rounds == 1);
  CHECK(e.above == 0x03000000u - 1);
  CHECK_FALSE(e.has_equal);
  // Brute force on random keys with many ties, split over "ranks" by summing histograms.
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::uint32_t> keys(1 + rng() % 300);
    for (auto& key : keys) key = static_cast<std::uint32_t>(1 + rng() % (trial % 2 ? 20 : 0xffffffu));
    const std::uint64_t k = 1 + rng() % keys.size();
    const rule_t got = gc::detail::select_largest<std::uint32_t>(keys, k, none);
    std::vector<std::uint32_t> sorted = keys;
    std::sort(sorted.rbegin(), sorted.rend());
    std::uint64_t taken = 0;
    for (const auto key : keys) taken += got.everything || key > got.above ? 1 : 0;
    if (got.has_equal) taken += got.take_equal;
    CHECK(taken == std::min<std::uint64_t>(k, keys.size()));
    if (!got.everything && k < keys.size()) {
      const std::uint32_t kth = sorted[k - 1];
      CHECK((got.has_equal ? got.equal : got.above + 1) <= kth);
      for (const auto key : keys)
        if (key > kth) CHECK((key > got.above || (got.has_equal && key == got.equal)));
    }
  }
}

TEST_CASE("sparse exchanges: blocks round-trip, switch to dense when smaller, and malformed ones are refused") {
  using gc::detail::region_sum;
  region_sum<float> s;
  s.reset(10);
  s.index = {1, 4};
  s.value = {2.5f, -1.0f};
  std::vector<std::byte> block;
  gc::detail::append_block(s, block);
  CHECK(block.size() == gc::detail::block_bytes<float>(2, 10));
  CHECK(block.size() == 1 + 2 * 8);
  region_sum<float> back;
  gc::detail::read_block(std::span<const std::byte>(block), 10, back, "test", 0);
  CHECK(back.index == s.index);
  CHECK(back.value == s.value);
  // Six of ten entries: 40 dense bytes beat 48 of pairs.
  s.index = {0, 1, 2, 3, 4, 5};
  s.value = {1, 2, 3, 4, 5, 6};
  CHECK(gc::detail::prefer_dense<float>(6, 10));
  CHECK_FALSE(gc::detail::prefer_dense<float>(5, 10));
  block.clear();
  gc::detail::append_block(s, block);
  CHECK(block.size() == 1 + 40);
  gc::detail::read_block(std::span<const std::byte>(block), 10, back, "test", 0);
  CHECK(back.dense);
  CHECK(back.value == std::vector<float>{1, 2, 3, 4, 5, 6, 0, 0, 0, 0});
  // Nothing: no bytes.
  s.reset(10);
  block.clear();
  gc::detail::append_block(s, block);
  CHECK(block.empty());
  // Malformed.
  const auto refuses = [](std::vector<std::byte> b, std::size_t len, const char* text) {
    region_sum<float> out;
    CHECK(gt::contains(gt::error_message([&] { gc::detail::read_block(std::span<const std::byte>(b), len, out, "test", 3); }),
                       text));
  };
  std::vector<std::byte> pairs(1 + 16);
  pairs[0] = std::byte{1};
  pairs[1] = std::byte{5};  // index 5, then index 2: not ascending
  pairs[9] = std::byte{2};
  refuses(pairs, 10, "indices must ascend");
  refuses(std::vector<std::byte>(1 + 12, std::byte{1}), 10, "sparse block of 12 bytes");
  refuses(std::vector<std::byte>(1 + 12, std::byte{2}), 10, "dense block of 12 bytes");
  refuses(std::vector<std::byte>(3, std::byte{9}), 10, "unknown representation 9");
  std::vector<std::byte> inf(1 + 4);
  inf[0] = std::byte{2};
  const float infinity = std::numeric_limits<float>::infinity();
  std::memcpy(inf.data() + 1, &infinity, 4);
  refuses(inf, 1, "not finite");
}

TEST_CASE("error_feedback::return_unsent: entries back into the residual, metrics follow, undo still works") {
  gc::error_feedback<gc::top_k> ef(gc::top_k{.k = 2}, 5);
  const std::vector<float> g{1.0f, -4.0f, 0.5f, 3.0f, 0.0f};
  const auto& m = ef.compress(gc::exec::seq, std::span<const float>(g));
  REQUIRE(m.indices == std::vector<std::uint32_t>{1, 3});
  const std::vector<std::size_t> idx{3};
  const std::vector<float> val{3.0f};
  ef.return_unsent(std::span<const std::size_t>(idx), std::span<const float>(val));
  CHECK(ef.error()[3] == 3.0f);
  CHECK(ef.error()[1] == 0.0f);
  CHECK(ef.metrics().elements_sent == 1);
  CHECK(ef.metrics().total_error == doctest::Approx(1.0 + 0.25 + 9.0));
  const std::vector<std::size_t> out_of_range{7};
  CHECK(gt::contains(gt::error_message([&] {
                       ef.return_unsent(std::span<const std::size_t>(out_of_range), std::span<const float>(val));
                     }),
                     "indices must ascend and stay below 5"));
  const std::vector<float> huge{std::numeric_limits<float>::max()};
  const std::vector<std::size_t> three{3};
  ef.return_unsent(std::span<const std::size_t>(three), std::span<const float>(huge));
  CHECK(gt::contains(gt::error_message([&] {
                       ef.return_unsent(std::span<const std::size_t>(three), std::span<const float>(huge));
                     }),
                     "is not finite"));
  ef.undo();
  for (float v : ef.error()) CHECK(v == 0.0f);
}

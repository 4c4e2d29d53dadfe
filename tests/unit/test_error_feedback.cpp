// Unit tests for gc::error_feedback<C, T>: the exact update p = e + scale*g, m = C(p),
// e = p - decode(m); conservation; metrics; error safety; checkpoints; and a convergence
// sanity check.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <gradcomp/gradcomp.hpp>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

// Compile the reference loops without FMA contraction (GCC fuses a*b+c by default). The
// volatile temporaries below force two roundings on any compiler; the attribute is a
// second guard where it exists.
#if defined(__GNUC__) && !defined(__clang__)
#define EF_TEST_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define EF_TEST_NO_CONTRACT
#endif

namespace {

template <class T>
using ubits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

template <class T>
ubits<T> bits_of(T v) {
  return std::bit_cast<ubits<T>>(v);
}

constexpr std::size_t npos = static_cast<std::size_t>(-1);

/// p = e + scale * g, rounded twice per element (product, then sum).
template <class T>
EF_TEST_NO_CONTRACT std::vector<T> reference_input(std::span<const T> e, std::span<const T> g, T scale) {
  std::vector<T> p(e.size());
  for (std::size_t i = 0; i < e.size(); ++i) {
    volatile T prod = scale * g[i];
    volatile T sum = e[i] + prod;
    p[i] = sum;
  }
  return p;
}

/// e = p - v elementwise.
template <class T>
EF_TEST_NO_CONTRACT std::vector<T> reference_difference(const std::vector<T>& p, const std::vector<T>& v) {
  std::vector<T> e(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    volatile T diff = p[i] - v[i];
    e[i] = diff;
  }
  return e;
}

/// First index where a and b differ bitwise, or npos.
template <class T>
std::size_t first_bit_mismatch(std::span<const T> a, std::span<const T> b) {
  if (a.size() != b.size()) return 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (bits_of(a[i]) != bits_of(b[i])) return i;
  return npos;
}
template <class T>
std::size_t first_bit_mismatch(const std::vector<T>& a, const std::vector<T>& b) {
  return first_bit_mismatch(std::span<const T>(a), std::span<const T>(b));
}

/// How the gradient changes from step to step.
enum class stream_kind {
  fresh,        // a new draw every step
  alternating,  // g_t = (-1)^t g_0: p cancels to exact zeros and ties
  constant,     // g_t = g_0: the residual grows on unselected entries
};
constexpr stream_kind all_streams[] = {stream_kind::fresh, stream_kind::alternating, stream_kind::constant};

const char* to_string(stream_kind s) {
  switch (s) {
    case stream_kind::fresh:
      return "fresh";
    case stream_kind::alternating:
      return "alternating";
    case stream_kind::constant:
      return "constant";
  }
  return "?";
}

template <class T>
class gradient_stream {
 public:
  gradient_stream(gt::input_kind kind, stream_kind s, std::size_t d, std::uint64_t seed)
      : kind_(kind), stream_(s), d_(d), seed_(seed), base_(gt::make_input<T>(kind, d, seed)) {}

  std::vector<T> at(int t) const {
    switch (stream_) {
      case stream_kind::fresh:
        return gt::make_input<T>(kind_, d_, seed_ * 7919 + static_cast<std::uint64_t>(t));
      case stream_kind::alternating: {
        std::vector<T> g = base_;
        if (t % 2)
          for (T& v : g) v = -v;
        return g;
      }
      case stream_kind::constant:
        return base_;
    }
    return base_;
  }

 private:
  gt::input_kind kind_;
  stream_kind stream_;
  std::size_t d_;
  std::uint64_t seed_;
  std::vector<T> base_;
};

template <class T>
std::vector<T> to_vector(std::span<const T> s) {
  return std::vector<T>(s.begin(), s.end());
}

/// Brute-force top-k: sort every (magnitude key, index) pair, largest key first and lower
/// index first among equal keys; return the first min(k, d) indices, ascending.
template <class T>
std::vector<std::size_t> brute_top_k(std::span<const T> x, std::size_t k) {
  constexpr ubits<T> sign = ubits<T>{1} << (sizeof(T) * 8 - 1);
  std::vector<std::pair<ubits<T>, std::size_t>> keyed;
  keyed.reserve(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) keyed.emplace_back(static_cast<ubits<T>>(bits_of(x[i]) & ~sign), i);
  std::sort(keyed.begin(), keyed.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  std::vector<std::size_t> out;
  for (std::size_t j = 0; j < std::min(k, x.size()); ++j) out.push_back(keyed[j].second);
  std::sort(out.begin(), out.end());
  return out;
}

template <class Index>
std::vector<std::size_t> widen(const std::vector<Index>& v) {
  return std::vector<std::size_t>(v.begin(), v.end());
}

/// Every compressor of the library, in a few configurations, handed to f(name, c).
template <class F>
void for_each_compressor(F&& f) {
  f("identity", gc::identity{});
  f("top_k{1}", gc::top_k{.k = 1});
  f("top_k{10}", gc::top_k{.k = 10});
  f("hard_threshold{0.5}", gc::hard_threshold{.lambda = 0.5});
  f("random_k{5}", gc::random_k{.k = 5, .seed = 11});
  f("unbiased_random_k{4}", gc::unbiased_random_k{.k = 4, .seed = 12});
  f("scaled_sign", gc::scaled_sign{});
  f("blockwise_sign{7}", gc::blockwise_sign{.block_size = 7});
  f("blockwise_sign{64}", gc::blockwise_sign{.block_size = 64});
  f("onebit", gc::onebit{});
  f("onebit{7}", gc::onebit{.block_size = 7});
  f("qsgd{1}", gc::qsgd{.s = 1, .seed = 13});
  f("qsgd{16}", gc::qsgd{.s = 16, .seed = 14});
  f("grid_rounding{0.25}", gc::grid_rounding{.spacing = 0.25});
  f("grid_rounding{0.1, stochastic}", gc::grid_rounding{.spacing = 0.1, .stochastic = true, .seed = 15});
}

constexpr std::size_t ef_sizes[] = {1, 2, 7, 65, 129, 1000};

template <class T>
void check_same_metrics(const gc::feedback_metrics& a, const gc::feedback_metrics& b) {
  CHECK(a.steps == b.steps);
  CHECK(a.elements_sent == b.elements_sent);
  CHECK(a.wire_bytes == b.wire_bytes);
  CHECK(std::bit_cast<std::uint64_t>(a.total_error) == std::bit_cast<std::uint64_t>(b.total_error));
}

template <class C>
std::uint64_t step_of(const C& c) {
  if constexpr (gc::seeded_compressor<C>)
    return c.step;
  else
    return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// 1. The exact update for sparsifiers.

namespace {

/// Runs an error_feedback<C, T> over every kind/size/stream/scale and checks each step
/// bit for bit: message values = p at the sent indices; residual = 0 there and p elsewhere.
/// select(p, message, compressor before the step) checks which indices were chosen.
template <class T, class C, class Select>
void check_exact_sparsifier(const char* name, const C& proto, Select select) {
  const T scales[] = {T(1), T(0.1)};
  for (const gt::input_kind kind : gt::all_input_kinds)
    for (const std::size_t d : ef_sizes)
      for (const stream_kind sk : all_streams)
        for (const T scale : scales) {
          const std::uint64_t seed = 100 + static_cast<std::uint64_t>(kind) * 31 + d;
          const std::string compressor_label = name;
          CAPTURE(compressor_label);
          const std::string kind_name = gt::to_string(kind);
          CAPTURE(kind_name);
          CAPTURE(d);
          const std::string stream_name = to_string(sk);
          CAPTURE(stream_name);
          CAPTURE(scale);
          CAPTURE(seed);
          const gradient_stream<T> grads(kind, sk, d, seed);
          gc::error_feedback<C, T> ef{proto, d};
          for (int t = 0; t < 10; ++t) {
            CAPTURE(t);
            const std::vector<T> g = grads.at(t);
            const std::vector<T> e_before = to_vector(ef.error());
            const C before = ef.base();
            const std::vector<T> p = reference_input<T>(e_before, g, scale);

            const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g), scale);

            REQUIRE(m.dim == d);
            REQUIRE(m.indices.size() == m.values.size());
            bool ascending = true;
            for (std::size_t j = 0; j < m.indices.size(); ++j)
              ascending = ascending && m.indices[j] < d && (j == 0 || m.indices[j] > m.indices[j - 1]);
            REQUIRE(ascending);
            if (!select(p, m, before, ef.base())) return;

            std::vector<bool> sent(d, false);
            std::size_t bad_value = npos;
            for (std::size_t j = 0; j < m.indices.size(); ++j) {
              sent[m.indices[j]] = true;
              if (bad_value == npos && bits_of(m.values[j]) != bits_of(p[m.indices[j]])) bad_value = j;
            }
            CHECK_MESSAGE(bad_value == npos, "message value at position " << bad_value << " is not p");

            const std::span<const T> e = ef.error();
            REQUIRE(e.size() == d);
            std::size_t bad_residual = npos;
            for (std::size_t i = 0; i < d && bad_residual == npos; ++i) {
              if (sent[i] ? !(e[i] == T(0)) : bits_of(e[i]) != bits_of(p[i])) bad_residual = i;
            }
            CHECK_MESSAGE(bad_residual == npos,
                          "residual at " << bad_residual << " is wrong (sent entries must be 0, others p)");
            if (bad_value != npos || bad_residual != npos) return;
          }
        }
}

}  // namespace

TEST_CASE_TEMPLATE("error_feedback: exact update for top_k", T, float, double) {
  for (const std::size_t k : {std::size_t{1}, std::size_t{3}, std::size_t{10}, std::size_t{150}}) {
    CAPTURE(k);
    check_exact_sparsifier<T>("top_k", gc::top_k{.k = k},
                              [&](const std::vector<T>& p, const auto& m, const gc::top_k&, const gc::top_k&) {
                                const auto expected = brute_top_k<T>(p, k);
                                const bool ok = widen(m.indices) == expected;
                                CHECK_MESSAGE(ok, "top_k selected other indices than brute force");
                                return ok;
                              });
  }
}

TEST_CASE_TEMPLATE("error_feedback: exact update for hard_threshold", T, float, double) {
  const double lambdas[] = {0.5, gc::hard_threshold::matching_top_k(10).lambda,
                            300.0 * static_cast<double>(std::numeric_limits<T>::denorm_min())};
  for (const double lambda : lambdas) {
    CAPTURE(lambda);
    check_exact_sparsifier<T>(
        "hard_threshold", gc::hard_threshold{.lambda = lambda},
        [&](const std::vector<T>& p, const auto& m, const gc::hard_threshold&, const gc::hard_threshold&) {
          std::vector<std::size_t> expected;
          for (std::size_t i = 0; i < p.size(); ++i)
            if (!(std::fabs(static_cast<double>(p[i])) < lambda)) expected.push_back(i);
          const bool ok = widen(m.indices) == expected;
          CHECK_MESSAGE(ok, "hard_threshold kept other indices than {i : |p_i| >= lambda}");
          return ok;
        });
  }
}

TEST_CASE_TEMPLATE("error_feedback: exact update for random_k", T, float, double) {
  for (const std::size_t k : {std::size_t{1}, std::size_t{5}, std::size_t{100}}) {
    CAPTURE(k);
    check_exact_sparsifier<T>(
        "random_k", gc::random_k{.k = k, .seed = 99, .step = 5},
        [&](const std::vector<T>& p, const auto& m, const gc::random_k& before, const gc::random_k& after) {
          bool ok = m.indices.size() == std::min(k, p.size());
          CHECK_MESSAGE(ok, "random_k sent " << m.indices.size() << " entries");
          CHECK(m.seed == before.seed);
          CHECK(m.step == before.step);
          CHECK(after.step == before.step + 1);
          ok = ok && m.seed == before.seed && m.step == before.step && after.step == before.step + 1;
          // A receiver regenerates the same indices from the wire bytes.
          const auto decoded = gc::decode<gc::seeded_sparse_vector<T>>(gc::encode(m));
          CHECK(decoded.indices == m.indices);
          return ok && decoded.indices == m.indices;
        });
  }
}

// ---------------------------------------------------------------------------------------
// 2. e_new == p - decode(m) for every compressor, and m == C(p).

TEST_CASE_TEMPLATE("error_feedback: residual is p - decode(m) for every compressor", T, float, double) {
  for_each_compressor([&](const char* name, auto proto) {
    using C = decltype(proto);
    const T scales[] = {T(1), T(0.1)};
    for (const gt::input_kind kind : gt::all_input_kinds)
      for (const std::size_t d : ef_sizes)
        for (const stream_kind sk : all_streams)
          for (const T scale : scales) {
            const std::uint64_t seed = 500 + static_cast<std::uint64_t>(kind) * 17 + d;
            const std::string compressor_label = name;
            CAPTURE(compressor_label);
            const std::string kind_name = gt::to_string(kind);
            CAPTURE(kind_name);
            CAPTURE(d);
            const std::string stream_name = to_string(sk);
            CAPTURE(stream_name);
            CAPTURE(scale);
            CAPTURE(seed);
            const gradient_stream<T> grads(kind, sk, d, seed);
            gc::error_feedback<C, T> ef{proto, d};
            bool ok = true;
            for (int t = 0; t < 8 && ok; ++t) {
              CAPTURE(t);
              const std::vector<T> g = grads.at(t);
              const std::vector<T> p = reference_input<T>(ef.error(), g, scale);
              C twin = ef.base();  // the compressor in the state EF will use

              const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g), scale);

              gc::payload_t<C, T> expected;
              twin.compress(gc::exec::seq, std::span<const T>(p), expected);
              CHECK_MESSAGE(m == expected, "the message is not C(e + scale*g)");
              CHECK(step_of(twin) == step_of(ef.base()));

              const std::vector<T> decoded = gt::densify<T>(m, d);
              const std::vector<T> e_expected = reference_difference(p, decoded);
              const std::vector<T> e = to_vector(ef.error());
              const std::size_t bad = first_bit_mismatch(e, e_expected);
              CHECK_MESSAGE(bad == npos, "residual differs from p - decode(m) at index "
                                             << bad << ": got " << (bad < d ? e[bad] : T(0)) << ", expected "
                                             << (bad < d ? e_expected[bad] : T(0)));
              ok = m == expected && bad == npos;
            }
          }
  });
}

// ---------------------------------------------------------------------------------------
// 3. Conservation: sum of everything sent + residual == sum of everything fed in.

TEST_CASE_TEMPLATE("error_feedback: conservation is exact for integer gradients", T, float, double) {
  const auto run = [&](const char* name, auto proto) {
    using C = decltype(proto);
    for (const std::size_t d : {std::size_t{1}, std::size_t{9}, std::size_t{100}, std::size_t{1000}})
      for (const T scale : {T(1), T(0.5)})
        for (const std::uint64_t seed : {1u, 2u}) {
          const std::string compressor_label = name;
          CAPTURE(compressor_label);
          CAPTURE(d);
          CAPTURE(scale);
          CAPTURE(seed);
          gc::error_feedback<C, T> ef{proto, d};
          std::vector<T> sent_sum(d, T(0)), fed_sum(d, T(0));
          for (int t = 0; t < 50; ++t) {
            const std::vector<T> g =
                gt::make_input<T>(gt::input_kind::integers, d, seed * 1000 + static_cast<std::uint64_t>(t));
            const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g), scale);
            gc::decompress_add(m, sent_sum);
            for (std::size_t i = 0; i < d; ++i) fed_sum[i] += scale * g[i];  // exact: small dyadic values
          }
          std::vector<T> lhs(d);
          for (std::size_t i = 0; i < d; ++i) lhs[i] = sent_sum[i] + ef.error()[i];
          const std::size_t bad = first_bit_mismatch(lhs, fed_sum);
          CHECK_MESSAGE(bad == npos, "sum decode(m_t) + e_T != sum scale*g_t at index "
                                         << bad << ": " << (bad < d ? lhs[bad] : T(0)) << " vs "
                                         << (bad < d ? fed_sum[bad] : T(0)));
        }
  };
  run("identity", gc::identity{});
  run("top_k{3}", gc::top_k{.k = 3});
  run("top_k{40}", gc::top_k{.k = 40});
  run("hard_threshold{2.5}", gc::hard_threshold{.lambda = 2.5});
  run("random_k{5}", gc::random_k{.k = 5, .seed = 3});
  run("grid_rounding{1}", gc::grid_rounding{.spacing = 1.0});
  run("grid_rounding{1, stochastic}", gc::grid_rounding{.spacing = 1.0, .stochastic = true, .seed = 4});
}

TEST_CASE_TEMPLATE("error_feedback: conservation holds to rounding for sign, qsgd and scaled random_k", T, float,
                   double) {
  // Each step rounds p = e + scale*g once and e = p - v once (v is exactly what was sent),
  // so |sum_t v_t + e_T - sum_t scale*g_t| <= eps/2 * sum_t (|p_t| + |e_t|) per coordinate.
  const auto run = [&](const char* name, auto proto) {
    using C = decltype(proto);
    for (const gt::input_kind kind : {gt::input_kind::integers, gt::input_kind::normal, gt::input_kind::heavy_tailed})
      for (const std::size_t d : {std::size_t{1}, std::size_t{9}, std::size_t{100}, std::size_t{1000}})
        for (const T scale : {T(1), T(0.5)}) {
          const std::string compressor_label = name;
          CAPTURE(compressor_label);
          const std::string kind_name = gt::to_string(kind);
          CAPTURE(kind_name);
          CAPTURE(d);
          CAPTURE(scale);
          gc::error_feedback<C, T> ef{proto, d};
          std::vector<long double> sent(d, 0.0L), fed(d, 0.0L), budget(d, 0.0L);
          for (int t = 0; t < 50; ++t) {
            const std::vector<T> g = gt::make_input<T>(kind, d, 77 + static_cast<std::uint64_t>(t));
            const std::vector<T> p = reference_input<T>(ef.error(), g, scale);
            const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g), scale);
            const std::vector<T> v = gt::densify<T>(m, d);
            for (std::size_t i = 0; i < d; ++i) {
              sent[i] += static_cast<long double>(v[i]);
              fed[i] += static_cast<long double>(scale) * static_cast<long double>(g[i]);
              budget[i] +=
                  std::fabs(static_cast<long double>(p[i])) + std::fabs(static_cast<long double>(ef.error()[i]));
            }
          }
          const long double eps = std::numeric_limits<T>::epsilon();
          std::size_t bad = npos;
          long double worst = 0;
          for (std::size_t i = 0; i < d; ++i) {
            const long double diff = std::fabs(sent[i] + static_cast<long double>(ef.error()[i]) - fed[i]);
            // eps/2 per rounding, doubled for slack; 1e-300 guards an all-zero coordinate.
            if (!(diff <= eps * budget[i] + 1e-300L) && bad == npos) {
              bad = i;
              worst = diff;
            }
          }
          CHECK_MESSAGE(bad == npos, "conservation violated at index " << bad << " by " << static_cast<double>(worst));
        }
  };
  run("scaled_sign", gc::scaled_sign{});
  run("blockwise_sign{16}", gc::blockwise_sign{.block_size = 16});
  run("onebit{16}", gc::onebit{.block_size = 16});
  run("qsgd{4}", gc::qsgd{.s = 4, .seed = 5});
  run("unbiased_random_k{5}", gc::unbiased_random_k{.k = 5, .seed = 6});
}

// ---------------------------------------------------------------------------------------
// 4. Metrics.

TEST_CASE_TEMPLATE("error_feedback: metrics count steps, elements, bytes and error", T, float, double) {
  const auto run = [&](const char* name, auto proto, bool fixed_k, std::size_t k) {
    using C = decltype(proto);
    for (const std::size_t d : {std::size_t{100}, std::size_t{1000}}) {
      const std::string compressor_label = name;
      CAPTURE(compressor_label);
      CAPTURE(d);
      gc::error_feedback<C, T> ef{proto, d};
      CHECK(ef.metrics().steps == 0);
      CHECK(ef.average_density() == 0.0);
      std::uint64_t elements = 0, bytes = 0;
      double total = 0.0;
      long double total_ld = 0.0L;
      for (int t = 0; t < 20; ++t) {
        const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 40 + static_cast<std::uint64_t>(t));
        const auto& m = ef.compress(gc::exec::seq, std::span<const T>(g), T(0.1));
        elements += gc::sent_elements(m);
        bytes += gc::wire_bytes(m);
        CHECK(gc::wire_bytes(m) == gc::encode(m).size());
        total += gc::detail::squared_norm(ef.error());
        total_ld += gt::squared_norm_ld(ef.error());
        const auto& mt = ef.metrics();
        CHECK(mt.steps == static_cast<std::uint64_t>(t + 1));
        CHECK(mt.elements_sent == elements);
        CHECK(mt.wire_bytes == bytes);
        CHECK(std::bit_cast<std::uint64_t>(mt.total_error) == std::bit_cast<std::uint64_t>(total));
        CHECK(static_cast<double>(std::fabs(static_cast<long double>(mt.total_error) - total_ld)) <=
              1e-12 * static_cast<double>(total_ld));
        CHECK(ef.average_density() ==
              static_cast<double>(elements) / (static_cast<double>(t + 1) * static_cast<double>(d)));
        if (fixed_k) CHECK(ef.average_density() == static_cast<double>(k) / static_cast<double>(d));
      }
      if (std::string(name) == "identity")
        CHECK(total == 0.0);  // identity sends everything: the residual stays 0
      else
        CHECK(total > 0.0);

      // reset zeroes the residual and the metrics, keeps the compressor's state, and the
      // instance then behaves like a fresh one wrapping that compressor.
      const std::uint64_t step_before = step_of(ef.base());
      ef.reset();
      const std::vector<T> zeros(d, T(0));
      CHECK(gt::same_bits(to_vector(ef.error()), zeros));
      check_same_metrics<T>(ef.metrics(), gc::feedback_metrics{});
      CHECK(ef.average_density() == 0.0);
      CHECK(step_of(ef.base()) == step_before);
      gc::error_feedback<C, T> fresh{ef.base(), d};
      const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 1234);
      const auto m1 = ef.compress(gc::exec::seq, std::span<const T>(g), T(0.1));
      const auto m2 = fresh.compress(gc::exec::seq, std::span<const T>(g), T(0.1));
      CHECK(m1 == m2);
      CHECK(gt::same_bits(to_vector(ef.error()), to_vector(fresh.error())));
      check_same_metrics<T>(ef.metrics(), fresh.metrics());
    }
  };
  run("top_k{7}", gc::top_k{.k = 7}, true, 7);
  run("random_k{9}", gc::random_k{.k = 9, .seed = 1}, true, 9);
  run("hard_threshold{0.5}", gc::hard_threshold{.lambda = 0.5}, false, 0);
  run("identity", gc::identity{}, false, 0);
  run("blockwise_sign{16}", gc::blockwise_sign{.block_size = 16}, false, 0);
  run("qsgd{4}", gc::qsgd{.s = 4, .seed = 2}, false, 0);
  run("grid_rounding{0.25}", gc::grid_rounding{.spacing = 0.25}, false, 0);
}

TEST_CASE("error_feedback: average density is 1 for dense messages and 0 for d = 0") {
  gc::error_feedback<gc::scaled_sign, float> ef{gc::scaled_sign{}, 10};
  const std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, 10, 3);
  for (int t = 0; t < 3; ++t) ef.compress(gc::exec::seq, std::span<const float>(g));
  CHECK(ef.average_density() == 1.0);

  gc::error_feedback<gc::top_k, float> empty{gc::top_k{.k = 3}, 0};
  const std::vector<float> none;
  const auto& m = empty.compress(gc::exec::seq, std::span<const float>(none));
  CHECK(m.dim == 0);
  CHECK(m.nnz() == 0);
  CHECK(empty.metrics().steps == 1);
  CHECK(empty.average_density() == 0.0);
}

// ---------------------------------------------------------------------------------------
// 5. Error safety: a failed step changes nothing.

namespace {

template <class C, class T>
struct ef_snapshot {
  std::vector<T> residual;
  gc::feedback_metrics metrics;
  std::uint64_t step;
  gc::payload_t<C, T> message;

  explicit ef_snapshot(const gc::error_feedback<C, T>& ef)
      : residual(to_vector(ef.error())), metrics(ef.metrics()), step(step_of(ef.base())), message(ef.message()) {}

  void check_unchanged(const gc::error_feedback<C, T>& ef) const {
    CHECK(gt::same_bits(to_vector(ef.error()), residual));
    check_same_metrics<T>(ef.metrics(), metrics);
    CHECK(step_of(ef.base()) == step);
    CHECK(ef.message() == message);
  }
};

/// Runs f, which must throw gc::error whose message contains every one of parts.
template <class F>
void check_throws_naming(F&& f, std::initializer_list<std::string> parts) {
  bool threw = false;
  try {
    f();
  } catch (const gc::error& e) {
    threw = true;
    const std::string what = e.what();
    CAPTURE(what);
    CHECK(what.rfind("gradcomp::", 0) == 0);
    for (const std::string& part : parts) {
      CAPTURE(part);
      CHECK(what.find(part) != std::string::npos);
    }
  } catch (...) {
    FAIL("threw something other than gc::error");
    return;
  }
  CHECK_MESSAGE(threw, "expected gc::error");
}

template <class T, class C>
void check_error_safety(const char* name, const C& proto) {
  const std::string compressor_label = name;
  CAPTURE(compressor_label);
  const std::size_t d = 50;
  gc::error_feedback<C, T> ef{proto, d};
  gc::error_feedback<C, T> twin{proto, d};  // sees only the valid calls
  for (int t = 0; t < 3; ++t) {
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 900 + static_cast<std::uint64_t>(t));
    ef.compress(gc::exec::seq, std::span<const T>(g), T(0.5));
    twin.compress(gc::exec::seq, std::span<const T>(g), T(0.5));
  }
  const ef_snapshot<C, T> snap(ef);
  const std::vector<T> good = gt::make_input<T>(gt::input_kind::normal, d, 42);
  gc::payload_t<C, T> out;

  {  // wrong gradient size
    for (const std::size_t n : {std::size_t{0}, d - 1, d + 1}) {
      CAPTURE(n);
      const std::vector<T> g(n, T(1));
      check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g), T(1)); },
                          {"error_feedback", "input size " + std::to_string(n), std::to_string(d)});
      snap.check_unchanged(ef);
      check_throws_naming([&] { gc::compress(gc::exec::seq, ef, g, out); },
                          {"error_feedback", "input size " + std::to_string(n)});
      snap.check_unchanged(ef);
    }
  }
  {  // non-finite scale
    for (const T scale : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                          -std::numeric_limits<T>::infinity()}) {
      CAPTURE(scale);
      check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(good), scale); },
                          {"error_feedback", "scale"});
      snap.check_unchanged(ef);
    }
  }
  {  // the compressor rejects p
    const std::string compressor_name(C::name);
    std::vector<T> nan_g = good;
    nan_g[17] = std::numeric_limits<T>::quiet_NaN();
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(nan_g), T(1)); },
                        {compressor_name, "x[17]", "not finite"});
    snap.check_unchanged(ef);
    check_throws_naming([&] { gc::compress(gc::exec::seq, ef, nan_g, out); }, {compressor_name, "not finite"});
    snap.check_unchanged(ef);

    std::vector<T> inf_g = good;
    inf_g[d - 1] = -std::numeric_limits<T>::infinity();
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(inf_g), T(0.5)); },
                        {compressor_name, "not finite"});
    snap.check_unchanged(ef);

    // Finite g and finite scale whose product overflows: p is infinite.
    std::vector<T> huge = good;
    huge[3] = std::numeric_limits<T>::max();
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(huge), T(4)); }, {compressor_name});
    snap.check_unchanged(ef);
  }

  // After any failures the instance continues exactly like one that never saw them.
  const auto& m1 = ef.compress(gc::exec::seq, std::span<const T>(good), T(0.5));
  const auto& m2 = twin.compress(gc::exec::seq, std::span<const T>(good), T(0.5));
  CHECK(m1 == m2);
  CHECK(gt::same_bits(to_vector(ef.error()), to_vector(twin.error())));
  check_same_metrics<T>(ef.metrics(), twin.metrics());
  CHECK(step_of(ef.base()) == step_of(twin.base()));
}

}  // namespace

TEST_CASE_TEMPLATE("error_feedback: a failed step leaves residual, metrics and step unchanged", T, float, double) {
  check_error_safety<T>("qsgd", gc::qsgd{.s = 8, .seed = 21});
  check_error_safety<T>("grid_rounding", gc::grid_rounding{.spacing = 0.01, .stochastic = true, .seed = 22});
  check_error_safety<T>("grid_rounding nearest", gc::grid_rounding{.spacing = 0.01});
}

TEST_CASE_TEMPLATE("error_feedback: wrong size and bad scale are rejected for every compressor", T, float, double) {
  for_each_compressor([&](const char* name, auto proto) {
    using C = decltype(proto);
    const std::string compressor_label = name;
    CAPTURE(compressor_label);
    const std::size_t d = 20;
    gc::error_feedback<C, T> ef{proto, d};
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 5);
    ef.compress(gc::exec::seq, std::span<const T>(g), T(0.5));
    const ef_snapshot<C, T> snap(ef);
    const std::vector<T> short_g(d - 1, T(1));
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(short_g), T(1)); },
                        {"input size 19", "20"});
    snap.check_unchanged(ef);
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g), std::numeric_limits<T>::quiet_NaN()); },
                        {"scale"});
    snap.check_unchanged(ef);
  });
}

TEST_CASE_TEMPLATE("error_feedback: grid_rounding level overflow leaves the state unchanged", T, float, double) {
  const std::size_t d = 8;
  gc::error_feedback<gc::grid_rounding, T> ef{gc::grid_rounding{.spacing = 1e-3, .seed = 1}, d};
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 8);
  ef.compress(gc::exec::seq, std::span<const T>(g), T(1));
  const ef_snapshot<gc::grid_rounding, T> snap(ef);
  std::vector<T> big = g;
  big[5] = T(1e7);  // 1e7 / 1e-3 = 1e10 > 2^31
  check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(big), T(1)); },
                      {"grid_rounding", "x[5]", "int32"});
  snap.check_unchanged(ef);
}

namespace ef_test_user {

/// A buggy user compressor: its message claims one more dimension than the input, so
/// decompress_add into the residual throws. EF must still leave its state unchanged.
struct wrong_dim_sparsifier {
  template <std::floating_point T>
  using payload_type = gc::sparse_vector<T>;

  template <std::floating_point T>
  void compress(gc::exec::seq_t, std::span<const T> x, gc::sparse_vector<T>& out) const {
    out.reset(x.size() + 1);
    if (!x.empty()) {
      out.indices.push_back(0);
      out.values.push_back(x[0]);
    }
  }
};

}  // namespace ef_test_user

TEST_CASE("error_feedback: a message that cannot be applied to the residual leaves the state unchanged") {
  // Contract (DESIGN.md): "Nothing is half-written: on error, the EF residual is unchanged."
  const std::size_t d = 6;
  gc::error_feedback<ef_test_user::wrong_dim_sparsifier, float> ef{ef_test_user::wrong_dim_sparsifier{}, d};
  const std::vector<float> g = {1, 2, 3, 4, 5, 6};
  const std::vector<float> residual_before = to_vector(ef.error());
  const gc::feedback_metrics metrics_before = ef.metrics();
  CHECK_THROWS_AS(ef.compress(gc::exec::seq, std::span<const float>(g), 1.0f), gc::error);
  CHECK(gt::same_bits(to_vector(ef.error()), residual_before));
  check_same_metrics<float>(ef.metrics(), metrics_before);
}

// ---------------------------------------------------------------------------------------
// 6. error_feedback is itself a compressor.

static_assert(gc::compressor<gc::error_feedback<gc::top_k>, float>);
static_assert(gc::compressor<gc::error_feedback<gc::top_k, double>, double>);
static_assert(gc::compressor<gc::error_feedback<gc::qsgd, float>, float>);
static_assert(std::is_same_v<gc::payload_t<gc::error_feedback<gc::top_k>, float>, gc::sparse_vector<float>>);
static_assert(
    std::is_same_v<gc::payload_t<gc::error_feedback<gc::scaled_sign, double>, double>, gc::sign_vector<double>>);
static_assert(gc::compressor<gc::error_feedback<gc::error_feedback<gc::top_k>>, float>);

TEST_CASE_TEMPLATE("error_feedback: works through gc::compress as a compressor with scale 1", T, float, double) {
  const std::size_t d = 30;
  gc::error_feedback<gc::top_k, T> ef{gc::top_k{.k = 4}, d};
  gc::sparse_vector<T> out;
  for (int t = 0; t < 5; ++t) {
    CAPTURE(t);
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 60 + static_cast<std::uint64_t>(t));
    const std::vector<T> p = reference_input<T>(ef.error(), x, T(1));
    gc::compress(gc::exec::seq, ef, x, out);
    gc::sparse_vector<T> expected;
    gc::compress(gc::exec::seq, gc::top_k{.k = 4}, p, expected);
    CHECK(out == expected);
    CHECK(out.nnz() == 4);
    CHECK(gt::same_bits(to_vector(ef.error()), reference_difference(p, gt::densify<T>(out, d))));
    CHECK(ef.metrics().steps == static_cast<std::uint64_t>(t + 1));
    CHECK(ef.metrics().elements_sent == static_cast<std::uint64_t>(4 * (t + 1)));
  }
  // A span argument works too.
  const std::vector<T> x(d, T(1));
  gc::compress(gc::exec::seq, ef, std::span<const T>(x), out);
  CHECK(ef.metrics().steps == 6);
}

// ---------------------------------------------------------------------------------------
// 7. Save and restore.

namespace {

/// Independent FNV-1a 64 (the checksum the checkpoint format uses over all but its last 8 bytes).
std::uint64_t fnv1a_64(const std::string& bytes, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ULL;
  return h;
}

/// Recomputes the trailing checksum after an edit.
void reseal(std::string& bytes) {
  const std::uint64_t h = fnv1a_64(bytes, bytes.size() - 8);
  for (int b = 0; b < 8; ++b)
    bytes[bytes.size() - 8 + static_cast<std::size_t>(b)] = static_cast<char>((h >> (8 * b)) & 0xff);
}

void put_u32(std::string& bytes, std::size_t at, std::uint32_t v) {
  for (int b = 0; b < 4; ++b) bytes[at + static_cast<std::size_t>(b)] = static_cast<char>((v >> (8 * b)) & 0xff);
}
void put_u64(std::string& bytes, std::size_t at, std::uint64_t v) {
  for (int b = 0; b < 8; ++b) bytes[at + static_cast<std::size_t>(b)] = static_cast<char>((v >> (8 * b)) & 0xff);
}

template <class C, class T>
std::string checkpoint(const gc::error_feedback<C, T>& ef) {
  std::ostringstream out;
  ef.save(out);
  return out.str();
}

template <class C, class T>
void load_from(gc::error_feedback<C, T>& ef, const std::string& bytes) {
  std::istringstream in(bytes);
  ef.load(in);
}

template <class C, class T>
void check_same_state(const gc::error_feedback<C, T>& a, const gc::error_feedback<C, T>& b) {
  CHECK(gt::same_bits(to_vector(a.error()), to_vector(b.error())));
  check_same_metrics<T>(a.metrics(), b.metrics());
  CHECK(step_of(a.base()) == step_of(b.base()));
}

template <class C, class T>
gc::error_feedback<C, T> trained(const C& proto, std::size_t d, int steps, std::uint64_t seed) {
  gc::error_feedback<C, T> ef{proto, d};
  for (int t = 0; t < steps; ++t) {
    const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, seed + static_cast<std::uint64_t>(t));
    ef.compress(gc::exec::seq, std::span<const T>(g), T(0.3));
  }
  return ef;
}

template <class T, class C>
void check_round_trip(const char* name, const C& proto) {
  const std::string compressor_label = name;
  CAPTURE(compressor_label);
  for (const std::size_t d : {std::size_t{0}, std::size_t{1}, std::size_t{13}, std::size_t{1000}}) {
    CAPTURE(d);
    auto source = trained<C, T>(proto, d, 7, 10);
    const std::string bytes = checkpoint(source);
    C fresh_proto = proto;
    gc::error_feedback<C, T> restored{fresh_proto, d};
    load_from(restored, bytes);
    check_same_state(source, restored);
    for (int t = 0; t < 4; ++t) {
      const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 300 + static_cast<std::uint64_t>(t));
      const auto m1 = source.compress(gc::exec::seq, std::span<const T>(g), T(0.3));
      const auto m2 = restored.compress(gc::exec::seq, std::span<const T>(g), T(0.3));
      CHECK(m1 == m2);
    }
    check_same_state(source, restored);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("error_feedback: save and load round-trip", T, float, double) {
  check_round_trip<T>("top_k", gc::top_k{.k = 3});
  check_round_trip<T>("random_k", gc::random_k{.k = 3, .seed = 8});
  check_round_trip<T>("qsgd", gc::qsgd{.s = 2, .seed = 9});
  check_round_trip<T>("grid_rounding", gc::grid_rounding{.spacing = 0.5, .stochastic = true, .seed = 1});
  check_round_trip<T>("blockwise_sign", gc::blockwise_sign{.block_size = 4});
  check_round_trip<T>("identity", gc::identity{});
}

TEST_CASE_TEMPLATE("error_feedback: load rejects mismatched checkpoints and leaves the target unchanged", T, float,
                   double) {
  using other_t = std::conditional_t<std::is_same_v<T, float>, double, float>;
  const std::size_t d = 13;
  const gc::random_k proto{.k = 3, .seed = 4};
  const auto source = trained<gc::random_k, T>(proto, d, 5, 1);
  const std::string good = checkpoint(source);
  // The target has its own, different state, so "unchanged" means something.
  auto target = trained<gc::random_k, T>(proto, d, 2, 50);
  const ef_snapshot<gc::random_k, T> snap(target);
  const auto rejects = [&](const std::string& bytes, std::initializer_list<std::string> parts) {
    check_throws_naming([&] { load_from(target, bytes); }, parts);
    snap.check_unchanged(target);
  };

  SUBCASE("wrong dimension") {
    const auto other = trained<gc::random_k, T>(proto, d + 1, 2, 1);
    rejects(checkpoint(other), {"error_feedback::load", "dimension", std::to_string(d + 1)});
    const auto empty = trained<gc::random_k, T>(proto, 0, 2, 1);
    rejects(checkpoint(empty), {"dimension"});
  }
  SUBCASE("wrong value type") {
    const auto other = trained<gc::random_k, other_t>(proto, d, 2, 1);
    rejects(checkpoint(other), {"value type"});
  }
  SUBCASE("different compressor") {
    // random_k and unbiased_random_k share a payload type but not a checkpoint.
    const auto unbiased = trained<gc::unbiased_random_k, T>(gc::unbiased_random_k{.k = 3, .seed = 4}, d, 2, 1);
    rejects(checkpoint(unbiased), {"compressor"});
    const auto tk = trained<gc::top_k, T>(gc::top_k{.k = 3}, d, 2, 1);
    rejects(checkpoint(tk), {"compressor"});
  }
  SUBCASE("truncated at every length") {
    for (std::size_t n = 0; n < good.size(); ++n) {
      CAPTURE(n);
      rejects(good.substr(0, n), {"error_feedback::load"});
    }
  }
  SUBCASE("a flipped byte anywhere") {
    for (std::size_t i = 0; i < good.size(); ++i)
      for (const unsigned char mask : {0x01, 0x80, 0xff}) {
        CAPTURE(i);
        CAPTURE(static_cast<int>(mask));
        std::string bad = good;
        bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ mask);
        rejects(bad, {"error_feedback::load"});
      }
  }
  SUBCASE("a corrupted body is caught by the checksum") {
    std::string bad = good;
    bad[bad.size() - 8 - 3] ^= 0x10;  // inside the residual
    rejects(bad, {"checksum"});
  }
  SUBCASE("bad magic and bad version, even with a valid checksum") {
    std::string bad_magic = good;
    put_u32(bad_magic, 0, 0x12345678);
    reseal(bad_magic);
    rejects(bad_magic, {"magic"});
    for (const std::uint32_t version : {0u, 2u, 0xffffffffu}) {
      std::string bad_version = good;
      put_u32(bad_version, 4, version);
      reseal(bad_version);
      rejects(bad_version, {"version", std::to_string(version)});
    }
  }
  SUBCASE("invalid fields under a valid checksum") {
    const std::size_t name_len = gc::random_k::name.size();
    const std::size_t metrics_at = 24 + name_len;  // magic, version, value bytes, name length, dim, name
    {
      // Sanity: editing a field and resealing gives a checkpoint that loads, so the
      // rejections below are about the fields, not about the checksum.
      std::string edited = good;
      put_u64(edited, metrics_at, 1234);  // steps
      reseal(edited);
      auto copy = trained<gc::random_k, T>(proto, d, 2, 50);
      load_from(copy, edited);
      CHECK(copy.metrics().steps == 1234);
      CHECK(copy.metrics().elements_sent == source.metrics().elements_sent);
      CHECK(gt::same_bits(to_vector(copy.error()), to_vector(source.error())));
    }
    std::string negative_error = good;
    put_u64(negative_error, metrics_at + 24, std::bit_cast<std::uint64_t>(-1.0));
    reseal(negative_error);
    rejects(negative_error, {"total error"});
    std::string bad_flag = good;
    bad_flag[metrics_at + 32] = 2;  // the "compressor has a step" flag
    reseal(bad_flag);
    rejects(bad_flag, {"error_feedback::load"});
    std::string trailing_name = good;
    put_u32(trailing_name, 12, static_cast<std::uint32_t>(name_len + 1));
    reseal(trailing_name);
    rejects(trailing_name, {"compressor"});
  }
  SUBCASE("a compressor name of the same length") {
    // hard_threshold and blockwise_sign both have 14-character names.
    static_assert(gc::hard_threshold::name.size() == gc::blockwise_sign::name.size());
    const auto ht = trained<gc::hard_threshold, T>(gc::hard_threshold{.lambda = 0.5}, d, 2, 1);
    auto bs = trained<gc::blockwise_sign, T>(gc::blockwise_sign{.block_size = 4}, d, 3, 2);
    const ef_snapshot<gc::blockwise_sign, T> bs_snap(bs);
    check_throws_naming([&] { load_from(bs, checkpoint(ht)); }, {"compressor", "blockwise_sign"});
    bs_snap.check_unchanged(bs);
  }
  SUBCASE("top_k checkpoint into a hard_threshold instance") {
    const auto tk = trained<gc::top_k, T>(gc::top_k{.k = 3}, d, 2, 1);
    auto ht = trained<gc::hard_threshold, T>(gc::hard_threshold{.lambda = 0.5}, d, 3, 2);
    const ef_snapshot<gc::hard_threshold, T> ht_snap(ht);
    check_throws_naming([&] { load_from(ht, checkpoint(tk)); }, {"compressor"});
    ht_snap.check_unchanged(ht);
  }
  // After all the rejections, the good checkpoint still loads.
  load_from(target, good);
  check_same_state(source, target);
}

TEST_CASE("error_feedback: two checkpoints back to back in one stream load in order") {
  const std::size_t d = 21;
  const gc::random_k proto{.k = 4, .seed = 3};
  auto ef = trained<gc::random_k, float>(proto, d, 3, 1);
  std::stringstream stream;
  ef.save(stream);
  const auto first = ef;  // copy of the state saved first
  for (int t = 0; t < 2; ++t) {
    const std::vector<float> g = gt::make_input<float>(gt::input_kind::normal, d, 70 + static_cast<std::uint64_t>(t));
    ef.compress(gc::exec::seq, std::span<const float>(g), 0.3f);
  }
  ef.save(stream);

  gc::error_feedback<gc::random_k, float> a{proto, d}, b{proto, d};
  a.load(stream);
  b.load(stream);
  check_same_state(first, a);
  check_same_state(ef, b);
  CHECK(a.metrics().steps == 3);
  CHECK(b.metrics().steps == 5);
  CHECK(stream.peek() == std::char_traits<char>::eof());
  // A third load finds nothing and changes nothing.
  const ef_snapshot<gc::random_k, float> snap(b);
  check_throws_naming([&] { b.load(stream); }, {"truncated"});
  snap.check_unchanged(b);
}

TEST_CASE("error_feedback: save to a failed stream throws") {
  const auto ef = trained<gc::top_k, float>(gc::top_k{.k = 2}, 10, 2, 1);
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  CHECK_THROWS_AS(ef.save(out), gc::error);
}

TEST_CASE("error_feedback: a checkpoint written by save can always be loaded (or save refuses)") {
  // top_k ranks NaN first, so a NaN in the gradient would be sent and leave NaN - NaN = NaN
  // in the residual. Error feedback rejects that step instead (the residual stays finite),
  // so every state save() can see is one load() accepts.
  const std::size_t d = 8;
  gc::error_feedback<gc::top_k, float> ef{gc::top_k{.k = 2}, d};
  std::vector<float> g(d, 1.0f);
  ef.compress(gc::exec::seq, std::span<const float>(g));
  g[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(ef.compress(gc::exec::seq, std::span<const float>(g)), gc::error);
  std::ostringstream out;
  bool saved = true;
  try {
    ef.save(out);
  } catch (const gc::error&) {
    saved = false;
  }
  CHECK(saved);
  if (saved) {
    gc::error_feedback<gc::top_k, float> restored{gc::top_k{.k = 2}, d};
    CHECK_NOTHROW(load_from(restored, out.str()));
    CHECK(gt::same_bits(to_vector(restored.error()), to_vector(ef.error())));
    CHECK(restored.metrics().steps == ef.metrics().steps);
  }
  // A sum of squares can overflow a double while every entry is finite: total_error is then
  // +Inf, which save writes and load accepts.
  gc::error_feedback<gc::top_k, double> big{gc::top_k{.k = 1}, 2};
  const std::vector<double> huge{1e200, 1e200};
  big.compress(gc::exec::seq, std::span<const double>(huge));
  CHECK(big.metrics().total_error == std::numeric_limits<double>::infinity());
  CHECK(big.error()[1] == 1e200);
  gc::error_feedback<gc::top_k, double> big_restored{gc::top_k{.k = 1}, 2};
  CHECK_NOTHROW(load_from(big_restored, checkpoint(big)));
  check_same_state(big, big_restored);
}

// ---------------------------------------------------------------------------------------
// 8. Error feedback helps: gradient descent on a quadratic through top_k.

TEST_CASE_TEMPLATE("error_feedback: top_k with feedback converges on a quadratic, without it does not", T, float,
                   double) {
  // f(x) = 0.5 ||x - x*||^2, gradient x - x*. Each step sends k = 10 of d = 1000 values.
  // The step size is 0.02 = 2k/d: EF-SGD needs a step of order delta/L = k/d (Stich et al.
  // 2018); with a step of 0.5 the delayed residual overshoots and EF diverges.
  const std::size_t d = 1000, k = 10;
  const T step = T(0.02);
  const std::vector<T> target = gt::make_input<T>(gt::input_kind::normal, d, 2024);
  std::vector<T> x_ef(d, T(0)), x_plain(d, T(0)), g(d);
  gc::error_feedback<gc::top_k, T> ef{gc::top_k{.k = k}, d};
  gc::sparse_vector<T> m;
  std::uint64_t plain_sent = 0;
  for (int t = 0; t < 2000; ++t) {
    for (std::size_t i = 0; i < d; ++i) g[i] = x_ef[i] - target[i];
    gc::decompress_add(ef.compress(gc::exec::seq, std::span<const T>(g), step), x_ef, T(-1));
    for (std::size_t i = 0; i < d; ++i) g[i] = step * (x_plain[i] - target[i]);
    gc::compress(gc::exec::seq, gc::top_k{.k = k}, g, m);
    gc::decompress_add(m, x_plain, T(-1));
    plain_sent += m.sent_elements();
  }
  const auto distance = [&](const std::vector<T>& x) {
    return std::sqrt(static_cast<double>(gt::squared_distance<T>(x, target)));
  };
  const double start = std::sqrt(static_cast<double>(gt::squared_norm_ld<T>(target)));
  const double ef_dist = distance(x_ef), plain_dist = distance(x_plain);
  CAPTURE(start);
  CAPTURE(ef_dist);
  CAPTURE(plain_dist);
  // The same budget: k values per step for both.
  CHECK(ef.metrics().elements_sent == plain_sent);
  CHECK(ef.average_density() == static_cast<double>(k) / static_cast<double>(d));
  CHECK(ef_dist < 1e-3 * start);
  CHECK(plain_dist > 0.2 * start);
  CHECK(ef_dist * 1000 < plain_dist);
}

TEST_CASE_TEMPLATE("error_feedback: undo takes back exactly the last step, once", T, float, double) {
  const std::vector<T> g1{T(1), T(-3), T(0.5), T(2)}, g2{T(-1), T(0.25), T(4), T(0)};
  gc::error_feedback<gc::random_k, T> ef(gc::random_k{.k = 2, .seed = 5}, 4);
  CHECK_THROWS_WITH_AS(ef.undo(), doctest::Contains("no compress call to undo"), gc::error);
  ef.compress(gc::exec::seq, std::span<const T>(g1), T(0.5));
  const std::vector<T> e1(ef.error().begin(), ef.error().end());
  const gc::feedback_metrics m1 = ef.metrics();
  const std::uint64_t step1 = ef.base().step;
  ef.compress(gc::exec::seq, std::span<const T>(g2), T(0.5));
  CHECK(ef.base().step == step1 + 1);
  ef.undo();
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == e1);
  CHECK(ef.metrics().steps == m1.steps);
  CHECK(ef.metrics().elements_sent == m1.elements_sent);
  CHECK(ef.metrics().wire_bytes == m1.wire_bytes);
  CHECK(ef.metrics().total_error == m1.total_error);
  CHECK(ef.base().step == step1);
  CHECK_THROWS_WITH_AS(ef.undo(), doctest::Contains("no compress call to undo"), gc::error);  // only once
  // Redoing the step gives the same message and residual as the first time.
  gc::error_feedback<gc::random_k, T> twin(gc::random_k{.k = 2, .seed = 5}, 4);
  twin.compress(gc::exec::seq, std::span<const T>(g1), T(0.5));
  const auto& again = ef.compress(gc::exec::seq, std::span<const T>(g2), T(0.5));
  const auto& expected = twin.compress(gc::exec::seq, std::span<const T>(g2), T(0.5));
  CHECK(again == expected);
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == std::vector<T>(twin.error().begin(), twin.error().end()));
  // A failed call changes nothing, so undo still takes back the last successful one.
  CHECK_THROWS_AS(ef.compress(gc::exec::seq, std::span<const T>(g1.data(), 3), T(1)), gc::error);
  ef.undo();
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == e1);
  CHECK(ef.base().step == step1);
  // Nothing to undo after a reset or a clear_error.
  ef.compress(gc::exec::seq, std::span<const T>(g1), T(1));
  ef.reset();
  CHECK_THROWS_AS(ef.undo(), gc::error);
  ef.compress(gc::exec::seq, std::span<const T>(g1), T(1));
  ef.clear_error();
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == std::vector<T>(4, T(0)));
  CHECK(ef.metrics().steps == 1);  // clear_error keeps the metrics (reset zeroed them)
  CHECK_THROWS_AS(ef.undo(), gc::error);
}

TEST_CASE("error_feedback: assign_error replaces the residual, keeps metrics and step, and refuses bad input") {
  using T = float;
  gc::error_feedback<gc::top_k, T> ef(gc::top_k{.k = 1}, 4);
  const std::vector<T> g{1, -3, 2, 0.5f};
  ef.compress(gc::exec::seq, std::span<const T>(g), T(1));
  const gc::feedback_metrics m = ef.metrics();
  const std::vector<T> e{0.25f, -1, 0, 7};
  ef.assign_error(std::span<const T>(e));
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == e);
  CHECK(ef.metrics().steps == m.steps);
  CHECK(ef.metrics().total_error == m.total_error);
  CHECK_FALSE(ef.can_undo());
  // The next step starts from the assigned residual: p = e + g, Top-1 sends p[3] = 7.5.
  const auto& msg = ef.compress(gc::exec::seq, std::span<const T>(g), T(1));
  REQUIRE(msg.indices == std::vector<std::uint32_t>{3});
  CHECK(msg.values == std::vector<T>{7.5f});
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == std::vector<T>{1.25f, -4, 2, 0});
  // Wrong length or a non-finite value: refused, nothing changes.
  const std::vector<T> before(ef.error().begin(), ef.error().end());
  CHECK_THROWS_WITH_AS(ef.assign_error(std::span<const T>(e.data(), 3)),
                       doctest::Contains("got 3 values for a residual of dimension 4"), gc::error);
  const std::vector<T> bad{0, std::numeric_limits<T>::quiet_NaN(), 0, 0};
  CHECK_THROWS_WITH_AS(ef.assign_error(std::span<const T>(bad)), doctest::Contains("e[1] = nan is not finite"),
                       gc::error);
  CHECK(std::vector<T>(ef.error().begin(), ef.error().end()) == before);
  CHECK(ef.can_undo());  // the failed assignments left the last step undoable
}

// ---------------------------------------------------------------------------------------
// 9. Non-finite input, failed steps and undo, in-place storage, the aggregation class,
//    canonical checkpoints.

namespace ef_test_user {

/// A seeded sparsifier that, when told to, advances its step and writes part of its message
/// and then throws: what a buggy or failing user compressor may do.
struct failing_sparsifier {
  static constexpr std::string_view name = "failing_sparsifier";
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  bool fail = false;

  template <std::floating_point T>
  using payload_type = gc::sparse_vector<T>;

  template <std::floating_point T>
  void compress(gc::exec::seq_t, std::span<const T> x, gc::sparse_vector<T>& out) {
    out.reset(x.size());
    ++step;
    for (std::size_t i = 0; i < x.size(); i += 2) {
      out.indices.push_back(static_cast<std::uint32_t>(i));
      out.values.push_back(x[i]);
      if (fail && i >= x.size() / 2) throw gc::error("failing_sparsifier: failed half way");
    }
  }
};

/// A sparsifier whose message holds +Inf at index 0: its decode is not finite although p is.
struct inf_sparsifier {
  template <std::floating_point T>
  using payload_type = gc::sparse_vector<T>;

  template <std::floating_point T>
  void compress(gc::exec::seq_t, std::span<const T> x, gc::sparse_vector<T>& out) const {
    out.reset(x.size());
    if (x.empty()) return;
    out.indices.push_back(0);
    out.values.push_back(std::numeric_limits<T>::infinity());
  }
};

}  // namespace ef_test_user

static_assert(gc::seeded_compressor<ef_test_user::failing_sparsifier>);

TEST_CASE_TEMPLATE("error_feedback: undo after a failed compress refuses instead of restoring the failed p", T, float,
                   double) {
  const std::size_t d = 10;
  const std::vector<T> g1 = gt::make_input<T>(gt::input_kind::normal, d, 1);
  const std::vector<T> g2 = gt::make_input<T>(gt::input_kind::normal, d, 2);
  std::vector<T> g3 = g2;
  for (T& v : g3) v = v * T(1e9);  // what a failed step would have left in the residual
  gc::error_feedback<ef_test_user::failing_sparsifier, T> ef{ef_test_user::failing_sparsifier{.seed = 3}, d};
  ef.compress(gc::exec::seq, std::span<const T>(g1), T(0.5));
  ef.compress(gc::exec::seq, std::span<const T>(g2), T(0.5));
  CHECK(ef.can_undo());
  const ef_snapshot<ef_test_user::failing_sparsifier, T> after_two(ef);
  CHECK(after_two.step == 2);

  // The compressor advances its step, writes half a message, and throws.
  ef.base().fail = true;
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const T>(g3), T(1)), doctest::Contains("half way"),
                       gc::error);
  ef.base().fail = false;
  after_two.check_unchanged(ef);  // residual, metrics, step (back to 2) and the last good message
  // The failed call overwrote what undo would restore: undo refuses rather than put p back.
  CHECK_FALSE(ef.can_undo());
  CHECK_THROWS_WITH_AS(ef.undo(), doctest::Contains("no compress call to undo"), gc::error);
  after_two.check_unchanged(ef);
  for (const T v : ef.error()) CHECK(std::fabs(static_cast<double>(v)) < 1e6);

  // The compressor interface's caller-owned payload is not touched by a failed call either.
  gc::sparse_vector<T> out;
  gc::compress(gc::exec::seq, ef, g1, out);
  const gc::sparse_vector<T> good = out;
  ef.base().fail = true;
  CHECK_THROWS_AS(gc::compress(gc::exec::seq, ef, g3, out), gc::error);
  CHECK(out == good);

  // A random compressor whose step is rejected after it drew (NaN in g): its step is back too.
  gc::error_feedback<gc::random_k, T> rk{gc::random_k{.k = 3, .seed = 9}, d};
  rk.compress(gc::exec::seq, std::span<const T>(g1), T(1));
  const ef_snapshot<gc::random_k, T> rk_before(rk);
  std::vector<T> nan_g = g2;
  nan_g[4] = std::numeric_limits<T>::quiet_NaN();
  CHECK_THROWS_AS(rk.compress(gc::exec::seq, std::span<const T>(nan_g), T(1)), gc::error);
  rk_before.check_unchanged(rk);
  CHECK_THROWS_AS(rk.undo(), gc::error);
  // ... and it continues exactly like a twin that never saw the failure.
  gc::error_feedback<gc::random_k, T> twin{gc::random_k{.k = 3, .seed = 9}, d};
  twin.compress(gc::exec::seq, std::span<const T>(g1), T(1));
  CHECK(rk.compress(gc::exec::seq, std::span<const T>(g2), T(1)) ==
        twin.compress(gc::exec::seq, std::span<const T>(g2), T(1)));
  CHECK(gt::same_bits(to_vector(rk.error()), to_vector(twin.error())));
}

TEST_CASE_TEMPLATE("error_feedback: non-finite input is rejected for every compressor and changes nothing", T, float,
                   double) {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  for_each_compressor([&](const char* name, auto proto) {
    using C = decltype(proto);
    const std::string compressor_label = name;
    CAPTURE(compressor_label);
    for (const gc::feedback_storage storage : {gc::feedback_storage::double_buffered, gc::feedback_storage::in_place}) {
      CAPTURE(static_cast<int>(storage));
      const std::size_t d = 40;
      gc::error_feedback<C, T> ef{proto, d, storage};
      gc::error_feedback<C, T> twin{proto, d, storage};  // sees only the valid calls
      for (int t = 0; t < 2; ++t) {
        const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 70 + static_cast<std::uint64_t>(t));
        ef.compress(gc::exec::seq, std::span<const T>(g), T(0.5));
        twin.compress(gc::exec::seq, std::span<const T>(g), T(0.5));
      }
      const ef_snapshot<C, T> snap(ef);
      for (const T special : {inf, -inf, nan}) {
        CAPTURE(special);
        for (const std::size_t at : {std::size_t{0}, std::size_t{17}, d - 1}) {
          std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 5);
          g[at] = special;
          // The library's quantizers reject it themselves; everything else is rejected by
          // error feedback, naming the entry.
          check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g), T(0.5)); },
                              {"x[" + std::to_string(at) + "]", "not finite"});
          snap.check_unchanged(ef);
          check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g), T(1)); }, {"not finite"});
          snap.check_unchanged(ef);
        }
      }
      const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 6);
      CHECK(ef.compress(gc::exec::seq, std::span<const T>(g), T(0.5)) ==
            twin.compress(gc::exec::seq, std::span<const T>(g), T(0.5)));
      CHECK(gt::same_bits(to_vector(ef.error()), to_vector(twin.error())));
      check_same_metrics<T>(ef.metrics(), twin.metrics());
      for (const T v : ef.error()) CHECK(std::isfinite(v));
    }
  });
}

TEST_CASE_TEMPLATE("error_feedback: an overflowing p or a message that decodes to Inf is rejected", T, float, double) {
  const std::size_t d = 6;
  const T big = std::numeric_limits<T>::max();
  {  // e + scale * g overflows with finite e, g and scale
    gc::error_feedback<gc::top_k, T> ef{gc::top_k{.k = 1}, d};
    const std::vector<T> g{T(1), T(-2), big, T(0.5), T(0), T(3)};
    ef.compress(gc::exec::seq, std::span<const T>(g), T(1));  // sends big at 2
    const ef_snapshot<gc::top_k, T> snap(ef);
    const std::vector<T> g3{T(1), T(-2), T(1), T(0.5), T(0), big};
    // residual[5] = 3 + 2 * max overflows: rejected, naming p[5].
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g3), T(2)); },
                        {"error_feedback<top_k>", "p[5]", "overflows"});
    snap.check_unchanged(ef);
  }
  {  // finite p, but the message decodes to +Inf: the new residual is -Inf at 0
    gc::error_feedback<ef_test_user::inf_sparsifier, T> ef{ef_test_user::inf_sparsifier{}, d};
    const std::vector<T> g(d, T(1));
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g), T(1)); },
                        {"error_feedback", "not finite at [0]", "decodes to a non-finite value"});
    CHECK(ef.metrics().steps == 0);
    for (const T v : ef.error()) CHECK(v == T(0));
  }
}

TEST_CASE_TEMPLATE("error_feedback: in_place storage gives the double-buffered results with one buffer", T, float,
                   double) {
  for_each_compressor([&](const char* name, auto proto) {
    using C = decltype(proto);
    const std::string compressor_label = name;
    CAPTURE(compressor_label);
    for (const std::size_t d : {std::size_t{1}, std::size_t{65}, std::size_t{1000}}) {
      CAPTURE(d);
      gc::error_feedback<C, T> twice{proto, d};
      gc::error_feedback<C, T> once{proto, d, gc::feedback_storage::in_place};
      CHECK(twice.storage() == gc::feedback_storage::double_buffered);
      CHECK(once.storage() == gc::feedback_storage::in_place);
      for (int t = 0; t < 6; ++t) {
        CAPTURE(t);
        const std::vector<T> g =
            gt::make_input<T>(gt::all_input_kinds[static_cast<std::size_t>(t) % std::size(gt::all_input_kinds)], d,
                              d + static_cast<std::uint64_t>(t));
        const T scale = t % 2 ? T(0.3) : T(1);
        const auto& a = twice.compress(gc::exec::seq, std::span<const T>(g), scale);
        const auto& b = once.compress(gc::exec::seq, std::span<const T>(g), scale);
        CHECK(a == b);
        REQUIRE(gt::same_bits(to_vector(twice.error()), to_vector(once.error())));
        check_same_metrics<T>(twice.metrics(), once.metrics());
        CHECK(step_of(twice.base()) == step_of(once.base()));
      }
      CHECK_FALSE(once.can_undo());
      CHECK_THROWS_WITH_AS(once.undo(), doctest::Contains("in place"), gc::error);
    }
  });
}

TEST_CASE_TEMPLATE("error_feedback: in_place storage clears the residual when the step fails inside", T, float,
                   double) {
  const std::size_t d = 8;
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 8);
  {  // grid_rounding rejects a level that does not fit in int32, after p was formed in place
    gc::error_feedback<gc::grid_rounding, T> ef{gc::grid_rounding{.spacing = 1e-3, .seed = 1}, d,
                                                gc::feedback_storage::in_place};
    ef.compress(gc::exec::seq, std::span<const T>(g), T(1));
    const gc::feedback_metrics metrics = ef.metrics();
    const std::uint64_t step = ef.base().step;
    std::vector<T> big = g;
    big[5] = T(1e7);
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(big), T(1)); },
                        {"grid_rounding", "x[5]", "cleared to zero"});
    for (const T v : ef.error()) CHECK(v == T(0));
    check_same_metrics<T>(ef.metrics(), metrics);
    CHECK(ef.base().step == step);
    ef.compress(gc::exec::seq, std::span<const T>(g), T(1));  // and it carries on
    CHECK(ef.metrics().steps == metrics.steps + 1);
  }
  {  // e + scale * g overflows in place
    gc::error_feedback<gc::top_k, T> ef{gc::top_k{.k = 1}, d, gc::feedback_storage::in_place};
    ef.compress(gc::exec::seq, std::span<const T>(g), T(1));
    std::vector<T> huge = g;
    huge[2] = std::numeric_limits<T>::max();
    huge[6] = std::numeric_limits<T>::max();
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(huge), T(4)); },
                        {"error_feedback<top_k>", "not finite", "cleared to zero"});
    for (const T v : ef.error()) CHECK(v == T(0));
    CHECK(ef.metrics().steps == 1);
  }
  {  // checks that need nothing overwritten leave everything as it was
    gc::error_feedback<gc::top_k, T> ef{gc::top_k{.k = 2}, d, gc::feedback_storage::in_place};
    ef.compress(gc::exec::seq, std::span<const T>(g), T(0.5));
    const ef_snapshot<gc::top_k, T> snap(ef);
    ef.base().k = 0;
    check_throws_naming([&] { ef.compress(gc::exec::seq, std::span<const T>(g), T(1)); }, {"k must be >= 1"});
    snap.check_unchanged(ef);
  }
  CHECK_THROWS_WITH_AS((gc::error_feedback<gc::top_k, T>{gc::top_k{.k = 2}, d, static_cast<gc::feedback_storage>(7)}),
                       doctest::Contains("storage 7"), gc::error);
}

// The aggregation class is a compile-time fact of each compressor; error feedback forwards it.
static_assert(gc::aggregation_of_v<gc::top_k> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::hard_threshold> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::scaled_sign> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::blockwise_sign> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::qsgd> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::grid_rounding> == gc::aggregation_class::gather);
static_assert(gc::aggregation_of_v<gc::random_k> == gc::aggregation_class::allreduce);
static_assert(gc::aggregation_of_v<gc::unbiased_random_k> == gc::aggregation_class::allreduce);
static_assert(gc::aggregation_of_v<gc::identity> == gc::aggregation_class::allreduce);
static_assert(gc::aggregation_of_v<const gc::random_k&> == gc::aggregation_class::allreduce);
static_assert(gc::aggregation_of_v<gc::error_feedback<gc::random_k>> == gc::aggregation_class::allreduce);
static_assert(gc::aggregation_of_v<gc::error_feedback<gc::top_k>> == gc::aggregation_class::gather);
// A user compressor that declares nothing is gathered (always correct).
static_assert(gc::aggregation_of_v<ef_test_user::wrong_dim_sparsifier> == gc::aggregation_class::gather);

namespace {

/// A version-1 checkpoint written field by field, independently of the library's writer.
template <class T>
std::string handmade_checkpoint(const std::string& name, std::uint64_t steps, std::uint64_t sent, std::uint64_t bytes,
                                double total_error, std::uint8_t flag, std::uint64_t step,
                                const std::vector<T>& residual) {
  std::string out;
  const auto put = [&](auto v, int n) {
    for (int b = 0; b < n; ++b) out.push_back(static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * b)) & 0xff));
  };
  put(0x46454347u, 4);
  put(1u, 4);
  put(sizeof(T), 4);
  put(name.size(), 4);
  put(residual.size(), 8);
  out += name;
  put(steps, 8);
  put(sent, 8);
  put(bytes, 8);
  put(std::bit_cast<std::uint64_t>(total_error), 8);
  put(flag, 1);
  put(step, 8);
  for (const T v : residual) put(bits_of(v), static_cast<int>(sizeof(T)));
  out.append(8, '\0');
  reseal(out);
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE("error_feedback: checkpoints of version 1 load, and fields with one valid value are checked", T,
                   float, double) {
  const std::vector<T> residual{T(0.5), T(-1), T(0), T(2)};
  const std::size_t d = residual.size();
  // The format is unchanged: a checkpoint written by hand loads, and save writes the same bytes.
  {
    const std::string hand = handmade_checkpoint<T>("top_k", 3, 6, 120, 1.25, 0, 0, residual);
    gc::error_feedback<gc::top_k, T> ef{gc::top_k{.k = 2}, d};
    load_from(ef, hand);
    CHECK(to_vector(ef.error()) == residual);
    CHECK(ef.metrics().steps == 3);
    CHECK(ef.metrics().elements_sent == 6);
    CHECK(ef.metrics().wire_bytes == 120);
    CHECK(ef.metrics().total_error == 1.25);
    CHECK(checkpoint(ef) == hand);
    const std::string seeded = handmade_checkpoint<T>("random_k", 3, 6, 120, 1.25, 1, 42, residual);
    gc::error_feedback<gc::random_k, T> rk{gc::random_k{.k = 2, .seed = 1}, d};
    load_from(rk, seeded);
    CHECK(rk.base().step == 42);
    CHECK(checkpoint(rk) == seeded);
  }
  gc::error_feedback<gc::top_k, T> target{gc::top_k{.k = 2}, d};
  target.compress(gc::exec::seq, std::span<const T>(residual), T(1));
  const ef_snapshot<gc::top_k, T> snap(target);
  const auto rejects = [&](const std::string& bytes, std::initializer_list<std::string> parts) {
    check_throws_naming([&] { load_from(target, bytes); }, parts);
    snap.check_unchanged(target);
  };
  // The compressor step of a compressor without one must be 0, and the flag must say so.
  rejects(handmade_checkpoint<T>("top_k", 3, 6, 120, 1.25, 0, 5, residual), {"compressor step 5 must be 0"});
  rejects(handmade_checkpoint<T>("top_k", 3, 6, 120, 1.25, 1, 0, residual), {"compressor state flag 1"});
  {
    gc::error_feedback<gc::random_k, T> rk{gc::random_k{.k = 2, .seed = 1}, d};
    check_throws_naming([&] { load_from(rk, handmade_checkpoint<T>("random_k", 3, 6, 120, 1.25, 0, 5, residual)); },
                        {"compressor state flag 0"});
  }
  // A total error that is not a sum of squares.
  rejects(handmade_checkpoint<T>("top_k", 3, 6, 120, std::numeric_limits<double>::quiet_NaN(), 0, 0, residual),
          {"total error"});
  rejects(handmade_checkpoint<T>("top_k", 3, 6, 120, -0.5, 0, 0, residual), {"total error"});
  // Metrics of no steps are zero.
  rejects(handmade_checkpoint<T>("top_k", 0, 6, 0, 0.0, 0, 0, residual), {"0 steps"});
  rejects(handmade_checkpoint<T>("top_k", 0, 0, 16, 0.0, 0, 0, residual), {"0 steps"});
  rejects(handmade_checkpoint<T>("top_k", 0, 0, 0, 1.0, 0, 0, residual), {"0 steps"});
  // A residual entry that error feedback could never hold.
  for (const T special : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    std::vector<T> bad = residual;
    bad[2] = special;
    rejects(handmade_checkpoint<T>("top_k", 3, 6, 120, 1.25, 0, 0, bad), {"residual[2]", "not finite"});
  }
  // +Inf total error is a state save can write (see above): accepted.
  CHECK_NOTHROW(load_from(target, handmade_checkpoint<T>("top_k", 3, 6, 120, std::numeric_limits<double>::infinity(),
                                                         0, 0, residual)));
}

// =======================================================================================
// 16-bit gradients

namespace {

/// A gradient in H: normal values, with exact ties, zeros of both signs and (in H) denormals.
template <gc::half_precision H>
std::vector<H> half_gradient(std::size_t d, std::uint64_t seed) {
  const std::vector<float> x = gt::make_input<float>(gt::input_kind::normal, d, seed);
  std::vector<H> h(d);
  for (std::size_t i = 0; i < d; ++i) h[i] = gc::to_half<H>(x[i] * (i % 7 == 0 ? 1e-6f : 0.1f));
  if (d > 4) {
    h[1] = H{0x8000};  // -0
    h[2] = H{0x0001};  // the smallest denormal
    h[3] = h[4];       // a tie
  }
  return h;
}

template <gc::half_precision H>
std::vector<float> widened(const std::vector<H>& h) {
  std::vector<float> f(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) f[i] = gc::to_float(h[i]);
  return f;
}

template <gc::half_precision H, class C>
void check_half_steps(const C& c, std::size_t d, gc::feedback_storage storage) {
  gc::error_feedback<C, float> half_ef(c, d, storage), float_ef(c, d, storage);
  for (std::uint64_t step = 0; step < 3; ++step) {
    CAPTURE(step);
    const std::vector<H> g = half_gradient<H>(d, 17 * step + d);
    const std::vector<float> w = widened(g);
    const float scale = step == 1 ? 0.25f : 1.0f;
    const auto& a = half_ef.compress(gc::exec::seq, std::span<const H>(g), scale);
    const auto& b = float_ef.compress(gc::exec::seq, std::span<const float>(w), scale);
    CHECK(gc::encode(a) == gc::encode(b));
    CHECK(gt::same_bits(std::vector<float>(half_ef.error().begin(), half_ef.error().end()),
                        std::vector<float>(float_ef.error().begin(), float_ef.error().end())));
    CHECK(half_ef.metrics().total_error == float_ef.metrics().total_error);
  }
}

}  // namespace

TEST_CASE_TEMPLATE("error_feedback: a 16-bit gradient gives the bits of the step on its float32 widening", H,
                   gc::bfloat16, gc::float16) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{9}, std::size_t{4097}, std::size_t{20000}}) {
    CAPTURE(d);
    for (const auto storage : {gc::feedback_storage::double_buffered, gc::feedback_storage::in_place}) {
      check_half_steps<H>(gc::top_k{.k = d / 10 + 1}, d, storage);
      check_half_steps<H>(gc::hard_threshold{.lambda = 0.05}, d, storage);
      check_half_steps<H>(gc::scaled_sign{}, d, storage);
      check_half_steps<H>(gc::random_k{.k = d / 3 + 1, .seed = 5}, d, storage);
      check_half_steps<H>(gc::qsgd{.s = 15, .seed = 3}, d, storage);
    }
  }
}

TEST_CASE_TEMPLATE("error_feedback: a non-finite or mis-sized 16-bit gradient is rejected, nothing changes", H,
                   gc::bfloat16, gc::float16) {
  const std::size_t d = 100;
  gc::error_feedback<gc::top_k, float> ef(gc::top_k{.k = 5}, d);
  std::vector<H> g = half_gradient<H>(d, 1);
  ef.compress(gc::exec::seq, std::span<const H>(g));
  const std::vector<float> before(ef.error().begin(), ef.error().end());
  g[42] = std::is_same_v<H, gc::bfloat16> ? H{0x7f80} : H{0x7c00};  // +Inf
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const H>(g)), doctest::Contains("x[42] = inf"), gc::error);
  g[42] = std::is_same_v<H, gc::bfloat16> ? H{0x7fc0} : H{0x7e00};  // NaN
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const H>(g)), doctest::Contains("x[42]"), gc::error);
  const std::vector<H> short_g(d - 1);
  CHECK_THROWS_WITH_AS(ef.compress(gc::exec::seq, std::span<const H>(short_g)),
                       doctest::Contains("input size 99 does not match the residual dimension 100"), gc::error);
  CHECK(gt::same_bits(std::vector<float>(ef.error().begin(), ef.error().end()), before));
}

// decompress_add on exec::par for every payload type (and identity's copy): bit-identical
// to the payloads' sequential loops, with the same errors and nothing written on error.
#include "par_compare.hpp"

#include <cstdint>
#include <limits>
#include <span>

using namespace gradcomp_par_test;

namespace {

/// dense0 + alpha * decode(p) on seq, and on every policy under every thread count: the
/// same bits (or both NaN). alpha = -1 is error feedback's; 0.3 rounds the product.
template <class T, class P>
void check_decompress(const P& p, const std::vector<T>& dense0) {
  for (const T alpha : {T(-1), T(0.3)}) {
    CAPTURE(alpha);
    std::vector<T> ref = dense0;
    p.decompress_add(std::span<T>(ref), alpha);
    std::vector<T> got;
    for_each_thread_count([&] {
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        got = dense0;
        gc::decompress_add(policy, p, got, alpha);
        REQUIRE(gt::same_result(ref, got));
      }
    });
  }
}

/// The error seq raises for p and dense; par raises the same one and writes nothing.
template <class T, class P>
void check_decompress_error(const P& p, std::size_t dense_size) {
  const std::vector<T> dense0 = gt::make_input<T>(gt::input_kind::normal, dense_size, 77);
  for (const auto& policy : policies()) {
    CAPTURE(policy_name(policy));
    std::vector<T> seq_dense = dense0, par_dense = dense0;
    check_same_error([&] { p.decompress_add(std::span<T>(seq_dense), T(1)); },
                     [&] { gc::decompress_add(policy, p, par_dense, T(1)); });
    CHECK(gt::same_bits(par_dense, dense0));
  }
}

/// A sparse payload over [0, d) with n entries whose indices are valid but may repeat and
/// go down (allowed by decompress_add, though no compressor makes them).
template <class T>
gc::sparse_vector<T> unordered_sparse(std::size_t d, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  gc::sparse_vector<T> p;
  p.dim = d;
  p.indices.resize(n);
  for (auto& i : p.indices) i = static_cast<std::uint32_t>(rng() % d);
  p.values = gt::make_input<T>(gt::input_kind::normal, n, seed + 1);
  return p;
}

}  // namespace

TEST_CASE_TEMPLATE("par decompress_add: every payload bit-identical to seq", T, GRADCOMP_PAR_FLOATS) {
  for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::with_zeros, gt::input_kind::denormals}) {
    for (const std::size_t d : par_sizes()) {
      const std::string kind_name = gt::to_string(kind);
      CAPTURE(kind_name);
      CAPTURE(d);
      std::vector<T> x = gt::make_input<T>(kind, d, d + 21);
      std::vector<T> dense0 = gt::make_input<T>(gt::input_kind::normal, d, d + 22);
      if (d % 3 == 0) {
        place_specials(x, d, 1 + d / 1000);
        place_specials(dense0, d + 1, 1 + d / 2000);
      }
      {
        gc::sparse_vector<T> p;
        for (const double lambda : {0.0, 0.5, 2.0}) {
          gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = lambda}, x, p);
          check_decompress(p, dense0);
        }
      }
      {
        gc::seeded_sparse_vector<T> p;
        for (const std::size_t k : {d / 50 + 1, d / 2 + 1, d + 1}) {
          gc::compress(gc::exec::seq, gc::unbiased_random_k{.k = k, .seed = d}, x, p);
          check_decompress(p, dense0);
        }
      }
      {
        gc::sign_vector<T> p;
        gc::compress(gc::exec::seq, gc::scaled_sign{}, x, p);
        check_decompress(p, dense0);
        for (const std::size_t b : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{5000}, d + 1}) {
          if (b == 1 && d > 70000) continue;  // slow on seq, and nothing new
          CAPTURE(b);
          gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = b}, x, p);
          check_decompress(p, dense0);
        }
      }
      {
        gc::two_level_vector<T> p;
        for (const std::size_t b : {std::size_t{7}, std::size_t{5000}, gc::onebit::whole}) {
          CAPTURE(b);
          gc::compress(gc::exec::seq, gc::onebit{.block_size = b}, x, p);
          check_decompress(p, dense0);
        }
      }
      if (d % 3 != 0) {  // quantizers reject NaN and Inf
        gc::quantized_vector<T> p;
        gc::compress(gc::exec::seq, gc::qsgd{.s = 7, .seed = d}, x, p);
        check_decompress(p, dense0);
        gc::compress(gc::exec::seq, gc::grid_rounding{.spacing = 0.01}, x, p);
        check_decompress(p, dense0);
      }
      {
        gc::dense_vector<T> p;
        gc::compress(gc::exec::seq, gc::identity{}, x, p);
        check_decompress(p, dense0);
      }
      if (d % 3 != 0) {  // the casts, natural compression and max-min reject NaN and Inf
        gc::float_code_vector<T> c;
        gc::compress(gc::exec::seq, gc::float16_cast{}, x, c);
        check_decompress(c, dense0);
        gc::compress(gc::exec::seq, gc::bfloat16_cast{}, x, c);
        check_decompress(c, dense0);
        gc::compress(gc::exec::seq, gc::natural_compression{.seed = d}, x, c);
        check_decompress(c, dense0);
        gc::bucket_quantized_vector<T> q;
        for (const std::size_t b : {std::size_t{7}, std::size_t{1024}}) {
          gc::compress(gc::exec::seq, gc::maxmin_quantizer{.bits = 8, .bucket_size = b, .seed = d}, x, q);
          check_decompress(q, dense0);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("par decompress_add: float code, bucket and two-level payloads reject bad shapes as seq does", T,
                   GRADCOMP_PAR_FLOATS) {
  const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, 70001, 5);
  gc::float_code_vector<T> c;
  gc::compress(gc::exec::seq, gc::float16_cast{}, x, c);
  check_decompress_error<T>(c, x.size() + 1);  // dense of the wrong size
  c.codes.pop_back();
  check_decompress_error<T>(c, x.size());  // a code short
  gc::bucket_quantized_vector<T> q;
  gc::compress(gc::exec::seq, gc::maxmin_quantizer{.bits = 4, .bucket_size = 100, .seed = 1}, x, q);
  check_decompress_error<T>(q, x.size() - 1);
  q.units.pop_back();
  check_decompress_error<T>(q, x.size());  // a bucket's unit missing
  gc::two_level_vector<T> t;
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 100}, x, t);
  check_decompress_error<T>(t, x.size() + 1);
  t.highs.pop_back();
  check_decompress_error<T>(t, x.size());  // a block's high missing
}

TEST_CASE_TEMPLATE("par decompress_add: hand-built payloads with repeated or descending indices add like seq", T,
                   GRADCOMP_PAR_FLOATS) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{100}, std::size_t{1000000}}) {
    for (const std::size_t n : {std::size_t{3}, std::size_t{20000}, std::size_t{300000}}) {
      CAPTURE(d);
      CAPTURE(n);
      const std::vector<T> dense0 = gt::make_input<T>(gt::input_kind::normal, d, 5);
      check_decompress(unordered_sparse<T>(d, n, d + n), dense0);
    }
  }
  // Ascending everywhere except at one place: a repeat right at a chunk boundary, or a
  // step down in the last entry.
  const std::size_t d = 1 << 20;
  const std::vector<T> dense0 = gt::make_input<T>(gt::input_kind::normal, d, 6);
  gc::sparse_vector<T> p;
  p.dim = d;
  for (std::uint32_t i = 0; i < d; i += 3) p.indices.push_back(i);
  p.values = gt::make_input<T>(gt::input_kind::integers, p.indices.size(), 7);
  check_decompress(p, dense0);
  for (const std::size_t at : {std::size_t{1}, std::size_t{16384}, std::size_t{16385}, p.indices.size() - 1}) {
    CAPTURE(at);
    gc::sparse_vector<T> q = p;
    q.indices[at] = q.indices[at - 1];
    check_decompress(q, dense0);
    q.indices[at] = q.indices[at - 1] - (q.indices[at - 1] > 0 ? 1 : 0);
    check_decompress(q, dense0);
  }
  // The same for the seeded payload, whose indices are also only checked on decode.
  gc::seeded_sparse_vector<T> s;
  s.dim = d;
  s.indices = p.indices;
  s.values = p.values;
  s.indices[40000] = s.indices[39999];
  check_decompress(s, dense0);
}

TEST_CASE_TEMPLATE("par decompress_add: errors match seq and write nothing", T, GRADCOMP_PAR_FLOATS) {
  using u64 = std::uint64_t;
  for (const std::size_t d : {std::size_t{10}, std::size_t{300001}}) {
    CAPTURE(d);
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::normal, d, 8);
    // Dense size mismatch, every payload type.
    {
      gc::sparse_vector<T> p;
      gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.1}, x, p);
      check_decompress_error<T>(p, d + 1);
      check_decompress_error<T>(p, d - 1);
      gc::seeded_sparse_vector<T> s;
      gc::compress(gc::exec::seq, gc::random_k{.k = d / 2}, x, s);
      check_decompress_error<T>(s, d + 1);
      gc::sign_vector<T> g;
      gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = 64}, x, g);
      check_decompress_error<T>(g, d - 1);
      gc::quantized_vector<T> q;
      gc::compress(gc::exec::seq, gc::qsgd{.s = 3}, x, q);
      check_decompress_error<T>(q, d + 1);
      gc::dense_vector<T> v;
      gc::compress(gc::exec::seq, gc::identity{}, x, v);
      check_decompress_error<T>(v, d - 1);
    }
    // Sparse indices out of range, at the start, the middle or the end, with a second bad
    // one later: the first is named, and nothing is added even for the good ones.
    for (const std::size_t at : {std::size_t{0}, d / 2, d - 2}) {
      CAPTURE(at);
      gc::sparse_vector<T> p;
      p.dim = d;
      for (std::uint32_t i = 0; i + 1 < d; ++i) p.indices.push_back(i);
      p.values.assign(p.indices.size(), T(1));
      p.indices[at] = static_cast<std::uint32_t>(d + at);
      if (at + 1 < p.indices.size()) p.indices.back() = 0xffffffffu;
      check_decompress_error<T>(p, d);
      gc::seeded_sparse_vector<T> s;
      s.dim = d;
      s.indices = p.indices;
      s.values = p.values;
      check_decompress_error<T>(s, d);
    }
    {
      gc::sparse_vector<T, u64> p;  // an index that would wrap to a valid one in 32 bits
      p.dim = d;
      for (u64 i = 0; i < d; i += 2) p.indices.push_back(i);
      p.indices[p.indices.size() / 2] = (u64{1} << 32) + 1;
      p.values.assign(p.indices.size(), T(2));
      check_decompress_error<T>(p, d);
    }
    {
      gc::sparse_vector<T> p;  // more indices than values, and the other way round
      p.dim = d;
      for (std::uint32_t i = 0; i < d; ++i) p.indices.push_back(i);
      p.values.assign(d - 1, T(1));
      check_decompress_error<T>(p, d);
      p.values.assign(d + 1, T(1));
      check_decompress_error<T>(p, d);
    }
    {
      gc::sign_vector<T> g;
      g.reset(d, 4);
      g.scales.pop_back();  // one scale short
      check_decompress_error<T>(g, d);
      g.reset(d, 4);
      g.negative.push_back(0);  // one sign word too many
      check_decompress_error<T>(g, d);
      g.reset(d, 4);
      g.block_size = 0;
      check_decompress_error<T>(g, d);
    }
    {
      gc::quantized_vector<T> q;
      gc::compress(gc::exec::seq, gc::qsgd{.s = 3}, x, q);
      q.levels.pop_back();
      check_decompress_error<T>(q, d);
    }
  }
}

TEST_CASE_TEMPLATE("par identity: the message is x, bit for bit", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : par_sizes()) {
      CAPTURE(d);
      std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, d);
      place_specials(x, d, 1 + d / 100);
      for (const auto& policy : policies()) {
        CAPTURE(policy_name(policy));
        gc::dense_vector<T> out;
        out.values.assign(d + 1, T(3));  // wrong size
        gc::compress(policy, gc::identity{}, x, out);
        CHECK(gt::same_bits(out.values, x));
        out.values.assign(d, T(3));  // right size: the parallel copy
        gc::compress(policy, gc::identity{}, x, out);
        CHECK(gt::same_bits(out.values, x));
      }
    }
  });
}

TEST_CASE_TEMPLATE("par error_feedback<identity>: bit-identical to seq over several steps", T, GRADCOMP_PAR_FLOATS) {
  for_each_thread_count([] {
    for (const std::size_t d : feedback_sizes()) {
      for (const auto& policy : policies()) {
        CAPTURE(d);
        CAPTURE(policy_name(policy));
        check_feedback_steps<T>(gc::identity{}, d, policy);
      }
    }
  });
}

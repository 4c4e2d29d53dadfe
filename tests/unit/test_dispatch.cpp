// Unit tests for the customisation points of include/gradcomp/compress.hpp (gc::compress,
// gc::decompress_add, gc::sent_elements, gc::wire_bytes, gc::encode, gc::decode,
// gc::decode_into), user-defined policies, kernels and compressors, the concepts, and the
// version macros.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <gradcomp/gradcomp.hpp>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

// ---------------------------------------------------------------------------------------
// User-defined policies, kernels, a compressor and its payload.

namespace gradcomp_dispatch_test {

/// How often each user hook ran.
struct call_counts {
  int kernel_top_k = 0;     // compress_with(kernel_policy, top_k, float)
  int kernel_prefix = 0;    // compress_with(kernel_policy, take_prefix, double)
  int member_prefix = 0;    // take_prefix::compress(kernel_policy, ...)
  int member_fallback = 0;  // take_prefix::compress(exec::seq, ...)
};
inline call_counts calls;

/// A policy with no kernels at all: everything runs on its fallback, exec::seq.
struct plain_policy {
  gc::exec::seq_t fallback() const { return gc::exec::seq; }
};

/// A policy with a kernel for top_k on float (found by ADL), and the same fallback.
struct kernel_policy {
  gc::exec::seq_t fallback() const { return gc::exec::seq; }
};

/// A payload of the user's own: the first `values.size()` entries of a vector of dimension
/// dim. On the wire: u64 dim, u64 count, then count little-endian values.
template <std::floating_point T>
struct prefix_vector {
  using value_type = T;

  std::size_t dim = 0;
  std::vector<T> values;

  void decompress_add(std::span<T> dense, T alpha = T(1)) const {
    if (dense.size() != dim) throw gc::error("prefix_vector::decompress_add: dense size mismatch");
    for (std::size_t i = 0; i < values.size(); ++i) dense[i] += alpha * values[i];
  }
  std::size_t sent_elements() const noexcept { return values.size(); }
  std::size_t wire_bytes() const noexcept { return 16 + values.size() * sizeof(T); }

  std::size_t encode_to(std::span<std::byte> dst) const {
    if (dst.size() < wire_bytes()) throw gc::error("prefix_vector::encode_to: destination too small");
    const std::uint64_t header[2] = {dim, values.size()};
    std::memcpy(dst.data(), header, 16);
    if (!values.empty()) std::memcpy(dst.data() + 16, values.data(), values.size() * sizeof(T));
    return wire_bytes();
  }

  void decode_from(std::span<const std::byte> src) {
    std::uint64_t header[2];
    if (src.size() < 16) throw gc::error("prefix_vector::decode_from: truncated header");
    std::memcpy(header, src.data(), 16);
    if (header[1] > header[0]) throw gc::error("prefix_vector::decode_from: count exceeds dim");
    if (src.size() != 16 + header[1] * sizeof(T)) throw gc::error("prefix_vector::decode_from: wrong length");
    std::vector<T> v(header[1]);
    if (!v.empty()) std::memcpy(v.data(), src.data() + 16, v.size() * sizeof(T));
    dim = header[0];
    values = std::move(v);
  }

  friend bool operator==(const prefix_vector&, const prefix_vector&) = default;
};

/// A user-defined compressor: sends the first n entries.
struct take_prefix {
  std::size_t n = 1;

  template <std::floating_point T>
  using payload_type = prefix_vector<T>;

  double delta(std::size_t d) const { return d == 0 ? 1.0 : double(std::min(n, d)) / double(d); }

  template <std::floating_point T>
  void compress(gc::exec::seq_t, std::span<const T> x, prefix_vector<T>& out) const {
    ++calls.member_fallback;
    out.dim = x.size();
    out.values.assign(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(std::min(n, x.size())));
  }

  /// Its own member kernel for kernel_policy (ranks below compress_with, above fallback).
  template <std::floating_point T>
  void compress(kernel_policy, std::span<const T> x, prefix_vector<T>& out) const {
    ++calls.member_prefix;
    out.dim = x.size();
    out.values.assign(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(std::min(n, x.size())));
  }
};

/// A back end's kernel for (kernel_policy, top_k) on float, found by ADL on kernel_policy.
inline void compress_with(kernel_policy, const gc::top_k& c, std::span<const float> x, gc::sparse_vector<float>& out) {
  ++calls.kernel_top_k;
  c.compress(gc::exec::seq, x, out);
}

/// A kernel for (kernel_policy, take_prefix) on double: takes precedence over the member.
inline void compress_with(kernel_policy, const take_prefix& c, std::span<const double> x, prefix_vector<double>& out) {
  ++calls.kernel_prefix;
  out.dim = x.size();
  out.values.assign(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(std::min(c.n, x.size())));
}

}  // namespace gradcomp_dispatch_test

namespace gradcomp {
template <>
inline constexpr bool is_execution_policy_v<gradcomp_dispatch_test::plain_policy> = true;
template <>
inline constexpr bool is_execution_policy_v<gradcomp_dispatch_test::kernel_policy> = true;
}  // namespace gradcomp

namespace dt = gradcomp_dispatch_test;

// ---------------------------------------------------------------------------------------
// 4. Concepts, as compile-time facts.

static_assert(gc::execution_policy<gc::exec::seq_t>);
static_assert(gc::execution_policy<const gc::exec::seq_t&>);
static_assert(gc::execution_policy<dt::plain_policy>);
static_assert(gc::execution_policy<dt::kernel_policy>);
static_assert(!gc::execution_policy<int>);
static_assert(!gc::execution_policy<gc::top_k>);

// Every payload, for float and double.
static_assert(gc::payload<gc::sparse_vector<float>>);
static_assert(gc::payload<gc::sparse_vector<double>>);
static_assert(gc::payload<gc::sparse_vector<float, std::uint64_t>>);
static_assert(gc::payload<gc::sparse_vector<double, std::uint64_t>>);
static_assert(gc::payload<gc::seeded_sparse_vector<float>>);
static_assert(gc::payload<gc::seeded_sparse_vector<double>>);
static_assert(gc::payload<gc::sign_vector<float>>);
static_assert(gc::payload<gc::sign_vector<double>>);
static_assert(gc::payload<gc::quantized_vector<float>>);
static_assert(gc::payload<gc::quantized_vector<double>>);
static_assert(gc::payload<gc::dense_vector<float>>);
static_assert(gc::payload<gc::dense_vector<double>>);
static_assert(gc::payload<gc::bucket_quantized_vector<float>>);
static_assert(gc::payload<gc::bucket_quantized_vector<double>>);
static_assert(gc::payload<gc::two_level_vector<float>>);
static_assert(gc::payload<gc::two_level_vector<double>>);
static_assert(gc::payload<dt::prefix_vector<float>>);
static_assert(!gc::payload<int>);
static_assert(!gc::payload<float>);
static_assert(!gc::payload<std::vector<float>>);

// Compressors and their payload types.
static_assert(!gc::compressor<int, float>);
static_assert(!gc::compressor<gc::sparse_vector<float>, float>);
static_assert(gc::compressor<gc::top_k, float>);
static_assert(gc::compressor<gc::top_k, double>);
static_assert(gc::compressor<const gc::top_k&, double>);
static_assert(!gc::compressor<gc::top_k, int>);
static_assert(gc::compressor<gc::error_feedback<gc::top_k, float>, float>);
static_assert(!gc::compressor<gc::error_feedback<gc::top_k, float>, double>);
static_assert(!gc::compressor<gc::error_feedback<gc::top_k, double>, float>);
static_assert(gc::compressor<dt::take_prefix, float>);
static_assert(gc::compressor<gc::error_feedback<dt::take_prefix, double>, double>);

namespace {
template <class C, template <class> class P>
constexpr bool payload_is =
    (std::is_same_v<gc::payload_t<C, float>, P<float>>) && (std::is_same_v<gc::payload_t<C, double>, P<double>>);
template <class T>
using sparse_default = gc::sparse_vector<T>;
template <class T>
using seeded_default = gc::seeded_sparse_vector<T>;
}  // namespace

static_assert(payload_is<gc::identity, gc::dense_vector>);
static_assert(payload_is<gc::top_k, sparse_default>);
static_assert(payload_is<gc::hard_threshold, sparse_default>);
static_assert(payload_is<gc::random_k, seeded_default>);
static_assert(payload_is<gc::unbiased_random_k, seeded_default>);
static_assert(payload_is<gc::scaled_sign, gc::sign_vector>);
static_assert(payload_is<gc::blockwise_sign, gc::sign_vector>);
static_assert(payload_is<gc::qsgd, gc::quantized_vector>);
static_assert(payload_is<gc::grid_rounding, gc::quantized_vector>);
static_assert(payload_is<gc::maxmin_quantizer, gc::bucket_quantized_vector>);
static_assert(payload_is<gc::onebit, gc::two_level_vector>);
static_assert(payload_is<gc::float16_cast, gc::float_code_vector>);
static_assert(payload_is<gc::bfloat16_cast, gc::float_code_vector>);
static_assert(payload_is<gc::natural_compression, gc::float_code_vector>);
static_assert(payload_is<dt::take_prefix, dt::prefix_vector>);

// Categories.
static_assert(gc::contractive_compressor<gc::top_k, float>);
static_assert(gc::contractive_compressor<gc::random_k, float>);
static_assert(gc::contractive_compressor<gc::scaled_sign, double>);
static_assert(gc::contractive_compressor<gc::blockwise_sign, double>);
static_assert(gc::contractive_compressor<gc::onebit, float>);
static_assert(!gc::unbiased_compressor<gc::onebit, double>);
static_assert(!gc::absolute_compressor<gc::onebit, float>);
static_assert(gc::contractive_compressor<gc::identity, float>);
static_assert(gc::contractive_compressor<dt::take_prefix, float>);
static_assert(!gc::contractive_compressor<gc::unbiased_random_k, float>);
static_assert(!gc::contractive_compressor<gc::qsgd, float>);
static_assert(!gc::contractive_compressor<gc::hard_threshold, float>);
static_assert(gc::unbiased_compressor<gc::qsgd, float>);
static_assert(gc::unbiased_compressor<gc::maxmin_quantizer, float>);
static_assert(gc::unbiased_compressor<gc::maxmin_quantizer, double>);
static_assert(!gc::contractive_compressor<gc::maxmin_quantizer, float>);
static_assert(!gc::absolute_compressor<gc::maxmin_quantizer, float>);
static_assert(gc::unbiased_compressor<gc::unbiased_random_k, double>);
static_assert(gc::unbiased_compressor<gc::identity, float>);
static_assert(!gc::unbiased_compressor<gc::random_k, float>);
static_assert(!gc::unbiased_compressor<gc::top_k, float>);
static_assert(!gc::unbiased_compressor<gc::scaled_sign, float>);
static_assert(gc::absolute_compressor<gc::hard_threshold, float>);
static_assert(gc::absolute_compressor<gc::grid_rounding, double>);
static_assert(gc::contractive_compressor<gc::float16_cast, float>);
static_assert(gc::contractive_compressor<gc::bfloat16_cast, double>);
static_assert(!gc::unbiased_compressor<gc::float16_cast, double>);
static_assert(!gc::absolute_compressor<gc::bfloat16_cast, float>);
static_assert(gc::unbiased_compressor<gc::natural_compression, float>);
static_assert(!gc::contractive_compressor<gc::natural_compression, double>);
static_assert(!gc::absolute_compressor<gc::natural_compression, float>);
static_assert(gc::absolute_compressor<gc::identity, float>);
static_assert(!gc::absolute_compressor<gc::top_k, float>);
static_assert(!gc::absolute_compressor<gc::qsgd, float>);
static_assert(gc::seeded_compressor<gc::random_k>);
static_assert(gc::seeded_compressor<gc::unbiased_random_k>);
static_assert(gc::seeded_compressor<gc::qsgd>);
static_assert(gc::seeded_compressor<gc::grid_rounding>);
static_assert(gc::seeded_compressor<gc::maxmin_quantizer>);
static_assert(gc::seeded_compressor<gc::natural_compression>);
static_assert(!gc::seeded_compressor<gc::float16_cast>);
static_assert(!gc::seeded_compressor<gc::top_k>);
static_assert(!gc::seeded_compressor<gc::identity>);
static_assert(!gc::seeded_compressor<dt::take_prefix>);

// gc::compress is constrained on the policy: a non-policy first argument is not a call.
static_assert(std::is_invocable_v<decltype(gc::compress), const gc::exec::seq_t&, gc::top_k&, std::vector<float>&,
                                  gc::sparse_vector<float>&>);
static_assert(
    !std::is_invocable_v<decltype(gc::compress), int, gc::top_k&, std::vector<float>&, gc::sparse_vector<float>&>);
static_assert(!std::is_invocable_v<decltype(gc::compress), const gc::exec::seq_t&, gc::top_k&, std::vector<bool>&,
                                   gc::sparse_vector<float>&>);  // not contiguous

// ---------------------------------------------------------------------------------------
// 5. Version.

static_assert(GRADCOMP_VERSION ==
              GRADCOMP_VERSION_MAJOR * 10000 + GRADCOMP_VERSION_MINOR * 100 + GRADCOMP_VERSION_PATCH);
static_assert(gc::version_major == GRADCOMP_VERSION_MAJOR);
static_assert(gc::version_minor == GRADCOMP_VERSION_MINOR);
static_assert(gc::version_patch == GRADCOMP_VERSION_PATCH);

TEST_CASE("version: the macros and constants agree") {
  CHECK(GRADCOMP_VERSION == gc::version_major * 10000 + gc::version_minor * 100 + gc::version_patch);
  CHECK(gc::version_major >= 0);
  // MINOR and PATCH must stay below 100, or the combined number stops ordering versions.
  CHECK(gc::version_minor >= 0);
  CHECK(gc::version_minor < 100);
  CHECK(gc::version_patch >= 0);
  CHECK(gc::version_patch < 100);
  CHECK(GRADCOMP_VERSION > 0);
}

// ---------------------------------------------------------------------------------------
// 1. gc::compress accepts every contiguous range and temporaries of compressors.

TEST_CASE_TEMPLATE("dispatch: gc::compress accepts contiguous ranges and compressor temporaries", T, float, double) {
  constexpr std::size_t d = 10;
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 3);
  gc::top_k tk{.k = 3};
  gc::sparse_vector<T> expected;
  tk.compress(gc::exec::seq, std::span<const T>(g), expected);
  REQUIRE(expected.nnz() == 3);
  REQUIRE(expected.dim == d);

  gc::sparse_vector<T> out;
  const auto check = [&](const char* form) {
    CAPTURE(std::string(form));
    CHECK(out == expected);
    out = {};
  };

  gc::compress(gc::exec::seq, tk, g, out);
  check("const std::vector<T>&");
  std::vector<T> mutable_g = g;
  gc::compress(gc::exec::seq, tk, mutable_g, out);
  check("std::vector<T>&");
  gc::compress(gc::exec::seq, tk, std::vector<T>(g), out);
  check("std::vector<T>&&");
  gc::compress(gc::exec::seq, tk, std::span<const T>(g), out);
  check("std::span<const T>");
  gc::compress(gc::exec::seq, tk, std::span<T>(mutable_g), out);
  check("std::span<T>");
  gc::compress(gc::exec::seq, tk, std::span<const T, d>(g.data(), d), out);
  check("std::span<const T, d>");
  std::array<T, d> arr{};
  std::copy(g.begin(), g.end(), arr.begin());
  gc::compress(gc::exec::seq, tk, arr, out);
  check("std::array<T, d>");
  const std::array<T, d>& carr = arr;
  gc::compress(gc::exec::seq, tk, carr, out);
  check("const std::array<T, d>&");
  T raw[d];
  std::copy(g.begin(), g.end(), raw);
  gc::compress(gc::exec::seq, tk, raw, out);
  check("T[d]");

  // Compressors: temporaries, const lvalues, and a policy temporary.
  gc::compress(gc::exec::seq, gc::top_k{.k = 3}, g, out);
  check("top_k temporary");
  const gc::top_k ctk{.k = 3};
  gc::compress(gc::exec::seq, ctk, g, out);
  check("const top_k");
  gc::compress(gc::exec::seq_t{}, gc::top_k{.k = 3}, g, out);
  check("seq_t temporary");

  // Another index type in the payload.
  gc::sparse_vector<T, std::uint64_t> wide;
  gc::compress(gc::exec::seq, tk, g, wide);
  CHECK(wide.dim == d);
  CHECK(std::vector<std::size_t>(wide.indices.begin(), wide.indices.end()) ==
        std::vector<std::size_t>(expected.indices.begin(), expected.indices.end()));
  CHECK(wide.values == expected.values);

  // A seeded compressor: an lvalue advances its step, a temporary's step is lost.
  gc::random_k rk{.k = 4, .seed = 9};
  gc::seeded_sparse_vector<T> first, second, from_temp;
  gc::compress(gc::exec::seq, rk, g, first);
  CHECK(rk.step == 1);
  gc::compress(gc::exec::seq, rk, std::span<const T>(g), second);
  CHECK(rk.step == 2);
  CHECK(second.step == 1);
  gc::compress(gc::exec::seq, gc::random_k{.k = 4, .seed = 9}, arr, from_temp);
  CHECK(from_temp == first);
  gc::compress(gc::exec::seq, gc::random_k{.k = 4, .seed = 9}, g, from_temp);
  CHECK(from_temp == first);
}

// ---------------------------------------------------------------------------------------
// 2. Custom policies, kernels found by ADL, fallback, and a user-defined compressor.

TEST_CASE_TEMPLATE("dispatch: a policy without kernels runs the seq kernel through fallback()", T, float, double) {
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::heavy_tailed, 100, 5);
  const auto same_as_seq = [&](auto c) {
    using C = decltype(c);
    C c_seq = c, c_custom = c;
    gc::payload_t<C, T> expected, out;
    gc::compress(gc::exec::seq, c_seq, g, expected);
    gc::compress(dt::plain_policy{}, c_custom, g, out);
    CHECK(out == expected);
    if constexpr (gc::seeded_compressor<C>) CHECK(c_custom.step == c_seq.step);  // state is advanced as on seq
  };
  same_as_seq(gc::identity{});
  same_as_seq(gc::top_k{.k = 7});
  same_as_seq(gc::hard_threshold{.lambda = 1.0});
  same_as_seq(gc::random_k{.k = 7, .seed = 2});
  same_as_seq(gc::unbiased_random_k{.k = 7, .seed = 2});
  same_as_seq(gc::scaled_sign{});
  same_as_seq(gc::blockwise_sign{.block_size = 16});
  same_as_seq(gc::onebit{});
  same_as_seq(gc::onebit{.block_size = 16});
  same_as_seq(gc::qsgd{.s = 4, .seed = 1});
  same_as_seq(gc::grid_rounding{.spacing = 0.1, .stochastic = true, .seed = 3});
  same_as_seq(gc::maxmin_quantizer{.bits = 4, .bucket_size = 16, .seed = 3});
  same_as_seq(gc::float16_cast{});
  same_as_seq(gc::bfloat16_cast{.pre_scale = false});
  same_as_seq(gc::natural_compression{.seed = 4});
  same_as_seq(gc::terngrad{.seed = 5});
  same_as_seq(gc::sign{});
  same_as_seq(gc::budget_threshold{.density = 0.1, .window = 3});
}

TEST_CASE("dispatch: a compress_with kernel found by ADL takes precedence over fallback") {
  const std::vector<float> gf = gt::make_input<float>(gt::input_kind::normal, 50, 6);
  const std::vector<double> gd = gt::make_input<double>(gt::input_kind::normal, 50, 6);
  dt::calls = {};

  // top_k on float: the policy's kernel runs (and gives the reference result).
  gc::sparse_vector<float> expected_f, out_f;
  gc::compress(gc::exec::seq, gc::top_k{.k = 5}, gf, expected_f);
  gc::compress(dt::kernel_policy{}, gc::top_k{.k = 5}, gf, out_f);
  CHECK(dt::calls.kernel_top_k == 1);
  CHECK(out_f == expected_f);
  const gc::top_k ctk{.k = 5};
  gc::compress(dt::kernel_policy{}, ctk, std::span<const float>(gf), out_f);
  CHECK(dt::calls.kernel_top_k == 2);
  CHECK(out_f == expected_f);

  // top_k on double and hard_threshold on float have no kernel: fallback to seq.
  gc::sparse_vector<double> expected_d, out_d;
  gc::compress(gc::exec::seq, gc::top_k{.k = 5}, gd, expected_d);
  gc::compress(dt::kernel_policy{}, gc::top_k{.k = 5}, gd, out_d);
  CHECK(out_d == expected_d);
  gc::sparse_vector<float> ht_expected, ht_out;
  gc::compress(gc::exec::seq, gc::hard_threshold{.lambda = 0.5}, gf, ht_expected);
  gc::compress(dt::kernel_policy{}, gc::hard_threshold{.lambda = 0.5}, gf, ht_out);
  CHECK(ht_out == ht_expected);
  CHECK(dt::calls.kernel_top_k == 2);

  // The plain policy never reaches the kernel.
  gc::compress(dt::plain_policy{}, gc::top_k{.k = 5}, gf, out_f);
  CHECK(out_f == expected_f);
  CHECK(dt::calls.kernel_top_k == 2);

  // error_feedback forwards its policy, so the kernel runs inside it too.
  gc::error_feedback<gc::top_k, float> ef{gc::top_k{.k = 5}, gf.size()};
  gc::error_feedback<gc::top_k, float> ef_seq{gc::top_k{.k = 5}, gf.size()};
  const auto& m = ef.compress(dt::kernel_policy{}, std::span<const float>(gf), 0.5f);
  const auto& m_seq = ef_seq.compress(gc::exec::seq, std::span<const float>(gf), 0.5f);
  CHECK(dt::calls.kernel_top_k == 3);
  CHECK(m == m_seq);
  CHECK(gt::same_bits(std::vector<float>(ef.error().begin(), ef.error().end()),
                      std::vector<float>(ef_seq.error().begin(), ef_seq.error().end())));
}

TEST_CASE("dispatch: order is compress_with, then the compressor's member, then fallback") {
  const std::vector<float> gf = {1, 2, 3, 4, 5};
  const std::vector<double> gd = {1, 2, 3, 4, 5};
  dt::calls = {};
  dt::prefix_vector<float> out_f;
  dt::prefix_vector<double> out_d;

  gc::compress(gc::exec::seq, dt::take_prefix{.n = 2}, gf, out_f);  // the seq member
  CHECK(dt::calls.member_fallback == 1);
  CHECK(out_f == dt::prefix_vector<float>{.dim = 5, .values = {1, 2}});

  gc::compress(dt::plain_policy{}, dt::take_prefix{.n = 2}, gf, out_f);  // fallback to the seq member
  CHECK(dt::calls.member_fallback == 2);
  CHECK(dt::calls.member_prefix == 0);

  gc::compress(dt::kernel_policy{}, dt::take_prefix{.n = 3}, gf, out_f);  // member for kernel_policy
  CHECK(dt::calls.member_prefix == 1);
  CHECK(dt::calls.member_fallback == 2);
  CHECK(out_f == dt::prefix_vector<float>{.dim = 5, .values = {1, 2, 3}});

  gc::compress(dt::kernel_policy{}, dt::take_prefix{.n = 3}, gd, out_d);  // compress_with beats the member
  CHECK(dt::calls.kernel_prefix == 1);
  CHECK(dt::calls.member_prefix == 1);
  CHECK(out_d == dt::prefix_vector<double>{.dim = 5, .values = {1, 2, 3}});
  CHECK(dt::calls.kernel_top_k == 0);
}

TEST_CASE_TEMPLATE("dispatch: a user-defined compressor and payload work through every CPO and error_feedback", T,
                   float, double) {
  const std::size_t d = 12;
  const std::vector<T> g = gt::make_input<T>(gt::input_kind::normal, d, 8);
  dt::take_prefix c{.n = 4};
  dt::prefix_vector<T> m;
  gc::compress(gc::exec::seq, c, g, m);
  REQUIRE(m.dim == d);
  REQUIRE(m.values.size() == 4);
  CHECK(gc::sent_elements(m) == 4);
  CHECK(gc::wire_bytes(m) == 16 + 4 * sizeof(T));

  std::vector<T> acc(d, T(1));
  gc::decompress_add(m, acc, T(2));
  for (std::size_t i = 0; i < d; ++i) CHECK(acc[i] == (i < 4 ? T(1) + T(2) * g[i] : T(1)));

  const std::vector<std::byte> bytes = gc::encode(m);
  CHECK(bytes.size() == gc::wire_bytes(m));
  std::vector<std::byte> reused(3, std::byte{0x5a});
  gc::encode(m, reused);
  CHECK(reused == bytes);
  std::vector<std::byte> big(bytes.size() + 5, std::byte{0x11});
  CHECK(gc::encode(m, std::span<std::byte>(big)) == bytes.size());
  CHECK(std::equal(bytes.begin(), bytes.end(), big.begin()));
  CHECK(gc::decode<dt::prefix_vector<T>>(bytes) == m);
  dt::prefix_vector<T> into{.dim = 1, .values = {T(7)}};
  gc::decode_into(bytes, into);
  CHECK(into == m);
  const dt::prefix_vector<T> before = into;
  CHECK_THROWS_AS(gc::decode_into(std::span<const std::byte>(bytes).first(bytes.size() - 1), into), gc::error);
  CHECK(into == before);

  // Through error_feedback: the first n entries are sent, the rest accumulate exactly.
  gc::error_feedback<dt::take_prefix, T> ef{dt::take_prefix{.n = 4}, d};
  std::vector<T> fed(d, T(0));
  for (int t = 0; t < 5; ++t) {
    const std::vector<T> gt_ = gt::make_input<T>(gt::input_kind::integers, d, 20 + static_cast<std::uint64_t>(t));
    const auto& msg = ef.compress(gc::exec::seq, std::span<const T>(gt_), T(1));
    for (std::size_t i = 0; i < d; ++i) fed[i] += gt_[i];
    CHECK(msg.values.size() == 4);
    for (std::size_t i = 0; i < d; ++i) CHECK(ef.error()[i] == (i < 4 ? T(0) : fed[i]));
  }
  CHECK(ef.metrics().elements_sent == 20);
  CHECK(ef.average_density() == 4.0 / 12.0);
  // The compressor interface of error_feedback, and its checkpoint, work for it too.
  dt::prefix_vector<T> out;
  gc::compress(gc::exec::seq, ef, g, out);
  CHECK(out.values.size() == 4);
  std::stringstream stream;
  ef.save(stream);
  gc::error_feedback<dt::take_prefix, T> restored{dt::take_prefix{.n = 4}, d};
  restored.load(stream);
  CHECK(gt::same_bits(std::vector<T>(restored.error().begin(), restored.error().end()),
                      std::vector<T>(ef.error().begin(), ef.error().end())));
  CHECK(restored.metrics().steps == ef.metrics().steps);
}

// ---------------------------------------------------------------------------------------
// 3. decompress_add, sent_elements, wire_bytes, encode (three forms), decode, decode_into
// on every library payload.

namespace {

template <class T, class P>
void check_payload_cpos(const char* name, const P& m, std::size_t d) {
  CAPTURE(std::string(name));
  CAPTURE(d);
  // decompress_add: member, span, vector, std::array-backed span, with and without alpha.
  std::vector<T> base = gt::make_input<T>(gt::input_kind::normal, d, 99);
  std::vector<T> via_member = base, via_span = base, via_vector = base;
  m.decompress_add(std::span<T>(via_member), T(1));
  gc::decompress_add(m, std::span<T>(via_span));
  gc::decompress_add(m, via_vector);
  CHECK(gt::same_bits(via_span, via_member));
  CHECK(gt::same_bits(via_vector, via_member));
  std::vector<T> alpha_member = base, alpha_cpo = base, alpha_span = base;
  m.decompress_add(std::span<T>(alpha_member), T(-0.5));
  gc::decompress_add(m, alpha_cpo, T(-0.5));
  gc::decompress_add(m, std::span<T>(alpha_span), T(-0.5));
  CHECK(gt::same_bits(alpha_cpo, alpha_member));
  CHECK(gt::same_bits(alpha_span, alpha_member));
  std::vector<T> wrong(d + 1, T(0));
  CHECK_THROWS_AS(gc::decompress_add(m, wrong), gc::error);

  CHECK(gc::sent_elements(m) == m.sent_elements());
  CHECK(gc::wire_bytes(m) == m.wire_bytes());

  // encode: the returned vector, a reused vector, and a slice of a larger buffer.
  const std::vector<std::byte> bytes = gc::encode(m);
  CHECK(bytes.size() == gc::wire_bytes(m));
  std::vector<std::byte> reused(bytes.size() + 40, std::byte{0xee});
  gc::encode(m, reused);
  CHECK(reused == bytes);
  std::vector<std::byte> smaller(1, std::byte{0xee});
  gc::encode(m, smaller);
  CHECK(smaller == bytes);
  std::vector<std::byte> buffer(bytes.size() + 9, std::byte{0xab});
  const std::size_t written = gc::encode(m, std::span<std::byte>(buffer).subspan(3));
  CHECK(written == bytes.size());
  CHECK(std::equal(bytes.begin(), bytes.end(), buffer.begin() + 3));
  CHECK(std::all_of(buffer.begin(), buffer.begin() + 3, [](std::byte b) { return b == std::byte{0xab}; }));
  CHECK(std::all_of(buffer.begin() + 3 + static_cast<std::ptrdiff_t>(bytes.size()), buffer.end(),
                    [](std::byte b) { return b == std::byte{0xab}; }));
  std::vector<std::byte> too_small(bytes.size() - 1);
  CHECK_THROWS_AS(gc::encode(m, std::span<std::byte>(too_small)), gc::error);

  // decode<P> and decode_into.
  const P decoded = gc::decode<P>(bytes);
  CHECK(decoded == m);
  CHECK(gt::same_bits(gt::densify<T>(decoded, d), gt::densify<T>(m, d)));
  P into;
  gc::decode_into(std::span<const std::byte>(bytes), into);
  CHECK(into == m);
  P reused_into = gc::decode<P>(bytes);
  gc::decode_into(bytes, reused_into);  // decoding over itself
  CHECK(reused_into == m);
  const P snapshot = into;
  CHECK_THROWS_AS(gc::decode_into(std::span<const std::byte>(bytes).first(bytes.size() - 1), into), gc::error);
  CHECK(into == snapshot);
  CHECK_THROWS_AS(gc::decode<P>(std::span<const std::byte>()), gc::error);
  std::vector<std::byte> trailing = bytes;
  trailing.push_back(std::byte{0});
  CHECK_THROWS_AS(gc::decode<P>(trailing), gc::error);
}

}  // namespace

TEST_CASE_TEMPLATE("dispatch: decompress_add, encode and decode CPOs on every payload", T, float, double) {
  for (const std::size_t d : {std::size_t{1}, std::size_t{9}, std::size_t{100}}) {
    const std::vector<T> x = gt::make_input<T>(gt::input_kind::heavy_tailed, d, 12);
    const auto run = [&](const char* name, auto c) {
      using C = decltype(c);
      gc::payload_t<C, T> m;
      gc::compress(gc::exec::seq, c, x, m);
      check_payload_cpos<T>(name, m, d);
    };
    run("identity", gc::identity{});
    run("top_k", gc::top_k{.k = 3});
    run("hard_threshold", gc::hard_threshold{.lambda = 0.5});
    run("random_k", gc::random_k{.k = 3, .seed = 1});
    run("unbiased_random_k", gc::unbiased_random_k{.k = 3, .seed = 1});
    run("scaled_sign", gc::scaled_sign{});
    run("blockwise_sign", gc::blockwise_sign{.block_size = 4});
    run("onebit", gc::onebit{});
    run("onebit, blocks of 4", gc::onebit{.block_size = 4});
    run("qsgd", gc::qsgd{.s = 3, .seed = 1});
    run("grid_rounding", gc::grid_rounding{.spacing = 0.125});
    run("maxmin_quantizer", gc::maxmin_quantizer{.bits = 3, .bucket_size = 4, .seed = 1});
    run("float16_cast", gc::float16_cast{});
    run("natural_compression", gc::natural_compression{.seed = 1});
    run("terngrad", gc::terngrad{.seed = 1});
    run("sign", gc::sign{});
    gc::sparse_vector<T, std::uint64_t> wide;
    gc::compress(gc::exec::seq, gc::top_k{.k = 3}, x, wide);
    check_payload_cpos<T>("top_k, 64-bit indices", wide, d);
  }
}

TEST_CASE("dispatch: decompress_add on std::array and a fixed-extent span") {
  const std::vector<float> x = {0.5f, -3.0f, 2.0f, 0.25f, -1.0f, 4.0f};
  gc::sparse_vector<float> m;
  gc::compress(gc::exec::seq, gc::top_k{.k = 2}, x, m);
  std::array<float, 6> arr{};
  gc::decompress_add(m, arr);
  CHECK(arr == std::array<float, 6>{0, -3, 0, 0, 0, 4});
  gc::decompress_add(m, std::span<float, 6>(arr), 2.0f);
  CHECK(arr == std::array<float, 6>{0, -9, 0, 0, 0, 12});
  float raw[6] = {};
  gc::decompress_add(m, raw, -1.0f);
  CHECK(raw[1] == 3.0f);
  CHECK(raw[5] == -4.0f);
}

// ---------------------------------------------------------------------------------------
// The one dispatch rule of backend.hpp, for every hook: the policy's own kernel, else its
// fallbacks', else the reference (composite hooks composed on the policy itself).

namespace gradcomp_backend_test {

/// How often each hook of the policies below ran.
struct hook_counts {
  int fused = 0;           // feedback_step_with(fused_policy, hard_threshold, ...)
  int compress = 0;        // compress_with(piecewise_policy, top_k, ...)
  int decompress = 0;      // decompress_add_with(piecewise_policy, ...)
  int input = 0;           // feedback_input_with(piecewise_policy, ...)
  int norm = 0;            // squared_norm_with(piecewise_policy, ...)
  int model = 0;           // compress_model_with(fused_policy, top_k, ...)
};
inline hook_counts counts;

/// A back end with a fused error-feedback kernel for hard_threshold and a whole-model
/// kernel for top_k only.
struct fused_policy {
  gc::exec::seq_t fallback() const { return gc::exec::seq; }
};
/// A back end with no kernels of its own that falls back to fused_policy.
struct wrapper_policy {
  fused_policy fallback() const { return {}; }
};
/// A back end with kernels for the pieces of the error-feedback step but no fused one.
struct piecewise_policy {
  gc::exec::seq_t fallback() const { return gc::exec::seq; }
};

inline double feedback_step_with(fused_policy, const gc::hard_threshold& c, std::span<const float> e,
                                 std::span<const float> g, float scale, std::span<float> e_new,
                                 gc::sparse_vector<float>& out) {
  ++counts.fused;
  return gc::backend::feedback_step_hook::reference(gc::exec::seq, c, e, g, scale, e_new, out);
}
inline void compress_model_with(fused_policy, const gc::top_k& c, std::span<const std::span<const float>> tensors,
                                gc::sparse_vector<float>& out) {
  ++counts.model;
  gc::backend::compress_model_hook::reference(gc::exec::seq, c, tensors, out);
}

inline void compress_with(piecewise_policy, const gc::top_k& c, std::span<const float> x,
                          gc::sparse_vector<float>& out) {
  ++counts.compress;
  c.compress(gc::exec::seq, x, out);
}
inline void decompress_add_with(piecewise_policy, const gc::sparse_vector<float>& p, std::span<float> dense,
                                float alpha) {
  ++counts.decompress;
  p.decompress_add(dense, alpha);
}
inline void feedback_input_with(piecewise_policy, std::span<const float> e, std::span<const float> g, float scale,
                                std::span<float> p) {
  ++counts.input;
  gc::detail::feedback_input(e, g, scale, p);
}
inline double squared_norm_with(piecewise_policy, std::span<const float> x) {
  ++counts.norm;
  return gc::detail::squared_norm(x);
}

}  // namespace gradcomp_backend_test

namespace gradcomp {
template <>
inline constexpr bool is_execution_policy_v<gradcomp_backend_test::fused_policy> = true;
template <>
inline constexpr bool is_execution_policy_v<gradcomp_backend_test::wrapper_policy> = true;
template <>
inline constexpr bool is_execution_policy_v<gradcomp_backend_test::piecewise_policy> = true;
}  // namespace gradcomp

namespace bt = gradcomp_backend_test;

// has_kernel sees a policy's own kernels only, never its fallbacks'.
static_assert(gc::backend::has_kernel<gc::backend::feedback_step_hook, bt::fused_policy, const gc::hard_threshold,
                                      std::span<const float>, std::span<const float>, float, std::span<float>,
                                      gc::sparse_vector<float>>);
static_assert(!gc::backend::has_kernel<gc::backend::feedback_step_hook, bt::wrapper_policy, const gc::hard_threshold,
                                       std::span<const float>, std::span<const float>, float, std::span<float>,
                                       gc::sparse_vector<float>>);
static_assert(gc::backend::has_kernel<gc::backend::compress_hook, bt::piecewise_policy, const gc::top_k,
                                      std::span<const float>, gc::sparse_vector<float>>);
static_assert(!gc::backend::has_kernel<gc::backend::compress_hook, bt::piecewise_policy, const gc::hard_threshold,
                                       std::span<const float>, gc::sparse_vector<float>>);
// The compressor's own member counts as a kernel of its policy.
static_assert(gc::backend::has_kernel<gc::backend::compress_hook, gc::exec::seq_t, const gc::top_k,
                                      std::span<const float>, gc::sparse_vector<float>>);

TEST_CASE("backend: a fused error-feedback kernel runs for its policy and for policies that fall back to it") {
  const std::vector<float> g = {0.5f, -3.0f, 0.25f, 4.0f, -0.125f};
  gc::error_feedback<gc::hard_threshold> reference{gc::hard_threshold{.lambda = 1.0}, g.size()};
  reference.compress(gc::exec::seq, std::span<const float>(g), 0.5f);
  for (const int via_wrapper : {0, 1}) {
    CAPTURE(via_wrapper);
    bt::counts = {};
    gc::error_feedback<gc::hard_threshold> ef{gc::hard_threshold{.lambda = 1.0}, g.size()};
    if (via_wrapper)
      ef.compress(bt::wrapper_policy{}, std::span<const float>(g), 0.5f);
    else
      ef.compress(bt::fused_policy{}, std::span<const float>(g), 0.5f);
    CHECK(bt::counts.fused == 1);
    CHECK(ef.message() == reference.message());
    CHECK(std::equal(ef.error().begin(), ef.error().end(), reference.error().begin()));
    CHECK(ef.metrics().total_error == reference.metrics().total_error);
  }
}

TEST_CASE("backend: without a fused kernel the step is composed from the policy's own piece kernels") {
  const std::vector<float> g = {0.5f, -3.0f, 0.25f, 4.0f, -0.125f};
  bt::counts = {};
  gc::error_feedback<gc::top_k> ef{gc::top_k{.k = 2}, g.size()};
  ef.compress(bt::piecewise_policy{}, std::span<const float>(g), 2.0f);
  CHECK(bt::counts.input == 1);
  CHECK(bt::counts.compress == 1);
  CHECK(bt::counts.decompress == 1);
  CHECK(bt::counts.norm == 1);
  gc::error_feedback<gc::top_k> reference{gc::top_k{.k = 2}, g.size()};
  reference.compress(gc::exec::seq, std::span<const float>(g), 2.0f);
  CHECK(ef.message() == reference.message());
  CHECK(std::equal(ef.error().begin(), ef.error().end(), reference.error().begin()));
}

TEST_CASE("backend: tensor-list hooks: the policy's kernel, else the reference on the same policy") {
  const std::vector<float> a = {1.0f, -5.0f}, b = {3.0f, 0.5f, -7.0f};
  const std::vector<std::span<const float>> tensors = {a, b};
  gc::sparse_vector<float> out, expected;
  gc::compress_model(gc::exec::seq, gc::top_k{.k = 2}, tensors, expected);
  CHECK(expected.indices == std::vector<std::uint32_t>{1, 4});

  bt::counts = {};
  gc::compress_model(bt::fused_policy{}, gc::top_k{.k = 2}, tensors, out);  // its own kernel
  CHECK(bt::counts.model == 1);
  CHECK(out == expected);

  bt::counts = {};
  gc::compress_model(bt::piecewise_policy{}, gc::top_k{.k = 2}, tensors, out);  // concatenated, then its compress
  CHECK(bt::counts.model == 0);
  CHECK(bt::counts.compress == 1);
  CHECK(out == expected);

  bt::counts = {};
  std::vector<gc::sparse_vector<float>> outs(2);
  gc::compress_layers(bt::piecewise_policy{}, gc::top_k{.k = 1}, tensors, outs);  // one compress per tensor
  CHECK(bt::counts.compress == 2);
  CHECK(outs[0].indices == std::vector<std::uint32_t>{1});
  CHECK(outs[1].indices == std::vector<std::uint32_t>{2});
}

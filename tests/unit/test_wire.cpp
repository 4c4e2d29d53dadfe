// Unit tests for the wire format: gc::encode / gc::decode / gc::decode_into / gc::wire_bytes
// of every payload type.
//
// Round trips use payloads produced by the real compressors on every input kind and edge
// size of test_support.hpp (plus NaN / Inf / -0 inputs), and compare bitwise. Sizes and the
// position of every field are pinned by formulas and golden byte sequences written here by
// hand, so the format cannot drift silently. Malformed input (every truncation, trailing
// bytes, every header field, structural errors, crafted huge sizes, random bit flips and
// random buffers) must give gc::error and leave the decode target unchanged; the suite also
// runs under ASan/UBSan, so "no crash, no UB" is checked there. All randomness uses fixed
// seeds.
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

// ---------------------------------------------------------------------------------------
// Byte helpers (independent of the library's own wire code).

using bytes_t = std::vector<std::byte>;
using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using u64 = std::uint64_t;

using gradcomp_test::bits;
using gradcomp_test::bits_of;

template <class T>
const char* type_name() {
  return sizeof(T) == 4 ? "float" : "double";
}

std::span<const std::byte> view(const bytes_t& b) { return {b.data(), b.size()}; }
std::span<const std::byte> view(const bytes_t& b, std::size_t n) { return {b.data(), n}; }

bytes_t make_bytes(std::initializer_list<unsigned> v) {
  bytes_t b;
  for (const unsigned x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

template <class U>
void append_le(bytes_t& b, U v) {
  static_assert(std::is_unsigned_v<U>);
  for (std::size_t i = 0; i < sizeof(U); ++i) b.push_back(static_cast<std::byte>((static_cast<u64>(v) >> (8 * i)) & 0xffu));
}

template <class T>
void append_value(bytes_t& b, T v) {
  append_le(b, bits(v));
}

template <class U>
U read_le(const bytes_t& b, std::size_t off) {
  u64 v = 0;
  for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<u64>(std::to_integer<unsigned>(b.at(off + i))) << (8 * i);
  return static_cast<U>(v);
}

template <class U>
void write_le(bytes_t& b, std::size_t off, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i)
    b.at(off + i) = static_cast<std::byte>((static_cast<u64>(v) >> (8 * i)) & 0xffu);
}

/// The format version of each kind: 2 for the seeded sparse payload (its index set changed,
/// docs/payloads.md), 1 for the others.
constexpr unsigned version_of(unsigned kind) { return kind == 2 ? 2u : 1u; }

/// The 16-byte header: 'G' 'C' kind version value-bytes index-bytes 0 0 dim(u64 LE).
bytes_t header(unsigned kind, unsigned value_bytes, unsigned index_bytes, u64 dim) {
  bytes_t b = make_bytes({'G', 'C', kind, version_of(kind), value_bytes, index_bytes, 0u, 0u});
  append_le(b, dim);
  return b;
}

/// Bit k of a byte string, element order LSB first.
bool bit_at(const bytes_t& b, std::size_t byte_offset, u64 k) {
  return (std::to_integer<unsigned>(b.at(byte_offset + k / 8)) >> (k % 8)) & 1u;
}

/// Zigzag decoding written out: even u -> u/2, odd u -> -(u+1)/2.
std::int64_t brute_unzigzag(u64 u) {
  return (u & 1u) ? -static_cast<std::int64_t>(u >> 1) - 1 : static_cast<std::int64_t>(u >> 1);
}

// ---------------------------------------------------------------------------------------
// Decode outcomes: ok, gc::error, or anything else (a failure of the test).

enum class result { ok, gc_error, other };

struct outcome {
  result r;
  std::string message;
};

template <class P>
outcome try_decode_into(std::span<const std::byte> b, P& target) {
  try {
    gc::decode_into(b, target);
    return {result::ok, {}};
  } catch (const gc::error& e) {
    return {result::gc_error, e.what()};
  } catch (const std::exception& e) {
    return {result::other, std::string("non-gc::error exception: ") + e.what()};
  } catch (...) {
    return {result::other, "exception not derived from std::exception"};
  }
}

bool contains(const std::string& s, const char* word) { return s.find(word) != std::string::npos; }

// ---------------------------------------------------------------------------------------
// Samples: payloads produced by the real compressors.

template <class P>
struct sample {
  std::string name;
  P payload;
};

template <class P, class C>
void add(std::vector<sample<P>>& out, C c, const std::vector<typename P::value_type>& x, std::string name) {
  using T = typename P::value_type;
  P p;
  gc::compress(gc::exec::seq, c, std::span<const T>(x), p);
  out.push_back({std::move(name), std::move(p)});
}

/// Inputs with NaN (with a payload, and a negative signalling NaN), +-Inf, +-0, denormals
/// and extremes: x[0] is always the NaN with a payload, x[d-1] the signalling one.
template <class T>
std::vector<T> special_input(std::size_t d, u64 seed) {
  using U = bits_of<T>;
  const T qnan = sizeof(T) == 4 ? std::bit_cast<T>(static_cast<U>(0x7fc12345u))
                                : std::bit_cast<T>(static_cast<U>(0x7ff8000012345678ull));
  const T snan = sizeof(T) == 4 ? std::bit_cast<T>(static_cast<U>(0xffa00001u))
                                : std::bit_cast<T>(static_cast<U>(0xfff0000000000001ull));
  const T pool[] = {std::numeric_limits<T>::infinity(),   -std::numeric_limits<T>::infinity(),
                    T(-0.0),                              T(0),
                    std::numeric_limits<T>::denorm_min(), -std::numeric_limits<T>::max(),
                    std::numeric_limits<T>::max(),        T(1.5),
                    -std::numeric_limits<T>::min(),       T(-3.25)};
  std::vector<T> x(d);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < d; ++i) x[i] = pool[rng() % std::size(pool)];
  if (d > 0) x[0] = qnan;
  if (d > 1) x[d - 1] = snan;
  return x;
}

template <class P>
struct traits;

template <class T, class I>
struct traits<gc::sparse_vector<T, I>> {
  using P = gc::sparse_vector<T, I>;
  static constexpr unsigned kind = 1;
  static constexpr unsigned index_bytes = sizeof(I);
  static std::string name() {
    return std::string("sparse_vector<") + type_name<T>() + (sizeof(I) == 4 ? ", uint32_t>" : ", uint64_t>");
  }
  static std::size_t dim(const P& p) { return p.dim; }
  static std::size_t expected_size(const P& p) { return 16 + 8 + p.indices.size() * (sizeof(I) + sizeof(T)); }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.indices == b.indices && gt::same_bits(a.values, b.values);
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    const std::size_t d = x.size();
    for (const std::size_t k : {std::size_t{1}, d / 10 + 1, d + 3})
      add<P>(out, gc::top_k{.k = k}, x, "top_k{k=" + std::to_string(k) + "} " + tag);
    for (const double lambda : {0.0, 0.5})
      add<P>(out, gc::hard_threshold{.lambda = lambda}, x, "hard_threshold{" + std::to_string(lambda) + "} " + tag);
  }
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    generate(out, x, tag, seed);
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    const std::size_t nnz = p.indices.size();
    CHECK(read_le<u64>(b, 16) == nnz);
    bool ok = true;
    for (std::size_t j = 0; j < nnz; ++j) {
      ok = ok && read_le<I>(b, 24 + j * sizeof(I)) == p.indices[j];
      ok = ok && read_le<bits_of<T>>(b, 24 + nnz * sizeof(I) + j * sizeof(T)) == bits(p.values[j]);
    }
    CHECK_MESSAGE(ok, "indices then values at offset 24");
  }
  static std::vector<const void*> storage(const P& p) { return {p.indices.data(), p.values.data()}; }
};

template <class T>
struct traits<gc::seeded_sparse_vector<T>> {
  using P = gc::seeded_sparse_vector<T>;
  static constexpr unsigned kind = 2;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("seeded_sparse_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.dim; }
  static std::size_t expected_size(const P& p) { return 16 + 24 + p.values.size() * sizeof(T); }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.seed == b.seed && a.step == b.step && a.indices == b.indices &&
           gt::same_bits(a.values, b.values);
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    const std::size_t d = x.size();
    add<P>(out, gc::random_k{.k = 1, .seed = seed}, x, "random_k{k=1} " + tag);
    add<P>(out, gc::random_k{.k = d / 7 + 1, .seed = seed, .step = seed * 3}, x, "random_k{k=d/7+1} " + tag);
    add<P>(out, gc::unbiased_random_k{.k = d / 3 + 1, .seed = seed + 1}, x, "unbiased_random_k{k=d/3+1} " + tag);
    add<P>(out, gc::random_k{.k = d + 2, .seed = seed}, x, "random_k{k=d+2} " + tag);
  }
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    generate(out, x, tag, seed);
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    CHECK(read_le<u64>(b, 16) == p.seed);
    CHECK(read_le<u64>(b, 24) == p.step);
    CHECK(read_le<u64>(b, 32) == p.values.size());
    bool ok = true;
    for (std::size_t j = 0; j < p.values.size(); ++j)
      ok = ok && read_le<bits_of<T>>(b, 40 + j * sizeof(T)) == bits(p.values[j]);
    CHECK_MESSAGE(ok, "values at offset 40");
  }
  static std::vector<const void*> storage(const P& p) { return {p.indices.data(), p.values.data()}; }
};

template <class T>
struct traits<gc::sign_vector<T>> {
  using P = gc::sign_vector<T>;
  static constexpr unsigned kind = 3;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("sign_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.dim; }
  static std::size_t blocks(std::size_t d, std::size_t b) { return d == 0 ? 0 : (d + b - 1) / b; }
  static std::size_t expected_size(const P& p) {
    return 16 + 8 + blocks(p.dim, p.block_size) * sizeof(T) + (p.dim + 7) / 8;
  }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.block_size == b.block_size && a.negative == b.negative && gt::same_bits(a.scales, b.scales);
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    add<P>(out, gc::scaled_sign{}, x, "scaled_sign " + tag);
    add<P>(out, gc::sign{}, x, "sign " + tag);
    for (const std::size_t b : {1, 3, 64, 256})
      add<P>(out, gc::blockwise_sign{.block_size = b}, x, "blockwise_sign{" + std::to_string(b) + "} " + tag);
  }
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    generate(out, x, tag, seed);
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    CHECK(read_le<u64>(b, 16) == p.block_size);
    const std::size_t nb = blocks(p.dim, p.block_size);
    bool ok = true;
    for (std::size_t j = 0; j < nb; ++j) ok = ok && read_le<bits_of<T>>(b, 24 + j * sizeof(T)) == bits(p.scales[j]);
    const std::size_t sign_at = 24 + nb * sizeof(T);
    for (std::size_t i = 0; i < p.dim; ++i) ok = ok && bit_at(b, sign_at, i) == p.is_negative(i);
    for (std::size_t i = p.dim; i < (p.dim + 7) / 8 * 8; ++i) ok = ok && !bit_at(b, sign_at, i);
    CHECK_MESSAGE(ok, "block scales at offset 24, then one sign bit per element, zero padding");
  }
  static std::vector<const void*> storage(const P& p) { return {p.scales.data()}; }
};

template <class T>
struct traits<gc::two_level_vector<T>> {
  using P = gc::two_level_vector<T>;
  static constexpr unsigned kind = 8;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("two_level_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.dim; }
  static std::size_t blocks(std::size_t d, std::size_t b) { return d == 0 ? 0 : (d - 1) / b + 1; }
  static std::size_t expected_size(const P& p) {
    return 16 + 8 + 2 * blocks(p.dim, p.block_size) * sizeof(T) + (p.dim + 7) / 8;
  }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.block_size == b.block_size && a.negative == b.negative &&
           gt::same_bits(a.lows, b.lows) && gt::same_bits(a.highs, b.highs);
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    add<P>(out, gc::onebit{}, x, "onebit " + tag);
    for (const std::size_t b : {1, 3, 64, 256})
      add<P>(out, gc::onebit{.block_size = b}, x, "onebit{" + std::to_string(b) + "} " + tag);
  }
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    generate(out, x, tag, seed);
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    CHECK(read_le<u64>(b, 16) == p.block_size);
    const std::size_t nb = blocks(p.dim, p.block_size);
    bool ok = true;
    for (std::size_t j = 0; j < nb; ++j) {
      ok = ok && read_le<bits_of<T>>(b, 24 + j * sizeof(T)) == bits(p.lows[j]);
      ok = ok && read_le<bits_of<T>>(b, 24 + (nb + j) * sizeof(T)) == bits(p.highs[j]);
    }
    const std::size_t bits_at = 24 + 2 * nb * sizeof(T);
    for (std::size_t i = 0; i < p.dim; ++i) ok = ok && bit_at(b, bits_at, i) == p.is_negative(i);
    for (std::size_t i = p.dim; i < (p.dim + 7) / 8 * 8; ++i) ok = ok && !bit_at(b, bits_at, i);
    CHECK_MESSAGE(ok, "block_size, the lows at offset 24, the highs, then one bit per element, zero padding");
  }
  static std::vector<const void*> storage(const P& p) { return {p.lows.data(), p.highs.data(), p.negative.data()}; }
};

template <class T>
struct traits<gc::quantized_vector<T>> {
  using P = gc::quantized_vector<T>;
  static constexpr unsigned kind = 4;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("quantized_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.dim; }
  static std::size_t expected_size(const P& p) { return 16 + 8 + sizeof(T) + (p.dim * p.level_bits + 7) / 8; }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.level_bits == b.level_bits && a.levels == b.levels &&
           bits(a.scale) == bits(b.scale);
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    add<P>(out, gc::qsgd{.s = 1, .seed = seed}, x, "qsgd{s=1} " + tag);
    add<P>(out, gc::qsgd{.s = 15, .seed = seed, .step = 7}, x, "qsgd{s=15} " + tag);
    add<P>(out, gc::qsgd{.s = u32{1} << 30, .seed = seed}, x, "qsgd{s=2^30} " + tag);
    add<P>(out, gc::grid_rounding{.spacing = 0.25}, x, "grid_rounding{0.25} " + tag);
    add<P>(out, gc::grid_rounding{.spacing = 0.01, .stochastic = true, .seed = seed}, x,
           "grid_rounding{0.01, stochastic} " + tag);
    add<P>(out, gc::terngrad{.seed = seed, .step = 3}, x, "terngrad " + tag);
  }
  /// The quantizers reject non-finite input, so special values go into hand-built payloads:
  /// non-finite and -0 scales, the extreme int32 levels at 32 bits, 1- and 7-bit levels.
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    const std::size_t d = x.size();
    const std::int32_t extremes[] = {std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(),
                                     0, -1, 1, 12345, -54321};
    P a;
    a.dim = d;
    a.scale = d > 0 ? x[0] : T(0);  // NaN with a payload
    a.level_bits = 32;
    for (std::size_t i = 0; i < d; ++i) a.levels.push_back(extremes[i % std::size(extremes)]);
    out.push_back({"hand-built 32-bit extremes, scale x[0] " + tag, a});
    P b;
    b.dim = d;
    b.scale = T(-0.0);
    b.level_bits = 1;
    for (std::size_t i = 0; i < d; ++i) b.levels.push_back(i % 3 == 0 ? -1 : 0);
    out.push_back({"hand-built 1-bit, scale -0 " + tag, b});
    P c;
    c.dim = d;
    c.scale = -std::numeric_limits<T>::infinity();
    c.level_bits = 7;
    for (std::size_t i = 0; i < d; ++i) c.levels.push_back(static_cast<std::int32_t>(i % 128) - 64);
    out.push_back({"hand-built 7-bit, scale -inf " + tag, c});
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    CHECK(read_le<u32>(b, 16) == p.level_bits);
    CHECK(read_le<u32>(b, 20) == 0u);
    CHECK(read_le<bits_of<T>>(b, 24) == bits(p.scale));
    const std::size_t at = 24 + sizeof(T);
    bool ok = true;
    for (std::size_t i = 0; i < p.dim; ++i) {
      u64 u = 0;
      for (unsigned k = 0; k < p.level_bits; ++k) u |= static_cast<u64>(bit_at(b, at, u64{i} * p.level_bits + k)) << k;
      ok = ok && brute_unzigzag(u) == p.levels[i];
    }
    const u64 total = u64{p.dim} * p.level_bits;
    for (u64 k = total; k < (total + 7) / 8 * 8; ++k) ok = ok && !bit_at(b, at, k);
    CHECK_MESSAGE(ok, "zigzag levels packed LSB first at offset 24 + sizeof(T), zero padding");
  }
  static std::vector<const void*> storage(const P& p) { return {p.levels.data()}; }
};

template <class T>
struct traits<gc::dense_vector<T>> {
  using P = gc::dense_vector<T>;
  static constexpr unsigned kind = 5;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("dense_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.values.size(); }
  static std::size_t expected_size(const P& p) { return 16 + p.values.size() * sizeof(T); }
  static bool same(const P& a, const P& b) { return gt::same_bits(a.values, b.values); }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    add<P>(out, gc::identity{}, x, "identity " + tag);
  }
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    generate(out, x, tag, seed);
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    bool ok = true;
    for (std::size_t i = 0; i < p.values.size(); ++i)
      ok = ok && read_le<bits_of<T>>(b, 16 + i * sizeof(T)) == bits(p.values[i]);
    CHECK_MESSAGE(ok, "values at offset 16");
  }
  static std::vector<const void*> storage(const P& p) { return {p.values.data()}; }
};

template <class T>
struct traits<gc::float_code_vector<T>> {
  using P = gc::float_code_vector<T>;
  static constexpr unsigned kind = 6;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("float_code_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.dim; }
  /// 16 bits for float16 and bfloat16; sign + exponent field of T for power_of_two.
  static unsigned code_bits(const P& p) {
    return p.format == gc::code_format::power_of_two ? (sizeof(T) == 4 ? 9u : 12u) : 16u;
  }
  static std::size_t expected_size(const P& p) { return 16 + 8 + (p.dim * code_bits(p) + 7) / 8; }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.format == b.format && a.scale_exponent == b.scale_exponent && a.codes == b.codes;
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    add<P>(out, gc::float16_cast{}, x, "float16_cast " + tag);
    add<P>(out, gc::float16_cast{.pre_scale = false}, x, "float16_cast{pre_scale=false} " + tag);
    add<P>(out, gc::bfloat16_cast{}, x, "bfloat16_cast " + tag);
    add<P>(out, gc::natural_compression{.seed = seed, .step = 2}, x, "natural_compression " + tag);
  }
  /// The compressors reject non-finite input, so special codes go into hand-built payloads:
  /// the largest and smallest codes of both signs and -0 at both ends of the scale exponent
  /// range (each still decoding to a finite value), and power_of_two's extreme exponents.
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    const std::size_t d = x.size();
    const auto fill = [&](gc::code_format f, std::int32_t e, std::initializer_list<std::uint16_t> pool, const char* what) {
      P p;
      p.dim = d;
      p.format = f;
      p.scale_exponent = e;
      for (std::size_t i = 0; i < d; ++i) p.codes.push_back(pool.begin()[i % pool.size()]);
      out.push_back({std::string(what) + " " + tag, p});
    };
    const auto fp16 = gc::detail::scale_exponent_range<T>(gc::code_format::float16);
    const auto bf16 = gc::detail::scale_exponent_range<T>(gc::code_format::bfloat16);
    // float16 at the smallest scale: 65504 * 2^-hi is tiny; 2^-24 * 2^-hi rounds to 0.
    fill(gc::code_format::float16, fp16.hi, {0x7bff, 0xfbff, 0x0001, 0x8001, 0x0000, 0x8000, 0x3c00},
         "hand-built float16, largest scale exponent");
    // bfloat16 at the largest scale: codes below 2^emax, so the decoded values stay below max(T).
    fill(gc::code_format::bfloat16, bf16.lo, {0x7eff, 0xfeff, 0x0001, 0x8001, 0x8000, 0x3f80},
         "hand-built bfloat16, smallest scale exponent");
    const std::uint16_t e_bits = sizeof(T) == 4 ? 8 : 11;
    const std::uint16_t top_field = static_cast<std::uint16_t>((1u << e_bits) - 2);
    fill(gc::code_format::power_of_two, 0,
         {0, static_cast<std::uint16_t>(1u << e_bits), 1, static_cast<std::uint16_t>((1u << e_bits) | top_field), top_field},
         "hand-built power_of_two, extreme exponents");
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    CHECK(std::to_integer<unsigned>(b[16]) == static_cast<unsigned>(p.format));
    CHECK(std::to_integer<unsigned>(b[17]) == code_bits(p));
    CHECK(read_le<u16>(b, 18) == 0u);
    CHECK(static_cast<std::int32_t>(read_le<u32>(b, 20)) == p.scale_exponent);
    const unsigned w = code_bits(p);
    bool ok = true;
    for (std::size_t i = 0; i < p.dim; ++i) {
      u64 u = 0;
      for (unsigned k = 0; k < w; ++k) u |= static_cast<u64>(bit_at(b, 24, u64{i} * w + k)) << k;
      ok = ok && u == p.codes[i];
    }
    const u64 total = u64{p.dim} * w;
    for (u64 k = total; k < (total + 7) / 8 * 8; ++k) ok = ok && !bit_at(b, 24, k);
    CHECK_MESSAGE(ok, "format, code bits, reserved, scale_exponent, then codes packed LSB first at offset 24, zero padding");
  }
  static std::vector<const void*> storage(const P& p) { return {p.codes.data()}; }
};

template <class T>
struct traits<gc::bucket_quantized_vector<T>> {
  using P = gc::bucket_quantized_vector<T>;
  static constexpr unsigned kind = 7;
  static constexpr unsigned index_bytes = 0;
  static std::string name() { return std::string("bucket_quantized_vector<") + type_name<T>() + ">"; }
  static std::size_t dim(const P& p) { return p.dim; }
  static std::size_t buckets(const P& p) { return p.dim == 0 ? 0 : (p.dim + p.bucket_size - 1) / p.bucket_size; }
  static std::size_t expected_size(const P& p) {
    return 16 + 16 + 2 * buckets(p) * sizeof(T) + (p.dim * p.bits + 7) / 8;
  }
  static bool same(const P& a, const P& b) {
    return a.dim == b.dim && a.bucket_size == b.bucket_size && a.bits == b.bits && a.levels == b.levels &&
           gt::same_bits(a.mins, b.mins) && gt::same_bits(a.units, b.units);
  }
  static void generate(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64 seed) {
    add<P>(out, gc::maxmin_quantizer{.seed = seed}, x, "maxmin{8 bits, B=1024} " + tag);
    add<P>(out, gc::maxmin_quantizer{.bits = 1, .bucket_size = 3, .seed = seed}, x, "maxmin{1 bit, B=3} " + tag);
    add<P>(out, gc::maxmin_quantizer{.bits = 4, .bucket_size = 7, .seed = seed, .step = 5}, x,
           "maxmin{4 bits, B=7} " + tag);
    add<P>(out, gc::maxmin_quantizer{.bits = 3, .bucket_size = 1, .seed = seed}, x, "maxmin{3 bits, B=1} " + tag);
  }
  /// The compressor rejects non-finite input, so special values go into hand-built payloads:
  /// -0, subnormal and huge minimums, zero and subnormal units, every 8-bit level, and a unit
  /// whose top level lands exactly on 0 from -max(T) / 4.
  static void generate_special(std::vector<sample<P>>& out, const std::vector<T>& x, const std::string& tag, u64) {
    const std::size_t d = x.size();
    const T big = std::numeric_limits<T>::max() / T(4);
    const T pool_min[] = {-T(0), std::numeric_limits<T>::denorm_min(), -big, T(1.5)};
    const T pool_unit[] = {T(0), std::numeric_limits<T>::denorm_min(), big / T(255), T(0.125)};
    P a;
    a.dim = d;
    a.bucket_size = 4;
    a.bits = 8;
    for (std::size_t b = 0; b < (d + 3) / 4; ++b) {
      a.mins.push_back(pool_min[b % 4]);
      a.units.push_back(pool_unit[b % 4]);
    }
    for (std::size_t i = 0; i < d; ++i) a.levels.push_back(static_cast<std::uint8_t>(i * 37 % 256));
    out.push_back({"hand-built 8-bit, special mins and units " + tag, a});
    P c;
    c.dim = d;
    c.bucket_size = d + 5;  // one bucket longer than the vector
    c.bits = 3;
    if (d > 0) {
      c.mins.push_back(-big);
      c.units.push_back(T(0));  // a constant bucket may still carry any level
    }
    for (std::size_t i = 0; i < d; ++i) c.levels.push_back(static_cast<std::uint8_t>(i % 8));
    out.push_back({"hand-built 3-bit, one long bucket " + tag, c});
  }
  static void check_layout(const P& p, const bytes_t& b) {
    REQUIRE(b.size() == expected_size(p));
    CHECK(read_le<u64>(b, 16) == p.bucket_size);
    CHECK(read_le<u32>(b, 24) == p.bits);
    CHECK(read_le<u32>(b, 28) == 0u);
    bool ok = true;
    for (std::size_t k = 0; k < buckets(p); ++k) {
      ok = ok && read_le<bits_of<T>>(b, 32 + 2 * k * sizeof(T)) == bits(p.mins[k]);
      ok = ok && read_le<bits_of<T>>(b, 32 + (2 * k + 1) * sizeof(T)) == bits(p.units[k]);
    }
    const std::size_t at = 32 + 2 * buckets(p) * sizeof(T);
    for (std::size_t i = 0; i < p.dim; ++i) {
      u64 u = 0;
      for (unsigned k = 0; k < p.bits; ++k) u |= static_cast<u64>(bit_at(b, at, u64{i} * p.bits + k)) << k;
      ok = ok && u == p.levels[i];
    }
    const u64 total = u64{p.dim} * p.bits;
    for (u64 k = total; k < (total + 7) / 8 * 8; ++k) ok = ok && !bit_at(b, at, k);
    CHECK_MESSAGE(ok, "bucket_size, bits, reserved, (min, unit) pairs at offset 32, then levels LSB first, zero padding");
  }
  static std::vector<const void*> storage(const P& p) { return {p.levels.data(), p.mins.data(), p.units.data()}; }
};

using sparse_f = gc::sparse_vector<float>;
using sparse_d = gc::sparse_vector<double>;
using sparse_f64i = gc::sparse_vector<float, std::uint64_t>;
using sparse_d64i = gc::sparse_vector<double, std::uint64_t>;
using seeded_f = gc::seeded_sparse_vector<float>;
using seeded_d = gc::seeded_sparse_vector<double>;
using sign_f = gc::sign_vector<float>;
using sign_d = gc::sign_vector<double>;
using quant_f = gc::quantized_vector<float>;
using quant_d = gc::quantized_vector<double>;
using dense_f = gc::dense_vector<float>;
using dense_d = gc::dense_vector<double>;
using fcode_f = gc::float_code_vector<float>;
using fcode_d = gc::float_code_vector<double>;
using bucket_f = gc::bucket_quantized_vector<float>;
using bucket_d = gc::bucket_quantized_vector<double>;
using two_f = gc::two_level_vector<float>;
using two_d = gc::two_level_vector<double>;

using all_payloads = std::tuple<sparse_f, sparse_d, sparse_f64i, sparse_d64i, seeded_f, seeded_d, sign_f, sign_d,
                                quant_f, quant_d, dense_f, dense_d, fcode_f, fcode_d, bucket_f, bucket_d, two_f,
                                two_d>;

constexpr std::size_t small_sizes[] = {0, 1, 2, 3, 7, 8, 9, 17, 64, 65};
constexpr gt::input_kind few_kinds[] = {gt::input_kind::normal, gt::input_kind::with_zeros, gt::input_kind::ties};
constexpr std::size_t special_sizes[] = {1, 2, 11, 65};

template <class P>
std::vector<sample<P>> make_samples(std::span<const std::size_t> sizes, std::span<const gt::input_kind> kinds,
                                    bool specials) {
  using T = typename P::value_type;
  std::vector<sample<P>> out;
  for (const gt::input_kind kind : kinds) {
    for (const std::size_t d : sizes) {
      const u64 seed = 1000 + d;
      const auto x = gt::make_input<T>(kind, d, seed);
      traits<P>::generate(out, x, std::string(gt::to_string(kind)) + " d=" + std::to_string(d) + " seed=" + std::to_string(seed),
                          seed);
    }
  }
  if (specials) {
    for (const std::size_t d : special_sizes) {
      const u64 seed = 77 + d;
      traits<P>::generate_special(out, special_input<T>(d, seed),
                                  "specials d=" + std::to_string(d) + " seed=" + std::to_string(seed), seed);
    }
  }
  return out;
}

/// A small valid payload with content, to pre-fill decode targets.
template <class P>
const P& prefill() {
  static const P cached = [] {
    const std::size_t sizes[] = {13};
    const gt::input_kind kinds[] = {gt::input_kind::normal};
    return make_samples<P>(sizes, kinds, false).back().payload;
  }();
  return cached;
}

template <class T>
bool all_finite(const std::vector<T>& v) {
  return std::all_of(v.begin(), v.end(), [](T x) { return std::isfinite(x); });
}

// ---------------------------------------------------------------------------------------
// The round trip checks for one payload.

template <class P>
void check_round_trip(const P& p, P& reused) {
  using Tr = traits<P>;
  using T = typename P::value_type;
  const bytes_t b = gc::encode(p);

  // Exact size: the library's wire_bytes, and the hand-computed formula.
  CHECK(gc::wire_bytes(p) == b.size());
  CHECK(b.size() == Tr::expected_size(p));
  REQUIRE(b.size() >= 16);

  // The header, byte by byte.
  CHECK(b[0] == std::byte{'G'});
  CHECK(b[1] == std::byte{'C'});
  CHECK(std::to_integer<unsigned>(b[2]) == Tr::kind);
  CHECK(std::to_integer<unsigned>(b[3]) == version_of(Tr::kind));
  CHECK(std::to_integer<unsigned>(b[4]) == sizeof(T));
  CHECK(std::to_integer<unsigned>(b[5]) == Tr::index_bytes);
  CHECK(std::to_integer<unsigned>(b[6]) == 0u);
  CHECK(std::to_integer<unsigned>(b[7]) == 0u);
  CHECK(read_le<u64>(b, 8) == Tr::dim(p));
  Tr::check_layout(p, b);

  // decode(encode(p)) == p bitwise, fresh and into a reused object that held another payload.
  const P q = gc::decode<P>(view(b));
  CHECK(Tr::same(q, p));
  gc::decode_into(view(b), reused);
  CHECK(Tr::same(reused, p));

  // encode into a slice of a larger buffer writes exactly wire_bytes bytes.
  bytes_t big(b.size() + 48, std::byte{0xA5});
  const std::size_t off = 13;
  const std::size_t written = gc::encode(p, std::span<std::byte>(big).subspan(off, b.size() + 20));
  CHECK(written == b.size());
  CHECK(std::equal(b.begin(), b.end(), big.begin() + static_cast<std::ptrdiff_t>(off)));
  const auto untouched = [](std::byte v) { return v == std::byte{0xA5}; };
  CHECK(std::all_of(big.begin(), big.begin() + static_cast<std::ptrdiff_t>(off), untouched));
  CHECK(std::all_of(big.begin() + static_cast<std::ptrdiff_t>(off + b.size()), big.end(), untouched));

  bytes_t exact(b.size());
  CHECK(gc::encode(p, std::span<std::byte>(exact)) == b.size());
  CHECK(exact == b);

  // A destination one byte short (or empty) is an error, not an overrun.
  bytes_t short_buf(b.size() - 1);
  CHECK_THROWS_WITH_AS(gc::encode(p, std::span<std::byte>(short_buf)), doctest::Contains("too small"), gc::error);
  CHECK_THROWS_AS(gc::encode(p, std::span<std::byte>()), gc::error);

  // encode(p, vector&) replaces whatever the vector held.
  bytes_t into(7, std::byte{0x5A});
  gc::encode(p, into);
  CHECK(into == b);

  // The decoded payload densifies to the same vector, and -1 * it cancels exactly.
  const std::size_t d = Tr::dim(p);
  const std::vector<T> dp = gt::densify<T>(p, d);
  const std::vector<T> dq = gt::densify<T>(q, d);
  CHECK(gt::same_bits(dp, dq));
  if (all_finite(dp)) {
    std::vector<T> c = dp;
    gc::decompress_add(p, std::span<T>(c), T(-1));
    CHECK(std::all_of(c.begin(), c.end(), [](T v) { return v == T(0); }));
    std::vector<T> c2 = dq;
    gc::decompress_add(q, c2, T(-1));  // the range overload
    CHECK(std::all_of(c2.begin(), c2.end(), [](T v) { return v == T(0); }));
  }
}

// ---------------------------------------------------------------------------------------
// Fuzz bookkeeping: a buffer must decode to a canonical payload (re-encoding gives the
// same bytes) or be rejected with gc::error leaving the target unchanged.

struct fuzz_stats {
  std::size_t decoded = 0;
  std::size_t rejected = 0;
  std::size_t costly = 0;  // seeded payloads claiming a huge dim, not decoded (see fuzz_one)
  std::size_t bad = 0;
  std::string first_bad;
};

/// Would decoding buf as P regenerate the index set of a seeded sparse payload of more than
/// 2^22 elements? That costs O(dim) time by definition (every index is hashed;
/// docs/payloads.md): a flipped high bit of dim costs seconds per case and reaches no branch
/// that a small dim does not. True only for a buffer the decoder would accept (the header of
/// P, a dim that fits P's index type, 1 <= k <= dim, exactly k values), so every rejection
/// is still checked; the libFuzzer target skips the same inputs.
template <class P>
bool claims_costly_seeded_decode(const bytes_t& buf) {
  if constexpr (traits<P>::kind != 2) {
    return false;
  } else {
    using T = typename P::value_type;
    if (buf.size() < 40) return false;
    const bytes_t canonical = header(2, sizeof(T), 0, 0);
    for (std::size_t i = 0; i < 8; ++i)
      if (buf[i] != canonical[i]) return false;
    const auto le64 = [&](std::size_t at) {
      u64 v = 0;
      for (std::size_t i = 0; i < 8; ++i) v |= u64{std::to_integer<unsigned>(buf[at + i])} << (8 * i);
      return v;
    };
    const u64 dim = le64(8), k = le64(32);  // dim, then seed, step and k
    const u64 largest_index = std::numeric_limits<typename P::index_type>::max();
    return dim > (u64{1} << 22) && dim - 1 <= largest_index && k >= 1 && k <= dim && k < (u64{1} << 40) &&
           buf.size() == 40 + k * sizeof(T);
  }
}

template <class P>
void fuzz_one(const bytes_t& buf, P& target, const P& before, fuzz_stats& st, const std::string& what) {
  using Tr = traits<P>;
  using T = typename P::value_type;
  const auto note = [&](const std::string& why) {
    if (st.bad++ == 0) st.first_bad = what + ": " + why;
  };
  if (claims_costly_seeded_decode<P>(buf)) {
    ++st.costly;
    return;
  }
  const outcome o = try_decode_into(view(buf), target);
  if (o.r == result::other) {
    note(o.message);
  } else if (o.r == result::gc_error) {
    ++st.rejected;
    if (!Tr::same(target, before)) note("failed decode changed the target (" + o.message + ")");
  } else {
    ++st.decoded;
    bytes_t again;
    try {
      again = gc::encode(target);
    } catch (const std::exception& e) {
      note(std::string("decoded payload does not re-encode: ") + e.what());
    }
    if (!again.empty() && again != buf) {
      // A sparse buffer with the other index width decodes too; it re-encodes with the
      // payload's own width, and that encoding must decode to the same payload.
      const bool other_width = Tr::kind == 1 && std::to_integer<unsigned>(buf[5]) != Tr::index_bytes;
      if (!other_width) {
        note("re-encoding of the decoded payload differs from the buffer");
      } else {
        P r;
        if (try_decode_into(view(again), r).r != result::ok || !Tr::same(r, target))
          note("re-encoding with the native index width does not decode to the same payload");
      }
    }
    if (Tr::dim(target) <= 4096) {
      try {
        (void)gt::densify<T>(target, Tr::dim(target));
      } catch (const std::exception& e) {
        note(std::string("decoded payload does not densify: ") + e.what());
      }
    }
  }
  target = before;
}

template <class P>
void expect_reject(const bytes_t& b, const char* word) {
  INFO("expected a gc::error mentioning '", word, "'");
  CHECK_THROWS_WITH_AS(gc::decode<P>(view(b)), doctest::Contains(word), gc::error);
  const P before = prefill<P>();
  P target = before;
  const outcome o = try_decode_into(view(b), target);
  CHECK(o.r == result::gc_error);
  CHECK_MESSAGE(traits<P>::same(target, before), "a failed decode_into must leave the target unchanged");
}

template <class P>
P expect_accept(const bytes_t& b) {
  P p;
  const outcome o = try_decode_into(view(b), p);
  INFO(o.message);
  CHECK(o.r == result::ok);
  if (o.r == result::ok) {
    if (std::to_integer<unsigned>(b.at(5)) == traits<P>::index_bytes) {
      CHECK(gc::encode(p) == b);  // canonical: re-encoding gives the same bytes
    } else {
      // A sparse buffer with the other index width re-encodes with the payload's own width.
      CHECK(traits<P>::same(gc::decode<P>(view(gc::encode(p))), p));
    }
  }
  return p;
}

}  // namespace

// =========================================================================================
// 1. Round trips.

TEST_CASE_TEMPLATE_DEFINE("wire: round trip of every compressor's payload is bitwise exact", P, round_trip_id) {
  INFO(traits<P>::name());
  const auto samples = make_samples<P>(gt::edge_sizes, gt::all_input_kinds, true);
  P reused = samples.back().payload;  // starts with other content: decode_into must replace it
  for (const auto& s : samples) {
    CAPTURE(s.name);
    check_round_trip(s.payload, reused);
  }
}
TEST_CASE_TEMPLATE_APPLY(round_trip_id, all_payloads);

TEST_CASE_TEMPLATE_DEFINE("wire: decode_into reuses the target's storage and clears stale state", P, reuse_id) {
  INFO(traits<P>::name());
  const std::size_t sizes[] = {4097, 9, 0};
  const gt::input_kind kinds[] = {gt::input_kind::with_zeros};
  const auto samples = make_samples<P>(sizes, kinds, false);
  // Samples come in groups per size; pair each big one with each smaller one of the same config.
  const std::size_t per_size = samples.size() / 3;
  REQUIRE(per_size * 3 == samples.size());
  for (std::size_t c = 0; c < per_size; ++c) {
    const P& big = samples[c].payload;
    CAPTURE(samples[c].name);
    for (std::size_t small_group : {1u, 2u}) {
      const P& small = samples[small_group * per_size + c].payload;
      CAPTURE(samples[small_group * per_size + c].name);
      P target;
      gc::decode_into(view(gc::encode(big)), target);
      REQUIRE(traits<P>::same(target, big));
      const auto storage = traits<P>::storage(target);
      gc::decode_into(view(gc::encode(small)), target);
      CHECK(traits<P>::same(target, small));
      CHECK_MESSAGE(traits<P>::storage(target) == storage, "a smaller payload must reuse the existing buffers");
      gc::decode_into(view(gc::encode(big)), target);
      CHECK(traits<P>::same(target, big));
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(reuse_id, all_payloads);

TEST_CASE("wire: golden bytes of sparse_vector<float> (dim 10, indices {1, 7}, values {1, -2.5})") {
  gc::sparse_vector<float> p;
  p.dim = 10;
  p.indices = {1, 7};
  p.values = {1.0f, -2.5f};
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x01, 0x01, 0x04, 0x04, 0x00, 0x00,  // 'G' 'C', kind 1, version 1, float, u32 indices, reserved
      0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 10
      0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // count 2
      0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,  // indices 1, 7
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,  // 1.0f = 0x3f800000, -2.5f = 0xc0200000
  });
  CHECK(gc::wire_bytes(p) == 40u);
  const bytes_t enc = gc::encode(p);
  REQUIRE(enc.size() == golden.size());
  for (std::size_t i = 0; i < golden.size(); ++i) {
    CAPTURE(i);
    CHECK(std::to_integer<unsigned>(enc[i]) == std::to_integer<unsigned>(golden[i]));
  }
  const auto q = gc::decode<gc::sparse_vector<float>>(view(golden));
  CHECK(q.dim == 10u);
  CHECK(q.indices == std::vector<std::uint32_t>{1, 7});
  CHECK(gt::same_bits(q.values, p.values));
}

TEST_CASE("wire: golden bytes of sparse_vector<float, uint64_t>") {
  gc::sparse_vector<float, std::uint64_t> p;
  p.dim = 10;
  p.indices = {1, 7};
  p.values = {1.0f, -2.5f};
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x01, 0x01, 0x04, 0x08, 0x00, 0x00,  // index bytes 8
      0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 10
      0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // count 2
      0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // index 1
      0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // index 7
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,  // values
  });
  CHECK(gc::wire_bytes(p) == 48u);
  CHECK(gc::encode(p) == golden);
  CHECK(gc::decode<gc::sparse_vector<float, std::uint64_t>>(view(golden)) == p);
}

TEST_CASE("wire: golden bytes of seeded_sparse_vector<float>") {
  // dim 100, seed 0x0123456789abcdef, step 5, one value 1.5f; the index is not on the wire.
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x02, 0x02, 0x04, 0x00, 0x00, 0x00,  // kind 2, version 2, no index bytes
      0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 100
      0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,  // seed
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // step 5
      0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // k 1
      0x00, 0x00, 0xc0, 0x3f,                          // 1.5f
  });
  // random_k at this (seed, step) picks the index the receiver must regenerate.
  gc::random_k rk{.k = 1, .seed = 0x0123456789abcdefULL, .step = 5};
  std::vector<float> x(100, 0.0f);
  gc::seeded_sparse_vector<float> sent;
  gc::compress(gc::exec::seq, rk, std::span<const float>(x), sent);
  REQUIRE(sent.indices.size() == 1);
  x[sent.indices[0]] = 1.5f;
  rk.step = 5;
  gc::compress(gc::exec::seq, rk, std::span<const float>(x), sent);
  CHECK(sent.step == 5u);
  CHECK(gc::wire_bytes(sent) == 44u);
  CHECK(gc::encode(sent) == golden);
  const auto q = gc::decode<gc::seeded_sparse_vector<float>>(view(golden));
  CHECK(q.dim == 100u);
  CHECK(q.seed == 0x0123456789abcdefULL);
  CHECK(q.step == 5u);
  CHECK(q.indices == sent.indices);
  CHECK(gt::same_bits(q.values, std::vector<float>{1.5f}));
}

TEST_CASE("wire: golden bytes of sign_vector<float>") {
  // dim 10, blocks of 4 (3 blocks), scales {0.5, 1, 2}, elements 0, 3, 8, 9 negative.
  gc::sign_vector<float> p;
  p.reset(10, 4);
  p.scales = {0.5f, 1.0f, 2.0f};
  p.negative[0] = (1u << 0) | (1u << 3) | (1u << 8) | (1u << 9);
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x03, 0x01, 0x04, 0x00, 0x00, 0x00,  // kind 3
      0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 10
      0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // block_size 4
      0x00, 0x00, 0x00, 0x3f,                          // 0.5f
      0x00, 0x00, 0x80, 0x3f,                          // 1.0f
      0x00, 0x00, 0x00, 0x40,                          // 2.0f
      0x09, 0x03,                                      // bits 0, 3 | 8, 9 (then 6 zero padding bits)
  });
  CHECK(gc::wire_bytes(p) == 38u);
  CHECK(gc::encode(p) == golden);
  const auto q = gc::decode<gc::sign_vector<float>>(view(golden));
  CHECK(traits<gc::sign_vector<float>>::same(q, p));
  CHECK(gt::same_bits(gt::densify<float>(q, 10),
                      std::vector<float>{-0.5f, 0.5f, 0.5f, -0.5f, 1.0f, 1.0f, 1.0f, 1.0f, -2.0f, -2.0f}));
}

TEST_CASE("wire: golden bytes of quantized_vector<float>") {
  // dim 5, scale 0.25, 3-bit levels {0, -1, 1, -2, 3} -> zigzag {0, 1, 2, 3, 6}
  // packed LSB first: 0 | 1<<3 | 2<<6 | 3<<9 | 6<<12 = 0x6688 (15 bits, 1 padding bit).
  gc::quantized_vector<float> p;
  p.dim = 5;
  p.scale = 0.25f;
  p.level_bits = 3;
  p.levels = {0, -1, 1, -2, 3};
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x04, 0x01, 0x04, 0x00, 0x00, 0x00,  // kind 4
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 5
      0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // level_bits 3, coding 0 (linear)
      0x00, 0x00, 0x80, 0x3e,                          // 0.25f
      0x88, 0x66,                                      // packed levels
  });
  CHECK(gc::wire_bytes(p) == 30u);
  CHECK(gc::encode(p) == golden);
  CHECK(gc::decode<gc::quantized_vector<float>>(view(golden)) == p);
}

TEST_CASE("wire: golden bytes of quantized_vector<float> with power-of-two levels") {
  // dim 5, scale 0.25, levels {0, -1, 2, -4, 8} = {0, -2^0, 2^1, -2^2, 2^3}, coded as
  // zigzag(+-(j + 1)) = {0, 1, 4, 5, 8}: 4 bits each (linear coding would need zigzag(8) = 16,
  // 5 bits). Packed LSB first: 0 | 1<<4 | 4<<8 | 5<<12 | 8<<16 = 0x085410 (20 bits).
  gc::quantized_vector<float> p;
  p.dim = 5;
  p.scale = 0.25f;
  p.level_bits = 4;
  p.coding = gc::level_coding::power_of_two;
  p.levels = {0, -1, 2, -4, 8};
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x04, 0x01, 0x04, 0x00, 0x00, 0x00,  // kind 4, version 1
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 5
      0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // level_bits 4, coding 1 (power of two)
      0x00, 0x00, 0x80, 0x3e,                          // 0.25f
      0x10, 0x54, 0x08,                                // packed codes
  });
  CHECK(gc::wire_bytes(p) == 31u);
  CHECK(gc::encode(p) == golden);
  CHECK(gc::decode<gc::quantized_vector<float>>(view(golden)) == p);
  std::vector<float> dense(5, 0.0f);
  gc::decompress_add(p, std::span<float>(dense));
  CHECK(dense == std::vector<float>{0.0f, -0.25f, 0.5f, -1.0f, 2.0f});

  // Encoding checks that the levels are what the coding can write.
  gc::quantized_vector<float> bad = p;
  bad.levels[2] = 3;
  CHECK_THROWS_WITH_AS(gc::encode(bad), doctest::Contains("not 0 or +-2^j"), gc::error);
  bad.levels[2] = std::numeric_limits<std::int32_t>::min();
  CHECK_THROWS_WITH_AS(gc::encode(bad), doctest::Contains("not 0 or +-2^j"), gc::error);
  bad = p;
  bad.levels[4] = 16;  // zigzag(5) = 10 needs 4 bits: fits; 2^7 needs zigzag(8) = 16: 5 bits
  CHECK_NOTHROW(gc::encode(bad));
  bad.levels[4] = 128;
  CHECK_THROWS_WITH_AS(gc::encode(bad), doctest::Contains("does not fit 4 bits"), gc::error);
  bad = p;
  bad.coding = static_cast<gc::level_coding>(7);
  CHECK_THROWS_WITH_AS(gc::encode(bad), doctest::Contains("not a level_coding"), gc::error);
}

TEST_CASE("wire: golden bytes of dense_vector<double>") {
  gc::dense_vector<double> p;
  p.values = {1.0, -0.0};
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x05, 0x01, 0x08, 0x00, 0x00, 0x00,  // kind 5, double
      0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 2
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,  // 1.0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,  // -0.0
  });
  CHECK(gc::wire_bytes(p) == 32u);
  CHECK(gc::encode(p) == golden);
  CHECK(gt::same_bits(gc::decode<gc::dense_vector<double>>(view(golden)).values, p.values));
}

TEST_CASE("wire: golden bytes of float_code_vector (float16_cast of float, natural compression codes of double)") {
  // float16_cast of {3, -0.5, 0}: max 3 is in [2^1, 2^2), so e = 14 - 1 = 13; 3 * 2^13 = 1.5 * 2^14
  // is float16 0x7600, -0.5 * 2^13 = -2^12 is 0xec00, 0 is 0x0000.
  const std::vector<float> x{3.0f, -0.5f, 0.0f};
  gc::float_code_vector<float> p;
  gc::compress(gc::exec::seq, gc::float16_cast{}, x, p);
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x06, 0x01, 0x04, 0x00, 0x00, 0x00,  // kind 6, float
      0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 3
      0x01, 0x10, 0x00, 0x00,                          // format 1 (float16), 16 code bits, reserved 0
      0x0d, 0x00, 0x00, 0x00,                          // scale_exponent 13
      0x00, 0x76, 0x00, 0xec, 0x00, 0x00,              // codes
  });
  CHECK(gc::wire_bytes(p) == 30u);
  CHECK(gc::encode(p) == golden);
  const auto q = gc::decode<gc::float_code_vector<float>>(view(golden));
  CHECK(q == p);
  CHECK(gt::densify<float>(q, 3) == x);

  // power_of_two codes of double, 12 bits (sign above the 11-bit exponent field): 1.0 is 0x3ff,
  // -2.0 is 0xc00, 2^-1022 is 0x001; packed LSB first: 0x01c003ff in 36 bits, 4 padding bits.
  gc::float_code_vector<double> n;
  n.dim = 3;
  n.format = gc::code_format::power_of_two;
  n.codes = {0x3ff, 0xc00, 0x001};
  const bytes_t golden_n = make_bytes({
      0x47, 0x43, 0x06, 0x01, 0x08, 0x00, 0x00, 0x00,  // kind 6, double
      0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 3
      0x03, 0x0c, 0x00, 0x00,                          // format 3 (power_of_two), 12 code bits
      0x00, 0x00, 0x00, 0x00,                          // scale_exponent 0
      0xff, 0x03, 0xc0, 0x01, 0x00,                    // codes
  });
  CHECK(gc::wire_bytes(n) == 29u);
  CHECK(gc::encode(n) == golden_n);
  CHECK(gc::decode<gc::float_code_vector<double>>(view(golden_n)) == n);
  CHECK(gt::densify<double>(n, 3) == std::vector<double>{1.0, -2.0, std::numeric_limits<double>::min()});
}

TEST_CASE_TEMPLATE("wire: sparse index widths 4 and 8 decode into either index type when dim fits", T, float, double) {
  using P32 = gc::sparse_vector<T, std::uint32_t>;
  using P64 = gc::sparse_vector<T, std::uint64_t>;
  for (const gt::input_kind kind : gt::all_input_kinds) {
    for (const std::size_t d : {0, 1, 9, 100, 4097}) {
      CAPTURE(gt::to_string(kind));
      CAPTURE(d);
      const auto x = gt::make_input<T>(kind, d, 5 + d);
      P64 wide;
      P32 narrow;
      gc::compress(gc::exec::seq, gc::top_k{.k = d / 3 + 1}, std::span<const T>(x), wide);
      gc::compress(gc::exec::seq, gc::top_k{.k = d / 3 + 1}, std::span<const T>(x), narrow);
      const P32 from_wide = gc::decode<P32>(view(gc::encode(wide)));
      CHECK(from_wide.dim == wide.dim);
      CHECK(std::equal(from_wide.indices.begin(), from_wide.indices.end(), wide.indices.begin(), wide.indices.end()));
      CHECK(gt::same_bits(from_wide.values, wide.values));
      CHECK(gc::encode(from_wide) == gc::encode(narrow));
      const P64 from_narrow = gc::decode<P64>(view(gc::encode(narrow)));
      CHECK(from_narrow == wide);
      CHECK(gt::same_bits(from_narrow.values, wide.values));
    }
  }

  // Crafted: dim 2^32 (largest index 2^32 - 1 fits uint32) with that index, width 8.
  bytes_t fits = header(1, sizeof(T), 8, u64{1} << 32);
  append_le<u64>(fits, 1);
  append_le<u64>(fits, (u64{1} << 32) - 1);
  append_value(fits, T(3));
  const P32 q = gc::decode<P32>(view(fits));
  CHECK(q.dim == (std::size_t{1} << 32));
  CHECK(q.indices == std::vector<std::uint32_t>{0xffffffffu});

  // dim 2^32 + 1: index 2^32 would not fit uint32, so the 32-bit payload rejects the buffer
  // (even with no entries), while the 64-bit one accepts it.
  bytes_t too_wide = header(1, sizeof(T), 8, (u64{1} << 32) + 1);
  append_le<u64>(too_wide, 0);
  expect_reject<P32>(too_wide, "does not fit");
  CHECK(gc::decode<P64>(view(too_wide)).dim == (std::size_t{1} << 32) + 1);
  bytes_t too_wide_1 = header(1, sizeof(T), 8, (u64{1} << 32) + 1);
  append_le<u64>(too_wide_1, 1);
  append_le<u64>(too_wide_1, u64{1} << 32);
  append_value(too_wide_1, T(1));
  expect_reject<P32>(too_wide_1, "dim");
  CHECK(gc::decode<P64>(view(too_wide_1)).indices == std::vector<std::uint64_t>{u64{1} << 32});
  // Also with 4-byte indices on the wire: the dim alone decides.
  bytes_t narrow_wire = header(1, sizeof(T), 4, (u64{1} << 32) + 1);
  append_le<u64>(narrow_wire, 0);
  expect_reject<P32>(narrow_wire, "does not fit");
}

TEST_CASE_TEMPLATE("wire: uint8_t and uint16_t index payloads encode the 4-byte index width", T, float, double) {
  // The format knows index widths 4 and 8 only. A payload with narrower indices (compressors
  // accept any unsigned index type) used to write width 1 or 2, which no decoder accepts.
  gc::sparse_vector<T, std::uint16_t> p16;
  p16.dim = 60000;
  p16.indices = {0, 7, 59999};
  p16.values = {T(1), T(-2.5), T(3)};
  bytes_t want = header(1, sizeof(T), 4, 60000);
  append_le<u64>(want, 3);
  for (const u32 i : {0u, 7u, 59999u}) append_le<u32>(want, i);
  for (const T v : {T(1), T(-2.5), T(3)}) append_value(want, v);
  CHECK(gc::wire_bytes(p16) == want.size());
  CHECK(gc::encode(p16) == want);
  CHECK(gc::decode<gc::sparse_vector<T, std::uint16_t>>(view(want)) == p16);
  const auto wide = gc::decode<gc::sparse_vector<T, std::uint64_t>>(view(want));
  CHECK(wide.indices == std::vector<std::uint64_t>{0, 7, 59999});

  gc::sparse_vector<T, std::uint8_t> p8;
  gc::compress(gc::exec::seq, gc::top_k{.k = 2}, std::vector<T>{T(1), T(0), T(-4), T(2)}, p8);
  const bytes_t b8 = gc::encode(p8);
  CHECK(b8.size() == gc::wire_bytes(p8));
  CHECK(std::to_integer<unsigned>(b8[5]) == 4u);
  CHECK(gc::decode<gc::sparse_vector<T, std::uint8_t>>(view(b8)) == p8);
  CHECK(gc::encode(gc::decode<gc::sparse_vector<T>>(view(b8))) == b8);
  // A dim beyond the narrow type is rejected by its decoder, as for uint32_t.
  using P8 = gc::sparse_vector<T, std::uint8_t>;
  CHECK_THROWS_WITH_AS(gc::decode<P8>(view(want)), doctest::Contains("does not fit"), gc::error);
}

// =========================================================================================
// 2. Malformed input.

TEST_CASE_TEMPLATE_DEFINE("wire: every truncation is rejected and leaves the target unchanged", P, truncation_id) {
  INFO(traits<P>::name());
  const auto samples = make_samples<P>(small_sizes, few_kinds, true);
  const P before = prefill<P>();
  P target = before;
  for (const auto& s : samples) {
    CAPTURE(s.name);
    const bytes_t b = gc::encode(s.payload);
    std::size_t first_bad = b.size(), first_changed = b.size(), first_wrong_message = b.size();
    std::string bad_message;
    for (std::size_t len = 0; len < b.size(); ++len) {
      const outcome o = try_decode_into(view(b, len), target);
      if (o.r != result::gc_error && first_bad == b.size()) {
        first_bad = len;
        bad_message = o.message;
      }
      if (o.r == result::gc_error && !contains(o.message, "truncated") && first_wrong_message == b.size()) {
        first_wrong_message = len;
        bad_message = o.message;
      }
      if (!traits<P>::same(target, before)) {
        if (first_changed == b.size()) first_changed = len;
        target = before;
      }
    }
    INFO("size ", b.size(), "; message: ", bad_message);
    CHECK_MESSAGE(first_bad == b.size(), "a prefix of this length was not rejected with gc::error");
    CHECK_MESSAGE(first_wrong_message == b.size(), "a prefix of this length was rejected without 'truncated'");
    CHECK_MESSAGE(first_changed == b.size(), "a failed decode_into changed the target");
    // The whole buffer decodes.
    CHECK(try_decode_into(view(b), target).r == result::ok);
    target = before;
  }
  // Spot checks through the fresh-object API and the message.
  const bytes_t b = gc::encode(samples.back().payload);
  CHECK_THROWS_WITH_AS(gc::decode<P>(view(b, 0)), doctest::Contains("truncated"), gc::error);
  CHECK_THROWS_WITH_AS(gc::decode<P>(view(b, 15)), doctest::Contains("truncated"), gc::error);
  CHECK_THROWS_WITH_AS(gc::decode<P>(view(b, b.size() - 1)), doctest::Contains("truncated"), gc::error);
}
TEST_CASE_TEMPLATE_APPLY(truncation_id, all_payloads);

TEST_CASE_TEMPLATE_DEFINE("wire: trailing bytes are rejected", P, trailing_id) {
  INFO(traits<P>::name());
  const auto samples = make_samples<P>(small_sizes, few_kinds, false);
  for (const auto& s : samples) {
    CAPTURE(s.name);
    const bytes_t b = gc::encode(s.payload);
    for (const std::size_t extra : {1, 7, 8}) {
      CAPTURE(extra);
      bytes_t longer = b;
      longer.resize(b.size() + extra, std::byte{0});
      expect_reject<P>(longer, "trailing");
    }
    bytes_t twice = b;
    twice.insert(twice.end(), b.begin(), b.end());
    expect_reject<P>(twice, "trailing");
  }
}
TEST_CASE_TEMPLATE_APPLY(trailing_id, all_payloads);

TEST_CASE_TEMPLATE_DEFINE("wire: malformed headers are rejected with a message naming the field", P, header_id) {
  using T = typename P::value_type;
  INFO(traits<P>::name());
  const std::size_t sizes[] = {0, 9};
  const gt::input_kind kinds[] = {gt::input_kind::normal};
  for (const auto& s : make_samples<P>(sizes, kinds, false)) {
    CAPTURE(s.name);
    const bytes_t b = gc::encode(s.payload);
    const auto with = [&](std::size_t off, unsigned v) {
      bytes_t m = b;
      m[off] = static_cast<std::byte>(v);
      return m;
    };
    expect_reject<P>(with(0, 'g'), "magic");
    expect_reject<P>(with(1, 'X'), "magic");
    expect_reject<P>(with(0, 0), "magic");
    for (unsigned kind = 0; kind < 256; ++kind) {
      if (kind == traits<P>::kind) continue;
      CAPTURE(kind);
      expect_reject<P>(with(2, kind), "kind");
    }
    for (const unsigned version : {0u, 1u, 2u, 3u, 255u}) {
      if (version == version_of(traits<P>::kind)) continue;
      CAPTURE(version);
      expect_reject<P>(with(3, version), "version");
    }
    if (traits<P>::kind == 2)  // version 1 meant Floyd's index set: the message says so
      expect_reject<P>(with(3, 1), "Floyd");
    for (const unsigned vb : {0u, 1u, 2u, sizeof(T) == 4 ? 8u : 4u, 16u, 255u}) {
      CAPTURE(vb);
      expect_reject<P>(with(4, vb), "value type");
    }
    if (traits<P>::kind == 1) {
      for (const unsigned ib : {0u, 1u, 2u, 3u, 5u, 7u, 9u, 16u, 255u}) {
        CAPTURE(ib);
        expect_reject<P>(with(5, ib), "index width");
      }
    } else {
      for (const unsigned ib : {1u, 4u, 8u, 255u}) {
        CAPTURE(ib);
        expect_reject<P>(with(5, ib), "index width");
      }
    }
    expect_reject<P>(with(6, 1), "reserved");
    expect_reject<P>(with(7, 0x80), "reserved");
  }
}
TEST_CASE_TEMPLATE_APPLY(header_id, all_payloads);

namespace {

/// A buffer decoded as Q, type-erased: the outcome, Q's kind and value size, and when it
/// decoded, its dim and dense values as bit patterns (widened to 64 bits). Each decoder is
/// instantiated once per Q and each sample once per P, rather than once per (P, Q) pair.
struct decoded_as {
  outcome o;
  int kind = 0;
  std::size_t value_size = 0;
  std::size_t dim = 0;
  std::vector<u64> values;
};

template <class T>
std::vector<u64> value_bits(const std::vector<T>& dense) {
  std::vector<u64> out;
  out.reserve(dense.size());
  for (const T v : dense) out.push_back(static_cast<u64>(bits(v)));
  return out;
}

template <class Q>
decoded_as decode_as(const bytes_t& b) {
  using TQ = typename Q::value_type;
  decoded_as r;
  r.kind = static_cast<int>(traits<Q>::kind);
  r.value_size = sizeof(TQ);
  Q q;
  r.o = try_decode_into(view(b), q);
  if (r.o.r == result::ok) {
    r.dim = traits<Q>::dim(q);
    r.values = value_bits(gt::densify<TQ>(q, r.dim));
  }
  return r;
}

struct decoder {
  std::string name;
  decoded_as (*decode)(const bytes_t&);
};

const std::vector<decoder>& all_decoders() {
  static const std::vector<decoder> list = []<class... Q>(std::tuple<Q...>*) {
    return std::vector<decoder>{decoder{traits<Q>::name(), &decode_as<Q>}...};
  }(static_cast<all_payloads*>(nullptr));
  return list;
}

/// Decodes p's buffer with every decoder: its own kind and value type gives p's values bit for
/// bit; every other decoder throws gc::error naming the kind or the value type.
template <class P>
void cross_decode(const P& p, const std::string& name) {
  using TP = typename P::value_type;
  CAPTURE(name);
  const bytes_t b = gc::encode(p);
  const std::size_t d = traits<P>::dim(p);
  const std::vector<u64> expected = value_bits(gt::densify<TP>(p, d));
  for (const decoder& q : all_decoders()) {
    INFO("decoding a ", traits<P>::name(), " buffer as ", q.name);
    const decoded_as got = q.decode(b);
    const bool own_kind = got.kind == static_cast<int>(traits<P>::kind);
    if (own_kind && got.value_size == sizeof(TP)) {
      CHECK(got.o.r == result::ok);
      CHECK(got.dim == d);
      CHECK(got.values == expected);
    } else {
      CHECK(got.o.r == result::gc_error);
      CHECK(contains(got.o.message, own_kind ? "value type" : "kind"));
    }
  }
}

template <class P>
void cross_decode_all() {
  const std::size_t sizes[] = {0, 9};
  const gt::input_kind kinds[] = {gt::input_kind::normal};
  for (const auto& s : make_samples<P>(sizes, kinds, false)) cross_decode(s.payload, s.name);
}

}  // namespace

TEST_CASE("wire: a buffer of one payload kind or value type is rejected by every other decoder") {
  []<class... P>(std::tuple<P...>*) { (cross_decode_all<P>(), ...); }(static_cast<all_payloads*>(nullptr));
  // The brief's example, with the message.
  std::vector<float> x = gt::make_input<float>(gt::input_kind::normal, 20, 3);
  gc::sign_vector<float> s;
  gc::compress(gc::exec::seq, gc::scaled_sign{}, x, s);
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(gc::encode(s))), doctest::Contains("kind"), gc::error);
  gc::dense_vector<float> df;
  gc::compress(gc::exec::seq, gc::identity{}, x, df);
  CHECK_THROWS_WITH_AS(gc::decode<gc::dense_vector<double>>(view(gc::encode(df))), doctest::Contains("value type"),
                       gc::error);
}

TEST_CASE_TEMPLATE("wire: sparse_vector structural errors", T, float, double) {
  // Buffers with the given index width, dim, count, indices and values.
  const auto build = [](unsigned width, u64 dim, u64 count, std::vector<u64> idx, std::vector<T> vals) {
    bytes_t b = header(1, sizeof(T), width, dim);
    append_le(b, count);
    for (const u64 i : idx)
      for (unsigned k = 0; k < width; ++k) b.push_back(static_cast<std::byte>(k < 8 ? (i >> (8 * k)) & 0xffu : 0u));
    for (const T v : vals) append_value(b, v);
    return b;
  };
  const auto run = [&]<class P>(P*) {
    INFO(traits<P>::name());
    for (const unsigned w : {4u, 8u}) {
      CAPTURE(w);
      // Boundaries that are fine: index dim - 1, count == dim, dim 0 with count 0.
      const P ok = expect_accept<P>(build(w, 10, 2, {0, 9}, {T(1), T(-2)}));
      CHECK(ok.indices.size() == 2);
      expect_accept<P>(build(w, 3, 3, {0, 1, 2}, {T(1), T(2), T(3)}));
      expect_accept<P>(build(w, 0, 0, {}, {}));
      // count > dim.
      expect_reject<P>(build(w, 3, 4, {0, 1, 2, 3}, {T(1), T(2), T(3), T(4)}), "exceeds dim");
      expect_reject<P>(build(w, 0, 1, {0}, {T(1)}), "dim");
      // index >= dim.
      expect_reject<P>(build(w, 10, 2, {1, 10}, {T(1), T(2)}), "dim");
      expect_reject<P>(build(w, 10, 1, {10}, {T(1)}), "dim");
      expect_reject<P>(build(w, 10, 1, {0xffffffffu}, {T(1)}), "dim");
      // Not strictly ascending, duplicates.
      expect_reject<P>(build(w, 10, 2, {7, 1}, {T(1), T(2)}), "ascending");
      expect_reject<P>(build(w, 10, 2, {3, 3}, {T(1), T(2)}), "ascending");
      expect_reject<P>(build(w, 10, 3, {1, 5, 4}, {T(1), T(2), T(3)}), "ascending");
      expect_reject<P>(build(w, 10, 3, {1, 5, 5}, {T(1), T(2), T(3)}), "ascending");
    }
    // A 64-bit index whose low 32 bits are a valid index must not wrap.
    expect_reject<P>(build(8, 10, 1, {(u64{1} << 32) + 1}, {T(1)}), "dim");
    expect_reject<P>(build(8, 10, 2, {1, (u64{1} << 32) + 2}, {T(1), T(2)}), "dim");
    // Invalid index widths (the body is laid out with that width, so only the width is wrong).
    for (const unsigned w : {0u, 1u, 2u, 3u, 16u}) {
      CAPTURE(w);
      expect_reject<P>(build(w, 10, 2, {1, 7}, {T(1), T(2)}), "index width");
    }
    // Messages name the problem.
    CHECK_THROWS_WITH_AS(gc::decode<P>(view(build(4, 10, 2, {7, 1}, {T(1), T(2)}))), doctest::Contains("ascending"),
                         gc::error);
    CHECK_THROWS_WITH_AS(gc::decode<P>(view(build(4, 10, 1, {12}, {T(1)}))), doctest::Contains("dim"), gc::error);
  };
  run(static_cast<gc::sparse_vector<T, std::uint32_t>*>(nullptr));
  run(static_cast<gc::sparse_vector<T, std::uint64_t>*>(nullptr));
}

TEST_CASE_TEMPLATE("wire: seeded_sparse_vector structural errors", T, float, double) {
  using P = gc::seeded_sparse_vector<T>;
  const auto build = [](u64 dim, u64 seed, u64 step, u64 k, std::size_t nvalues) {
    bytes_t b = header(2, sizeof(T), 0, dim);
    append_le(b, seed);
    append_le(b, step);
    append_le(b, k);
    for (std::size_t j = 0; j < nvalues; ++j) append_value(b, T(static_cast<double>(j) + 0.5));
    return b;
  };
  const P ok = expect_accept<P>(build(50, 9, 4, 5, 5));
  CHECK(ok.indices.size() == 5);
  CHECK(std::is_sorted(ok.indices.begin(), ok.indices.end()));
  CHECK(std::adjacent_find(ok.indices.begin(), ok.indices.end()) == ok.indices.end());
  CHECK(std::all_of(ok.indices.begin(), ok.indices.end(), [](auto i) { return i < 50; }));
  expect_accept<P>(build(5, 9, 4, 5, 5));
  expect_accept<P>(build(0, 9, 4, 0, 0));
  expect_reject<P>(build(5, 9, 4, 6, 6), "exceeds dim");
  expect_reject<P>(build(0, 9, 4, 1, 1), "dim");
  expect_reject<P>(build(50, 9, 4, 5, 4), "truncated");
  expect_reject<P>(build(50, 9, 4, 5, 6), "trailing");
  // The default 32-bit index type: dim 2^32 fits (largest index 2^32 - 1), 2^32 + 1 does not.
  // (k = 0: regenerating k >= 1 indices would hash all 2^32 of them, seconds.)
  const P big = expect_accept<P>(build(u64{1} << 32, 1, 2, 0, 0));
  CHECK(big.dim == (u64{1} << 32));
  expect_reject<P>(build((u64{1} << 32) + 1, 1, 2, 0, 0), "does not fit");
}

TEST_CASE_TEMPLATE("wire: sign_vector structural errors and padding bits", T, float, double) {
  using P = gc::sign_vector<T>;
  // block_size 0.
  {
    bytes_t b = header(3, sizeof(T), 0, 10);
    append_le<u64>(b, 0);
    for (int j = 0; j < 3; ++j) append_value(b, T(1));
    b.push_back(std::byte{0});
    b.push_back(std::byte{0});
    expect_reject<P>(b, "block_size");
  }
  // block_size 2^64 - 1: one block, must not overflow the block count.
  {
    bytes_t b = header(3, sizeof(T), 0, 10);
    append_le<u64>(b, ~u64{0});
    append_value(b, T(0.5));
    b.push_back(std::byte{0x81});
    b.push_back(std::byte{0x02});
    const P p = expect_accept<P>(b);
    CHECK(p.scales.size() == 1);
    CHECK(gt::same_bits(gt::densify<T>(p, 10), std::vector<T>{T(-0.5), T(0.5), T(0.5), T(0.5), T(0.5), T(0.5),
                                                              T(0.5), T(-0.5), T(0.5), T(-0.5)}));
  }
  // Padding bits: every bit after dim in the last byte must be zero; bits before it are signs.
  for (std::size_t d = 1; d <= 20; ++d) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::normal, d, 40 + d);
    P p;
    gc::compress(gc::exec::seq, gc::blockwise_sign{.block_size = 3}, std::span<const T>(x), p);
    const bytes_t b = gc::encode(p);
    const std::size_t last = b.size() - 1;
    for (unsigned bit = 0; bit < 8; ++bit) {
      CAPTURE(bit);
      bytes_t m = b;
      m[last] ^= static_cast<std::byte>(1u << bit);
      const std::size_t element = (d - 1) / 8 * 8 + bit;
      if (element >= d) {
        expect_reject<P>(m, "padding");
      } else {
        const P q = expect_accept<P>(m);
        CHECK(q.is_negative(element) != p.is_negative(element));
      }
    }
  }
}

TEST_CASE("wire: golden bytes of two_level_vector<float>") {
  // dim 10, blocks of 4 (3 blocks), lows {-0.5, -1, +0}, highs {0.25, 2, 4}, elements 0, 3, 5
  // negative.
  gc::two_level_vector<float> p;
  p.reset(10, 4);
  p.lows = {-0.5f, -1.0f, 0.0f};
  p.highs = {0.25f, 2.0f, 4.0f};
  p.negative[0] = (1u << 0) | (1u << 3) | (1u << 5);
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x08, 0x01, 0x04, 0x00, 0x00, 0x00,  // kind 8, version 1, float
      0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 10
      0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // block_size 4
      0x00, 0x00, 0x00, 0xbf,                          // lows: -0.5f
      0x00, 0x00, 0x80, 0xbf,                          //       -1.0f
      0x00, 0x00, 0x00, 0x00,                          //       +0
      0x00, 0x00, 0x80, 0x3e,                          // highs: 0.25f
      0x00, 0x00, 0x00, 0x40,                          //        2.0f
      0x00, 0x00, 0x80, 0x40,                          //        4.0f
      0x29, 0x00,                                      // bits 0, 3, 5 (then 6 zero padding bits)
  });
  CHECK(gc::wire_bytes(p) == 50u);
  CHECK(gc::encode(p) == golden);
  const auto q = gc::decode<gc::two_level_vector<float>>(view(golden));
  CHECK(traits<gc::two_level_vector<float>>::same(q, p));
  CHECK(gt::same_bits(gt::densify<float>(q, 10),
                      std::vector<float>{-0.5f, 0.25f, 0.25f, -0.5f, 2.0f, -1.0f, 2.0f, 2.0f, 4.0f, 4.0f}));
  // What onebit sends for x is such a payload.
  const std::vector<float> x{-0.5f, 0.0f, 0.5f, -0.5f, 2.0f, -1.0f, 1.0f, 3.0f, 4.0f, 4.0f};
  gc::two_level_vector<float> sent;
  gc::compress(gc::exec::seq, gc::onebit{.block_size = 4}, x, sent);
  CHECK(gc::encode(sent) == golden);
}

TEST_CASE_TEMPLATE("wire: two_level_vector structural errors and padding bits", T, float, double) {
  using P = gc::two_level_vector<T>;
  // dim, block_size, the lows and highs (as many values as given), and bytes of bits.
  const auto build = [](u64 dim, u64 block_size, std::vector<T> values, std::vector<unsigned> bit_bytes) {
    bytes_t b = header(8, sizeof(T), 0, dim);
    append_le(b, block_size);
    for (const T v : values) append_value(b, v);
    for (const unsigned v : bit_bytes) b.push_back(static_cast<std::byte>(v));
    return b;
  };
  // 10 elements in blocks of 4: 3 lows, 3 highs, 2 bytes of bits.
  const std::vector<T> six{T(-1), T(-2), T(-3), T(1), T(2), T(3)};
  const P ok = expect_accept<P>(build(10, 4, six, {0x81, 0x02}));
  CHECK(gt::same_bits(gt::densify<T>(ok, 10), std::vector<T>{T(-1), T(1), T(1), T(1), T(2), T(2), T(2), T(-2),
                                                              T(3), T(-3)}));
  expect_accept<P>(build(0, 4, {}, {}));
  expect_reject<P>(build(10, 0, six, {0, 0}), "block_size");
  // The block count follows from dim and block_size: one value short, one too many; bits short.
  expect_reject<P>(build(10, 4, {T(-1), T(-2), T(-3), T(1), T(2)}, {0, 0}), "truncated");
  expect_reject<P>(build(10, 4, six, {0}), "truncated");
  expect_reject<P>(build(10, 5, six, {0, 0}), "trailing");  // 2 blocks of 5 need 4 values
  // block_size 2^64 - 1: one block, and the block count must not overflow.
  const P one = expect_accept<P>(build(10, ~u64{0}, {T(-0.5), T(0.25)}, {0x81, 0x02}));
  CHECK(one.lows.size() == 1);
  CHECK(gt::same_bits(gt::densify<T>(one, 10), std::vector<T>{T(-0.5), T(0.25), T(0.25), T(0.25), T(0.25), T(0.25),
                                                               T(0.25), T(-0.5), T(0.25), T(-0.5)}));
  // The values are not checked (as sign_vector's scales): any low and high decodes to itself.
  expect_accept<P>(build(1, 1, {T(1), std::numeric_limits<T>::quiet_NaN()}, {0x01}));
  // Padding bits: every bit after dim in the last byte must be zero; bits before it are signs.
  for (std::size_t d = 1; d <= 20; ++d) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::normal, d, 50 + d);
    P p;
    gc::compress(gc::exec::seq, gc::onebit{.block_size = 3}, std::span<const T>(x), p);
    const bytes_t b = gc::encode(p);
    const std::size_t last = b.size() - 1;
    for (unsigned bit = 0; bit < 8; ++bit) {
      CAPTURE(bit);
      bytes_t m = b;
      m[last] ^= static_cast<std::byte>(1u << bit);
      const std::size_t element = (d - 1) / 8 * 8 + bit;
      if (element >= d) {
        expect_reject<P>(m, "padding");
      } else {
        const P q = expect_accept<P>(m);
        CHECK(q.is_negative(element) != p.is_negative(element));
      }
    }
  }
}

TEST_CASE_TEMPLATE("wire: quantized_vector structural errors and padding bits", T, float, double) {
  using P = gc::quantized_vector<T>;
  const auto build = [](u64 dim, u32 level_bits, u32 reserved, std::size_t packed_bytes) {
    bytes_t b = header(4, sizeof(T), 0, dim);
    append_le(b, level_bits);
    append_le(b, reserved);
    append_value(b, T(0.5));
    for (std::size_t i = 0; i < packed_bytes; ++i) b.push_back(std::byte{0});
    return b;
  };
  expect_accept<P>(build(10, 1, 0, 2));
  expect_accept<P>(build(10, 32, 0, 40));
  expect_accept<P>(build(0, 17, 0, 0));
  for (const u32 lb : {0u, 33u, 64u, 0xffffffffu}) {
    CAPTURE(lb);
    expect_reject<P>(build(10, lb, 0, (10 * std::size_t{lb} + 7) / 8 % 4096), "level_bits");
  }
  // The former reserved field is the level coding: 0 and 1 are codings, nothing else is.
  expect_accept<P>(build(10, 3, 1, 4));
  for (const u32 coding : {2u, 0x80000000u, 0xffffffffu}) {
    CAPTURE(coding);
    expect_reject<P>(build(10, 3, coding, 4), "level coding");
  }
  // A power-of-two code whose exponent is above 30 (2^31 does not fit an int32 level):
  // codes 0..62 are zigzag(+-1..+-31) and the exponent 31 is |v| = 32, code 63 or 64.
  for (const unsigned code : {63u, 64u, 127u}) {
    CAPTURE(code);
    bytes_t b = build(2, 8, 1, 2);
    b[b.size() - 1] = static_cast<std::byte>(code);  // element 1
    expect_reject<P>(b, "exponent above 30");
  }
  {
    bytes_t b = build(2, 8, 1, 2);
    b[b.size() - 2] = static_cast<std::byte>(62);  // zigzag(31): +2^30, the largest level
    b[b.size() - 1] = static_cast<std::byte>(61);  // zigzag(-31): -2^30
    const P q = expect_accept<P>(b);
    CHECK(q.levels == std::vector<std::int32_t>{1 << 30, -(1 << 30)});
    CHECK(q.coding == gc::level_coding::power_of_two);
  }

  // Padding bits after dim * level_bits.
  for (std::size_t d = 1; d <= 20; ++d) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::normal, d, 60 + d);
    P p;
    gc::compress(gc::exec::seq, gc::qsgd{.s = 3, .seed = d}, std::span<const T>(x), p);
    const bytes_t b = gc::encode(p);
    const u64 total = u64{d} * p.level_bits;
    CAPTURE(p.level_bits);
    const std::size_t last = b.size() - 1;
    for (unsigned bit = 0; bit < 8; ++bit) {
      CAPTURE(bit);
      bytes_t m = b;
      m[last] ^= static_cast<std::byte>(1u << bit);
      if ((total + 7) / 8 * 8 - 8 + bit >= total) {
        expect_reject<P>(m, "padding");
      } else {
        const P q = expect_accept<P>(m);
        CHECK(q.levels != p.levels);
      }
    }
  }
}

TEST_CASE_TEMPLATE("wire: float_code_vector structural errors and padding bits", T, float, double) {
  using P = gc::float_code_vector<T>;
  const unsigned p2_bits = sizeof(T) == 4 ? 9 : 12;
  const auto build = [](u64 dim, unsigned format, unsigned bits, unsigned reserved, std::int32_t e,
                        std::initializer_list<std::uint16_t> codes = {}) {
    bytes_t b = header(6, sizeof(T), 0, dim);
    b.push_back(static_cast<std::byte>(format));
    b.push_back(static_cast<std::byte>(bits));
    append_le<u16>(b, static_cast<u16>(reserved));
    append_le<u32>(b, static_cast<u32>(e));
    // dim codes of `bits` bits: the given ones first, zeros after, packed LSB first.
    const std::size_t n = (dim * bits + 7) / 8;
    const std::size_t at = b.size();
    b.resize(at + n, std::byte{0});
    std::size_t i = 0;
    for (const std::uint16_t c : codes) {
      for (unsigned k = 0; k < bits; ++k)
        if ((c >> k) & 1u) b[at + (i * bits + k) / 8] |= static_cast<std::byte>(1u << ((i * bits + k) % 8));
      ++i;
    }
    return b;
  };
  const auto fp16 = gc::detail::scale_exponent_range<T>(gc::code_format::float16);
  const auto bf16 = gc::detail::scale_exponent_range<T>(gc::code_format::bfloat16);
  expect_accept<P>(build(10, 1, 16, 0, 0));
  expect_accept<P>(build(10, 2, 16, 0, bf16.lo));
  expect_accept<P>(build(10, 1, 16, 0, fp16.hi));
  expect_accept<P>(build(10, 3, p2_bits, 0, 0));
  expect_accept<P>(build(0, 3, p2_bits, 0, 0));
  expect_accept<P>(build(3, 1, 16, 0, 0, {0x7bff, 0xfbff, 0x8000}));  // +-65504, -0

  // Unknown formats; code widths that do not match the format and T.
  for (const unsigned f : {0u, 4u, 7u, 255u}) {
    CAPTURE(f);
    expect_reject<P>(build(10, f, 16, 0, 0), "format");
  }
  for (const unsigned bits : {0u, 8u, 15u, 17u, 32u, 255u, sizeof(T) == 4 ? 12u : 9u}) {
    CAPTURE(bits);
    expect_reject<P>(build(10, 1, bits, 0, 0), "code bits");
    expect_reject<P>(build(10, 2, bits, 0, 0), "code bits");
    expect_reject<P>(build(10, 3, bits, 0, 0), "code bits");
  }
  expect_reject<P>(build(10, 3, 16, 0, 0), "code bits");
  expect_reject<P>(build(10, 1, p2_bits, 0, 0), "code bits");
  // Reserved field.
  expect_reject<P>(build(10, 1, 16, 1, 0), "reserved");
  expect_reject<P>(build(10, 3, p2_bits, 0x8000, 0), "reserved");
  // Scale exponents the compressors cannot produce.
  for (const std::int32_t e : {fp16.lo - 1, fp16.hi + 1, std::numeric_limits<std::int32_t>::min(),
                               std::numeric_limits<std::int32_t>::max()}) {
    CAPTURE(e);
    expect_reject<P>(build(10, 1, 16, 0, e), "scale_exponent");
  }
  expect_reject<P>(build(10, 2, 16, 0, bf16.hi + 1), "scale_exponent");
  expect_reject<P>(build(10, 3, p2_bits, 0, 1), "scale_exponent");
  expect_reject<P>(build(10, 3, p2_bits, 0, -1), "scale_exponent");
  // Codes that do not decode to a finite value: Inf, NaN, and a scaled value beyond max(T).
  const std::uint16_t p2_inf = static_cast<std::uint16_t>((1u << (p2_bits - 1)) - 1);
  for (const std::uint16_t c : {std::uint16_t{0x7c00}, std::uint16_t{0xfc00}, std::uint16_t{0x7e00}, std::uint16_t{0xfd01}}) {
    CAPTURE(c);
    expect_reject<P>(build(4, 1, 16, 0, 0, {0, 0, c}), "finite");
  }
  expect_reject<P>(build(4, 2, 16, 0, 0, {0x7f80}), "finite");
  expect_reject<P>(build(4, 2, 16, 0, 0, {0x3f80, 0xffc1}), "finite");
  expect_reject<P>(build(4, 3, p2_bits, 0, 0, {p2_inf}), "finite");
  expect_reject<P>(build(4, 3, p2_bits, 0, 0, {1, static_cast<std::uint16_t>(p2_inf | (1u << (p2_bits - 1)))}), "finite");
  expect_reject<P>(build(2, 1, 16, 0, fp16.lo, {0x7bff}), "finite");  // 65504 * 2^-lo > max(T)
  expect_reject<P>(build(2, 2, 16, 0, bf16.lo, {0x7f00}), "finite");  // 2^127 * 2^-lo = 2^(emax(T) + 1)
  expect_reject<P>(build(2, 1, 16, 0, fp16.lo, {0x7800}), "finite");  // 2^15 * 2^-lo = 2^(emax(T) + 1)
  expect_accept<P>(build(2, 1, 16, 0, fp16.lo, {0x77ff, 0xf7ff}));    // just below: +-(2 - 2^-10) 2^emax(T)

  // Padding bits after dim * code bits (power_of_two: 9 or 12 bits a code).
  for (std::size_t d = 1; d <= 20; ++d) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::normal, d, 90 + d);
    P p;
    gc::compress(gc::exec::seq, gc::natural_compression{.seed = d}, std::span<const T>(x), p);
    const bytes_t b = gc::encode(p);
    const u64 total = u64{d} * p2_bits;
    const std::size_t last = b.size() - 1;
    for (unsigned bit = 0; bit < 8; ++bit) {
      if ((total + 7) / 8 * 8 - 8 + bit < total) continue;  // a code's bit, not padding
      CAPTURE(bit);
      bytes_t m = b;
      m[last] ^= static_cast<std::byte>(1u << bit);
      expect_reject<P>(m, "padding");
    }
  }
  // Huge dims: dim * bits overflows, or the codes are not there.
  {
    bytes_t b = header(6, sizeof(T), 0, u64{1} << 62);
    b.push_back(std::byte{1});
    b.push_back(std::byte{16});
    append_le<u16>(b, 0);
    append_le<u32>(b, 0);
    expect_reject<P>(b, "overflow");
    write_le<u64>(b, 8, u64{1} << 58);
    expect_reject<P>(b, "truncated");
  }
}

TEST_CASE("wire: golden bytes of bucket_quantized_vector<float>") {
  // dim 5, buckets of 2, 3-bit levels; (min, unit) = (0.5, 0.25), (-1, 1), (2, 0);
  // levels {0, 7, 1, 2, 0} packed LSB first: 0 | 7<<3 | 1<<6 | 2<<9 | 0<<12 = 0x0478.
  gc::bucket_quantized_vector<float> p;
  p.dim = 5;
  p.bucket_size = 2;
  p.bits = 3;
  p.mins = {0.5f, -1.0f, 2.0f};
  p.units = {0.25f, 1.0f, 0.0f};
  p.levels = {0, 7, 1, 2, 0};
  const bytes_t golden = make_bytes({
      0x47, 0x43, 0x07, 0x01, 0x04, 0x00, 0x00, 0x00,  // kind 7, version 1, float, no index bytes
      0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // dim 5
      0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // bucket_size 2
      0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // bits 3, reserved 0
      0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3e,  // 0.5f, 0.25f
      0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x80, 0x3f,  // -1.0f, 1.0f
      0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00,  // 2.0f, 0.0f
      0x78, 0x04,                                      // packed levels (15 bits, 1 padding bit)
  });
  CHECK(gc::wire_bytes(p) == 58u);
  CHECK(gc::encode(p) == golden);
  const auto q = gc::decode<gc::bucket_quantized_vector<float>>(view(golden));
  CHECK(q == p);
  CHECK(gt::same_bits(gt::densify<float>(q, 5), std::vector<float>{0.5f, 2.25f, 0.0f, 1.0f, 2.0f}));
}

TEST_CASE_TEMPLATE("wire: bucket_quantized_vector structural errors and padding bits", T, float, double) {
  using P = gc::bucket_quantized_vector<T>;
  const T top = std::numeric_limits<T>::max();
  // dim, bucket_size, bits, reserved, the (min, unit) pairs and the number of level bytes.
  const auto build = [](u64 dim, u64 bucket_size, u32 bits_, u32 reserved, std::vector<T> pairs, std::size_t packed) {
    bytes_t b = header(7, sizeof(T), 0, dim);
    append_le(b, bucket_size);
    append_le(b, bits_);
    append_le(b, reserved);
    for (const T v : pairs) append_value(b, v);
    for (std::size_t i = 0; i < packed; ++i) b.push_back(std::byte{0});
    return b;
  };
  const std::vector<T> three = {T(0), T(1), T(-2), T(0.5), T(3), T(0)};  // 10 elements in buckets of 4
  expect_accept<P>(build(10, 4, 3, 0, three, 4));
  expect_accept<P>(build(10, 4, 8, 0, three, 10));
  expect_accept<P>(build(0, 9, 5, 0, {}, 0));
  expect_accept<P>(build(10, ~u64{0}, 1, 0, {T(1), T(2)}, 2));  // one bucket: the count must not overflow
  for (const u32 b : {0u, 9u, 16u, 32u, 0xffffffffu}) {
    CAPTURE(b);
    expect_reject<P>(build(10, 4, b, 0, three, 4), "bits");
  }
  expect_reject<P>(build(10, 0, 3, 0, three, 4), "bucket_size");
  expect_reject<P>(build(10, 4, 3, 1, three, 4), "reserved");
  expect_reject<P>(build(10, 4, 3, 0x80000000u, three, 4), "reserved");
  // The bucket count follows from dim and bucket_size: one pair short or one too many.
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(0.5)}, 4), "truncated");
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(0.5), T(3), T(0), T(1), T(1)}, 4), "trailing");
  expect_reject<P>(build(10, 5, 3, 0, three, 4), "trailing");  // 2 buckets of 5 need 2 pairs
  // Bucket parameters: finite mins, finite units with a clear sign bit, a finite top level.
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), nan, T(0.5), T(3), T(0)}, 4), "min");
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(0.5), -inf, T(0)}, 4), "min");
  expect_reject<P>(build(10, 4, 3, 0, {T(0), inf, T(-2), T(0.5), T(3), T(0)}, 4), "unit");
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(-0.5), T(3), T(0)}, 4), "unit");
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(0.5), T(3), -T(0)}, 4), "unit");
  expect_reject<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(0.5), top / 2, top / 4}, 4), "top level");
  expect_accept<P>(build(10, 4, 3, 0, {T(0), T(1), T(-2), T(0.5), top / 2, top / 16}, 4));
  // Padding bits after dim * bits.
  for (std::size_t d = 1; d <= 20; ++d) {
    CAPTURE(d);
    const auto x = gt::make_input<T>(gt::input_kind::normal, d, 90 + d);
    P p;
    gc::compress(gc::exec::seq, gc::maxmin_quantizer{.bits = 3, .bucket_size = 4, .seed = d}, std::span<const T>(x), p);
    const bytes_t b = gc::encode(p);
    const u64 total = u64{d} * 3;
    const std::size_t last = b.size() - 1;
    for (unsigned bit = 0; bit < 8; ++bit) {
      CAPTURE(bit);
      bytes_t m = b;
      m[last] ^= static_cast<std::byte>(1u << bit);
      if ((total + 7) / 8 * 8 - 8 + bit >= total) {
        expect_reject<P>(m, "padding");
      } else {
        const P q = expect_accept<P>(m);
        CHECK(q.levels != p.levels);
      }
    }
  }
  // Hostile sizes fail before allocating: the pairs or the level bits overflow, or are not there.
  const u64 max = ~u64{0};
  expect_reject<P>(build(max, 1, 1, 0, {}, 0), "overflow");           // 2^64 - 1 pairs
  expect_reject<P>(build(u64{1} << 62, u64{1} << 62, 8, 0, {T(0), T(1)}, 0), "overflow");  // 2^65 level bits
  expect_reject<P>(build(u64{1} << 40, u64{1} << 40, 1, 0, {T(0), T(1)}, 3), "truncated");
  expect_reject<P>(build(u64{1} << 40, 1024, 8, 0, {T(0), T(1)}, 0), "truncated");
}

TEST_CASE("wire: crafted huge dims and counts throw gc::error quickly" * doctest::timeout(10)) {
  const auto start = std::chrono::steady_clock::now();
  const u64 max = ~u64{0};
  // sparse: count 2^61 with 8-byte indices (index block 2^64 bytes), and 2^62 with 4-byte.
  for (const unsigned w : {4u, 8u}) {
    bytes_t b = header(1, 4, w, max);
    append_le<u64>(b, u64{1} << (w == 8 ? 61 : 62));
    expect_reject<gc::sparse_vector<float, std::uint64_t>>(b, "overflow");
    expect_reject<gc::sparse_vector<float, std::uint32_t>>(b, "does not fit");
  }
  {
    bytes_t b = header(1, 8, 8, max);
    append_le<u64>(b, (u64{1} << 61) - 1);  // index block fits size_t, but is not there
    expect_reject<gc::sparse_vector<double, std::uint64_t>>(b, "truncated");
    bytes_t c = header(1, 8, 4, max);
    append_le<u64>(c, u64{1} << 61);  // index block 2^63 bytes: not there
    expect_reject<gc::sparse_vector<double, std::uint64_t>>(c, "truncated");
    bytes_t v = header(1, 8, 4, max);
    append_le<u64>(v, max);  // count = dim = 2^64 - 1
    expect_reject<gc::sparse_vector<double, std::uint64_t>>(v, "overflow");
    bytes_t e = header(1, 4, 8, max);
    append_le<u64>(e, 0);  // dim 2^64 - 1 and no entries: valid for 64-bit indices
    CHECK(expect_accept<gc::sparse_vector<float, std::uint64_t>>(e).dim == max);
  }
  // seeded: k 2^62 floats / 2^61 doubles overflow; k = dim = 2^64 - 1 too.
  {
    bytes_t f = header(2, 4, 0, u64{1} << 32);
    for (const u64 v : {u64{1}, u64{2}, u64{1} << 32}) append_le(f, v);
    expect_reject<gc::seeded_sparse_vector<float>>(f, "truncated");
    bytes_t g = header(2, 4, 0, max);
    for (const u64 v : {u64{1}, u64{2}, u64{1} << 62}) append_le(g, v);
    expect_reject<gc::seeded_sparse_vector<float>>(g, "does not fit");
    bytes_t h = header(2, 8, 0, u64{1} << 32);
    for (const u64 v : {u64{1}, u64{2}, u64{1} << 31}) append_le(h, v);
    expect_reject<gc::seeded_sparse_vector<double>>(h, "truncated");
  }
  // dense: dim * sizeof(T) overflows, or is not there.
  for (const u64 dim : {max, u64{1} << 62, (u64{1} << 62) + 3}) {
    CAPTURE(dim);
    expect_reject<gc::dense_vector<float>>(header(5, 4, 0, dim), "overflow");
  }
  expect_reject<gc::dense_vector<double>>(header(5, 8, 0, u64{1} << 61), "overflow");
  expect_reject<gc::dense_vector<float>>(header(5, 4, 0, u64{1} << 61), "truncated");
  expect_reject<gc::dense_vector<double>>(header(5, 8, 0, max / 8), "truncated");
  // sign: block count * sizeof(T) overflows; or one huge block whose bits are not there.
  {
    bytes_t a = header(3, 4, 0, max);
    append_le<u64>(a, 1);
    expect_reject<gc::sign_vector<float>>(a, "overflow");
    bytes_t b = header(3, 4, 0, u64{1} << 63);
    append_le<u64>(b, 2);
    expect_reject<gc::sign_vector<float>>(b, "overflow");
    bytes_t c = header(3, 8, 0, (u64{1} << 62) + 1);
    append_le<u64>(c, 1);
    expect_reject<gc::sign_vector<double>>(c, "overflow");
    bytes_t d = header(3, 4, 0, max);
    append_le<u64>(d, max);
    append_value(d, 1.0f);
    expect_reject<gc::sign_vector<float>>(d, "truncated");
  }
  // two level: block count * sizeof(T) overflows; or one huge block whose highs and bits are
  // not there.
  {
    bytes_t a = header(8, 4, 0, max);
    append_le<u64>(a, 1);
    expect_reject<gc::two_level_vector<float>>(a, "overflow");
    bytes_t c = header(8, 8, 0, (u64{1} << 62) + 1);
    append_le<u64>(c, 1);
    expect_reject<gc::two_level_vector<double>>(c, "overflow");
    bytes_t d = header(8, 4, 0, max);
    append_le<u64>(d, max);
    append_value(d, -1.0f);
    expect_reject<gc::two_level_vector<float>>(d, "truncated");
    append_value(d, 1.0f);
    expect_reject<gc::two_level_vector<float>>(d, "truncated");
  }
  // quantized: dim * level_bits overflows; or the levels are not there.
  const auto quantized = [](unsigned value_bytes, u64 dim, u32 lb) {
    bytes_t b = header(4, value_bytes, 0, dim);
    append_le<u32>(b, lb);
    append_le<u32>(b, 0);
    if (value_bytes == 4) append_value(b, 1.0f); else append_value(b, 1.0);
    return b;
  };
  expect_reject<gc::quantized_vector<float>>(quantized(4, u64{1} << 62, 32), "overflow");
  expect_reject<gc::quantized_vector<float>>(quantized(4, u64{1} << 59, 32), "overflow");
  expect_reject<gc::quantized_vector<double>>(quantized(8, u64{1} << 60, 17), "overflow");
  expect_reject<gc::quantized_vector<double>>(quantized(8, max, 2), "overflow");
  expect_reject<gc::quantized_vector<float>>(quantized(4, max, 1), "truncated");
  expect_reject<gc::quantized_vector<float>>(quantized(4, u64{1} << 58, 32), "truncated");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK_MESSAGE(seconds < 5.0, "huge crafted sizes must be rejected without work proportional to them");
}

TEST_CASE_TEMPLATE_DEFINE("wire: random bit and byte flips decode canonically or throw gc::error", P, flips_id) {
  INFO(traits<P>::name());
  const std::size_t sizes[] = {0, 1, 3, 9, 17, 65};
  const gt::input_kind kinds[] = {gt::input_kind::normal, gt::input_kind::with_zeros};
  const auto samples = make_samples<P>(sizes, kinds, true);
  const P before = prefill<P>();
  P target = before;
  fuzz_stats st;
  const std::size_t per_sample = 1600 / samples.size() + 1;
  static constexpr unsigned interesting[] = {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x7f, 0x80, 0xfe, 0xff};
  for (std::size_t si = 0; si < samples.size(); ++si) {
    const bytes_t b = gc::encode(samples[si].payload);
    const u64 seed = 0x5eed0000u + si;
    std::mt19937_64 rng(seed);
    for (std::size_t m = 0; m < per_sample; ++m) {
      bytes_t mut = b;
      // Half of the positions fall in the header and fixed fields, where the decoder branches.
      const auto pos = [&] {
        return (rng() & 1u) ? static_cast<std::size_t>(rng() % std::min<std::size_t>(mut.size(), 48))
                            : static_cast<std::size_t>(rng() % mut.size());
      };
      const unsigned how = static_cast<unsigned>(rng() % 4);
      if (how == 0) {
        const std::size_t p = pos();
        mut[p] ^= static_cast<std::byte>(1u << (rng() % 8));
      } else if (how == 1) {
        mut[pos()] = static_cast<std::byte>(rng() & 0xffu);
      } else if (how == 2) {
        mut[pos()] = static_cast<std::byte>(interesting[rng() % std::size(interesting)]);
      } else {
        const unsigned n = 2 + static_cast<unsigned>(rng() % 3);
        for (unsigned k = 0; k < n; ++k) mut[pos()] ^= static_cast<std::byte>(1u << (rng() % 8));
      }
      fuzz_one(mut, target, before, st,
               samples[si].name + " seed=" + std::to_string(seed) + " mutation " + std::to_string(m));
    }
  }
  INFO("first bad case: ", st.first_bad);
  CHECK(st.bad == 0);
  CHECK(st.rejected > 0);
  CHECK(st.decoded > 0);
  CHECK_MESSAGE(st.costly * 10 < st.decoded + st.rejected, "most mutations must be decoded, not skipped");
}
TEST_CASE_TEMPLATE_APPLY(flips_id, all_payloads);

TEST_CASE_TEMPLATE_DEFINE("wire: random buffers decode canonically or throw gc::error", P, random_buffers_id) {
  using T = typename P::value_type;
  INFO(traits<P>::name());
  const P before = prefill<P>();
  P target = before;
  fuzz_stats st;
  std::mt19937_64 rng(0xb0ffe4u + traits<P>::kind * 16 + sizeof(T) + traits<P>::index_bytes);
  const auto random_bytes = [&](bytes_t& b, std::size_t from) {
    for (std::size_t i = from; i < b.size(); ++i) b[i] = static_cast<std::byte>(rng() & 0xffu);
  };
  // Fully random buffers.
  for (int n = 0; n < 500; ++n) {
    bytes_t b(rng() % 200);
    random_bytes(b, 0);
    fuzz_one(b, target, before, st, "fully random #" + std::to_string(n));
  }
  // A valid header (kind, value type, index width) with a small dim, and random bytes after it.
  for (int n = 0; n < 500; ++n) {
    bytes_t b = header(traits<P>::kind, sizeof(T), traits<P>::index_bytes, rng() % 40);
    b.resize(16 + rng() % 400);
    random_bytes(b, 16);
    fuzz_one(b, target, before, st, "random after header #" + std::to_string(n));
  }
  // Valid encodings whose bytes after the 16-byte header are replaced by random ones.
  const std::size_t sizes[] = {0, 1, 5, 9, 33};
  const gt::input_kind kinds[] = {gt::input_kind::normal};
  const auto samples = make_samples<P>(sizes, kinds, false);
  for (std::size_t si = 0; si < samples.size(); ++si) {
    const bytes_t b = gc::encode(samples[si].payload);
    for (int n = 0; n < 30; ++n) {
      bytes_t m = b;
      random_bytes(m, 16 + static_cast<std::size_t>(n % 3) * 8);  // keep 0, 1 or 2 fixed fields
      fuzz_one(m, target, before, st, samples[si].name + " randomised body #" + std::to_string(n));
    }
  }
  INFO("first bad case: ", st.first_bad);
  CHECK(st.bad == 0);
  CHECK(st.rejected > 0);
}
TEST_CASE_TEMPLATE_APPLY(random_buffers_id, all_payloads);

// =========================================================================================
// 3. Error messages of decode (beyond those checked above).

TEST_CASE("wire: decode error messages name the problem") {
  gc::sparse_vector<float> p;
  p.dim = 10;
  p.indices = {1, 7};
  p.values = {1.0f, -2.5f};
  const bytes_t b = gc::encode(p);
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(b, 20)), doctest::Contains("truncated"), gc::error);
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(b, 20)), doctest::Contains("gradcomp::"), gc::error);
  bytes_t m = b;
  m[0] = std::byte{'X'};
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(m)), doctest::Contains("magic"), gc::error);
  m = b;
  write_le<u32>(m, 24, 7);
  write_le<u32>(m, 28, 1);
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(m)), doctest::Contains("ascending"), gc::error);
  m = b;
  write_le<u32>(m, 28, 10);
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(m)), doctest::Contains("dim"), gc::error);
  m = b;
  write_le<u64>(m, 16, 11);
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(m)), doctest::Contains("count"), gc::error);
  m = b;
  m[3] = std::byte{2};
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(m)), doctest::Contains("version"), gc::error);
  m = b;
  m.push_back(std::byte{0});
  CHECK_THROWS_WITH_AS(gc::decode<gc::sparse_vector<float>>(view(m)), doctest::Contains("trailing"), gc::error);
  // gc::error is a std::invalid_argument, so generic handlers catch it.
  CHECK_THROWS_AS(gc::decode<gc::sparse_vector<float>>(view(m)), std::invalid_argument);
}

// =========================================================================================
// 4. decompress_add and encode of hand-built payloads.

TEST_CASE_TEMPLATE_DEFINE("decompress_add: dense size mismatch throws and writes nothing", P, dense_size_id) {
  using T = typename P::value_type;
  INFO(traits<P>::name());
  const std::size_t sizes[] = {0, 1, 9, 64};
  const gt::input_kind kinds[] = {gt::input_kind::normal};
  for (const auto& s : make_samples<P>(sizes, kinds, false)) {
    CAPTURE(s.name);
    const std::size_t d = traits<P>::dim(s.payload);
    for (const std::size_t n : {d + 1, d == 0 ? std::size_t{5} : d - 1}) {
      CAPTURE(n);
      std::vector<T> dense(n, T(7));
      CHECK_THROWS_WITH_AS(gc::decompress_add(s.payload, std::span<T>(dense)), doctest::Contains("dense size"),
                           gc::error);
      CHECK(std::all_of(dense.begin(), dense.end(), [](T v) { return v == T(7); }));
    }
  }
}
TEST_CASE_TEMPLATE_APPLY(dense_size_id, all_payloads);

TEST_CASE_TEMPLATE("decompress_add: hand-built sparse payloads with bad indices throw and write nothing", T, float,
                   double) {
  const auto untouched = [](const std::vector<T>& v) {
    return std::all_of(v.begin(), v.end(), [](T x) { return x == T(7); });
  };
  {
    gc::sparse_vector<T> p;
    p.dim = 10;
    p.indices = {2, 10};  // the bad index comes after a good one
    p.values = {T(1), T(2)};
    std::vector<T> dense(10, T(7));
    CHECK_THROWS_WITH_AS(gc::decompress_add(p, std::span<T>(dense)), doctest::Contains("dim"), gc::error);
    CHECK(untouched(dense));
    p.indices = {2, 3, 0xffffffffu};
    p.values = {T(1), T(2), T(3)};
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
  }
  {
    gc::sparse_vector<T, std::uint64_t> p;
    p.dim = 10;
    p.indices = {1, (u64{1} << 32) + 1};  // would wrap to 1 if truncated to 32 bits
    p.values = {T(1), T(2)};
    std::vector<T> dense(10, T(7));
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
  }
  {
    gc::sparse_vector<T> p;
    p.dim = 10;
    p.indices = {1, 2};
    p.values = {T(1)};
    std::vector<T> dense(10, T(7));
    CHECK_THROWS_WITH_AS(gc::decompress_add(p, std::span<T>(dense)), doctest::Contains("values"), gc::error);
    CHECK(untouched(dense));
    p.indices = {1};
    p.values = {T(1), T(2)};
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
  }
  {
    gc::seeded_sparse_vector<T> p;
    p.dim = 10;
    p.indices = {3, 12};
    p.values = {T(1), T(1)};
    std::vector<T> dense(10, T(7));
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
    p.indices = {3};
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
  }
  {
    gc::quantized_vector<T> p;
    p.dim = 4;
    p.scale = T(1);
    p.level_bits = 3;
    p.levels = {1, 2, 3};  // one short
    std::vector<T> dense(4, T(7));
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
  }
  {
    gc::sign_vector<T> p;
    p.reset(10, 4);
    p.scales = {T(1), T(2)};  // 3 blocks need 3 scales
    std::vector<T> dense(10, T(7));
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
    p.reset(10, 4);
    p.negative.clear();  // 10 bits need one word
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
  }
  {
    gc::two_level_vector<T> p;
    p.reset(10, 4);
    p.highs.pop_back();  // 3 blocks need 3 highs
    std::vector<T> dense(10, T(7));
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
    p.reset(10, 4);
    p.lows.push_back(T(1));  // and 3 lows
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
    p.reset(10, 4);
    p.negative.clear();  // 10 bits need one word
    CHECK_THROWS_AS(gc::decompress_add(p, std::span<T>(dense)), gc::error);
    CHECK(untouched(dense));
    p.reset(10, 4);
    p.block_size = 0;
    CHECK_THROWS_WITH_AS(gc::decompress_add(p, std::span<T>(dense)), doctest::Contains("block_size"), gc::error);
    CHECK(untouched(dense));
  }
}

TEST_CASE_TEMPLATE("encode: hand-built invalid payloads are rejected", T, float, double) {
  const auto rejected = [](const auto& p, const char* word) {
    INFO("expected a gc::error mentioning '", word, "'");
    CHECK_THROWS_WITH_AS(gc::encode(p), doctest::Contains(word), gc::error);
    bytes_t v;
    CHECK_THROWS_AS(gc::encode(p, v), gc::error);
    bytes_t big(4096);
    CHECK_THROWS_AS(gc::encode(p, std::span<std::byte>(big)), gc::error);
  };
  gc::sparse_vector<T> s;
  s.dim = 10;
  s.indices = {5, 2};
  s.values = {T(1), T(2)};
  rejected(s, "ascending");
  s.indices = {3, 3};
  rejected(s, "ascending");
  s.indices = {1, 10};
  rejected(s, "dim");
  s.indices = {1, 2, 3};
  rejected(s, "values");

  gc::seeded_sparse_vector<T> r;
  r.dim = 2;
  r.values = {T(1), T(2), T(3)};
  rejected(r, "dim");

  gc::quantized_vector<T> q;
  q.dim = 3;
  q.scale = T(1);
  q.level_bits = 3;
  q.levels = {0, 4, 0};  // zigzag(4) = 8 needs 4 bits
  rejected(q, "fit");
  q.levels = {0, -5, 0};  // zigzag(-5) = 9
  rejected(q, "fit");
  q.levels = {0, 1};
  rejected(q, "levels");
  q.levels = {0, 1, 0};
  q.level_bits = 0;
  rejected(q, "level_bits");
  q.level_bits = 33;
  rejected(q, "level_bits");

  gc::sign_vector<T> g;
  g.reset(10, 4);
  g.block_size = 0;
  // Only the span overload here: gc::encode(p) and gc::encode(p, vector&) first call
  // wire_bytes(), which divides by block_size (see the isolated test below).
  {
    bytes_t big(4096);
    CHECK_THROWS_WITH_AS(gc::encode(g, std::span<std::byte>(big)), doctest::Contains("block_size"), gc::error);
  }
  g.reset(10, 4);
  g.scales.push_back(T(1));
  rejected(g, "scales");
  g.reset(10, 4);
  g.negative.push_back(0);
  rejected(g, "words");

  gc::two_level_vector<T> t;
  t.reset(10, 4);
  t.block_size = 0;
  {
    bytes_t big(4096);
    CHECK_THROWS_WITH_AS(gc::encode(t, std::span<std::byte>(big)), doctest::Contains("block_size"), gc::error);
    CHECK_THROWS_WITH_AS(gc::wire_bytes(t), doctest::Contains("block_size"), gc::error);  // no division by 0
    CHECK_THROWS_WITH_AS(gc::encode(t), doctest::Contains("block_size"), gc::error);
  }
  t.reset(10, 4);
  t.lows.push_back(T(1));
  rejected(t, "lows");
  t.reset(10, 4);
  t.highs.pop_back();
  rejected(t, "highs");
  t.reset(10, 4);
  t.negative.push_back(0);
  rejected(t, "words");
}

namespace {

/// Runs f in a forked child, so that a crash (a library bug) fails this check instead of
/// killing the whole test binary. f returns an empty string on success, else what went wrong.
/// Returns "" when the child succeeded, otherwise a description of how it failed.
template <class F>
std::string in_child_process(F f) {
#if defined(__unix__) || defined(__APPLE__)
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    // Default signal dispositions in the child: doctest's crash handler must not report
    // (or swallow) the child's crash.
    for (const int sig : {SIGFPE, SIGSEGV, SIGILL, SIGBUS, SIGABRT}) std::signal(sig, SIG_DFL);
    int code = 0;
    try {
      const std::string what = f();
      if (!what.empty()) {
        std::fprintf(stderr, "child: %s\n", what.c_str());
        code = 42;
      }
    } catch (...) {
      code = 43;
    }
    std::fflush(nullptr);
    _exit(code);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return "waitpid failed";
  if (WIFSIGNALED(status)) return "child process crashed with signal " + std::to_string(WTERMSIG(status));
  if (!WIFEXITED(status)) return "child process did not exit normally";
  if (WEXITSTATUS(status) == 42) return "child process: wrong behaviour (see its message on stderr)";
  if (WEXITSTATUS(status) == 43) return "child process: unexpected exception type";
  if (WEXITSTATUS(status) != 0)
    return "child process died with exit status " + std::to_string(WEXITSTATUS(status)) +
           " (a sanitizer report on stderr?)";
  return "";
#else
  return f();
#endif
}

}  // namespace

TEST_CASE_TEMPLATE("encode: sign_vector with block_size 0 is rejected with gc::error by every overload", T, float,
                   double) {
  // sign_vector::wire_bytes() computes blocks() = (dim - 1) / block_size + 1 before anything
  // checks block_size, so gc::wire_bytes(p), gc::encode(p) and gc::encode(p, vector&) divide
  // by zero on a hand-built payload with block_size 0. They must throw gc::error instead.
  // (Run in a child process: the division by zero kills the process.)
  const auto check_overload = [](int which) {
    return in_child_process([which]() -> std::string {
      gc::sign_vector<T> g;
      g.reset(10, 4);
      g.block_size = 0;
      try {
        if (which == 0) {
          (void)gc::encode(g);
        } else {
          bytes_t v;
          gc::encode(g, v);
        }
      } catch (const gc::error& e) {
        return contains(e.what(), "block_size") ? "" : std::string("message lacks 'block_size': ") + e.what();
      }
      return "encode did not throw";
    });
  };
  const std::string by_value = check_overload(0);
  CHECK_MESSAGE(by_value.empty(), "gc::encode(p): ", by_value);
  const std::string into_vector = check_overload(1);
  CHECK_MESSAGE(into_vector.empty(), "gc::encode(p, vector&): ", into_vector);
  const std::string size = in_child_process([]() -> std::string {
    gc::sign_vector<T> g;
    g.reset(10, 4);
    g.block_size = 0;
    try {
      (void)gc::wire_bytes(g);
    } catch (const gc::error&) {
    }
    return "";  // returning a size or throwing gc::error are both fine; crashing is not
  });
  CHECK_MESSAGE(size.empty(), "gc::wire_bytes(p): ", size);
}

TEST_CASE("encode: a payload whose dim exceeds its index type either round trips or is rejected by encode") {
  // sparse_vector<float> (32-bit indices) with dim 2^32 + 1 and no entries: reset() and the
  // compressors refuse that dim, and decode rejects the buffer; so encode must not produce a
  // buffer that its own decoder rejects.
  const std::size_t dim = (std::size_t{1} << 32) + 1;
  const auto round_trips_or_encode_throws = [&](const auto& p) {
    using P = std::remove_cvref_t<decltype(p)>;
    bytes_t b;
    bool encode_rejected = false;
    try {
      b = gc::encode(p);
    } catch (const gc::error&) {
      encode_rejected = true;  // rejecting at encode is fine
    }
    P q;
    const outcome o = encode_rejected ? outcome{result::gc_error, "(not reached)"} : try_decode_into(view(b), q);
    INFO(traits<P>::name(), ": encode accepted dim ", dim, " but decode said: ", o.message);
    CHECK((encode_rejected || (o.r == result::ok && traits<P>::same(q, p))));
  };
  gc::sparse_vector<float> s;
  CHECK_THROWS_AS(s.reset(dim), gc::error);  // the documented way to set dim refuses it
  s.dim = dim;
  round_trips_or_encode_throws(s);
  gc::seeded_sparse_vector<float> r;
  r.dim = dim;
  round_trips_or_encode_throws(r);
}

#pragma once
// What every decoder fuzz target checks. A decoder must, for any bytes:
//   * throw gc::error (and nothing else), leaving a decode_into target unchanged; or
//   * accept, and then: gc::decode and gc::decode_into agree; re-encoding gives the input bytes
//     back (or, where the format says so, their documented transcoding: a sparse payload
//     with another index width); decompress_add into a vector of dim gives what the payload
//     says element by element; a dense vector of the wrong size is refused with gc::error;
//     and the decode allocated no more than a fixed multiple of the input's size.
// A violation prints "gradcomp fuzz finding: ..." and aborts, which libFuzzer reports as a
// crash with the input saved.
//
// Each target is one translation unit that includes this header once (it replaces the
// global operator new and delete to count what a decode allocates).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <gradcomp/compress.hpp>
#include <gradcomp/error.hpp>
#include <new>
#include <span>
#include <vector>

namespace gradcomp_fuzz {

namespace gc = gradcomp;

[[noreturn]] inline void finding(const char* what, const char* file, int line) {
  std::fprintf(stderr, "gradcomp fuzz finding: %s (%s:%d)\n", what, file, line);
  std::abort();
}

#define GRADCOMP_FUZZ_CHECK(cond)                                     \
  do {                                                                \
    if (!(cond)) ::gradcomp_fuzz::finding(#cond, __FILE__, __LINE__); \
  } while (0)

// ---------------------------------------------------------------------------------------
// Allocation accounting: bytes requested from operator new while a counter is alive.

inline std::size_t counted_bytes = 0;
inline bool counting = false;

class allocation_counter {
 public:
  allocation_counter() {
    counted_bytes = 0;
    counting = true;
  }
  ~allocation_counter() { counting = false; }
  allocation_counter(const allocation_counter&) = delete;
  allocation_counter& operator=(const allocation_counter&) = delete;
  std::size_t bytes() const { return counted_bytes; }
};

inline void* counted_allocate(std::size_t n) {
  if (counting) counted_bytes += n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

// ---------------------------------------------------------------------------------------
// Byte helpers.

using bytes_t = std::vector<std::byte>;

inline std::uint64_t load_le(const std::byte* p, int bytes) {
  std::uint64_t v = 0;
  for (int b = 0; b < bytes; ++b) v |= static_cast<std::uint64_t>(std::to_integer<unsigned>(p[b])) << (8 * b);
  return v;
}
inline void store_le(bytes_t& out, std::uint64_t v, int bytes) {
  for (int b = 0; b < bytes; ++b) out.push_back(static_cast<std::byte>((v >> (8 * b)) & 0xff));
}

/// Bitwise equality of two value arrays (NaN payloads included).
template <class T>
bool same_bits(std::span<const T> a, std::span<const T> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// a and b are the same number, or both NaN (arithmetic may change a NaN's payload).
template <class T>
bool same_result(T a, T b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof(T)) == 0;
}

/// Dimensions up to this are decompressed into a dense vector (larger ones only have their
/// size mismatch checked): sparse payloads may claim a dim of 2^64 - 1 with no entries.
inline constexpr std::size_t max_dense_dim = std::size_t{1} << 16;

/// Runs one decoder over `in`. P is the payload type; `prior` a valid payload that a failed
/// decode_into must leave alone; `expected(in)` the bytes a re-encode must give;
/// `allocation_bound(n)` the most a decode of n input bytes may allocate; `dim_of(p)` the
/// payload's dimension; `brute(p, dense)` adds what p says element i is to dense[i] (written
/// from the field definitions, without decompress_add); `extra(p)` any other invariant.
/// Returns whether the bytes were accepted.
template <class P, class Expected, class Bound, class DimOf, class Brute, class Extra>
bool check_decoder(std::span<const std::byte> in, const P& prior, Expected&& expected, Bound&& allocation_bound,
                   DimOf&& dim_of, Brute&& brute, Extra&& extra) {
  using T = typename P::value_type;
  P decoded;
  bool accepted = false;
  std::size_t allocated = 0;
  {
    allocation_counter counter;
    try {
      decoded = gc::decode<P>(in);
      accepted = true;
    } catch (const gc::error&) {
    }
    allocated = counter.bytes();
  }
  // decode_into: the same verdict; on failure the target is unchanged; on success the same payload.
  P target = prior;
  try {
    gc::decode_into(in, target);
    GRADCOMP_FUZZ_CHECK(accepted);
    GRADCOMP_FUZZ_CHECK(gc::encode(target) == gc::encode(decoded));
  } catch (const gc::error&) {
    GRADCOMP_FUZZ_CHECK(!accepted);
    GRADCOMP_FUZZ_CHECK(gc::encode(target) == gc::encode(prior));
  }
  if (!accepted) return false;

  GRADCOMP_FUZZ_CHECK(allocated <= allocation_bound(in.size()));
  const bytes_t again = gc::encode(decoded);
  GRADCOMP_FUZZ_CHECK(again.size() == gc::wire_bytes(decoded));
  GRADCOMP_FUZZ_CHECK(again == expected(in));
  GRADCOMP_FUZZ_CHECK(gc::sent_elements(decoded) <= in.size() * 8);  // every element costs a bit
  extra(decoded);

  const std::size_t dim = dim_of(decoded);
  if (dim <= max_dense_dim) {
    std::vector<T> dense(dim, T(0)), want(dim, T(0));
    gc::decompress_add(decoded, std::span<T>(dense));
    brute(decoded, want);
    for (std::size_t i = 0; i < dim; ++i) GRADCOMP_FUZZ_CHECK(same_result(dense[i], want[i]));
  }
  // A dense vector of another size is refused with gc::error, never written out of bounds.
  std::vector<T> wrong(dim < max_dense_dim ? dim + 1 : 1, T(0));
  bool refused = false;
  try {
    gc::decompress_add(decoded, std::span<T>(wrong));
  } catch (const gc::error&) {
    refused = true;
  }
  GRADCOMP_FUZZ_CHECK(refused);
  return true;
}

/// Runs run_one.template operator()<Index>() for 32-, 64- and 16-bit indices (each returns
/// whether the decoder accepted the input) and checks that a dimension fitting a narrower
/// index type fits every wider one.
template <class RunOne>
void check_index_widths(RunOne&& run_one) {
  const bool narrow = run_one.template operator()<std::uint32_t>();
  const bool wide = run_one.template operator()<std::uint64_t>();
  const bool small = run_one.template operator()<std::uint16_t>();
  GRADCOMP_FUZZ_CHECK(!small || narrow);
  GRADCOMP_FUZZ_CHECK(!narrow || wide);
}

}  // namespace gradcomp_fuzz

// The replaceable global allocation functions, counting (every form, so that none of the
// sanitizer runtime's versions is linked beside these).
void* operator new(std::size_t n) { return gradcomp_fuzz::counted_allocate(n); }
void* operator new[](std::size_t n) { return gradcomp_fuzz::counted_allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return gradcomp_fuzz::counted_allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

// Fuzz target: gc::decode / gc::decode_into of seeded_sparse_vector<T, Index> for float and
// double, 16-, 32- and 64-bit index types. Besides fuzz_support.hpp's invariants: the indices
// are k distinct ascending values below dim, the k with the smallest hashes (checked by brute
// force for small dims), and the decode's scratch is O(k) (at most 32 bytes per kept index
// and 1 KiB), whatever dim says.
//
// Regenerating k >= 1 indices hashes every index below dim (the definition of the set), so a
// 44-byte input claiming dim = 2^40 takes minutes: inputs that claim more than 2^22 elements
// and keep at least one are skipped before decoding (the unit tests decode such dims on
// purpose). Inputs with k = 0 or that fail validation are decoded at any dim.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <gradcomp/detail/random.hpp>
#include <gradcomp/payload/seeded_sparse.hpp>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace {

using namespace gradcomp_fuzz;

template <class T, class Index>
bool run(std::span<const std::byte> in) {
  using P = gc::seeded_sparse_vector<T, Index>;
  P prior;
  prior.dim = 7;
  prior.seed = 1;
  prior.step = 2;
  gc::detail::shared_random_indices(7, 2, 1, 2, prior.indices);
  prior.values = {T(0.5), T(-4)};
  return check_decoder(
      in, prior, [](std::span<const std::byte> b) { return bytes_t(b.begin(), b.end()); },
      // k <= n / sizeof(T) values; per kept index: the value, the index (<= 8 bytes) and at
      // most 32 bytes of search scratch (2k + 64 candidates and their hashes).
      [](std::size_t n) { return n / sizeof(T) * (sizeof(T) + 8 + 32) + 1024 + 64; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t j = 0; j < p.indices.size(); ++j) dense[p.indices[j]] += T(1) * p.values[j];
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.indices.size() == p.values.size());
        for (std::size_t j = 0; j < p.indices.size(); ++j) {
          GRADCOMP_FUZZ_CHECK(p.indices[j] < p.dim);
          GRADCOMP_FUZZ_CHECK(j == 0 || p.indices[j - 1] < p.indices[j]);
        }
        // The definition, by brute force: every hash of a kept index is below every other.
        if (p.dim <= (std::size_t{1} << 16) && !p.indices.empty()) {
          const gc::detail::counter_stream stream(p.seed, p.step);
          std::vector<bool> kept(p.dim, false);
          std::uint64_t highest_kept = 0;
          for (const auto i : p.indices) {
            kept[i] = true;
            highest_kept = std::max(highest_kept, gc::detail::random_k_hash(stream, i));
          }
          for (std::size_t i = 0; i < p.dim; ++i)
            if (!kept[i]) GRADCOMP_FUZZ_CHECK(gc::detail::random_k_hash(stream, i) > highest_kept);
        }
      });
}

template <class T>
void run_all(std::span<const std::byte> in) {
  check_index_widths([&]<class Index>() { return run<T, Index>(in); });
}

}  // namespace

/// A little-endian u64 of the input at offset, if it is there.
std::uint64_t field(const std::uint8_t* data, std::size_t size, std::size_t offset) {
  std::uint64_t v = 0;
  if (size >= offset + 8)
    for (int b = 0; b < 8; ++b) v |= static_cast<std::uint64_t>(data[offset + b]) << (8 * b);
  return v;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  const std::uint64_t dim = field(data, size, 8), k = field(data, size, 32);
  if (dim > (std::uint64_t{1} << 22) && k >= 1) return 0;  // O(dim) by definition: see the top
  run_all<float>(in);
  run_all<double>(in);
  return 0;
}

// Fuzz target: gc::decode / gc::decode_into of seeded_sparse_vector<T, Index> for float and
// double, 16-, 32- and 64-bit index types. Besides fuzz_support.hpp's invariants: the indices
// are k distinct ascending values below dim, the same with every membership structure of
// detail::shared_random_indices, and the decode's scratch is O(k) (at most 64 bytes per kept
// index), never a dim-bit bitmap for a handful of values.
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
      // most 32 bytes of membership scratch (64 when dim >= 2^32).
      [](std::size_t n) { return n / sizeof(T) * (sizeof(T) + 8 + 64) + 64; }, [](const P& p) { return p.dim; },
      [](const P& p, std::vector<T>& dense) {
        for (std::size_t j = 0; j < p.indices.size(); ++j) dense[p.indices[j]] += T(1) * p.values[j];
      },
      [](const P& p) {
        GRADCOMP_FUZZ_CHECK(p.indices.size() == p.values.size());
        for (std::size_t j = 0; j < p.indices.size(); ++j) {
          GRADCOMP_FUZZ_CHECK(p.indices[j] < p.dim);
          GRADCOMP_FUZZ_CHECK(j == 0 || p.indices[j - 1] < p.indices[j]);
        }
        // Where the draws keep their set changes nothing (a bitmap only for small dims).
        using gc::detail::index_membership;
        const std::uint64_t k = p.values.size();
        std::vector<std::uint64_t> hashed;
        gc::detail::shared_random_indices(p.dim, k, p.seed, p.step, hashed, index_membership::hash_set);
        GRADCOMP_FUZZ_CHECK(hashed.size() == p.indices.size());
        for (std::size_t j = 0; j < hashed.size(); ++j) GRADCOMP_FUZZ_CHECK(hashed[j] == p.indices[j]);
        if (p.dim <= (std::size_t{1} << 22)) {
          std::vector<std::uint64_t> mapped;
          gc::detail::shared_random_indices(p.dim, k, p.seed, p.step, mapped, index_membership::bitmap);
          GRADCOMP_FUZZ_CHECK(mapped == hashed);
        }
      });
}

template <class T>
void run_all(std::span<const std::byte> in) {
  check_index_widths([&]<class Index>() { return run<T, Index>(in); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  run_all<float>(in);
  run_all<double>(in);
  return 0;
}

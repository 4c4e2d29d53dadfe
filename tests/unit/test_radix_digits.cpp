// The CUDA back end's Top-k selection rule, on the CPU: detail/radix_digits.hpp's decisions
// (__host__ __device__, what the kernels of cuda/top_k.cuh call) run over whole inputs,
// digit by digit with 8-bit digits, then the tie rule (the lowest-indexed k_left keys equal
// to K, found tile by tile), must keep exactly exec::seq's top_k entries.
#include <doctest/doctest.h>

#include <gradcomp/gradcomp.hpp>
#include <gradcomp/detail/radix_digits.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

namespace {

template <class T>
std::vector<std::uint32_t> select_like_the_gpu(const std::vector<T>& x, std::size_t k) {
  using U = gc::detail::uint_of<T>;
  constexpr unsigned digit = 8, tile = 4096;
  const std::size_t n = x.size();
  gc::detail::radix_progress p{0, 0, k, 0};
  for (unsigned pass = 0; pass < sizeof(U) * 8 / digit; ++pass) {  // digit_histogram_kernel, choose_digit_kernel
    std::vector<unsigned long long> hist(1u << digit, 0);
    for (const T v : x) {
      const U key = gc::detail::magnitude_key(v);
      if (gc::detail::matches_prefix(key, p)) ++hist[gc::detail::next_digit(key, p, digit)];
    }
    gc::detail::choose_digit(p, hist.data(), digit);
  }
  const U k_key = static_cast<U>(p.prefix);
  // count_ties_kernel, find_tie_tile_kernel, find_last_tie_kernel
  unsigned long long seen = 0, last_tie = 0;
  for (std::size_t t = 0; t * tile < n; ++t) {
    unsigned long long in_tile = 0;
    for (std::size_t i = t * tile; i < std::min(n, (t + 1) * tile); ++i) in_tile += gc::detail::magnitude_key(x[i]) == k_key;
    if (seen + in_tile >= p.k_left) {
      unsigned long long rank = seen;
      for (std::size_t i = t * tile;; ++i)
        if (gc::detail::magnitude_key(x[i]) == k_key && ++rank == p.k_left) {
          last_tie = i;
          break;
        }
      break;
    }
    seen += in_tile;
  }
  std::vector<std::uint32_t> kept;
  for (std::size_t i = 0; i < n; ++i)
    if (gc::detail::top_k_keeps(gc::detail::magnitude_key(x[i]), i, k_key, last_tie)) kept.push_back(static_cast<std::uint32_t>(i));
  return kept;
}

}  // namespace

TEST_CASE_TEMPLATE("radix digits: the GPU's selection rule keeps exec::seq's top_k indices", T, float, double) {
  for (const std::size_t d : {std::size_t{2}, std::size_t{9}, std::size_t{4097}, std::size_t{30011}}) {
    for (const gt::input_kind kind : gt::all_input_kinds) {
      std::vector<T> x = gt::make_input<T>(kind, d, d + 7);
      if (d > 8) {
        x[3] = std::numeric_limits<T>::quiet_NaN();
        x[5] = -std::numeric_limits<T>::infinity();
      }
      for (const std::size_t k : {std::size_t{1}, std::size_t{2}, d / 100 + 1, d / 3 + 1, d - 1}) {
        CAPTURE(d);
        CAPTURE(gt::to_string(kind));
        CAPTURE(k);
        gc::sparse_vector<T> want;
        gc::compress(gc::exec::seq, gc::top_k{.k = k}, x, want);
        CHECK(select_like_the_gpu(x, k) == want.indices);
      }
    }
  }
}

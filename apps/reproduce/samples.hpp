#pragma once
// Which training samples each worker gets, so that results depend on the seed and never on
// the order of the rows in the data file.
//
//  1. Canonical order. Before anything is computed from the data (L, f*, the runs), the rows
//     are sorted by label (-1 first), then by their content: a LIBSVM row's stored (index,
//     value) pairs compared lexicographically (index first, then value, -0 before +0; a row
//     that is a prefix of another comes first), a Fashion-MNIST image's class and then its
//     pixel bytes. That is a total order on distinct rows, and identical rows are
//     interchangeable, so every permutation of a file's rows gives the same data set, bit for
//     bit.
//  2. Seeded shuffle. Each run (seed) permutes the canonically ordered rows with a portable
//     Fisher-Yates shuffle driven by splitmix64 (no std:: distribution, whose algorithm the
//     standard leaves open), and worker r of n gets the r-th contiguous block of that
//     permutation (gc::comm::shard_of: sizes differ by at most one; disjoint; together all
//     rows). This is the paper's setting: each worker holds an equal random share of the
//     samples. Taking blocks of the file instead gave each worker a contiguous slice of the
//     file, so a file sorted by class gave workers that see one class only.
//  3. Each step a worker draws its batch uniformly, with replacement, from its own block, with
//     its own generator (worker_seed).
// Every rank computes the same permutation from the same seed, so a worker under MPI gets
// exactly the rows it gets in a simulated run.
//
// --samples / --train-samples / --test-samples keep a subset drawn the same way (a seeded
// shuffle of the canonical order, with the first seed), not the file's first rows.
#include <gradcomp/comm/collectives.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dataset.hpp"
#include "fashion_mnist.hpp"

namespace repro {

/// How the samples are assigned, for summary.json.
inline constexpr const char* sample_assignment =
    "canonical order (label, then content), seeded shuffle per run, a contiguous block per worker, drawn from "
    "uniformly with replacement";

/// splitmix64: a small portable generator; every platform draws the same numbers.
class splitmix64 {
 public:
  explicit constexpr splitmix64(std::uint64_t seed) noexcept : state_(seed) {}
  constexpr std::uint64_t operator()() noexcept {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, bound) without modulo bias (bound > 0): rejects the few draws below 2^64 mod bound.
  constexpr std::uint64_t below(std::uint64_t bound) noexcept {
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;)
      if (const std::uint64_t r = (*this)(); r >= threshold) return r % bound;
  }

 private:
  std::uint64_t state_;
};

/// What a seed is used for: each purpose gets its own stream.
enum class seed_purpose : std::uint64_t { assignment = 1, subset = 2 };

/// The generator seed for `purpose` in the run with seed `seed` (unrelated to worker_seed's streams).
constexpr std::uint64_t purpose_seed(std::uint64_t seed, seed_purpose purpose) noexcept {
  splitmix64 g(seed ^ (static_cast<std::uint64_t>(purpose) * 0xD1B54A32D192ED03ull));
  g();
  return g();
}

/// A permutation of 0..n-1, the same on every platform for the same seed (Fisher-Yates).
inline std::vector<std::size_t> seeded_permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> p(n);
  std::iota(p.begin(), p.end(), std::size_t{0});
  splitmix64 g(seed);
  for (std::size_t i = n; i > 1; --i) std::swap(p[i - 1], p[g.below(i)]);
  return p;
}

/// The rows (indices into the canonically ordered data) that worker `rank` of `workers` trains
/// on in the run with seed `seed`: its contiguous block of the seeded permutation, in
/// permutation order. Needs 1 <= workers <= rows.
inline std::vector<std::size_t> worker_rows(std::size_t rows, int workers, int rank, std::uint64_t seed) {
  if (workers < 1 || rank < 0 || rank >= workers || static_cast<std::size_t>(workers) > rows)
    throw std::invalid_argument("worker_rows: rank " + std::to_string(rank) + " of " + std::to_string(workers) +
                                " workers over " + std::to_string(rows) + " rows");
  const std::vector<std::size_t> p = seeded_permutation(rows, purpose_seed(seed, seed_purpose::assignment));
  const auto block = gradcomp::comm::shard_of(rows, workers, rank);
  return {p.begin() + static_cast<std::ptrdiff_t>(block.begin), p.begin() + static_cast<std::ptrdiff_t>(block.end)};
}

/// `keep` of 0..rows-1 drawn by a seeded shuffle, ascending (so a canonical order stays one).
inline std::vector<std::size_t> seeded_subset(std::size_t rows, std::size_t keep, std::uint64_t seed) {
  std::vector<std::size_t> p = seeded_permutation(rows, purpose_seed(seed, seed_purpose::subset));
  p.resize(std::min(keep, rows));
  std::sort(p.begin(), p.end());
  return p;
}

namespace detail {

/// a < b, with -0 before +0 (the values are finite), so that no two different stored rows tie.
inline bool value_less(double a, double b) noexcept {
  if (a != b) return a < b;
  return std::signbit(a) && !std::signbit(b);
}

/// The canonical order of two rows of d (see the top of this file).
inline bool row_less(const binary_dataset& d, std::size_t a, std::size_t b) noexcept {
  if (d.y[a] != d.y[b]) return d.y[a] < d.y[b];
  const auto ca = d.a.cols_of(a), cb = d.a.cols_of(b);
  const auto va = d.a.values_of(a), vb = d.a.values_of(b);
  const std::size_t n = std::min(ca.size(), cb.size());
  for (std::size_t k = 0; k < n; ++k) {
    if (ca[k] != cb[k]) return ca[k] < cb[k];
    if (value_less(va[k], vb[k])) return true;
    if (value_less(vb[k], va[k])) return false;
  }
  return ca.size() < cb.size();
}

}  // namespace detail

/// The rows of d listed in `rows`, in that order (labels, name and dimension kept).
inline binary_dataset select_rows(const binary_dataset& d, const std::vector<std::size_t>& rows) {
  binary_dataset out;
  out.name = d.name;
  out.positive_label = d.positive_label;
  out.negative_label = d.negative_label;
  out.a.cols = d.a.cols;
  out.a.rows = rows.size();
  out.y.reserve(rows.size());
  out.a.row_ptr.reserve(rows.size() + 1);
  std::size_t nnz = 0;
  for (const std::size_t r : rows) nnz += d.a.cols_of(r).size();
  out.a.col.reserve(nnz);
  out.a.val.reserve(nnz);
  for (const std::size_t r : rows) {
    const auto c = d.a.cols_of(r);
    const auto v = d.a.values_of(r);
    out.a.col.insert(out.a.col.end(), c.begin(), c.end());
    out.a.val.insert(out.a.val.end(), v.begin(), v.end());
    out.a.row_ptr.push_back(out.a.col.size());
    out.y.push_back(d.y[r]);
  }
  return out;
}

/// The permutation that puts d's rows in canonical order.
inline std::vector<std::size_t> canonical_order(const binary_dataset& d) {
  std::vector<std::size_t> order(d.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return detail::row_less(d, a, b); });
  return order;
}

/// d with its rows in canonical order (d itself when they already are).
inline binary_dataset canonical(binary_dataset d) {
  std::vector<std::size_t> order = canonical_order(d);
  if (std::is_sorted(order.begin(), order.end())) return d;
  return select_rows(d, order);
}

/// `keep` rows of d drawn by a shuffle seeded with `seed`, in canonical order (all of d when keep
/// is 0 or at least its size). d must be in canonical order, so that the rows drawn do not
/// depend on the file's order.
inline binary_dataset seeded_sample(binary_dataset d, std::size_t keep, std::uint64_t seed) {
  if (keep == 0 || keep >= d.size()) return d;
  return select_rows(d, seeded_subset(d.size(), keep, seed));
}

/// The images listed in `rows`, in that order.
inline fashion_mnist::labelled_images select_images(const fashion_mnist::labelled_images& set,
                                                    const std::vector<std::size_t>& rows) {
  fashion_mnist::labelled_images out;
  out.x.rows = set.x.rows;
  out.x.cols = set.x.cols;
  out.x.count = rows.size();
  const std::size_t ppi = set.x.pixels_per_image();
  out.x.pixels.resize(rows.size() * ppi);
  out.labels.resize(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (ppi) std::memcpy(out.x.pixels.data() + i * ppi, set.x.image(rows[i]), ppi);
    out.labels[i] = set.labels[rows[i]];
  }
  return out;
}

/// The images in canonical order: by class, then by pixel bytes (memcmp).
inline fashion_mnist::labelled_images canonical(fashion_mnist::labelled_images set) {
  const std::size_t ppi = set.x.pixels_per_image();
  if (set.labels.size() != set.x.count || set.x.pixels.size() != set.x.count * ppi)
    throw std::invalid_argument("canonical: " + std::to_string(set.labels.size()) + " labels for " +
                                std::to_string(set.x.count) + " images of " + std::to_string(ppi) + " pixels in " +
                                std::to_string(set.x.pixels.size()) + " bytes");
  std::vector<std::size_t> order(set.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (set.labels[a] != set.labels[b]) return set.labels[a] < set.labels[b];
    return ppi != 0 && std::memcmp(set.x.image(a), set.x.image(b), ppi) < 0;
  });
  if (std::is_sorted(order.begin(), order.end())) return set;
  return select_images(set, order);
}

/// `keep` images drawn by a shuffle seeded with `seed`, in canonical order (all when keep is 0
/// or at least the size). set must be in canonical order.
inline fashion_mnist::labelled_images seeded_sample(fashion_mnist::labelled_images set, std::size_t keep,
                                                    std::uint64_t seed) {
  if (keep == 0 || keep >= set.size()) return set;
  return select_images(set, seeded_subset(set.size(), keep, seed));
}

}  // namespace repro

#pragma once
// Test-side references for PowerSGD (not in the library): the best rank-r approximation
// error of a matrix (Eckart-Young: the sum of its squared singular values beyond the r-th),
// from a cyclic Jacobi eigenvalue routine on the smaller Gram matrix, and test matrices.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace gradcomp_test {

/// Eigenvalues of a symmetric k x k matrix a (row-major, destroyed), by cyclic Jacobi
/// rotations until the off-diagonal mass is negligible; in descending order.
inline std::vector<double> symmetric_eigenvalues(std::vector<double> a, std::size_t k) {
  const auto at = [&](std::size_t i, std::size_t j) -> double& { return a[i * k + j]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < k; ++j) (i == j ? diag : off) += at(i, j) * at(i, j);
    if (off <= 1e-30 * diag || off == 0) break;
    for (std::size_t p = 0; p + 1 < k; ++p)
      for (std::size_t q = p + 1; q < k; ++q) {
        const double apq = at(p, q);
        if (apq == 0) continue;
        const double theta = (at(q, q) - at(p, p)) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (std::size_t i = 0; i < k; ++i) {  // columns p, q
          const double aip = at(i, p), aiq = at(i, q);
          at(i, p) = c * aip - s * aiq;
          at(i, q) = s * aip + c * aiq;
        }
        for (std::size_t i = 0; i < k; ++i) {  // rows p, q
          const double api = at(p, i), aqi = at(q, i);
          at(p, i) = c * api - s * aqi;
          at(q, i) = s * api + c * aqi;
        }
      }
  }
  std::vector<double> ev(k);
  for (std::size_t i = 0; i < k; ++i) ev[i] = at(i, i);
  std::sort(ev.begin(), ev.end(), std::greater<>());
  return ev;
}

/// The squared singular values of m (rows x cols, row-major), descending: the eigenvalues
/// of the smaller of M M^T and M^T M.
template <class T>
std::vector<double> squared_singular_values(std::span<const T> m, std::size_t rows, std::size_t cols) {
  const bool by_rows = rows <= cols;
  const std::size_t k = by_rows ? rows : cols, len = by_rows ? cols : rows;
  const auto entry = [&](std::size_t i, std::size_t l) {  // row i of the k x len factor
    return static_cast<double>(by_rows ? m[i * cols + l] : m[l * cols + i]);
  };
  std::vector<double> gram(k * k);
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = i; j < k; ++j) {
      double s = 0;
      for (std::size_t l = 0; l < len; ++l) s += entry(i, l) * entry(j, l);
      gram[i * k + j] = gram[j * k + i] = s;
    }
  auto ev = symmetric_eigenvalues(std::move(gram), k);
  for (double& v : ev) v = std::max(v, 0.0);
  return ev;
}

/// Eckart-Young: min over rank-r X of ||M - X||_F^2 = the sum of squared singular values
/// beyond the r-th.
template <class T>
double best_rank_error(std::span<const T> m, std::size_t rows, std::size_t cols, std::size_t r) {
  const auto s2 = squared_singular_values(m, rows, cols);
  double tail = 0;
  for (std::size_t i = r; i < s2.size(); ++i) tail += s2[i];
  return tail;
}

/// A deterministic pseudo-random number in [-1, 1) for (seed, i).
inline double test_uniform(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed * 0x9e3779b97f4a7c15ULL + (i + 1) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

/// sum over j < rank of sigma[j] u_j v_j^T (u, v with pseudo-random entries) plus noise
/// times pseudo-random entries: a low-rank-plus-noise rows x cols matrix.
template <class T>
std::vector<T> low_rank_plus_noise(std::size_t rows, std::size_t cols, std::span<const double> sigma, double noise,
                                   std::uint64_t seed) {
  std::vector<double> m(rows * cols, 0.0);
  for (std::size_t j = 0; j < sigma.size(); ++j) {
    std::vector<double> u(rows), v(cols);
    for (std::size_t i = 0; i < rows; ++i) u[i] = test_uniform(seed + 100 * j + 1, i) / std::sqrt(rows / 3.0);
    for (std::size_t i = 0; i < cols; ++i) v[i] = test_uniform(seed + 100 * j + 2, i) / std::sqrt(cols / 3.0);
    for (std::size_t a = 0; a < rows; ++a)
      for (std::size_t b = 0; b < cols; ++b) m[a * cols + b] += sigma[j] * u[a] * v[b];
  }
  for (std::size_t i = 0; i < m.size(); ++i) m[i] += noise * test_uniform(seed + 7777, i);
  return std::vector<T>(m.begin(), m.end());
}

/// ||a - b||_F^2 in double.
template <class T>
double squared_frobenius_distance(std::span<const T> a, std::span<const T> b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return s;
}

}  // namespace gradcomp_test

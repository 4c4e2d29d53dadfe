#pragma once
// Small helpers the experiments share: per-worker seeds, number formatting, a norm.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace repro {

/// The generator seed of worker `rank` in the run with seed `seed`: splitmix64 of both, so
/// that neighbouring seeds and ranks give unrelated streams, and a rank's stream does not
/// depend on how many ranks there are or on the communicator.
constexpr std::uint64_t worker_seed(std::uint64_t seed, int rank) noexcept {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(rank) + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// %.4g: short numbers for messages and tables.
inline std::string format_g(double v, int digits = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

/// "12.3 MB", "950 kB", "80 B" (decimal units, as network volumes are quoted).
inline std::string format_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000.0 && u < 4) {
    bytes /= 1000.0;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.3g %s", bytes, units[u]);
  return buf;
}

/// ||v||^2, accumulated in double.
template <class T>
double squared_norm(std::span<const T> v) noexcept {
  double sum = 0.0;
  for (const T x : v) sum += static_cast<double>(x) * static_cast<double>(x);
  return sum;
}

}  // namespace repro

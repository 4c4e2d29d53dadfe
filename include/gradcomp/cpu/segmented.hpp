#pragma once
// A list of tensors viewed as one vector, without copying: element i of the concatenation,
// and the pieces of a global range [begin, end) that lie inside one tensor each.
//
// Whole-model compression (top_k over all layers at once, indices over the concatenation)
// runs the single-vector kernels on this view; a single span is the one-piece case.
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>
#include "abi.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

template <class T>
class segmented_input {
 public:
  explicit segmented_input(std::span<const T> x) {
    if (!x.empty()) parts_.push_back(x);
    starts_.push_back(0);
    if (!x.empty()) starts_.push_back(x.size());
  }

  /// The concatenation of tensors (empty tensors are skipped: they own no index).
  explicit segmented_input(std::span<const std::span<const T>> tensors) {
    starts_.push_back(0);
    for (const std::span<const T> t : tensors) {
      if (t.empty()) continue;
      parts_.push_back(t);
      starts_.push_back(starts_.back() + t.size());
    }
  }

  std::size_t size() const noexcept { return starts_.back(); }
  bool contiguous() const noexcept { return parts_.size() <= 1; }
  /// The single tensor, when contiguous().
  std::span<const T> whole() const noexcept { return parts_.empty() ? std::span<const T>() : parts_.front(); }

  /// Calls f(data, n, global_begin) for every maximal piece of [begin, end) inside one tensor,
  /// in index order.
  template <class F>
  void for_each_piece(std::size_t begin, std::size_t end, F&& f) const {
    if (begin >= end) return;
    // The tensor holding `begin`: the last start <= begin.
    std::size_t s = static_cast<std::size_t>(std::upper_bound(starts_.begin() + 1, starts_.end() - 1, begin) -
                                             (starts_.begin() + 1));
    while (begin < end) {
      const std::size_t stop = std::min(end, starts_[s + 1]);
      f(parts_[s].data() + (begin - starts_[s]), stop - begin, begin);
      begin = stop;
      ++s;
    }
  }

  /// Element i of the concatenation.
  T operator[](std::size_t i) const {
    const std::size_t s = static_cast<std::size_t>(std::upper_bound(starts_.begin() + 1, starts_.end() - 1, i) -
                                                   (starts_.begin() + 1));
    return parts_[s][i - starts_[s]];
  }

 private:
  std::vector<std::span<const T>> parts_;  // the non-empty tensors
  std::vector<std::size_t> starts_;        // starts_[s] = global index of parts_[s][0]; back() = size()
};

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

#pragma once
// The device's view of a PowerSGD model layout (lowrank/shapes.hpp): a table of the
// compressed tensors and one of the uncompressed tensors, uploaded once when the state is
// built, so that each phase of a step is one launch over the whole model, whatever its number
// of tensors. A kernel's work item (a row, a column or an element of all the compressed
// tensors together; an element of all the uncompressed ones) is mapped to its tensor by a
// binary search over the table's running totals (a few cached reads per item).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../lowrank/shapes.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace gradcomp::cuda::detail {

/// A compressed tensor as the kernels see it.
struct factor_slot {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t offset = 0;         // first element in the model vector (M, e, decoded)
  std::size_t p_offset = 0;       // first value of its P (rows x r) in the P buffer
  std::size_t q_offset = 0;       // first value of its Q (cols x r) in the Q buffers
  std::size_t row_begin = 0;      // rows of the compressed tensors before it
  std::size_t col_begin = 0;      // columns of the compressed tensors before it
  std::size_t element_begin = 0;  // elements of the compressed tensors before it
  std::uint64_t tensor = 0;       // its index in the model (the warm start's stream)
};

/// A nonempty uncompressed tensor: its elements are values begin .. begin + size - 1 of the
/// first all-reduce's buffer (the uncompressed tensors' values, in model order).
struct dense_slot {
  std::size_t offset = 0;  // first element in the model vector
  std::size_t begin = 0;   // first value in the first all-reduce's buffer
  std::size_t size = 0;
};

/// The last of n >= 1 slots whose field `begin` is <= x (the fields strictly increase from 0).
template <class Slot>
__device__ inline std::size_t slot_index(const Slot* slots, std::size_t n, std::size_t x, std::size_t Slot::*begin) {
  std::size_t lo = 0, hi = n;  // the answer is in [lo, hi)
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (slots[mid].*begin <= x)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/// The tables of one layout in device memory, with their totals (host values).
class lowrank_tables {
 public:
  lowrank_tables() = default;
  explicit lowrank_tables(const lowrank::model_layout& l) {
    std::vector<factor_slot> factors;
    std::vector<dense_slot> dense;
    for (std::size_t t = 0; t < l.tensors.size(); ++t) {
      const lowrank::tensor_slot& s = l.tensors[t];
      const std::size_t size = l.size_of(s);
      if (s.compressed) {
        factors.push_back({.rows = s.shape.rows,
                           .cols = s.shape.cols,
                           .offset = s.offset,
                           .p_offset = s.p_offset,
                           .q_offset = s.q_offset,
                           .row_begin = total_rows_,
                           .col_begin = total_cols_,
                           .element_begin = total_elements_,
                           .tensor = t});
        total_rows_ += s.shape.rows;
        total_cols_ += s.shape.cols;
        total_elements_ += size;
      } else if (size > 0) {
        dense.push_back({.offset = s.offset, .begin = dense_values_, .size = size});
        dense_values_ += size;
      }
    }
    upload(factors_, factors);
    upload(dense_, dense);
  }

  const factor_slot* factors() const noexcept { return factors_.data(); }
  std::size_t factor_count() const noexcept { return factors_.size(); }
  const dense_slot* dense() const noexcept { return dense_.data(); }
  std::size_t dense_count() const noexcept { return dense_.size(); }
  /// Rows, columns and elements of all compressed tensors; values of all uncompressed ones.
  std::size_t total_rows() const noexcept { return total_rows_; }
  std::size_t total_cols() const noexcept { return total_cols_; }
  std::size_t total_elements() const noexcept { return total_elements_; }
  std::size_t dense_values() const noexcept { return dense_values_; }

 private:
  template <class Slot>
  static void upload(device_buffer<Slot>& to, const std::vector<Slot>& from) {
    to.resize(from.size());
    if (!from.empty())
      check(cudaMemcpy(to.data(), from.data(), from.size() * sizeof(Slot), cudaMemcpyHostToDevice), "powersgd",
            "cudaMemcpy (the tensor table)");
  }

  device_buffer<factor_slot> factors_;
  device_buffer<dense_slot> dense_;
  std::size_t total_rows_ = 0;
  std::size_t total_cols_ = 0;
  std::size_t total_elements_ = 0;
  std::size_t dense_values_ = 0;
};

}  // namespace gradcomp::cuda::detail

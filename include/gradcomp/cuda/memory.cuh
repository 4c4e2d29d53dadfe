#pragma once
// Device memory for the CUDA back end: device_buffer<T> (an owned, growable array in device
// memory, for payloads and residuals) and workspace (the temporary storage of the kernels,
// reused across calls so that steady-state calls allocate nothing, as CUB's two-phase
// temporary storage intends: size query, then the call with the storage).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "error.cuh"

namespace gradcomp::cuda {

/// An array of T in device memory. resize() keeps the storage when it is large enough (the
/// contents are kept only up to the old size when it grows; no value is initialised). Move-only.
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t n) { resize(n); }
  device_buffer(device_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  device_buffer& operator=(device_buffer&& other) noexcept {
    if (this != &other) {
      free();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { free(); }

  /// n elements; reallocates (synchronously, cudaMalloc) only when n exceeds the capacity.
  void resize(std::size_t n) {
    if (n > capacity_) {
      T* fresh = nullptr;
      detail::check(cudaMalloc(reinterpret_cast<void**>(&fresh), n * sizeof(T)), "device_buffer", "cudaMalloc");
      if (size_ > 0) {
        const cudaError_t copied = cudaMemcpy(fresh, data_, size_ * sizeof(T), cudaMemcpyDeviceToDevice);
        if (copied != cudaSuccess) cudaFree(fresh);
        detail::check(copied, "device_buffer", "cudaMemcpy (growing)");
      }
      free();
      data_ = fresh;
      capacity_ = n;
    }
    size_ = n;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }

  friend void swap(device_buffer& a, device_buffer& b) noexcept {
    std::swap(a.data_, b.data_);
    std::swap(a.size_, b.size_);
    std::swap(a.capacity_, b.capacity_);
  }

 private:
  void free() noexcept {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

/// Temporary device storage for the kernels of one stream at a time. reserve(bytes, stream)
/// returns at least that many bytes, valid until the next reserve on this workspace; it
/// reallocates (stream-ordered: cudaFreeAsync, cudaMallocAsync) only when asked for more
/// than it holds, so a training loop allocates in its first steps and never after. Calls
/// on different streams at the same time need a workspace each (par.with_workspace(ws)).
class workspace {
 public:
  workspace() = default;
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  ~workspace() {
    if (data_ != nullptr) cudaFree(data_);
  }

  void* reserve(std::size_t bytes, cudaStream_t stream) {
    if (bytes > capacity_) {
      if (data_ != nullptr) detail::check(cudaFreeAsync(data_, stream), "workspace", "cudaFreeAsync");
      data_ = nullptr;
      capacity_ = 0;
      void* fresh = nullptr;
      detail::check(cudaMallocAsync(&fresh, bytes, stream), "workspace", "cudaMallocAsync");
      data_ = fresh;
      capacity_ = bytes;
      high_water_ = capacity_ > high_water_ ? capacity_ : high_water_;
    }
    return data_;
  }

  /// Frees the storage (stream-ordered).
  void release(cudaStream_t stream) {
    if (data_ != nullptr) detail::check(cudaFreeAsync(data_, stream), "workspace", "cudaFreeAsync");
    data_ = nullptr;
    capacity_ = 0;
  }

  std::size_t capacity() const noexcept { return capacity_; }
  /// The most bytes this workspace has held at once.
  std::size_t high_water() const noexcept { return high_water_; }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t high_water_ = 0;
};

/// The workspace of calls whose policy names none: one per host thread (a thread usually
/// drives one stream; two streams on one thread at once need their own workspaces).
inline workspace& default_workspace() {
  thread_local workspace ws;
  return ws;
}

namespace detail {

/// Carves several arrays out of one workspace block, each aligned to 256 bytes (as CUB's
/// AliasTemporaries): add() the sizes, then reserve once and take the pointers.
class temp_layout {
 public:
  static constexpr std::size_t alignment = 256;
  /// Adds an array of `bytes`; returns its slot.
  std::size_t add(std::size_t bytes) {
    offsets_[count_] = total_;
    total_ += (bytes + alignment - 1) / alignment * alignment;
    return count_++;
  }
  std::size_t total() const noexcept { return total_ == 0 ? alignment : total_; }
  void* at(void* base, std::size_t slot) const noexcept { return static_cast<char*>(base) + offsets_[slot]; }

 private:
  std::size_t offsets_[16] = {};
  std::size_t count_ = 0;
  std::size_t total_ = 0;
};

}  // namespace detail

}  // namespace gradcomp::cuda

#pragma once
// Owning device and pinned-host allocations (RAII; move-only).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "cuda_check.h"

namespace nibble::cuda {

// One owned allocation made by Alloc and released by Free.
template <cudaError_t (*Alloc)(void**, size_t), cudaError_t (*Free)(void*)>
class CudaAllocation {
 public:
  CudaAllocation() = default;
  explicit CudaAllocation(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) CUDA_CHECK(Alloc(&ptr_, bytes_));
  }
  ~CudaAllocation() {
    if (ptr_) Free(ptr_);
  }
  CudaAllocation(CudaAllocation&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  CudaAllocation& operator=(CudaAllocation&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  CudaAllocation(const CudaAllocation&) = delete;
  CudaAllocation& operator=(const CudaAllocation&) = delete;

  template <typename T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

using DeviceBuffer = CudaAllocation<cudaMalloc, cudaFree>;
using PinnedBuffer = CudaAllocation<cudaMallocHost, cudaFreeHost>;

}  // namespace nibble::cuda

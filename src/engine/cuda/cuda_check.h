#pragma once
// CUDA and cuBLAS error checks for the backend's host code: a failure becomes a
// nibble::Error naming the call, the file and the line.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "nibble/core/error.h"

namespace nibble::cuda {

[[noreturn]] inline void throw_cuda(const char* what, cudaError_t err, const char* file, int line) {
  throw_error(std::string("CUDA error: ") + what + " failed: " + cudaGetErrorString(err) + " (" + file + ":" +
              std::to_string(line) + ")");
}

[[noreturn]] inline void throw_cublas(const char* what, cublasStatus_t status, const char* file, int line) {
  throw_error(std::string("cuBLAS error: ") + what + " failed: " + cublasGetStatusString(status) + " (" + file + ":" +
              std::to_string(line) + ")");
}

}  // namespace nibble::cuda

#define CUDA_CHECK(expr)                                                                      \
  do {                                                                                        \
    const cudaError_t nibble_cuda_err_ = (expr);                                              \
    if (nibble_cuda_err_ != cudaSuccess) ::nibble::cuda::throw_cuda(#expr, nibble_cuda_err_, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(expr)                                                                          \
  do {                                                                                              \
    const cublasStatus_t nibble_cublas_st_ = (expr);                                                \
    if (nibble_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                 \
      ::nibble::cuda::throw_cublas(#expr, nibble_cublas_st_, __FILE__, __LINE__);                   \
  } while (0)

#include "lm_head/lm_head.h"

namespace nibble::kernels {

// cuBLAS is column-major: a row-major [rows, n] output is a column-major n x rows
// matrix, so every product below computes C^T = W * X^T.
cublasStatus_t lm_head_logits(cublasHandle_t handle, const __half* x, const __half* w, float* logits, int rows,
                              int hidden, int vocab) {
  if (rows <= 0) return CUBLAS_STATUS_SUCCESS;
  const float alpha = 1.0f, beta = 0.0f;
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, vocab, rows, hidden, &alpha, w, CUDA_R_16F, hidden, x,
                      CUDA_R_16F, hidden, &beta, logits, CUDA_R_32F, vocab, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t dense_linear(cublasHandle_t handle, const __half* x, const __half* w, __half* y, int rows,
                            int in_features, int out_features) {
  if (rows <= 0) return CUBLAS_STATUS_SUCCESS;
  const float alpha = 1.0f, beta = 0.0f;
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out_features, rows, in_features, &alpha, w, CUDA_R_16F,
                      in_features, x, CUDA_R_16F, in_features, &beta, y, CUDA_R_16F, out_features, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t dense_linear_kn(cublasHandle_t handle, const __half* x, const __half* w_t, __half* y, int rows,
                               int in_features, int out_features) {
  if (rows <= 0) return CUBLAS_STATUS_SUCCESS;
  const float alpha = 1.0f, beta = 0.0f;
  return cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, out_features, rows, in_features, &alpha, w_t, CUDA_R_16F,
                      out_features, x, CUDA_R_16F, in_features, &beta, y, CUDA_R_16F, out_features,
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

}  // namespace nibble::kernels

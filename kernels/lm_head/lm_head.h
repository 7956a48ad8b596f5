#pragma once
// Dense fp16 matrix products through cuBLAS: the lm_head (fp32 logits) and the
// dense (unquantized) linear layers. The stream is the handle's (cublasSetStream).
#include <cublas_v2.h>
#include <cuda_fp16.h>

namespace nibble::kernels {

// logits[m, v] = sum_k x[m, k] * w[v, k] with fp32 accumulation and output.
// x: [rows, hidden] fp16, w: [vocab, hidden] fp16 (HF layout), logits: [rows, vocab] fp32.
cublasStatus_t lm_head_logits(cublasHandle_t handle, const __half* x, const __half* w, float* logits, int rows,
                              int hidden, int vocab);

// y[m, n] = sum_k x[m, k] * w[n, k]; w [out, in] fp16 (HF layout), y fp16, fp32 accumulation.
cublasStatus_t dense_linear(cublasHandle_t handle, const __half* x, const __half* w, __half* y, int rows,
                            int in_features, int out_features);

// y[m, n] = sum_k x[m, k] * w_t[k, n]; w_t [in, out] fp16 (the GPTQ "in x out" layout).
cublasStatus_t dense_linear_kn(cublasHandle_t handle, const __half* x, const __half* w_t, __half* y, int rows,
                               int in_features, int out_features);

}  // namespace nibble::kernels

#include "prefill_gemm_variants.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.h"
#include "dummy_gptq_layer.h"
#include "gptq_gemm/gptq_gemm.h"
#include "random_fill/random_fill.h"

namespace nibble::bench {
namespace {

constexpr int kLayers = 4;  // distinct weights cycled through, so no product starts on L2-resident weights

// Median microseconds of one call of fn(layer) over rounds of kLayers calls.
double time_us(cudaStream_t stream, const std::function<void(int)>& fn, int rounds = 8) {
  const auto all_layers = [&] {
    for (int l = 0; l < kLayers; ++l) fn(l);
  };
  return median_event_ms(stream, all_layers, rounds) * 1e3 / kLayers;
}

}  // namespace

void print_prefill_gemm_variants(const ModelConfig& c, int M) {
  const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
  const int nq = c.num_attention_heads, nkv = c.num_key_value_heads;
  struct Shape {
    const char* name;
    int K, N;
    bool residual;  // o_proj / down_proj: the result joins the fp32 residual
  };
  const std::vector<Shape> shapes = {{"qkv_proj", H, (nq + 2 * nkv) * D, false},
                                     {"o_proj", nq * D, H, true},
                                     {"gate_up_proj", H, 2 * I, false},
                                     {"down_proj", I, H, true}};
  DeviceBuffers buf;
  cudaStream_t stream;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  cublasHandle_t cublas;
  cublasCreate(&cublas);
  cublasSetStream(cublas, stream);
  cublasLtHandle_t lt;
  cublasLtCreate(&lt);
  const size_t lt_ws_bytes = 64u << 20;
  void* lt_ws = buf.get<char>(lt_ws_bytes);

  int64_t max_kn = 0, max_k = 0, max_n = 0;
  for (const Shape& s : shapes) {
    max_kn = std::max<int64_t>(max_kn, int64_t{s.K} * s.N);
    max_k = std::max<int64_t>(max_k, s.K);
    max_n = std::max<int64_t>(max_n, s.N);
  }
  const size_t full_bytes = static_cast<size_t>(std::min<int64_t>(max_kn * 2, int64_t{256} << 20));
  kernels::GptqWorkspace ws;
  ws.dequant_bytes = full_bytes;
  ws.dequant = buf.get<char>(full_bytes);
  ws.cublas = cublas;
  auto* wfull = buf.get<__half>(static_cast<size_t>(max_kn));  // a dequantized weight for cuBLAS alone
  __half* x = buf.get<__half>(static_cast<size_t>(M) * max_k);
  __half* y = buf.get<__half>(static_cast<size_t>(M) * max_n);
  float* y32 = buf.get<float>(static_cast<size_t>(M) * max_n);
  kernels::fill_random_half(x, static_cast<size_t>(M) * max_k, 1, 1.0f, 0.0f, stream);
  cudaMemsetAsync(y32, 0, static_cast<size_t>(M) * max_n * 4, stream);

  std::printf("\nprefill GPTQ product variants, M = %d (us per product, median; %d distinct layers cycled)\n", M,
              kLayers);
  std::printf("%-14s %-34s %10s %9s\n", "shape", "variant", "us", "TFLOP/s");
  for (const Shape& s : shapes) {
    std::vector<kernels::GptqDeviceWeights> layers;
    for (int l = 0; l < kLayers; ++l) layers.push_back(dummy_gptq_layer(buf, s.K, s.N, l, stream));
    kernels::gptq_dequantize(layers[0], 0, s.N, wfull, stream);
    const double flop = 2.0 * M * static_cast<double>(s.K) * s.N;
    auto row = [&](const std::string& variant, double us) {
      std::printf("%-14s %-34s %10.1f %9.1f\n", s.name, variant.c_str(), us, flop / (us * 1e-6) / 1e12);
    };
    const float one = 1.f, zero = 0.f;
    row("cublas alone NN (fp16 W [K,N])", time_us(stream, [&](int) {
          cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, s.N, M, s.K, &one, wfull, CUDA_R_16F, s.N, x, CUDA_R_16F,
                       s.K, &zero, y, CUDA_R_16F, s.N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        }));
    row("cublas alone TN (fp16 W^T [N,K])", time_us(stream, [&](int) {
          cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, s.N, M, s.K, &one, wfull, CUDA_R_16F, s.K, x, CUDA_R_16F,
                       s.K, &zero, y, CUDA_R_16F, s.N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        }));
    if (s.residual)
      row("cublas alone NN, fp32 C += (beta 1)", time_us(stream, [&](int) {
            cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, s.N, M, s.K, &one, wfull, CUDA_R_16F, s.N, x, CUDA_R_16F,
                         s.K, &one, y32, CUDA_R_32F, s.N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
          }));
    // cublasLt: the heuristic's candidates for the NN layout, each timed.
    {
      cublasLtMatmulDesc_t op;
      cublasLtMatrixLayout_t la, lb, lc;
      cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
      cublasLtMatrixLayoutCreate(&la, CUDA_R_16F, s.N, s.K, s.N);
      cublasLtMatrixLayoutCreate(&lb, CUDA_R_16F, s.K, M, s.K);
      cublasLtMatrixLayoutCreate(&lc, CUDA_R_16F, s.N, M, s.N);
      cublasLtMatmulPreference_t pref;
      cublasLtMatmulPreferenceCreate(&pref);
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt_ws_bytes,
                                           sizeof(lt_ws_bytes));
      cublasLtMatmulHeuristicResult_t results[16];
      int found = 0;
      cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 16, results, &found);
      double best = 1e30, first = 0;
      int best_i = -1;
      for (int i = 0; i < found; ++i) {
        if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
        const double us = time_us(
            stream,
            [&](int) {
              cublasLtMatmul(lt, op, &one, wfull, la, x, lb, &zero, y, lc, y, lc, &results[i].algo, lt_ws,
                             lt_ws_bytes, stream);
            },
            5);
        if (i == 0) first = us;
        if (us < best) best = us, best_i = i;
      }
      row("cublasLt heuristic #0 (64 MB ws)", first);
      row("cublasLt best of " + std::to_string(found) + ": #" + std::to_string(best_i), best);
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(la);
      cublasLtMatrixLayoutDestroy(lb);
      cublasLtMatrixLayoutDestroy(lc);
      cublasLtMatmulDescDestroy(op);
    }
    row("dequantize alone (whole layer)", time_us(stream, [&](int l) {
          kernels::gptq_dequantize(layers[l], 0, s.N, static_cast<__half*>(ws.dequant), stream);
        }));
    row("dequantize + cublas (gptq_gemm's path)", time_us(stream, [&](int l) {
          kernels::gptq_gemm_dequant_cublas(layers[l], x, M, y, nullptr, ws, stream);
        }));
  }
  const cudaError_t err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) std::printf("CUDA error in prefill variants: %s\n", cudaGetErrorString(err));
  cublasLtDestroy(lt);
  cublasDestroy(cublas);
  cudaStreamDestroy(stream);
}

}  // namespace nibble::bench

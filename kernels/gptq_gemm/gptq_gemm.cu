// Host side of the GPTQ matrix product: argument checks, the launch plan of the
// fused small-M kernel (tile width, split-K), and the dequantize + cuBLAS path.
#include "gptq_gemm/gptq_gemm.h"

#include <algorithm>
#include <string>

#include "activation/activation.h"
#include "gptq_gemm/gptq_dequant.cuh"
#include "gptq_gemm/gptq_gemm_plan.h"
#include "gptq_gemm/gptq_gemv.cuh"
#include "gptq_gemm/gptq_gemv_stream.cuh"
#include "gptq_gemm/gptq_mma_plan.h"
#include "nibble/core/error.h"

namespace nibble::kernels {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw_error(std::string("gptq_gemm: ") + what + ": " + cudaGetErrorString(status));
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw_error(std::string("gptq_gemm: ") + what + " failed with cuBLAS status " + std::to_string(status));
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

void check_args(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias) {
  const std::string what = "gptq_gemm [K=" + std::to_string(w.K) + ", N=" + std::to_string(w.N) +
                           ", bits=" + std::to_string(w.bits) + ", M=" + std::to_string(M) + "]";
  NIBBLE_CHECK(w.bits == 4 || w.bits == 8, what + ": bits must be 4 or 8");
  NIBBLE_CHECK(w.K > 0 && w.K % (32 / w.bits) == 0 && w.K < (int64_t{1} << 30), what + ": bad K");
  NIBBLE_CHECK(w.N > 0 && w.N % 4 == 0 && w.N < (int64_t{1} << 30), what + ": N must be a positive multiple of 4");
  NIBBLE_CHECK(M >= 0 && M < (int64_t{1} << 30), what + ": bad M");
  NIBBLE_CHECK(w.group_rows > 0 && (w.group_rows % 32 == 0 || w.group_rows == w.K) &&
                   w.groups == ceil_div(w.K, w.group_rows),
               what + ": bad group_rows/groups");
  NIBBLE_CHECK(w.qweight && w.scales && w.zeros, what + ": null weight pointer");
  NIBBLE_CHECK(aligned(w.qweight, 16) && aligned(w.scales, 8) && aligned(w.zeros, 8),
               what + ": weight arrays must be 16-byte (qweight) and 8-byte (scales, zeros) aligned");
  NIBBLE_CHECK(M == 0 || (x && y), what + ": null x or y");
  NIBBLE_CHECK(aligned(y, 8) && aligned(bias, 8), what + ": y and bias must be 8-byte aligned");
}

}  // namespace

GemvPlan plan_gemv(int64_t M, int64_t N, int64_t K, int sms, size_t splitk_bytes, const GemvOverride& override,
                   int (*resident_blocks_per_sm)(int bits, int m_tile, int threads), int bits) {
  GemvPlan plan;
  plan.m_tile = static_cast<int>(std::min<int64_t>(M, detail::kMaxMTile));
  plan.mchunks = static_cast<int>(ceil_div(M, detail::kMaxMTile));
  NIBBLE_CHECK(override.threads == 0 || override.threads == 32 || override.threads == 64 || override.threads == 128,
               "gptq_gemm: fused kernel tiles are 32, 64 or 128 threads wide");
  plan.threads = override.threads > 0 ? override.threads : 128;
  plan.ntiles = static_cast<int>(ceil_div(N, 4 * plan.threads));
  const int64_t base = static_cast<int64_t>(plan.ntiles) * plan.mchunks;
  // One full wave of resident blocks keeps the most loads in flight.
  const int per_sm = override.blocks_per_sm > 0 ? override.blocks_per_sm
                                                : std::min(8, resident_blocks_per_sm(bits, plan.m_tile, plan.threads));
  const int64_t target = static_cast<int64_t>(per_sm) * sms;
  int64_t rows = round_up(K, detail::kChunkRows);
  if (override.rows_per_split > 0) {
    rows = round_up(override.rows_per_split, detail::kChunkRows);
  } else if (2 * base <= target) {
    // As many splits as one wave holds, never more: a few blocks left over for
    // a second wave would cost nearly a block's whole run time on their own.
    rows = std::max<int64_t>(64, round_up(ceil_div(K, target / base), detail::kChunkRows));
  }
  // Splitting needs the fp32 accumulator [M, N] in the workspace and a counter per tile.
  const bool can_split = base <= detail::kCounterBytes / 4 &&
                         splitk_bytes >= detail::kCounterBytes + static_cast<size_t>(M * N) * sizeof(float);
  int64_t splits = ceil_div(K, rows);
  if (!can_split) splits = 1, rows = round_up(K, detail::kChunkRows);
  plan.rows_per_split = static_cast<int>(rows);
  plan.splits = static_cast<int>(splits);
  return plan;
}

namespace {
int resident_blocks(int bits, int m_tile, int threads) {
  // Shared memory is at most 16 KB a block and never the limit; registers are.
  const size_t smem = detail::gemv_smem_bytes(m_tile, detail::kStageRows);
  return bits == 4 ? detail::gemv_blocks_per_sm<4>(m_tile, threads, smem)
                   : detail::gemv_blocks_per_sm<8>(m_tile, threads, smem);
}
}  // namespace

GemvPlan plan_gemv_on_device(int64_t M, int64_t N, int64_t K, int bits, size_t splitk_bytes,
                             const GemvOverride& override) {
  return plan_gemv(M, N, K, device_sm_count(), splitk_bytes, override, resident_blocks, bits);
}

int device_sm_count() {
  int device = 0, sms = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return sms;
}

size_t gptq_splitk_workspace_bytes(int64_t max_m, int64_t max_n) {
  return detail::kCounterBytes + static_cast<size_t>(std::max<int64_t>(max_m, 1) * round_up(std::max<int64_t>(max_n, 4), 4)) * sizeof(float);
}

GptqDeviceWeights gptq_device_view(const GptqPrepared& host, const uint32_t* qweight, const __half* scales,
                                   const __half* zeros, const int32_t* perm) {
  GptqDeviceWeights w;
  w.K = host.K;
  w.N = host.N;
  w.bits = host.bits;
  w.group_rows = host.group_rows;
  w.groups = host.groups;
  w.qweight = qweight;
  w.scales = scales;
  w.zeros = zeros;
  w.perm = host.act_order() ? perm : nullptr;
  NIBBLE_CHECK(!host.act_order() || perm, "gptq_device_view: act-order layer needs its perm array on the device");
  return w;
}

namespace {
// Plans and launches the fused kernel for parameters whose operands (and input
// prologue, if any) are already set.
void launch_fused(detail::GemvParams& p, const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws,
                  cudaStream_t stream, const GemvOverride& override) {
  // Accumulating calls add into the caller's fp32 rows: they split K without the workspace.
  const size_t splitk_bytes = p.accumulate ? SIZE_MAX : ws.splitk ? ws.splitk_bytes : 0;
  const GemvPlan plan = plan_gemv_on_device(M, w.N, w.K, w.bits, splitk_bytes, override);
  p.rows_per_split = plan.rows_per_split;
  p.splits = plan.splits;
  if (plan.splits > 1 && !p.accumulate) {
    p.counters = static_cast<unsigned*>(ws.splitk);
    p.partial = reinterpret_cast<float*>(static_cast<char*>(ws.splitk) + detail::kCounterBytes);
  }
  const dim3 grid(plan.mchunks, plan.ntiles, plan.splits);
  const bool pdl = override.pdl == 1 || (override.pdl == 0 && ws.programmatic_launch);
  if (w.bits == 4)
    detail::launch_gemv<4>(p, plan.m_tile, grid, plan.threads, pdl, stream);
  else
    detail::launch_gemv<8>(p, plan.m_tile, grid, plan.threads, pdl, stream);
  check_cuda(cudaGetLastError(), "fused kernel launch");
}
}  // namespace

void gptq_gemm_fused_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                          const GptqWorkspace& ws, cudaStream_t stream, const GemvOverride& override) {
  check_args(w, x, M, y, bias);
  if (M == 0) return;
  detail::GemvParams p{};
  detail::set_product_operands(p, w, x, M, y, bias);
  p.x_ld = p.K;
  launch_fused(p, w, M, ws, stream, override);
}

void gptq_gemm_fused(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                     const GptqWorkspace& ws, cudaStream_t stream) {
  gptq_gemm_fused_with(w, x, M, y, bias, ws, stream, GemvOverride{});
}

namespace {
void check_silu_args(const GptqDeviceWeights& w, const __half* up, int64_t ld, int64_t M) {
  NIBBLE_CHECK(M == 0 || up, "gptq_gemm_silu_mul: null up");
  NIBBLE_CHECK(ld >= w.K && ld < (int64_t{1} << 30), "gptq_gemm_silu_mul: row stride " + std::to_string(ld) +
                                                         " below K = " + std::to_string(w.K));
}

// The fused kernel adding x W (+ bias) into out (x = silu(x) * up when up is set).
void launch_accumulate(const GptqDeviceWeights& w, const __half* x, const __half* up, int64_t ld, int64_t M,
                       float* out, const __half* bias, const GptqWorkspace& ws, cudaStream_t stream) {
  check_args(w, x, M, reinterpret_cast<__half*>(out), bias);
  NIBBLE_CHECK(M <= kGptqGemvMMax, "gptq_gemm_accumulate: M = " + std::to_string(M) + " is not a batch it takes" +
                                       " (see gptq_gemm_accumulates)");
  NIBBLE_CHECK(reinterpret_cast<uintptr_t>(out) % 16 == 0, "gptq_gemm_accumulate: out must be 16-byte aligned");
  if (M == 0) return;
  detail::GemvParams p{};
  detail::set_product_operands(p, w, x, M, nullptr, bias);
  p.up = up;
  p.x_ld = static_cast<int>(ld);
  p.accumulate = out;
  launch_fused(p, w, M, ws, stream, GemvOverride{});
}

// Batches from 2 rows go to the narrow tensor-core kernel's accumulate mode.
bool narrow_accumulates(const GptqDeviceWeights& w, int64_t M) {
  return w.bits == 4 && M >= 2 && M <= kMmaNarrowMMax;
}
}  // namespace

bool gptq_gemm_accumulates(const GptqDeviceWeights& w, int64_t M) {
  return narrow_accumulates(w, M) || ((w.bits == 4 || w.bits == 8) && M >= 0 && M <= kGptqGemvMMax);
}

void gptq_gemm_accumulate(const GptqDeviceWeights& w, const __half* x, int64_t M, float* out, const __half* bias,
                          const GptqWorkspace& ws, cudaStream_t stream) {
  if (narrow_accumulates(w, M)) {
    check_args(w, x, M, reinterpret_cast<__half*>(out), bias);
    gptq_gemm_mma_accumulate(w, x, M, out, bias, ws, stream);
    return;
  }
  launch_accumulate(w, x, nullptr, w.K, M, out, bias, ws, stream);
}

void gptq_gemm_silu_mul_accumulate(const GptqDeviceWeights& w, const __half* gate, const __half* up, int64_t ld,
                                   int64_t M, __half* act, float* out, const __half* bias, const GptqWorkspace& ws,
                                   cudaStream_t stream) {
  check_silu_args(w, up, ld, M);
  if (narrow_accumulates(w, M)) {
    check_args(w, gate, M, reinterpret_cast<__half*>(out), bias);
    NIBBLE_CHECK(act, "gptq_gemm_silu_mul_accumulate: null act");
    check_cuda(silu_and_mul(gate, up, static_cast<int>(ld), act, static_cast<int>(M), static_cast<int>(w.K), stream),
               "silu_and_mul");
    gptq_gemm_mma_accumulate(w, act, M, out, bias, ws, stream);
    return;
  }
  launch_accumulate(w, gate, up, ld, M, out, bias, ws, stream);
}

void gptq_gemm_silu_mul(const GptqDeviceWeights& w, const __half* gate, const __half* up, int64_t ld, int64_t M,
                        __half* act, __half* y, const __half* bias, const GptqWorkspace& ws, cudaStream_t stream) {
  check_args(w, gate, M, y, bias);
  check_silu_args(w, up, ld, M);
  NIBBLE_CHECK(M == 0 || act, "gptq_gemm_silu_mul: null act");
  if (M == 0) return;
  if (M > kGptqSmallMMax || gptq_mma_preferred(w, M, ws)) {
    check_cuda(silu_and_mul(gate, up, static_cast<int>(ld), act, static_cast<int>(M), static_cast<int>(w.K), stream),
               "silu_and_mul");
    gptq_gemm(w, act, M, y, bias, ws, stream);
    return;
  }
  detail::GemvParams p{};
  detail::set_product_operands(p, w, gate, M, y, bias);
  p.up = up;
  p.x_ld = static_cast<int>(ld);
  launch_fused(p, w, M, ws, stream, GemvOverride{});
}

bool gptq_gemm_stream_usable(const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws) {
  return detail::stream_gemv_usable(w, M, ws.splitk ? ws.splitk_bytes : 0);
}

void gptq_gemm_stream_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                           const GptqWorkspace& ws, cudaStream_t stream, int blocks) {
  check_args(w, x, M, y, bias);
  if (M == 0) return;
  NIBBLE_CHECK(gptq_gemm_stream_usable(w, M, ws),
               "gptq_gemm: the streaming kernel needs 4-bit weights, M <= 2, compute capability 9.0+, 16-byte aligned "
               "weight arrays, N a multiple of 8, a ring that fits in shared memory and a split-K workspace for M x N (K=" +
                   std::to_string(w.K) + ", N=" + std::to_string(w.N) + ", M=" + std::to_string(M) + ")");
  detail::launch_stream_gemv(w, x, static_cast<int>(M), y, bias, ws.splitk, blocks, stream);
  check_cuda(cudaGetLastError(), "streaming kernel launch");
}

void gptq_gemm_stream(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                      const GptqWorkspace& ws, cudaStream_t stream) {
  gptq_gemm_stream_with(w, x, M, y, bias, ws, stream, 0);
}

void gptq_dequantize(const GptqDeviceWeights& w, int64_t n_begin, int64_t n_end, __half* out, cudaStream_t stream) {
  NIBBLE_CHECK(0 <= n_begin && n_begin < n_end && n_end <= w.N && n_begin % 4 == 0 && n_end % 4 == 0,
               "gptq_dequantize: column range [" + std::to_string(n_begin) + ", " + std::to_string(n_end) +
                   ") must be within [0, N) with multiples of 4");
  NIBBLE_CHECK(out && aligned(out, 8), "gptq_dequantize: out must be non-null and 8-byte aligned");
  detail::DequantParams p{w.qweight, w.scales, w.zeros, w.perm, static_cast<int>(w.K), static_cast<int>(w.N),
                          w.bits, w.group_rows, static_cast<int>(n_begin), static_cast<int>(n_end), out};
  detail::launch_dequant(p, stream);
  check_cuda(cudaGetLastError(), "dequantize kernel launch");
}

void gptq_gemm_dequant_cublas(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y,
                              const __half* bias, const GptqWorkspace& ws, cudaStream_t stream) {
  check_args(w, x, M, y, bias);
  if (M == 0) return;
  NIBBLE_CHECK(ws.cublas && ws.dequant, "gptq_gemm: the large-M path needs a cuBLAS handle and a dequant scratch");
  const int64_t fit = static_cast<int64_t>(ws.dequant_bytes / (sizeof(__half) * w.K));
  const int64_t chunk = fit >= w.N ? w.N : fit / 64 * 64;
  NIBBLE_CHECK(chunk > 0, "gptq_gemm: dequant scratch of " + std::to_string(ws.dequant_bytes) +
                              " bytes is below K * 64 * 2 = " + std::to_string(w.K * 128));
  check_cublas(cublasSetStream(ws.cublas, stream), "cublasSetStream");
  float beta = 0.f;
  if (bias) {
    detail::launch_broadcast_rows(bias, M, w.N, y, stream);
    check_cuda(cudaGetLastError(), "bias broadcast launch");
    beta = 1.f;
  }
  const float alpha = 1.f;
  auto* scratch = static_cast<__half*>(ws.dequant);
  for (int64_t n0 = 0; n0 < w.N; n0 += chunk) {
    const int64_t n1 = std::min(w.N, n0 + chunk);
    gptq_dequantize(w, n0, n1, scratch, stream);
    // Row-major y[M, n0:n1] = x[M, K] W[K, n0:n1] is, column-major, Y' = W' X'.
    check_cublas(cublasGemmEx(ws.cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n1 - n0), static_cast<int>(M),
                              static_cast<int>(w.K), &alpha, scratch, CUDA_R_16F, static_cast<int>(n1 - n0), x,
                              CUDA_R_16F, static_cast<int>(w.K), &beta, y + n0, CUDA_R_16F, static_cast<int>(w.N),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }
}

void gptq_gemm(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
               const GptqWorkspace& ws, cudaStream_t stream) {
  if (gptq_mma_preferred(w, M, ws)) {
    gptq_gemm_mma(w, x, M, y, bias, ws, stream);
  } else if (M <= kGptqSmallMMax) {
    gptq_gemm_fused(w, x, M, y, bias, ws, stream);
  } else {
    gptq_gemm_dequant_cublas(w, x, M, y, bias, ws, stream);
  }
}

}  // namespace nibble::kernels

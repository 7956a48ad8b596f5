// Host side of the tensor-core GPTQ GEMM: argument checks, the launch plan
// (M tile, split-K) and the launch.
#include <algorithm>
#include <cstdint>
#include <string>

#include "gptq_gemm/gptq_gemm.h"
#include "gptq_gemm/gptq_gemm_plan.h"
#include "gptq_gemm/gptq_gemv.cuh"
#include "gptq_gemm/gptq_mma.cuh"
#include "gptq_gemm/gptq_mma_plan.h"
#include "nibble/core/error.h"

namespace nibble::kernels {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

void check_mma_args(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                    const MmaOverride& override) {
  const std::string what = "gptq_gemm_mma [K=" + std::to_string(w.K) + ", N=" + std::to_string(w.N) +
                           ", bits=" + std::to_string(w.bits) + ", M=" + std::to_string(M) + "]";
  NIBBLE_CHECK(w.bits == 4, what + ": the tensor-core path takes 4-bit weights only");
  NIBBLE_CHECK(w.K > 0 && w.K % 8 == 0 && w.K < (int64_t{1} << 30), what + ": K must be a positive multiple of 8");
  NIBBLE_CHECK(w.N > 0 && w.N % 4 == 0 && w.N <= int64_t{65535} * kMmaTileN,
               what + ": N must be a positive multiple of 4 (at most 65535 * 128)");
  NIBBLE_CHECK(override.kernel >= 0 && override.kernel <= 4, what + ": MmaOverride::kernel is 0-4");
  NIBBLE_CHECK(M >= 0 && M < (int64_t{1} << 30), what + ": bad M");
  NIBBLE_CHECK(w.group_rows > 0 && (w.group_rows % 32 == 0 || w.group_rows == w.K) &&
                   w.groups == ceil_div(w.K, w.group_rows),
               what + ": bad group_rows/groups");
  NIBBLE_CHECK(w.qweight && w.scales && w.zeros, what + ": null weight pointer");
  NIBBLE_CHECK(aligned(w.qweight, 16) && aligned(w.scales, 8) && aligned(w.zeros, 8),
               what + ": weight arrays must be 16-byte (qweight) and 8-byte (scales, zeros) aligned");
  NIBBLE_CHECK(M == 0 || (x && y), what + ": null x or y");
  NIBBLE_CHECK(aligned(x, 2) && aligned(y, 8) && aligned(bias, 8),
               what + ": x must be 2-byte, y and bias 8-byte aligned");
}

}  // namespace

MmaPlan plan_mma(int64_t M, int64_t N, int64_t K, int sms, size_t splitk_bytes, const MmaOverride& override,
                 bool wgmma_available, const MmaClusterCapacity& clusters) {
  // From 65 tokens the Hopper kernel has two tiles: the one modelled faster.
  if (override.kernel == 0 && wgmma_available && M > kWgmmaTokens) {
    MmaOverride narrow64 = override, tall = override;
    narrow64.kernel = 3;
    tall.kernel = 4;
    const MmaPlan a = plan_mma(M, N, K, sms, splitk_bytes, narrow64, true, clusters);
    const MmaPlan b = plan_mma(M, N, K, sms, splitk_bytes, tall, true, clusters);
    return wgmma_modelled_us(a, M, N, sms) <= wgmma_modelled_us(b, M, N, sms) ? a : b;
  }
  MmaPlan plan;
  plan.wide = override.kernel == 2 || (override.kernel == 0 && !wgmma_available && mma_wide_preferred(M, N, K));
  plan.m_tile = plan.wide ? (M <= 32 ? 32 : 64) : M <= 8 ? 8 : M <= 16 ? 16 : M <= 32 ? 32 : 64;
  plan.wgmma = !plan.wide && wgmma_available &&
               (override.kernel == 4 || override.kernel == 3 || (override.kernel == 0 && plan.m_tile >= kWgmmaSmallTokens));
  if (plan.wgmma)
    plan.m_tile = override.kernel == 4 ? kWgmmaLargeTokens : M <= kWgmmaSmallTokens ? kWgmmaSmallTokens : kWgmmaTokens;
  plan.mchunks = static_cast<int>(ceil_div(std::max<int64_t>(M, 1), plan.m_tile));
  plan.ntiles = static_cast<int>(ceil_div(N, plan.wide ? kMmaWideTileN : plan.wgmma ? kWgmmaTileN : kMmaTileN));
  plan.blocks_per_sm = plan.wide    ? kMmaWideBlocksPerSm
                       : plan.wgmma ? kWgmmaBlocksPerSm
                                    : mma_target_blocks_per_sm(plan.m_tile);
  plan.smem_bytes = static_cast<size_t>(plan.wide    ? kMmaWideStages * mma_wide_stage_bytes(plan.m_tile)
                                        : plan.wgmma ? wgmma_smem_bytes(plan.m_tile)
                                                     : mma_x_smem_bytes(plan.m_tile));
  const int64_t base = static_cast<int64_t>(plan.mchunks) * plan.ntiles;
  const bool workspace_room = override.reduce != 1 && base <= detail::kCounterBytes / 4 &&
                              splitk_bytes >= detail::kCounterBytes + static_cast<size_t>(M * N) * sizeof(float);
  // Whether the tiles can run as clusters of s splits, all at once.
  const int* capacity = plan.wgmma                                  ? clusters.wgmma
                        : plan.wide                                 ? nullptr
                        : plan.m_tile == 8                          ? clusters.narrow8
                        : plan.m_tile == 16                         ? clusters.narrow16
                                                                    : nullptr;
  const int64_t max_cluster = plan.wgmma ? kWgmmaMaxClusterSplits : kMmaMaxClusterSplits;
  auto clusters_fit = [&](int64_t s) {
    return capacity && override.reduce != 2 && s <= max_cluster && base <= capacity[s];
  };
  const bool can_split = workspace_room || clusters_fit(2);
  int64_t rows = round_up(K, kMmaSplitRows);
  if (override.rows_per_split > 0) {
    rows = round_up(override.rows_per_split, kMmaSplitRows);
  } else {
    // One full wave of resident blocks (a second wave would run mostly idle),
    // at least 128 rows per split: each split adds an fp32 [M, N] of atomics.
    const int64_t target = override.blocks_target > 0 ? override.blocks_target : int64_t{plan.blocks_per_sm} * sms;
    const int64_t splits = std::max<int64_t>(1, target / base);
    rows = std::max<int64_t>(128, round_up(ceil_div(K, splits), kMmaSplitRows));
  }
  // The Hopper kernel walks whole passes of 256 rows: splits of such multiples
  // leave its padding (zero x) to the last split's partial end.
  const int64_t unit = plan.wgmma ? 256 : kMmaSplitRows;
  rows = round_up(rows, unit);
  if (!can_split) rows = round_up(K, unit);
  rows = std::min(rows, round_up(K, unit));
  rows = std::max(rows, round_up(ceil_div(K, 65535), unit));  // grid.z limit
  int64_t splits = ceil_div(K, rows);
  if (splits > 1 && !workspace_room && !clusters_fit(splits)) {  // the most splits whose clusters fit
    int64_t s = std::min<int64_t>(splits, max_cluster);
    while (s > 1 && !clusters_fit(s)) --s;
    rows = std::max(rows, round_up(ceil_div(K, s), unit));
    splits = ceil_div(K, rows);
  }
  plan.cluster = splits > 1 && clusters_fit(splits);
  plan.rows_per_split = static_cast<int>(rows);
  plan.splits = static_cast<int>(splits);
  return plan;
}

bool mma_wide_preferred(int64_t M, int64_t /*N*/, int64_t /*K*/) { return M > 128; }

const MmaClusterCapacity& mma_cluster_capacity() {
  static const MmaClusterCapacity capacity = [] {
    MmaClusterCapacity c;
    // Never more clusters of s + 1 blocks than of s: the plan walks down from the
    // most splits to the first size that fits.
    auto fill = [](int* max_active, int max_size, auto&& query) {
      int previous = 1 << 30;
      for (int s = 2; s <= max_size; ++s) previous = max_active[s] = std::min(previous, query(s));
    };
    if (wgmma_kernel_available())
      fill(c.wgmma, kWgmmaMaxClusterSplits, [](int s) { return wgmma_max_active_clusters(kWgmmaTokens, s); });
    fill(c.narrow8, kMmaMaxClusterSplits, [](int s) { return narrow_mma_max_active_clusters(8, s); });
    fill(c.narrow16, kMmaMaxClusterSplits, [](int s) { return narrow_mma_max_active_clusters(16, s); });
    return c;
  }();
  return capacity;
}

double wgmma_modelled_us(const MmaPlan& plan, int64_t M, int64_t N, int sms) {
  // H200 fit (bench/NOTES.md, session 9): per 128-column pass of rows a block
  // spends 11.1 ns at 64 tokens and 17.4 at 128; a launch 2 us; a cluster's
  // reduction 3.5 / 5 us; fp32 atomics into the workspace 0.85 us per MB.
  const double per_row_us = plan.m_tile >= kWgmmaLargeTokens ? 17.4e-3 : plan.m_tile >= kWgmmaTokens ? 11.1e-3 : 8e-3;
  const int64_t blocks = int64_t{plan.mchunks} * plan.ntiles * plan.splits;
  const int64_t waves = plan.cluster ? 1 : ceil_div(blocks, int64_t{sms} * kWgmmaBlocksPerSm);
  double us = static_cast<double>(waves) * plan.rows_per_split * per_row_us + 2.0;
  if (plan.splits > 1)
    us += plan.cluster ? (plan.m_tile >= kWgmmaLargeTokens ? 5.0 : 3.5)
                       : 0.85e-6 * static_cast<double>(plan.splits) * static_cast<double>(M * N) * sizeof(float);
  return us;
}

namespace {

// Whether act-order x is gathered into the dequant scratch before the product.
bool x_gathered_ahead(const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws) {
  const size_t gathered_bytes = static_cast<size_t>(M) * w.K * sizeof(__half);
  return ws.dequant && ws.dequant_bytes >= gathered_bytes && aligned(ws.dequant, 16);
}

}  // namespace

bool gptq_mma_preferred(const GptqDeviceWeights& w, int64_t M, const GptqWorkspace& ws) {
  if (w.bits != 4 || M < 2) return false;  // one row: the fused kernel on every layer
  // Without split-K the Llama-sized layers fill a fraction of the GPU: slower than
  // the fused kernel (small M) or cuBLAS.
  const bool room = ws.splitk && ws.splitk_bytes >= gptq_splitk_workspace_bytes(M, w.N);
  if (M <= kGptqSmallMMax) return room;
  if (!ws.cublas || !ws.dequant) return true;
  // The Hopper kernel (from 17 tokens) splits K in clusters where the workspace
  // has no room.
  const bool x_plain = !w.perm || x_gathered_ahead(w, M, ws);
  if (M > kMmaSyncMMax && x_plain && wgmma_kernel_available()) return M <= kGptqHopperMMax;
  return room && (M <= kMmaNarrowMMax || (M <= kGptqMmaMMax && mma_beats_cublas_above_64(w.K, w.N)));
}

bool mma_beats_cublas_above_64(int64_t K, int64_t N, bool hopper_kernel) {
  return hopper_kernel || (K * N >= (int64_t{48} << 20) && std::max(K, N) >= 3 * std::min(K, N));
}

namespace {

// Whether the product reaches the kernel as whole 16-byte rows of plain x (what
// the Hopper kernel copies with cp.async; mma_params sets x_vec the same way).
bool hopper_kernel_takes(const GptqDeviceWeights& w, const __half* x, int64_t M, const GptqWorkspace& ws) {
  const bool x_plain = w.perm ? x_gathered_ahead(w, M, ws) : aligned(x, 16);
  return x_plain && wgmma_kernel_available();
}

// The operands of a tensor-core product, act-order x gathered into the dequant
// scratch when it has room (the kernel then loads it like plain x; otherwise it
// gathers as it goes).
detail::MmaParams mma_params(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                             const MmaPlan& plan, const GptqWorkspace& ws, cudaStream_t stream) {
  detail::MmaParams p{};
  detail::set_product_operands(p, w, x, M, y, bias);
  p.groups = static_cast<int>(w.groups);
  p.rows_per_split = plan.rows_per_split;
  p.splits = plan.splits;
  p.cluster = plan.cluster ? 1 : 0;
  if (w.perm && x_gathered_ahead(w, M, ws)) {
    auto* gathered = static_cast<__half*>(ws.dequant);
    detail::launch_gather_columns(x, w.perm, p.M, p.K, gathered, stream);
    p.x = gathered;
    p.perm = nullptr;
  }
  p.x_vec = !p.perm && aligned(p.x, 16) ? 1 : 0;
  return p;
}

void launch_planned(const detail::MmaParams& p, const MmaPlan& plan, bool programmatic, cudaStream_t stream) {
  const dim3 grid(plan.mchunks, plan.ntiles, plan.splits);
  if (plan.wide)
    detail::launch_mma_wide(p, plan.m_tile, grid, plan.smem_bytes, programmatic, stream);
  else if (plan.wgmma)
    detail::launch_wgmma(p, plan.m_tile, grid, programmatic, stream);
  else
    detail::launch_mma(p, plan.m_tile, grid, programmatic, stream);
}

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) throw_error(std::string(what) + ": kernel launch: " + cudaGetErrorString(status));
}

}  // namespace

void gptq_gemm_mma_with(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                        const GptqWorkspace& ws, cudaStream_t stream, const MmaOverride& override) {
  check_mma_args(w, x, M, y, bias, override);
  if (M == 0) return;
  const MmaPlan plan =
      plan_mma(M, w.N, w.K, device_sm_count(), ws.splitk ? ws.splitk_bytes : 0, override, hopper_kernel_takes(w, x, M, ws),
               mma_cluster_capacity());
  detail::MmaParams p = mma_params(w, x, M, y, bias, plan, ws, stream);
  if (plan.splits > 1 && !plan.cluster) {
    p.counters = static_cast<unsigned*>(ws.splitk);
    p.partial = reinterpret_cast<float*>(static_cast<char*>(ws.splitk) + detail::kCounterBytes);
  }
  launch_planned(p, plan, ws.programmatic_launch, stream);
  check_launch("gptq_gemm_mma");
}

void gptq_gemm_mma_accumulate(const GptqDeviceWeights& w, const __half* x, int64_t M, float* out, const __half* bias,
                              const GptqWorkspace& ws, cudaStream_t stream) {
  check_mma_args(w, x, M, reinterpret_cast<__half*>(out), bias, MmaOverride{});
  NIBBLE_CHECK(M <= kMmaNarrowMMax, "gptq_gemm_mma_accumulate: M = " + std::to_string(M) + " above " +
                                        std::to_string(kMmaNarrowMMax));
  NIBBLE_CHECK(aligned(out, 16), "gptq_gemm_mma_accumulate: out must be 16-byte aligned");
  if (M == 0) return;
  // No split-K workspace involved: every split adds into out, so K may split
  // freely. The mma.sync tiles keep their atomics (nothing to finish); the
  // Hopper kernel's splits add up in a cluster where it fits.
  MmaOverride reduce;
  reduce.reduce = M <= kMmaSyncMMax ? 2 : 0;
  const MmaPlan plan = plan_mma(M, w.N, w.K, device_sm_count(), SIZE_MAX, reduce, hopper_kernel_takes(w, x, M, ws),
                                mma_cluster_capacity());
  detail::MmaParams p = mma_params(w, x, M, nullptr, bias, plan, ws, stream);
  p.accumulate = out;
  launch_planned(p, plan, ws.programmatic_launch, stream);
  check_launch("gptq_gemm_mma_accumulate");
}

void gptq_gemm_mma(const GptqDeviceWeights& w, const __half* x, int64_t M, __half* y, const __half* bias,
                   const GptqWorkspace& ws, cudaStream_t stream) {
  gptq_gemm_mma_with(w, x, M, y, bias, ws, stream, MmaOverride{});
}

}  // namespace nibble::kernels

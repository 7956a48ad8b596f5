// Tests of the tensor-core GPTQ GEMM (gptq_gemm_mma): its launch plan on the host
// (always), and the kernel against the scalar CPU reference on odd shapes (label
// gpu; skipped without a device). Fresh random data, outputs NaN-poisoned first.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gptq_gemm/gptq_gemm.h"
#include "gptq_gemm/gptq_gemm_ref.h"
#include "gptq_gemm/gptq_mma_plan.h"
#include "gptq_test_data.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble::kernels::testing {
namespace {

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Device memory freed on scope exit.
struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Buffer(size_t n) : bytes(n) {
    if (n && cudaMalloc(&ptr, n) != cudaSuccess) ptr = nullptr;
  }
  ~Buffer() {
    if (ptr) cudaFree(ptr);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(ptr); }
};

template <class T>
std::unique_ptr<Buffer> to_device(const std::vector<T>& v, size_t extra_bytes = 0) {
  auto b = std::make_unique<Buffer>(v.size() * sizeof(T) + extra_bytes);
  if (!v.empty()) cudaMemcpy(static_cast<char*>(b->ptr) + extra_bytes, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return b;
}

struct Layer {
  GptqPrepared host;
  std::unique_ptr<Buffer> qweight, scales, zeros, perm;
  GptqDeviceWeights view;
  explicit Layer(const GptqCheckpointView& c) : host(gptq_prepare(c)) {
    qweight = to_device(host.qweight);
    scales = to_device(host.scales);
    zeros = to_device(host.zeros);
    perm = to_device(host.perm);
    view = gptq_device_view(host, qweight->as<uint32_t>(), scales->as<__half>(), zeros->as<__half>(),
                            perm->as<int32_t>());
  }
};

// Split-K workspace (zero-filled) and, optionally, the dequant scratch that the
// tensor-core path uses to gather act-order x.
struct SplitWorkspace {
  std::unique_ptr<Buffer> splitk, scratch;
  GptqWorkspace ws;
  explicit SplitWorkspace(size_t bytes, size_t scratch_bytes = 0)
      : splitk(std::make_unique<Buffer>(bytes)), scratch(std::make_unique<Buffer>(scratch_bytes)) {
    if (bytes) cudaMemset(splitk->ptr, 0, bytes);
    ws.splitk = splitk->ptr;
    ws.splitk_bytes = bytes;
    ws.dequant = scratch->ptr;
    ws.dequant_bytes = scratch_bytes;
  }
  bool zero() const {
    if (!splitk->ptr) return true;
    std::vector<unsigned char> bytes(splitk->bytes);
    cudaMemcpy(bytes.data(), splitk->ptr, bytes.size(), cudaMemcpyDeviceToHost);
    return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
  }
};

std::vector<float> run_mma(const Layer& layer, const __half* x, int64_t M, const __half* bias, const GptqWorkspace& ws,
                           const MmaOverride& override = {}) {
  const size_t count = static_cast<size_t>(M * layer.host.N);
  Buffer y(count * 2);
  cudaMemset(y.ptr, 0xff, y.bytes);
  gptq_gemm_mma_with(layer.view, x, M, y.as<__half>(), bias, ws, nullptr, override);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> raw(count);
  EXPECT_EQ(cudaMemcpy(raw.data(), y.ptr, count * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = fp16_to_float(raw[i]);
  return out;
}

size_t nonfinite(const std::vector<float>& v) {
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [](float f) { return !std::isfinite(f); }));
}

constexpr double kTolerance = 2e-3;

TEST(GptqMmaPlan, CoversKAndFillsTheGpuInOneWave) {
  const size_t roomy = gptq_splitk_workspace_bytes(256, 14336);
  for (int64_t M : {1, 8, 9, 16, 17, 32, 33, 64, 100, 256, 2048})
    for (int64_t N : {8, 456, 1024, 4096, 14336})
      for (int64_t K : {8, 600, 4096, 14336})
        for (size_t ws : {roomy, size_t{0}})
          for (int kernel : {0, 1, 2}) {
            const MmaPlan p = plan_mma(M, N, K, 132, ws, MmaOverride{0, 0, kernel});
            const std::string what = "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" +
                                     std::to_string(K) + " ws=" + std::to_string(ws) + " kernel=" +
                                     std::to_string(kernel);
            EXPECT_EQ(p.wide, kernel == 2 || (kernel == 0 && mma_wide_preferred(M, N, K))) << what;
            if (p.wide) {
              EXPECT_EQ(p.m_tile, M <= 32 ? 32 : 64) << what;
              EXPECT_GE(int64_t{p.ntiles} * kMmaWideTileN, N) << what;
              EXPECT_EQ(p.smem_bytes, size_t{kMmaWideStages} * mma_wide_stage_bytes(p.m_tile)) << what;
              EXPECT_LE(p.smem_bytes, size_t{227 * 1024}) << what;
            } else {
              EXPECT_EQ(p.m_tile, M <= 8 ? 8 : M <= 16 ? 16 : M <= 32 ? 32 : kMmaNarrowMMax) << what;
              EXPECT_GE(int64_t{p.ntiles} * kMmaTileN, N) << what;
              EXPECT_EQ(p.smem_bytes, static_cast<size_t>(mma_x_smem_bytes(p.m_tile))) << what;
              EXPECT_LE(p.smem_bytes * p.blocks_per_sm, size_t{227 * 1024}) << what;
            }
            EXPECT_GE(int64_t{p.mchunks} * p.m_tile, M) << what;
            EXPECT_LT(int64_t{p.mchunks - 1} * p.m_tile, M) << what;
            EXPECT_EQ(p.rows_per_split % kMmaSplitRows, 0) << what;
            EXPECT_GE(int64_t{p.rows_per_split} * p.splits, K) << what;
            EXPECT_LT(int64_t{p.rows_per_split} * (p.splits - 1), K) << what << ": an empty split";
            if (ws == 0 || int64_t{p.mchunks} * p.ntiles > 4096) {
              EXPECT_EQ(p.splits, 1) << what;
            }
            if (p.splits > 1) {
              EXPECT_LE(int64_t{p.mchunks} * p.ntiles * p.splits, p.blocks_per_sm * 132) << what;
            }
          }
  // The Llama-3-8B 4096x4096 layer at M = 8: 32 column tiles of 128, K split
  // 16 ways: 512 blocks for 4 x 132 resident.
  const MmaPlan qkv = plan_mma(8, 4096, 4096, 132, roomy, MmaOverride{});
  EXPECT_FALSE(qkv.wide);
  EXPECT_EQ(qkv.ntiles, 32);
  EXPECT_EQ(qkv.splits, 16);
  EXPECT_EQ(qkv.rows_per_split, 256);
  // At M = 64 the narrow kernel takes all tokens in one block: 32 tiles, K split
  // 11 ways of 384 rows (3 x 132 resident), x staged in 2 x 64 x 160 halves ...
  const MmaPlan narrow = plan_mma(64, 4096, 4096, 132, roomy, MmaOverride{});
  EXPECT_FALSE(narrow.wide);
  EXPECT_EQ(narrow.mchunks, 1);
  EXPECT_EQ(narrow.splits, 11);
  EXPECT_EQ(narrow.rows_per_split, 384);
  EXPECT_EQ(narrow.smem_bytes, 40960u);
  // ... and at M = 256 the wide kernel: 56 tiles of 256 columns, 4 chunks of 64 tokens.
  const MmaPlan wide = plan_mma(256, 14336, 4096, 132, roomy, MmaOverride{});
  EXPECT_TRUE(wide.wide);
  EXPECT_EQ(wide.ntiles, 56);
  EXPECT_EQ(wide.mchunks, 4);
  EXPECT_EQ(wide.splits, 1);
  // With Hopper's kernel (where it runs): 2 blocks per SM, splits in whole
  // 256-row passes: 32 tiles x 8 splits of 512 rows.
  const MmaPlan hopper = plan_mma(64, 4096, 4096, 132, roomy, MmaOverride{}, true);
  EXPECT_TRUE(hopper.wgmma);
  EXPECT_EQ(hopper.blocks_per_sm, kWgmmaBlocksPerSm);
  EXPECT_EQ(hopper.splits, 8);
  EXPECT_EQ(hopper.rows_per_split, 512);
  EXPECT_EQ(hopper.smem_bytes, static_cast<size_t>(wgmma_smem_bytes(kWgmmaTokens)));
  EXPECT_EQ(plan_mma(64, 4096, 4160, 132, roomy, MmaOverride{}, true).rows_per_split % 256, 0);
  // Its splits add up in a cluster where all the tiles' clusters run at once
  // (H200: 15 clusters of 8), else in the workspace; without workspace it takes
  // the most splits whose clusters fit.
  MmaClusterCapacity h200;
  const int h200_clusters[] = {0, 0, 66, 44, 30, 24, 22, 18, 15};
  std::copy(std::begin(h200_clusters), std::end(h200_clusters), h200.wgmma);
  const MmaPlan sixteen_tiles = plan_mma(64, 4096, 4096, 132, roomy, MmaOverride{}, true, h200);
  EXPECT_EQ(sixteen_tiles.splits, 8);
  EXPECT_FALSE(sixteen_tiles.cluster);  // 16 clusters of 8: two waves
  const MmaPlan no_workspace = plan_mma(64, 4096, 4096, 132, 0, MmaOverride{}, true, h200);
  EXPECT_TRUE(no_workspace.cluster);
  EXPECT_EQ(no_workspace.rows_per_split, 768);  // 7 fit; 768-row splits make 6
  EXPECT_EQ(no_workspace.splits, 6);
  const MmaPlan qkv64 = plan_mma(64, 6144, 4096, 132, roomy, MmaOverride{}, true, h200);
  EXPECT_TRUE(qkv64.cluster);  // 24 clusters of 4 (1024-row splits)
  EXPECT_EQ(qkv64.splits, 4);
  EXPECT_FALSE(plan_mma(64, 6144, 4096, 132, roomy, MmaOverride{0, 0, 0, 2}, true, h200).cluster);
  EXPECT_EQ(plan_mma(64, 6144, 4096, 132, 0, MmaOverride{0, 0, 0, 2}, true, h200).splits, 1);
  EXPECT_FALSE(plan_mma(64, 6144, 4096, 132, roomy, MmaOverride{}, true).cluster);  // no cluster capacity
  const MmaPlan forced_cluster = plan_mma(64, 4096, 4160, 132, roomy, MmaOverride{256, 0, 3, 1}, true, h200);
  EXPECT_TRUE(forced_cluster.cluster);
  EXPECT_LE(forced_cluster.splits, kWgmmaMaxClusterSplits);
  EXPECT_FALSE(plan_mma(64, 4096, 4096, 132, roomy, MmaOverride{}, false, h200).cluster);  // mma.sync, 64 tokens
  // The 8- and 16-token mma.sync tiles take clusters of up to 16 splits.
  for (int s = 2; s <= kMmaMaxClusterSplits; ++s) h200.narrow8[s] = 528 / s;
  const MmaPlan qkv1 = plan_mma(1, 6144, 4096, 132, roomy, MmaOverride{}, true, h200);
  EXPECT_FALSE(qkv1.wgmma);
  EXPECT_EQ(qkv1.m_tile, 8);
  EXPECT_EQ(qkv1.splits, 11);  // 48 tiles x 11 splits: one wave of 4 blocks per SM
  EXPECT_TRUE(qkv1.cluster);
  EXPECT_FALSE(plan_mma(1, 6144, 4096, 132, roomy, MmaOverride{}, true).cluster);  // no cluster capacity
  EXPECT_FALSE(plan_mma(16, 6144, 4096, 132, roomy, MmaOverride{}, true, h200).cluster);  // none for 16 tokens
  EXPECT_TRUE(plan_mma(33, 4096, 4096, 132, roomy, MmaOverride{}, true).wgmma);
  EXPECT_EQ(plan_mma(17, 4096, 4096, 132, roomy, MmaOverride{}, true).m_tile, kWgmmaSmallTokens);
  EXPECT_TRUE(plan_mma(32, 4096, 4096, 132, roomy, MmaOverride{}, true).wgmma);
  EXPECT_FALSE(plan_mma(16, 4096, 4096, 132, roomy, MmaOverride{}, true).wgmma);  // mma.sync up to 16
  EXPECT_FALSE(plan_mma(64, 4096, 4096, 132, roomy, MmaOverride{0, 0, 1}, true).wgmma);
  EXPECT_EQ(plan_mma(65, 14336, 4096, 132, roomy, MmaOverride{0, 0, 3}, true).mchunks, 2);  // two 64-token chunks
  EXPECT_TRUE(plan_mma(65, 14336, 4096, 132, roomy, MmaOverride{}, true).wgmma);
  EXPECT_TRUE(plan_mma(129, 14336, 4096, 132, roomy, MmaOverride{}, false).wide);  // the wide kernel
  // From 65 tokens the tile modelled faster (wgmma_modelled_us, H200 fit): 128
  // tokens on the long layers, 64 on the small ones and where 128-token tiles
  // leave half the GPU idle (70B q/k/v at 192 rows: 80 blocks against 120).
  auto tile = [&](int64_t M, int64_t N, int64_t K) {
    return plan_mma(M, N, K, 132, roomy, MmaOverride{}, true, h200).m_tile;
  };
  EXPECT_EQ(tile(128, 28672, 4096), kWgmmaLargeTokens);  // 8B fused gate+up
  EXPECT_EQ(tile(96, 4096, 14336), kWgmmaLargeTokens);   // 8B down
  EXPECT_EQ(tile(128, 4096, 4096), kWgmmaTokens);        // 8B o
  EXPECT_EQ(tile(128, 1024, 4096), kWgmmaTokens);        // 8B k or v
  EXPECT_EQ(tile(192, 10240, 8192), kWgmmaTokens);       // 70B fused q/k/v
  EXPECT_EQ(tile(256, 10240, 8192), kWgmmaLargeTokens);
  EXPECT_EQ(tile(256, 8192, 28672), kWgmmaLargeTokens);  // 70B down
  const MmaPlan forced = plan_mma(5, 4096, 4096, 132, roomy, MmaOverride{0, 0, 3}, true);
  EXPECT_TRUE(forced.wgmma);
  EXPECT_EQ(forced.m_tile, kWgmmaSmallTokens);
  EXPECT_EQ(plan_mma(40, 4096, 4096, 132, roomy, MmaOverride{0, 0, 3}, true).m_tile, kWgmmaTokens);
  EXPECT_FALSE(plan_mma(64, 4096, 4096, 132, roomy, MmaOverride{0, 0, 3}, false).wgmma);  // not available
  const MmaPlan prefill = plan_mma(2048, 28672, 4096, 132, roomy, MmaOverride{0, 0, 4}, true);
  EXPECT_TRUE(prefill.wgmma);
  EXPECT_EQ(prefill.m_tile, kWgmmaLargeTokens);
  EXPECT_EQ(prefill.mchunks, 16);
  EXPECT_EQ(prefill.ntiles, 112);
  EXPECT_EQ(prefill.splits, 1);
  EXPECT_LE(prefill.smem_bytes, size_t{227} << 10);
  // Too small a workspace for M = 64: no split.
  EXPECT_EQ(plan_mma(64, 4096, 4096, 132, gptq_splitk_workspace_bytes(8, 4096), MmaOverride{}).splits, 1);
}

TEST(GptqMmaPlan, DispatchFollowsTheMeasuredCrossover) {
  GptqDeviceWeights big;
  big.K = 4096;
  big.N = 14336;
  big.bits = 4;
  GptqDeviceWeights small = big;
  small.N = 4096;
  int stand_in = 0;  // the rule looks at the workspace's pointers and sizes only
  GptqWorkspace ws;
  ws.cublas = reinterpret_cast<cublasHandle_t>(&stand_in);
  ws.dequant = &stand_in;
  ws.splitk = &stand_in;
  ws.splitk_bytes = gptq_splitk_workspace_bytes(kGptqMmaMMax, 14336);
  EXPECT_FALSE(gptq_mma_preferred(big, 1, ws));  // one row: the fused kernel on every layer
  EXPECT_FALSE(gptq_mma_preferred(small, 1, ws));
  EXPECT_TRUE(gptq_mma_preferred(big, 2, ws));
  EXPECT_TRUE(gptq_mma_preferred(small, kGptqSmallMMax, ws));
  EXPECT_TRUE(gptq_mma_preferred(small, kGptqSmallMMax + 1, ws));
  EXPECT_FALSE(gptq_mma_preferred(big, 4, GptqWorkspace{}));  // no split-K room: the fused kernel
  EXPECT_TRUE(gptq_mma_preferred(small, 33, ws));
  EXPECT_TRUE(gptq_mma_preferred(small, 64, ws));
  EXPECT_TRUE(gptq_mma_preferred(big, 64, ws));
  // 65-128 rows: large layers only, or every layer on the Hopper kernel.
  EXPECT_EQ(gptq_mma_preferred(small, 65, ws), wgmma_kernel_available());
  EXPECT_TRUE(mma_beats_cublas_above_64(8192, 10240, true));
  EXPECT_TRUE(gptq_mma_preferred(big, 65, ws));
  EXPECT_TRUE(gptq_mma_preferred(big, 128, ws));
  // 129-256 rows on the Hopper kernel only.
  EXPECT_EQ(gptq_mma_preferred(big, 129, ws), wgmma_kernel_available());
  EXPECT_EQ(gptq_mma_preferred(small, kGptqHopperMMax, ws), wgmma_kernel_available());
  EXPECT_FALSE(gptq_mma_preferred(big, kGptqHopperMMax + 1, ws));
  EXPECT_TRUE(mma_beats_cublas_above_64(4096, 28672));   // 8B fused gate+up
  EXPECT_TRUE(mma_beats_cublas_above_64(14336, 4096));   // 8B down
  EXPECT_TRUE(mma_beats_cublas_above_64(28672, 8192));   // 70B down
  EXPECT_FALSE(mma_beats_cublas_above_64(8192, 10240));  // 70B fused q/k/v
  EXPECT_FALSE(mma_beats_cublas_above_64(8192, 8192));   // 70B o
  EXPECT_FALSE(mma_beats_cublas_above_64(4096, 6144));   // 8B fused q/k/v
  EXPECT_TRUE(gptq_mma_preferred(big, 2048, GptqWorkspace{}));  // no cuBLAS path available
  GptqWorkspace small_splitk = ws;  // room for M <= 8 only: no split-K at M = 16
  small_splitk.splitk_bytes = gptq_splitk_workspace_bytes(kGptqSmallMMax, 14336);
  EXPECT_FALSE(gptq_mma_preferred(big, 16, small_splitk));
  // The Hopper kernel splits K in clusters: no workspace room needed from 17 rows.
  EXPECT_EQ(gptq_mma_preferred(big, 17, small_splitk), wgmma_kernel_available());
  EXPECT_TRUE(gptq_mma_preferred(big, kGptqSmallMMax, small_splitk));
  GptqDeviceWeights eight = big;
  eight.bits = 8;
  EXPECT_FALSE(gptq_mma_preferred(eight, 16, ws));
  // Which tensor-core kernel: narrow up to 128 tokens, wide above.
  EXPECT_FALSE(mma_wide_preferred(16, 57344, 8192));
  EXPECT_FALSE(mma_wide_preferred(64, 28672, 4096));
  EXPECT_FALSE(mma_wide_preferred(128, 57344, 8192));
  EXPECT_TRUE(mma_wide_preferred(129, 4096, 4096));
}

class GptqMmaGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  }
};

struct OddCase {
  int64_t K, N;
  int group;
  bool act, sym, v2, bias;
};

// Shapes the tiles do not divide: N not a multiple of 128 (nor of 32), K not a
// multiple of the 32-row half or of the group (partial last group), one group
// over all of K, act-order, bias; every M around the 8/16/32-row tiles.
TEST_F(GptqMmaGpu, OddShapesAgainstReference) {
  std::mt19937 rng(20261129);
  const OddCase cases[] = {
      {608, 456, 128, false, true, false, false},  {600, 264, 128, true, false, false, true},
      {600, 1000, -1, false, false, true, true},    {1000, 520, 32, true, true, true, false},
      {4104, 296, 64, true, false, false, true},    {256, 8, -1, true, false, false, false},
      {8, 520, -1, false, false, false, true},
  };
  const int64_t ms[] = {1, 4, 8, 9, 16, 17, 32, 33, 64, 100, 200, 257};
  const int64_t Mmax = 257;
  double worst = 0;
  size_t compared = 0;
  for (const OddCase& oc : cases) {
    CheckpointSpec spec;
    spec.K = oc.K;
    spec.N = oc.N;
    spec.group_size = oc.group;
    spec.act_order = oc.act;
    spec.sym = oc.sym;
    spec.v2 = oc.v2;
    const Checkpoint c = make_checkpoint(spec, rng);
    const Layer layer(c.view());
    const auto x = random_halves(static_cast<size_t>(Mmax * oc.K), rng);
    const auto bias = random_halves(static_cast<size_t>(oc.N), rng);
    std::vector<float> ref(static_cast<size_t>(Mmax * oc.N));
    gptq_gemm_ref(c.view(), x.data(), Mmax, oc.bias ? bias.data() : nullptr, ref.data());
    const std::vector<double> ref_d(ref.begin(), ref.end());
    auto xd = to_device(x);
    auto bd = to_device(bias);
    const size_t gather_bytes = static_cast<size_t>(Mmax * oc.K) * 2;
    for (auto [ws_bytes, scratch_bytes] : {std::pair{gptq_splitk_workspace_bytes(Mmax, oc.N), gather_bytes},
                                           std::pair{gptq_splitk_workspace_bytes(Mmax, oc.N), size_t{0}},
                                           std::pair{size_t{0}, size_t{0}}}) {
      SplitWorkspace w(ws_bytes, scratch_bytes);
      for (int64_t M : ms)
        for (const MmaOverride narrow_or_wide : {MmaOverride{}, MmaOverride{0, 0, 1}, MmaOverride{0, 0, 1, 1},
                                                  MmaOverride{0, 0, 1, 2}, MmaOverride{0, 0, 2},
                                                  MmaOverride{0, 0, 3}, MmaOverride{0, 0, 3, 1}, MmaOverride{0, 0, 3, 2},
                                                  MmaOverride{0, 0, 4}, MmaOverride{0, 0, 4, 1}}) {
          // The plan's choice, then every kernel (3, 4: Hopper's, its splits in a
          // cluster or in the workspace).
          const int kernel = narrow_or_wide.kernel;
          const auto y = run_mma(layer, xd->as<__half>(), M, oc.bias ? bd->as<__half>() : nullptr, w.ws, narrow_or_wide);
          const MmaPlan plan = plan_mma(M, oc.N, oc.K, 132, ws_bytes, narrow_or_wide);
          const std::string what = spec.name() + " M=" + std::to_string(M) + (oc.bias ? " bias" : "") +
                                   " ws=" + std::to_string(ws_bytes) + (scratch_bytes ? " gather scratch" : "") +
                                   (kernel == 0   ? " planned"
                                    : kernel == 2 ? " wide"
                                    : kernel == 3 ? " wgmma"
                                    : kernel == 4 ? " wgmma128"
                                                  : " narrow") +
                                   (narrow_or_wide.reduce == 1   ? " cluster"
                                    : narrow_or_wide.reduce == 2 ? " workspace"
                                                                 : "");
          ASSERT_EQ(nonfinite(y), 0u) << what;
          const double err = relative_error(y.data(), ref_d.data(), y.size());
          EXPECT_LT(err, kTolerance) << what << " (splits on 132 SMs: " << plan.splits << ")";
          worst = std::max(worst, err);
          compared += y.size();
        }
      ASSERT_TRUE(w.zero()) << spec.name() << ": split-K workspace not left zero";
    }
  }
  std::printf("tensor-core GEMM, odd shapes: %zu elements compared, worst relative error %.3g\n", compared, worst);
}

// Forced plans: deep splits with a partial last split, long splits (more stages
// than the ring holds), x not 16-byte aligned (the gather path without
// act-order), repeated runs on one workspace.
TEST_F(GptqMmaGpu, ForcedSplitsAndUnalignedX) {
  std::mt19937 rng(4242);
  CheckpointSpec spec;
  spec.K = 4160;  // 65 stages of 64 rows
  spec.N = 1032;
  spec.group_size = 128;
  spec.sym = false;
  const Checkpoint c = make_checkpoint(spec, rng);
  const Layer layer(c.view());
  const int64_t M = 64;
  const auto x = random_halves(static_cast<size_t>(M * spec.K), rng);
  std::vector<float> ref(static_cast<size_t>(M * spec.N));
  gptq_gemm_ref(c.view(), x.data(), M, nullptr, ref.data());
  const std::vector<double> ref_d(ref.begin(), ref.end());
  auto xd = to_device(x);
  auto x_odd = to_device(x, 2);  // x starts 2 bytes into the allocation
  const __half* x_unaligned = reinterpret_cast<const __half*>(static_cast<char*>(x_odd->ptr) + 2);
  SplitWorkspace w(gptq_splitk_workspace_bytes(M, spec.N));
  size_t compared = 0;
  double worst = 0;
  for (int rows : {64, 192, 1000, 4160})
    for (const __half* xp : {static_cast<const __half*>(xd->as<__half>()), x_unaligned})
      for (int64_t m : {int64_t{5}, int64_t{20}, M}) {
        for (int repeat = 0; repeat < 5; ++repeat) {
          // The narrow kernel, the wide one, Hopper's (splits in the workspace,
          // then in a cluster), the narrow one's splits in a cluster.
          const int kernel = repeat == 4 ? 1 : std::min(repeat + 1, 3);
          const int reduce = repeat == 2 ? 2 : repeat >= 3 ? 1 : 0;
          const auto y = run_mma(layer, xp, m, nullptr, w.ws, MmaOverride{rows, 0, kernel, reduce});
          const std::string what = "rows/split " + std::to_string(rows) + " M=" + std::to_string(m) +
                                   (xp == x_unaligned ? " unaligned x" : "") +
                                   (kernel == 2 ? " wide" : kernel == 3 ? " wgmma" : " narrow") +
                                   (reduce == 1 ? " cluster" : "");
          ASSERT_EQ(nonfinite(y), 0u) << what;
          const double err = relative_error(y.data(), ref_d.data(), y.size());
          EXPECT_LT(err, kTolerance) << what;
          worst = std::max(worst, err);
          compared += y.size();
        }
        ASSERT_TRUE(w.zero());
      }
  std::printf("tensor-core GEMM, forced plans: %zu elements compared, worst relative error %.3g\n", compared, worst);
}

// Activations in the thousands (Llama down_proj inputs): fp32 accumulation keeps them exact enough.
TEST_F(GptqMmaGpu, LargeActivationsStayAccurate) {
  std::mt19937 rng(7);
  CheckpointSpec spec;
  spec.K = 1024;
  spec.N = 512;
  spec.sym = false;
  spec.group_size = 64;
  spec.act_order = true;
  const Checkpoint c = make_checkpoint(spec, rng);
  const Layer layer(c.view());
  const int64_t M = 40;
  auto x = random_halves(static_cast<size_t>(M * spec.K), rng, -1000.f, 1000.f);
  for (size_t i = 0; i < x.size(); i += 97) x[i] = float_to_fp16(i % 2 ? 30000.f : -20000.f);
  std::vector<float> ref(static_cast<size_t>(M * spec.N));
  gptq_gemm_ref(c.view(), x.data(), M, nullptr, ref.data());
  for (float v : ref) ASSERT_LT(std::fabs(v), 65504.f) << "test data must keep y inside the fp16 range";
  const std::vector<double> ref_d(ref.begin(), ref.end());
  auto xd = to_device(x);
  SplitWorkspace w(gptq_splitk_workspace_bytes(M, spec.N), static_cast<size_t>(M * spec.K) * 2);
  const auto y = run_mma(layer, xd->as<__half>(), M, nullptr, w.ws);
  ASSERT_EQ(nonfinite(y), 0u);
  const double err = relative_error(y.data(), ref_d.data(), y.size());
  EXPECT_LT(err, kTolerance);
  std::printf("tensor-core GEMM with large |x|: rel err %.3g over %zu elements\n", err, y.size());
}

TEST_F(GptqMmaGpu, RejectsEightBitAndBadArguments) {
  std::mt19937 rng(5);
  CheckpointSpec spec;
  spec.K = 128;
  spec.N = 64;
  spec.bits = 8;
  const Checkpoint c = make_checkpoint(spec, rng);
  const Layer layer(c.view());
  Buffer x(16 * 128 * 2), y(16 * 64 * 2);
  EXPECT_THROW(gptq_gemm_mma(layer.view, x.as<__half>(), 16, y.as<__half>(), nullptr, GptqWorkspace{}, nullptr),
               nibble::Error);
  spec.bits = 4;
  const Checkpoint c4 = make_checkpoint(spec, rng);
  const Layer layer4(c4.view());
  EXPECT_THROW(gptq_gemm_mma(layer4.view, nullptr, 16, y.as<__half>(), nullptr, GptqWorkspace{}, nullptr),
               nibble::Error);
  EXPECT_NO_THROW(gptq_gemm_mma(layer4.view, x.as<__half>(), 0, y.as<__half>(), nullptr, GptqWorkspace{}, nullptr));
}

}  // namespace
}  // namespace nibble::kernels::testing

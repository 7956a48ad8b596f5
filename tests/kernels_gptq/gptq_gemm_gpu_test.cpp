// GPU tests of the GPTQ matrix product against the CPU reference (label gpu; they
// skip when no CUDA device is present). Fresh random data, odd shapes, every
// bits/sym/format/group/act-order combination, outputs poisoned before each run.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "activation/activation.h"
#include "gptq_gemm/gptq_gemm.h"
#include "gptq_gemm/gptq_gemm_plan.h"
#include "gptq_gemm/gptq_gemm_ref.h"
#include "gptq_gemm/gptq_mma_plan.h"
#include "gptq_test_data.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble::kernels::testing {
namespace {

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr << ": " << cudaGetErrorString(cudaGetLastError())

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    if (n && cudaMalloc(&ptr, n) != cudaSuccess) ptr = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(ptr); }
};

template <class T>
std::unique_ptr<DeviceBuffer> upload(const std::vector<T>& v) {
  auto b = std::make_unique<DeviceBuffer>(v.size() * sizeof(T));
  if (!v.empty()) cudaMemcpy(b->ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return b;
}

struct DeviceLayer {
  GptqPrepared host;
  std::unique_ptr<DeviceBuffer> qweight, scales, zeros, perm;
  GptqDeviceWeights view;

  explicit DeviceLayer(const GptqCheckpointView& checkpoint) : host(gptq_prepare(checkpoint)) {
    qweight = upload(host.qweight);
    scales = upload(host.scales);
    zeros = upload(host.zeros);
    perm = upload(host.perm);
    view = gptq_device_view(host, qweight->as<uint32_t>(), scales->as<__half>(), zeros->as<__half>(),
                            perm->as<int32_t>());
  }
};

struct Workspace {
  std::unique_ptr<DeviceBuffer> splitk, dequant;
  cublasHandle_t handle = nullptr;
  GptqWorkspace ws;

  Workspace(size_t splitk_bytes, size_t dequant_bytes) {
    splitk = std::make_unique<DeviceBuffer>(splitk_bytes);
    dequant = std::make_unique<DeviceBuffer>(dequant_bytes);
    if (splitk_bytes) cudaMemset(splitk->ptr, 0, splitk_bytes);
    cublasCreate(&handle);
    ws = GptqWorkspace{splitk->ptr, splitk_bytes, dequant->ptr, dequant_bytes, handle};
  }
  ~Workspace() { cublasDestroy(handle); }
  // The split-K workspace (counters and fp32 accumulator) must be zero between calls.
  bool counters_zero() const {
    if (!splitk->ptr) return true;
    std::vector<unsigned char> bytes(splitk->bytes);
    cudaMemcpy(bytes.data(), splitk->ptr, bytes.size(), cudaMemcpyDeviceToHost);
    for (unsigned char b : bytes)
      if (b) return false;
    return true;
  }
};

enum class Path { Dispatch, Fused, Cublas, Stream };

// Runs one product on the device with a NaN-poisoned output; returns y as floats.
std::vector<float> run_on_device(const DeviceLayer& layer, const DeviceBuffer& x, int64_t M, const __half* bias,
                                 const Workspace& w, Path path, int stream_blocks = 0) {
  const size_t count = static_cast<size_t>(M * layer.host.N);
  DeviceBuffer y(count * sizeof(__half));
  cudaMemset(y.ptr, 0xff, y.bytes);  // fp16 NaN everywhere
  switch (path) {
    case Path::Dispatch: gptq_gemm(layer.view, x.as<__half>(), M, y.as<__half>(), bias, w.ws, nullptr); break;
    case Path::Fused: gptq_gemm_fused(layer.view, x.as<__half>(), M, y.as<__half>(), bias, w.ws, nullptr); break;
    case Path::Cublas:
      gptq_gemm_dequant_cublas(layer.view, x.as<__half>(), M, y.as<__half>(), bias, w.ws, nullptr);
      break;
    case Path::Stream:
      gptq_gemm_stream_with(layer.view, x.as<__half>(), M, y.as<__half>(), bias, w.ws, nullptr, stream_blocks);
      break;
  }
  std::vector<uint16_t> raw(count);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(raw.data(), y.ptr, count * sizeof(uint16_t), cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = fp16_to_float(raw[i]);
  return out;
}

size_t count_nonfinite(const std::vector<float>& v) {
  size_t bad = 0;
  for (float f : v) bad += std::isfinite(f) ? 0 : 1;
  return bad;
}

// The launch planner is host logic: checked without a device.
int eight_blocks(int, int, int) { return 8; }

TEST(GptqGemvPlan, CoversKAndFillsTheGpu) {
  const size_t roomy = gptq_splitk_workspace_bytes(8, 14336);
  for (int64_t M : {1, 3, 8, 20})
    for (int64_t N : {256, 1024, 4096, 14336})
      for (int64_t K : {608, 4096, 14336}) {
        const GemvPlan p = plan_gemv(M, N, K, 132, roomy, GemvOverride{}, eight_blocks, 4);
        const std::string what = "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
        EXPECT_EQ(p.m_tile, std::min<int64_t>(M, 8)) << what;
        EXPECT_EQ(p.mchunks * 8 >= M, true) << what;
        EXPECT_GE(int64_t{p.ntiles} * p.threads * 4, N) << what;
        EXPECT_EQ(p.rows_per_split % 32, 0) << what;
        EXPECT_GE(int64_t{p.rows_per_split} * p.splits, K) << what;
        EXPECT_LT(int64_t{p.rows_per_split} * (p.splits - 1), K) << what << ": an empty split";
        const int64_t blocks = int64_t{p.mchunks} * p.ntiles * p.splits;
        if (M <= 8 && p.splits > 1) {
          EXPECT_LE(blocks, 8 * 132) << what << ": more blocks than one wave";
        }
      }
  // 4096x14336 at M = 1: one wave of 8 blocks per SM, as measured best (bench/NOTES.md).
  const GemvPlan gate = plan_gemv(1, 14336, 4096, 132, roomy, GemvOverride{}, eight_blocks, 4);
  EXPECT_EQ(gate.splits, 32);
  EXPECT_EQ(gate.rows_per_split, 128);
}

TEST(GptqGemvPlan, NoSplitWithoutRoomForTheAccumulator) {
  const GemvPlan none = plan_gemv(1, 4096, 14336, 132, 0, GemvOverride{}, eight_blocks, 4);
  EXPECT_EQ(none.splits, 1);
  EXPECT_GE(none.rows_per_split, 14336);
  const size_t for_m4 = gptq_splitk_workspace_bytes(4, 4096);
  EXPECT_GT(plan_gemv(4, 4096, 14336, 132, for_m4, GemvOverride{}, eight_blocks, 4).splits, 1);
  EXPECT_EQ(plan_gemv(8, 4096, 14336, 132, for_m4, GemvOverride{}, eight_blocks, 4).splits, 1);
  EXPECT_THROW(plan_gemv(1, 4096, 4096, 132, 0, GemvOverride{96, 0, 0, 0}, eight_blocks, 4), nibble::Error);
}

constexpr double kTolerance = 2e-3;
const int64_t kMs[] = {1, 2, 3, 4, 5, 7, 8, 16, 31, 32, 33, 100, 257};

class GptqGemmGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(GptqGemmGpu, EveryCombinationEveryMBothPaths) {
  std::mt19937 rng(20261128);
  const int64_t K = 608, N = 456, Mmax = 257;
  Workspace w(gptq_splitk_workspace_bytes(Mmax, N), static_cast<size_t>(K) * N * 2);
  double worst = 0;
  size_t compared = 0;
  for (const auto& spec : all_specs(K, N)) {
    const Checkpoint c = make_checkpoint(spec, rng);
    const DeviceLayer layer(c.view());
    const auto x = random_halves(static_cast<size_t>(Mmax * K), rng);
    const auto bias = random_halves(static_cast<size_t>(N), rng);
    const bool use_bias = spec.group_size == 64;
    std::vector<float> ref(static_cast<size_t>(Mmax * N));
    gptq_gemm_ref(c.view(), x.data(), Mmax, use_bias ? bias.data() : nullptr, ref.data());
    std::vector<double> ref_d(ref.begin(), ref.end());
    auto xd = upload(x);
    auto bd = upload(bias);
    for (int64_t M : kMs) {
      for (Path path : {Path::Dispatch, Path::Fused, Path::Cublas}) {
        const auto y = run_on_device(layer, *xd, M, use_bias ? bd->as<__half>() : nullptr, w, path);
        ASSERT_EQ(count_nonfinite(y), 0u) << spec.name() << " M=" << M << " path " << static_cast<int>(path);
        const double err = relative_error(y.data(), ref_d.data(), y.size());
        EXPECT_LT(err, kTolerance) << spec.name() << " M=" << M << " path " << static_cast<int>(path);
        worst = std::max(worst, err);
        compared += y.size();
      }
    }
    ASSERT_TRUE(w.counters_zero()) << spec.name();
  }
  std::printf("every combination: %zu elements compared, worst relative error %.3g\n", compared, worst);
}

// The TMA-streaming kernel (compute capability 9.0+): every 4-bit combination on a
// shape whose K and N are not multiples of its 256 x 256 units, with grids that make
// blocks cover whole column tiles (y written directly), parts of tiles (split-K
// accumulator and arrival counters) and both; bias on half of the layers.
bool device_has_tma() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 9;
}

TEST_F(GptqGemmGpu, StreamingKernelEveryCombinationAndGrid) {
  if (!device_has_tma()) GTEST_SKIP() << "device has no TMA (compute capability < 9.0)";
  std::mt19937 rng(9001);
  const int64_t K = 608, N = 456, Mmax = 2;
  Workspace w(gptq_splitk_workspace_bytes(Mmax, N), 0);
  size_t compared = 0;
  double worst = 0;
  for (const auto& spec : all_specs(K, N)) {
    if (spec.bits != 4) continue;
    const Checkpoint c = make_checkpoint(spec, rng);
    const DeviceLayer layer(c.view());
    const auto x = random_halves(static_cast<size_t>(Mmax * K), rng);
    const auto bias = random_halves(static_cast<size_t>(N), rng);
    const bool use_bias = spec.group_size != 128;
    std::vector<float> ref(static_cast<size_t>(Mmax * N));
    gptq_gemm_ref(c.view(), x.data(), Mmax, use_bias ? bias.data() : nullptr, ref.data());
    std::vector<double> ref_d(ref.begin(), ref.end());
    auto xd = upload(x);
    auto bd = upload(bias);
    for (int64_t M = 1; M <= Mmax; ++M) {
      // Group size 32 leaves no room for two stages of the ring (the kernel declines it).
      if (!gptq_gemm_stream_usable(layer.view, M, w.ws)) continue;
      for (int blocks : {0, 1, 2, 4, 5}) {
        const auto y = run_on_device(layer, *xd, M, use_bias ? bd->as<__half>() : nullptr, w, Path::Stream, blocks);
        ASSERT_EQ(count_nonfinite(y), 0u) << spec.name() << " M=" << M << " blocks=" << blocks;
        const double err = relative_error(y.data(), ref_d.data(), y.size());
        EXPECT_LT(err, kTolerance) << spec.name() << " M=" << M << " blocks=" << blocks;
        worst = std::max(worst, err);
        compared += y.size();
        ASSERT_TRUE(w.counters_zero()) << spec.name() << " M=" << M << " blocks=" << blocks;
      }
    }
  }
  EXPECT_GT(compared, 0u) << "the streaming kernel declined every layer";
  std::printf("streaming kernel: %zu elements compared, worst relative error %.3g\n", compared, worst);
}

// The streaming kernel on Llama-3-8B shapes (act-order, group 128), default grid:
// runs of units that start and end inside column tiles, against the reference and
// against a repeat of itself.
TEST_F(GptqGemmGpu, StreamingKernelLlamaShapes) {
  if (!device_has_tma()) GTEST_SKIP() << "device has no TMA (compute capability < 9.0)";
  std::mt19937 rng(4242);
  for (auto [K, N] : {std::pair<int64_t, int64_t>{4096, 6144}, {14336, 4096}}) {
    CheckpointSpec spec;
    spec.K = K;
    spec.N = N;
    spec.group_size = 128;
    spec.act_order = true;
    spec.sym = false;
    const Checkpoint c = make_checkpoint(spec, rng);
    const DeviceLayer layer(c.view());
    Workspace w(gptq_splitk_workspace_bytes(2, N), 0);
    const auto x = random_halves(static_cast<size_t>(2 * K), rng);
    std::vector<float> ref(static_cast<size_t>(2 * N));
    gptq_gemm_ref(c.view(), x.data(), 2, nullptr, ref.data());
    std::vector<double> ref_d(ref.begin(), ref.end());
    auto xd = upload(x);
    for (int64_t M : {1, 2}) {
      ASSERT_TRUE(gptq_gemm_stream_usable(layer.view, M, w.ws)) << spec.name() << " M=" << M;
      const auto first = run_on_device(layer, *xd, M, nullptr, w, Path::Stream);
      const auto again = run_on_device(layer, *xd, M, nullptr, w, Path::Stream);
      ASSERT_EQ(count_nonfinite(first), 0u);
      EXPECT_LT(relative_error(first.data(), ref_d.data(), first.size()), kTolerance) << spec.name() << " M=" << M;
      EXPECT_LT(relative_error(again.data(), std::vector<double>(first.begin(), first.end()).data(), again.size()), 1e-3);
      ASSERT_TRUE(w.counters_zero());
    }
  }
}

// The down projection with the gated activation folded in: against silu_and_mul
// followed by gptq_gemm, for gate and up as the halves of one fused product (row
// stride 2K) and as two arrays, at batch sizes on every path (fused kernel, tensor
// cores, dequantize + cuBLAS), act-order and plain, with and without bias.
TEST_F(GptqGemmGpu, SiluMulDownProjectionMatchesSeparateActivation) {
  std::mt19937 rng(31337);
  const int64_t K = 736, N = 520, Mmax = 40;
  Workspace w(gptq_splitk_workspace_bytes(Mmax, N), static_cast<size_t>(K) * N * 2);
  for (bool act_order : {false, true}) {
    CheckpointSpec spec;
    spec.K = K;
    spec.N = N;
    spec.group_size = 32;
    spec.act_order = act_order;
    spec.sym = false;
    const Checkpoint c = make_checkpoint(spec, rng);
    const DeviceLayer layer(c.view());
    // gate | up rows of 2K halves; the activation's inputs in [-4, 4].
    const auto gate_up = random_halves(static_cast<size_t>(Mmax * 2 * K), rng, -4.f, 4.f);
    const auto bias = random_halves(static_cast<size_t>(N), rng);
    auto gu = upload(gate_up);
    auto bd = upload(bias);
    DeviceBuffer split_gate(static_cast<size_t>(Mmax * K) * 2), split_up(static_cast<size_t>(Mmax * K) * 2);
    CUDA_OK(cudaMemcpy2D(split_gate.ptr, K * 2, gu->ptr, 2 * K * 2, K * 2, Mmax, cudaMemcpyDeviceToDevice));
    CUDA_OK(cudaMemcpy2D(split_up.ptr, K * 2, gu->as<__half>() + K, 2 * K * 2, K * 2, Mmax, cudaMemcpyDeviceToDevice));
    DeviceBuffer act(static_cast<size_t>(Mmax * K) * 2), y_ref(static_cast<size_t>(Mmax * N) * 2),
        y(static_cast<size_t>(Mmax * N) * 2);
    for (int64_t M : {1, 3, 8, 16, 40}) {
      for (bool fused_halves : {true, false}) {
        const __half* g = fused_halves ? gu->as<__half>() : split_gate.as<__half>();
        const __half* u = fused_halves ? gu->as<__half>() + K : split_up.as<__half>();
        const int64_t ld = fused_halves ? 2 * K : K;
        const __half* b = fused_halves ? bd->as<__half>() : nullptr;
        CUDA_OK(silu_and_mul(g, u, static_cast<int>(ld), act.as<__half>(), static_cast<int>(M), static_cast<int>(K), nullptr));
        gptq_gemm(layer.view, act.as<__half>(), M, y_ref.as<__half>(), b, w.ws, nullptr);
        CUDA_OK(cudaMemset(y.ptr, 0xff, y.bytes));
        gptq_gemm_silu_mul(layer.view, g, u, ld, M, act.as<__half>(), y.as<__half>(), b, w.ws, nullptr);
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<uint16_t> a(static_cast<size_t>(M * N)), r(a.size());
        CUDA_OK(cudaMemcpy(a.data(), y.ptr, a.size() * 2, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(r.data(), y_ref.ptr, r.size() * 2, cudaMemcpyDeviceToHost));
        std::vector<float> af(a.size());
        std::vector<double> rd(r.size());
        for (size_t i = 0; i < a.size(); ++i) af[i] = fp16_to_float(a[i]), rd[i] = fp16_to_float(r[i]);
        ASSERT_EQ(count_nonfinite(af), 0u) << spec.name() << " M=" << M;
        // Same activation bits, same kernel: only the split-K summation order may differ.
        EXPECT_LT(relative_error(af.data(), rd.data(), af.size()), 1e-3)
            << spec.name() << " M=" << M << (fused_halves ? " gate|up halves" : " separate gate, up");
      }
    }
    ASSERT_TRUE(w.counters_zero());
  }
  EXPECT_THROW(gptq_gemm_silu_mul(DeviceLayer(make_checkpoint(CheckpointSpec{64, 64}, rng).view()).view, nullptr, nullptr,
                                  32, 1, nullptr, nullptr, nullptr, Workspace(0, 0).ws, nullptr),
               nibble::Error);
}

// gptq_gemm_accumulate and its SiLU form add x W (+ bias) into fp32 rows that
// already hold values (the residual stream), for every combination at batch
// sizes of the fused kernel (1-3 rows) and of the narrow tensor-core kernel
// (2-64 rows of 4-bit weights: x in registers up to 8, from shared memory
// above), on a ragged shape and a deeply split Llama-like one, without touching
// the split-K workspace.
TEST_F(GptqGemmGpu, AccumulateAddsIntoFp32Rows) {
  std::mt19937 rng(4242);
  Workspace w(gptq_splitk_workspace_bytes(kGptqGemvMMax, 1024), 0);
  double worst = 0;
  for (auto [K, N] : {std::pair<int64_t, int64_t>{608, 456}, {4096, 1024}}) {
    for (const auto& spec : all_specs(K, N)) {
      if (K > 608 && spec.group_size != 128) continue;  // the big shape: group 128 only
      const Checkpoint c = make_checkpoint(spec, rng);
      const DeviceLayer layer(c.view());
      const int64_t M = spec.bits == 4 ? kMmaNarrowMMax : kGptqGemvMMax;
      ASSERT_TRUE(gptq_gemm_accumulates(layer.view, M));
      DeviceBuffer act_d(static_cast<size_t>(M * K) * 2);
      const auto x = random_halves(static_cast<size_t>(M * K), rng);
      const auto up = random_halves(static_cast<size_t>(M * K), rng, -2.f, 2.f);
      const auto bias = random_halves(static_cast<size_t>(N), rng);
      const bool use_bias = spec.group_size == 64 || spec.group_size == 128;
      // Reference of the SiLU form: act = silu(x) * up rounded to fp16, as silu_and_mul.
      std::vector<uint16_t> act(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        const float g = fp16_to_float(x[i]);
        act[i] = float_to_fp16(g / (1.0f + std::exp(-g)) * fp16_to_float(up[i]));
      }
      auto xd = upload(x);
      auto ud = upload(up);
      auto bd = upload(bias);
      for (int64_t rows : {1, 2, 3, 8, 17, 32, 40, 64}) {
        if (rows > M) break;
        for (bool silu : {false, true}) {
          std::vector<float> ref(static_cast<size_t>(rows * N));
          gptq_gemm_ref(c.view(), (silu ? act : x).data(), rows, use_bias ? bias.data() : nullptr, ref.data());
          std::vector<float> start(ref.size());
          std::uniform_real_distribution<float> dist(-3.f, 3.f);
          for (float& v : start) v = dist(rng);
          auto out = upload(start);
          const __half* b = use_bias ? bd->as<__half>() : nullptr;
          if (silu)
            gptq_gemm_silu_mul_accumulate(layer.view, xd->as<__half>(), ud->as<__half>(), K, rows, act_d.as<__half>(),
                                          out->as<float>(), b, w.ws, nullptr);
          else
            gptq_gemm_accumulate(layer.view, xd->as<__half>(), rows, out->as<float>(), b, w.ws, nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<float> got(ref.size());
          CUDA_OK(cudaMemcpy(got.data(), out->ptr, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
          std::vector<float> added(got.size());
          std::vector<double> ref_d(ref.begin(), ref.end());
          for (size_t i = 0; i < got.size(); ++i) added[i] = got[i] - start[i];
          ASSERT_EQ(count_nonfinite(added), 0u) << spec.name();
          const double err = relative_error(added.data(), ref_d.data(), added.size());
          EXPECT_LT(err, kTolerance) << spec.name() << " K=" << K << " rows=" << rows << (silu ? " silu" : "");
          worst = std::max(worst, err);
        }
      }
      ASSERT_TRUE(w.counters_zero()) << spec.name();
    }
  }
  std::printf("accumulate: worst relative error %.3g\n", worst);
  const DeviceLayer small(make_checkpoint(CheckpointSpec{64, 64}, rng).view());
  DeviceBuffer x(64 * 2 * 8), out(64 * 4 * 8);
  EXPECT_FALSE(gptq_gemm_accumulates(small.view, kMmaNarrowMMax + 1));
  EXPECT_THROW(gptq_gemm_accumulate(small.view, x.as<__half>(), kMmaNarrowMMax + 1, out.as<float>(), nullptr, w.ws,
                                    nullptr),
               nibble::Error);
  EXPECT_THROW(gptq_gemm_accumulate(small.view, x.as<__half>(), 1, out.as<float>() + 1, nullptr, w.ws, nullptr),
               nibble::Error);
}

// Llama-like shapes where the fused kernel splits K deeply, with the default
// workspace, one that fits M <= 4 only, and none (no split: x is staged in
// shared memory more than once).
TEST_F(GptqGemmGpu, SplitKAcrossWorkspaceSizes) {
  std::mt19937 rng(77);
  for (int bits : {4, 8}) {
    CheckpointSpec spec;
    spec.K = 4096;
    spec.N = 1024;
    spec.bits = bits;
    spec.group_size = 128;
    spec.act_order = true;
    spec.sym = false;
    const Checkpoint c = make_checkpoint(spec, rng);
    const DeviceLayer layer(c.view());
    const int64_t Mmax = 8;
    const auto x = random_halves(static_cast<size_t>(Mmax * spec.K), rng);
    std::vector<float> ref(static_cast<size_t>(Mmax * spec.N));
    gptq_gemm_ref(c.view(), x.data(), Mmax, nullptr, ref.data());
    std::vector<double> ref_d(ref.begin(), ref.end());
    auto xd = upload(x);
    for (size_t splitk : {gptq_splitk_workspace_bytes(Mmax, spec.N), size_t{16384 + 4 * 1024 * 4}, size_t{0}}) {
      Workspace w(splitk, 0);
      for (int64_t M : {1, 4, 8}) {
        const GemvPlan plan = plan_gemv_on_device(M, spec.N, spec.K, bits, splitk, GemvOverride{});
        std::vector<float> first;
        for (int repeat = 0; repeat < 2; ++repeat) {
          const auto y = run_on_device(layer, *xd, M, nullptr, w, Path::Fused);
          ASSERT_EQ(count_nonfinite(y), 0u);
          const double err = relative_error(y.data(), ref_d.data(), y.size());
          EXPECT_LT(err, kTolerance) << spec.name() << " M=" << M << " splits=" << plan.splits;
          if (repeat == 0) {
            first = y;
            std::printf("%s M=%lld splits=%d rows/split=%d threads=%d: rel err %.3g over %zu elements\n",
                        spec.name().c_str(), static_cast<long long>(M), plan.splits, plan.rows_per_split,
                        plan.threads, err, y.size());
          } else {
            // Split-K adds partials with fp32 atomics: the order may vary, the sum barely.
            EXPECT_LT(relative_error(y.data(), std::vector<double>(first.begin(), first.end()).data(), y.size()), 1e-3)
                << "results differ between identical runs";
          }
        }
        ASSERT_TRUE(w.counters_zero());
      }
    }
  }
}

TEST_F(GptqGemmGpu, DequantScratchInColumnChunksWithBias) {
  std::mt19937 rng(31);
  CheckpointSpec spec;
  spec.K = 512;
  spec.N = 1000;
  spec.group_size = 32;
  spec.act_order = true;
  spec.sym = false;
  const Checkpoint c = make_checkpoint(spec, rng);
  const DeviceLayer layer(c.view());
  const int64_t M = 70;
  const auto x = random_halves(static_cast<size_t>(M * spec.K), rng);
  const auto bias = random_halves(static_cast<size_t>(spec.N), rng);
  std::vector<float> ref(static_cast<size_t>(M * spec.N));
  gptq_gemm_ref(c.view(), x.data(), M, bias.data(), ref.data());
  std::vector<double> ref_d(ref.begin(), ref.end());
  auto xd = upload(x);
  auto bd = upload(bias);
  Workspace w(0, static_cast<size_t>(spec.K) * 192 * 2);  // 192 of 1000 columns per chunk
  const auto y = run_on_device(layer, *xd, M, bd->as<__half>(), w, Path::Cublas);
  ASSERT_EQ(count_nonfinite(y), 0u);
  const double err = relative_error(y.data(), ref_d.data(), y.size());
  EXPECT_LT(err, kTolerance);
  std::printf("chunked dequant + cuBLAS: rel err %.3g over %zu elements\n", err, y.size());

  // Also the dequantized weight itself, against the CPU dequantization.
  DeviceBuffer wd(static_cast<size_t>(spec.K) * spec.N * 2);
  gptq_dequantize(layer.view, 0, spec.N, wd.as<__half>(), nullptr);
  std::vector<uint16_t> raw(static_cast<size_t>(spec.K * spec.N));
  CUDA_OK(cudaMemcpy(raw.data(), wd.ptr, raw.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<float> expect(raw.size());
  gptq_dequantize_ref(c.view(), expect.data());
  size_t mismatches = 0;
  for (size_t i = 0; i < raw.size(); ++i) mismatches += raw[i] != float_to_fp16(expect[i]);
  EXPECT_EQ(mismatches, 0u) << "of " << raw.size();
}

// Back-to-back fused products where each consumes the previous output, with no
// host synchronisation in between: checks the ordering that programmatic
// dependent launch must keep (x, y and the split-K workspace only after the wait).
TEST_F(GptqGemmGpu, ChainedProductsKeepStreamOrder) {
  std::mt19937 rng(11);
  CheckpointSpec a_spec;
  a_spec.K = 1024;
  a_spec.N = 2048;
  a_spec.group_size = 128;
  a_spec.act_order = true;
  CheckpointSpec b_spec = a_spec;
  b_spec.K = 2048;
  b_spec.N = 1024;
  const Checkpoint a = make_checkpoint(a_spec, rng), b = make_checkpoint(b_spec, rng);
  const DeviceLayer la(a.view()), lb(b.view());
  const int64_t M = 2;
  Workspace w(gptq_splitk_workspace_bytes(M, 2048), 0);
  const auto x0 = random_halves(static_cast<size_t>(M * 1024), rng);
  auto x = upload(x0);
  DeviceBuffer mid(static_cast<size_t>(M) * 2048 * 2), out(static_cast<size_t>(M) * 1024 * 2);
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (int round = 0; round < 20; ++round) {
    CUDA_OK(cudaMemsetAsync(mid.ptr, 0xff, mid.bytes, stream));
    gptq_gemm(la.view, x->as<__half>(), M, mid.as<__half>(), nullptr, w.ws, stream);
    gptq_gemm(lb.view, mid.as<__half>(), M, out.as<__half>(), nullptr, w.ws, stream);
    // Rewrite mid with the same values: the next round poisons it again first.
    gptq_gemm(la.view, x->as<__half>(), M, mid.as<__half>(), nullptr, w.ws, stream);
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  std::vector<uint16_t> mid_h(static_cast<size_t>(M * 2048)), out_h(static_cast<size_t>(M * 1024));
  CUDA_OK(cudaMemcpy(mid_h.data(), mid.ptr, mid.bytes, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(out_h.data(), out.ptr, out.bytes, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaStreamDestroy(stream));
  std::vector<float> ref(out_h.size());
  gptq_gemm_ref(b.view(), mid_h.data(), M, nullptr, ref.data());
  std::vector<double> ref_d(ref.begin(), ref.end());
  std::vector<float> got(out_h.size());
  for (size_t i = 0; i < got.size(); ++i) got[i] = fp16_to_float(out_h[i]);
  ASSERT_EQ(count_nonfinite(got), 0u);
  const double err = relative_error(got.data(), ref_d.data(), got.size());
  EXPECT_LT(err, kTolerance);
  std::printf("chained products: rel err %.3g over %zu elements\n", err, got.size());
  EXPECT_TRUE(w.counters_zero());
}

// Activations far outside [-1, 1] (Llama's down_proj inputs reach the thousands):
// the fused kernel's half2 partial sums must neither overflow nor lose accuracy.
TEST_F(GptqGemmGpu, LargeActivationsStayAccurate) {
  std::mt19937 rng(2024);
  for (int bits : {4, 8}) {
    CheckpointSpec spec;
    spec.K = 1024;
    spec.N = 512;
    spec.bits = bits;
    spec.sym = false;
    spec.group_size = 64;
    const Checkpoint c = make_checkpoint(spec, rng);
    const DeviceLayer layer(c.view());
    const int64_t M = 5;
    const float amp = bits == 4 ? 1.f : 1.f / 16;  // 8-bit weights are larger: keep y within fp16
    auto x = random_halves(static_cast<size_t>(M * spec.K), rng, -1000.f * amp, 1000.f * amp);
    for (size_t i = 0; i < x.size(); i += 97) x[i] = float_to_fp16((i % 2 ? 30000.f : -20000.f) * amp);
    for (size_t i = 5; i < x.size(); i += 13) x[i] = float_to_fp16(1e-3f);
    std::vector<float> ref(static_cast<size_t>(M * spec.N));
    gptq_gemm_ref(c.view(), x.data(), M, nullptr, ref.data());
    std::vector<double> ref_d(ref.begin(), ref.end());
    auto xd = upload(x);
    Workspace w(gptq_splitk_workspace_bytes(M, spec.N), 0);
    const auto y = run_on_device(layer, *xd, M, nullptr, w, Path::Fused);
    size_t overflow_in_ref = 0;
    for (float v : ref) overflow_in_ref += std::fabs(v) > 65504.f;
    ASSERT_EQ(overflow_in_ref, 0u) << "test data must keep y inside the fp16 range";
    ASSERT_EQ(count_nonfinite(y), 0u) << spec.name();
    const double err = relative_error(y.data(), ref_d.data(), y.size());
    EXPECT_LT(err, kTolerance) << spec.name();
    std::printf("%s with large |x|: rel err %.3g over %zu elements\n", spec.name().c_str(), err, y.size());
  }
}

TEST_F(GptqGemmGpu, RejectsBadArguments) {
  std::mt19937 rng(3);
  CheckpointSpec spec;
  spec.K = 128;
  spec.N = 64;
  const Checkpoint c = make_checkpoint(spec, rng);
  const DeviceLayer layer(c.view());
  Workspace w(0, 0);
  DeviceBuffer x(2 * 128 * 2), y(2 * 64 * 2);
  GptqDeviceWeights bad = layer.view;
  bad.bits = 3;
  EXPECT_THROW(gptq_gemm(bad, x.as<__half>(), 2, y.as<__half>(), nullptr, w.ws, nullptr), nibble::Error);
  EXPECT_THROW(gptq_gemm(layer.view, nullptr, 2, y.as<__half>(), nullptr, w.ws, nullptr), nibble::Error);
  EXPECT_THROW(gptq_gemm_dequant_cublas(layer.view, x.as<__half>(), 64, y.as<__half>(), nullptr, GptqWorkspace{},
                                        nullptr),
               nibble::Error);
  EXPECT_NO_THROW(gptq_gemm(layer.view, x.as<__half>(), 0, y.as<__half>(), nullptr, w.ws, nullptr));
}

}  // namespace
}  // namespace nibble::kernels::testing

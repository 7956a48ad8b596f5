// The TMA-streaming small-M GPTQ kernel: see gptq_gemv_stream.cuh for the design.
#include "gptq_gemm/gptq_gemv_stream.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <string>

#include "gptq_gemm/gptq_gemv.cuh"
#include "nibble/core/error.h"

namespace nibble::kernels::detail {
namespace {

constexpr int kChunksPerWarp = 2;  // 32-row chunks of a unit per consumer warp
constexpr int kConsumerWarps = 2 * (kStreamUnitRows / 32) / kChunksPerWarp;  // 2 column halves
constexpr int kConsumers = kConsumerWarps * 32;
constexpr int kThreads = kConsumers + 32;  // + one producer warp
constexpr int kBlocksPerSm = 3;  // 24 consumer warps per SM (measured: 2 blocks 17.3 us, 3 blocks 16.2 us)
constexpr int kMaxStages = 8;
constexpr int kWordRows = kStreamUnitRows / 8;  // qweight word rows per unit (4-bit)
constexpr int kQBytes = kWordRows * kStreamTileCols * 4;

struct StreamParams {
  const int32_t* perm;
  const __half* x;
  __half* y;
  const __half* bias;
  float* partial;      // [M, N] fp32, zero between calls
  unsigned* counters;  // [tiles], zero between calls
  int M, K, N;
  int group_rows;
  int scale_rows;   // scale/zero rows per unit (TMA box height)
  int stages;       // ring depth
  int stage_bytes;  // qweight + scales + zeros of one stage, 128-byte multiple
  int units_per_tile;
  int units;
};

__host__ __device__ constexpr size_t round128(size_t v) { return (v + 127) / 128 * 128; }

// Scale rows a 256-row unit can touch: its first group to the group of its last 32-row chunk.
int scale_rows_per_unit(int group_rows) {
  if (kStreamUnitRows % group_rows == 0) return kStreamUnitRows / group_rows;
  if (group_rows % kStreamUnitRows == 0) return 1;
  return kStreamUnitRows / group_rows + 2;
}

__host__ __device__ constexpr size_t scale_bytes(int scale_rows) { return round128(static_cast<size_t>(scale_rows) * kStreamTileCols * 2); }

// Shared memory besides the ring: per-warp scaled x chunks and the flush buffer.
size_t fixed_smem_bytes(int m_tile) {
  return static_cast<size_t>(kConsumerWarps) * kChunksPerWarp * m_tile * 32 * sizeof(__half) +
         static_cast<size_t>(m_tile) * kStreamTileCols * sizeof(float) + 2 * kMaxStages * sizeof(uint64_t) + 16;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define NIBBLE_STREAM_GEMV 1
#endif

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

#ifdef NIBBLE_STREAM_GEMV
__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n\t.reg .pred done;\n"
      "WAIT_%=:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n\t"
      "@!done bra WAIT_%=;\n\t}" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}

// One 2D box of a tensor map into shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::
          "r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}

__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, %0;" ::"n"(kConsumers) : "memory"); }
#endif

// Block b streams units [units * b / grid, units * (b + 1) / grid). Registers are
// split among an SM's four schedulers (16K each), so three 9-warp blocks (7 warps on
// some scheduler) get at most 73 per thread: 72 (M = 1 fits; M = 2 spills 12 bytes).
template <int MT>
__global__ void __maxnreg__(72)
    gptq_gemv_stream_kernel(const __grid_constant__ CUtensorMap qmap, const __grid_constant__ CUtensorMap smap,
                            const __grid_constant__ CUtensorMap zmap, StreamParams p) {
#ifdef NIBBLE_STREAM_GEMV
  extern __shared__ __align__(128) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sbytes = static_cast<int>(scale_bytes(p.scale_rows));
  unsigned char* ring = smem;
  __half* xs_all = reinterpret_cast<__half*>(ring + static_cast<size_t>(p.stages) * p.stage_bytes);
  float* flush = reinterpret_cast<float*>(xs_all + kConsumerWarps * kChunksPerWarp * MT * 32);  // [MT][256]
  uint64_t* full = reinterpret_cast<uint64_t*>(flush + MT * kStreamTileCols);
  uint64_t* empty = full + kMaxStages;
  int* last_flags = reinterpret_cast<int*>(empty + kMaxStages);  // [2]: first and last tile

  const int u_begin = static_cast<int>(static_cast<int64_t>(p.units) * blockIdx.x / gridDim.x);
  const int u_end = static_cast<int>(static_cast<int64_t>(p.units) * (blockIdx.x + 1) / gridDim.x);

  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  for (int i = threadIdx.x; i < MT * kStreamTileCols; i += blockDim.x) flush[i] = 0.f;
  __syncthreads();

  if (warp == kConsumerWarps) {
    // Producer: one lane keeps the ring full, a stage as soon as every consumer warp released it.
    if (lane != 0) return;
    const unsigned tx = static_cast<unsigned>(kQBytes + 2 * p.scale_rows * kStreamTileCols * 2);
    int s = 0;
    unsigned phase = 0;
    for (int u = u_begin; u < u_end; ++u) {
      mbar_wait(&empty[s], phase ^ 1u);
      const int tile = u / p.units_per_tile, ku = u - tile * p.units_per_tile;
      unsigned char* stage = ring + static_cast<size_t>(s) * p.stage_bytes;
      mbar_expect_tx(&full[s], tx);
      const int col = tile * kStreamTileCols, g0 = ku * kStreamUnitRows / p.group_rows;
      tma_load_2d(stage, &qmap, col, ku * kWordRows, &full[s]);
      tma_load_2d(stage + kQBytes, &smap, col, g0, &full[s]);
      tma_load_2d(stage + kQBytes + sbytes, &zmap, col, g0, &full[s]);
      if (++s == p.stages) s = 0, phase ^= 1u;
    }
    return;
  }

  // Consumers: warp (wc, half) handles the 32-row chunks wc * kChunksPerWarp + i of
  // each unit, 4 columns per lane of the unit's half `half`.
  const int half = warp & 1, wc = warp >> 1;
  const int ctid = threadIdx.x;  // 0..kConsumers-1
  __half* xs = xs_all + warp * kChunksPerWarp * MT * 32;  // [chunk i][m][32]
  const int lane_col = half * 128 + 4 * lane;             // column within the tile
  float acc[MT][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[m][c] = 0.f;

  // x of this lane's rows for a unit (gathered through perm), zero past K or M.
  auto load_x = [&](int u, __half (&v)[kChunksPerWarp][MT]) {
    const int ku = u % p.units_per_tile;
#pragma unroll
    for (int i = 0; i < kChunksPerWarp; ++i) {
      const int k = ku * kStreamUnitRows + (wc * kChunksPerWarp + i) * 32 + lane;
      int kk = -1;
      if (u < u_end && k < p.K) kk = p.perm ? __ldg(p.perm + k) : k;
#pragma unroll
      for (int m = 0; m < MT; ++m)
        v[i][m] = kk >= 0 && m < p.M ? p.x[static_cast<size_t>(m) * p.K + kk] : __float2half_rn(0.f);
    }
  };
  __half x_next[kChunksPerWarp][MT];
  load_x(u_begin, x_next);

  const int tile_first = u_begin / p.units_per_tile, tile_last = (u_end - 1) / p.units_per_tile;
  int s = 0;
  unsigned phase = 0;
  for (int u = u_begin; u < u_end; ++u) {
    const int tile = u / p.units_per_tile, ku = u - tile * p.units_per_tile;
    // Stage this warp's x values per chunk and row, scaled by a power of two into
    // [1, 2) (overflow-safe half2 sums, undone in fp32: see gptq_gemv.cuh).
    float chunk_scale[kChunksPerWarp][MT];
#pragma unroll
    for (int i = 0; i < kChunksPerWarp; ++i)
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const float v = __half2float(x_next[i][m]);
        const unsigned largest = __reduce_max_sync(0xffffffffu, __float_as_uint(fabsf(v)));
        const int e = largest ? static_cast<int>((largest >> 23) & 0xff) - 127 : 0;
        xs[(i * MT + m) * 32 + lane] = __float2half_rn(v * __int_as_float((127 - e) << 23));
        chunk_scale[i][m] = __int_as_float((127 + e) << 23);
      }
    load_x(u + 1, x_next);
    __syncwarp();

    mbar_wait(&full[s], phase);
    const unsigned char* stage = ring + static_cast<size_t>(s) * p.stage_bytes;
    const int k0 = ku * kStreamUnitRows;
#pragma unroll
    for (int i = 0; i < kChunksPerWarp; ++i) {
      // This chunk's words, scales and zeros into registers; after the last chunk's
      // loads the stage goes back to the producer, before the arithmetic.
      const int chunk = wc * kChunksPerWarp + i;
      const uint4* qs = reinterpret_cast<const uint4*>(stage) + chunk * 4 * (kStreamTileCols / 4) + lane_col / 4;
      uint4 q[4];
#pragma unroll
      for (int w = 0; w < 4; ++w) q[w] = qs[w * (kStreamTileCols / 4)];
      // Rows past K may map to a scale row past the box: any loaded row will do (x is 0 there).
      const int srow = min((k0 + chunk * 32) / p.group_rows - k0 / p.group_rows, p.scale_rows - 1);
      const __half* srow_ptr = reinterpret_cast<const __half*>(stage + kQBytes) + srow * kStreamTileCols + lane_col;
      const uint2 sraw = *reinterpret_cast<const uint2*>(srow_ptr);
      const uint2 zraw = *reinterpret_cast<const uint2*>(reinterpret_cast<const unsigned char*>(srow_ptr) + sbytes);
      if (i == kChunksPerWarp - 1) {
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[s]);
        if (++s == p.stages) s = 0, phase ^= 1u;
      }
      const GroupQuant gq = unpack_group(sraw, zraw);

      __half2 acc2[MT][4];
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc2[m][c] = __float2half2_rn(0.f);
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        __half2 xv[MT][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) load_x8(xs + (i * MT + m) * 32 + w * 8, xv[m]);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          __half2 d[4];
          decode_4bit(word_of(q[w], c), gq.zero_lo[c], gq.zero_hi[c], d);
#pragma unroll
          for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int m = 0; m < MT; ++m) acc2[m][c] = __hfma2(d[j], xv[m][j], acc2[m][c]);
        }
      }
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const float2 f = __half22float2(acc2[m][c]);
          acc[m][c] = fmaf(f.x + f.y, gq.scale[c] * chunk_scale[i][m], acc[m][c]);
        }
    }
    __syncwarp();  // xs is rewritten for the next unit

    if (u + 1 != u_end && (u + 1) / p.units_per_tile == tile) continue;
    // End of this block's part of a column tile.
    const int col = tile * kStreamTileCols + lane_col;
    const int first = tile == tile_first ? u_begin - tile * p.units_per_tile : 0;
    if (ku + 1 - first == p.units_per_tile) {
      // The whole tile is ours: the warps meet in shared memory and write y.
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int c = 0; c < 4; ++c) atomicAdd(&flush[m * kStreamTileCols + lane_col + c], acc[m][c]);
      consumers_sync();
      if (ctid < MT * (kStreamTileCols / 4)) {
        const int fm = ctid / (kStreamTileCols / 4), fcol = tile * kStreamTileCols + 4 * (ctid % (kStreamTileCols / 4));
        float4* f4 = reinterpret_cast<float4*>(flush) + ctid;
        const float4 v = *f4;
        *f4 = make_float4(0.f, 0.f, 0.f, 0.f);
        if (fm < p.M && fcol < p.N) {
          const float4 b = bias4(p.bias, fcol);
          *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(fm) * p.N + fcol) =
              pack_half4(v.x + b.x, v.y + b.y, v.z + b.z, v.w + b.w);
        }
      }
      consumers_sync();
    } else if (col < p.N) {
      // Part of a tile: straight into the split-K accumulator, no barrier (the
      // arrival count is settled once at the end of the block).
#pragma unroll
      for (int m = 0; m < MT; ++m)
        if (m < p.M)
          atomicAdd(reinterpret_cast<float4*>(p.partial + static_cast<size_t>(m) * p.N + col),
                    make_float4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]));
    }
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[m][c] = 0.f;
  }

  // Only the first and the last tile of a block's run can be partial. Count this
  // block's units in each; the block completing a tile's count writes its y.
  const int first_count = min(u_end, (tile_first + 1) * p.units_per_tile) - u_begin;
  const int last_count = u_end - max(u_begin, tile_last * p.units_per_tile);
  const bool first_partial = first_count < p.units_per_tile;
  const bool last_partial = tile_last != tile_first && last_count < p.units_per_tile;
  if (!first_partial && !last_partial) return;
  __threadfence();
  consumers_sync();
  if (ctid == 0) {
    for (int t = 0; t < 2; ++t) {
      const bool partial = t == 0 ? first_partial : last_partial;
      int last = 0;
      if (partial) {
        unsigned* counter = p.counters + (t == 0 ? tile_first : tile_last);
        const unsigned count = static_cast<unsigned>(t == 0 ? first_count : last_count);
        last = atomicAdd(counter, count) + count == static_cast<unsigned>(p.units_per_tile);
        if (last) *counter = 0u;  // leave the workspace as we found it
      }
      last_flags[t] = last;
    }
  }
  consumers_sync();
  for (int t = 0; t < 2; ++t) {
    if (!last_flags[t] || ctid >= MT * (kStreamTileCols / 4)) continue;
    __threadfence();
    const int fm = ctid / (kStreamTileCols / 4);
    const int fcol = (t == 0 ? tile_first : tile_last) * kStreamTileCols + 4 * (ctid % (kStreamTileCols / 4));
    if (fm >= p.M || fcol >= p.N) continue;
    float4* total = reinterpret_cast<float4*>(p.partial + static_cast<size_t>(fm) * p.N + fcol);
    const float4 sum = add4(__ldcg(total), bias4(p.bias, fcol));
    __stcg(total, make_float4(0.f, 0.f, 0.f, 0.f));
    *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(fm) * p.N + fcol) = pack_half4(sum.x, sum.y, sum.z, sum.w);
  }
#endif
}

using EncodeTiled = PFN_cuTensorMapEncodeTiled_v12000;

// The driver's tensor-map encoder, looked up once (cudart exposes no wrapper).
EncodeTiled tensor_map_encoder() {
  static const EncodeTiled encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<EncodeTiled>(fn);
  }();
  return encoder;
}

// A 2D row-major [rows, cols] tensor map with boxes of box_rows x 256 elements.
CUtensorMap make_map(const void* base, CUtensorMapDataType type, int elem_bytes, int64_t rows, int64_t cols,
                     int box_rows) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * elem_bytes};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kStreamTileCols), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(&map, type, 2, const_cast<void*>(base), dims, strides, box, element_strides,
                                          CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                                          CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  NIBBLE_CHECK(r == CUDA_SUCCESS, "gptq_gemm: cuTensorMapEncodeTiled failed (" + std::to_string(static_cast<int>(r)) +
                                      ") for a [" + std::to_string(rows) + ", " + std::to_string(cols) + "] array");
  return map;
}

struct DeviceInfo : DeviceShape {
  int smem_block = 0;  // shared memory one of kBlocksPerSm resident blocks may use
};

DeviceInfo current_device() {
  DeviceInfo info;
  static_cast<DeviceShape&>(info) = current_device_shape();
  int device = 0;
  if (info.sms == 0 || cudaGetDevice(&device) != cudaSuccess) return info;
  int optin = 0, per_sm = 0;
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  info.smem_block = std::min(optin, per_sm / kBlocksPerSm - 1024);  // 1 KB per block is reserved by the system
  return info;
}

// Ring depth that fits the device's shared memory (0 when not even two stages do).
int ring_stages(int m_tile, int scale_rows, int smem_block) {
  const size_t stage = kQBytes + 2 * scale_bytes(scale_rows);
  const size_t room = static_cast<size_t>(smem_block) > fixed_smem_bytes(m_tile)
                          ? static_cast<size_t>(smem_block) - fixed_smem_bytes(m_tile)
                          : 0;
  const int stages = static_cast<int>(std::min<size_t>(kMaxStages, room / stage));
  return stages >= 2 ? stages : 0;  // (group size 32 leaves room for 2)
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int MT>
void launch_tile(const CUtensorMap& q, const CUtensorMap& s, const CUtensorMap& z, const StreamParams& p, int grid,
                 size_t smem, cudaStream_t stream) {
  auto kernel = gptq_gemv_stream_kernel<MT>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  // All of the unified L1/shared memory as shared: without it two blocks' rings do not fit on an SM.
  cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
  kernel<<<grid, kThreads, smem, stream>>>(q, s, z, p);
}

}  // namespace

// Scale rows per unit, never more than the layer has.
int unit_scale_rows(const GptqDeviceWeights& w) {
  return static_cast<int>(std::min<int64_t>(scale_rows_per_unit(w.group_rows), w.groups));
}

bool stream_gemv_usable(const GptqDeviceWeights& w, int64_t M, size_t splitk_bytes) {
  if (w.bits != 4 || M < 1 || M > kStreamMaxM || w.N % 8 != 0) return false;
  if (!aligned16(w.qweight) || !aligned16(w.scales) || !aligned16(w.zeros)) return false;
  if (w.N / kStreamTileCols + 1 > kCounterBytes / 4) return false;
  if (splitk_bytes < kCounterBytes + static_cast<size_t>(M * w.N) * sizeof(float)) return false;
  const DeviceInfo d = current_device();
  if (d.major < 9 || !tensor_map_encoder()) return false;
  return ring_stages(static_cast<int>(M), unit_scale_rows(w), d.smem_block) > 0;
}

void launch_stream_gemv(const GptqDeviceWeights& w, const __half* x, int M, __half* y, const __half* bias,
                        void* splitk, int blocks, cudaStream_t stream) {
  const DeviceInfo d = current_device();
  StreamParams p{};
  p.perm = w.perm;
  p.x = x;
  p.y = y;
  p.bias = bias;
  p.counters = static_cast<unsigned*>(splitk);
  p.partial = reinterpret_cast<float*>(static_cast<char*>(splitk) + kCounterBytes);
  p.M = M;
  p.K = static_cast<int>(w.K);
  p.N = static_cast<int>(w.N);
  p.group_rows = w.group_rows;
  p.scale_rows = unit_scale_rows(w);
  p.stages = ring_stages(M, p.scale_rows, d.smem_block);
  p.stage_bytes = static_cast<int>(kQBytes + 2 * scale_bytes(p.scale_rows));
  p.units_per_tile = static_cast<int>((w.K + kStreamUnitRows - 1) / kStreamUnitRows);
  p.units = p.units_per_tile * static_cast<int>((w.N + kStreamTileCols - 1) / kStreamTileCols);
  NIBBLE_CHECK(p.stages > 0, "gptq_gemm: streaming kernel does not fit in shared memory");
  const int grid = std::min(p.units, blocks > 0 ? blocks : d.sms * kBlocksPerSm);
  const size_t smem = static_cast<size_t>(p.stages) * p.stage_bytes + fixed_smem_bytes(M);
  const CUtensorMap q = make_map(w.qweight, CU_TENSOR_MAP_DATA_TYPE_UINT32, 4, w.K / 8, w.N, kWordRows);
  const CUtensorMap s = make_map(w.scales, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, w.groups, w.N, p.scale_rows);
  const CUtensorMap z = make_map(w.zeros, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, w.groups, w.N, p.scale_rows);
  switch (M) {
    case 1: launch_tile<1>(q, s, z, p, grid, smem, stream); break;
    default: launch_tile<2>(q, s, z, p, grid, smem, stream); break;
  }
}

}  // namespace nibble::kernels::detail

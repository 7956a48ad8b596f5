// Tensor-core GPTQ GEMM for 4-bit weights, 32 or 64 tokens per block, with the
// weights staged through shared memory: y[M, N] = x[M, K] W[K, N] (+ bias) with
// mma.sync m16n8k16 (fp16 in, fp32 accumulate), sm_80 and later. Since the narrow
// kernel (gptq_mma.cu) took x from shared memory it is faster up to 128 tokens
// on every measured shape, so this one serves larger batches when there is no
// cuBLAS (mma_wide_preferred) and the benchmark's comparisons.
//
// Block (mchunk, ntile, split) computes rows [m0, m0 + MT) over 256 columns from
// input rows [k_begin, k_end). Its 8 warps sit side by side along N, 32 columns
// each, and each warp owns all MT rows, so every weight byte is read from DRAM
// once per M chunk and used by one warp only. The weights stream through a ring
// of 64-row stages (cp.async, 16-byte chunks), together with the scales and zeros
// of the stage's two 32-row halves and the stage's [MT, 64] tile of x.
//
// No repacking of the weight layout (gptq_layout.h) is needed. For a 32-row
// chunk, lane (g = lane / 4, t = lane % 4) reads one 16-byte chunk: word row t
// (rows 8t .. 8t + 7) of 4 adjacent columns c0 + 4g + i, i = 0..3. Word i yields
// half2 pairs (rows 8t + 2j, 8t + 2j + 1), j = 0..3, exactly the B fragment
// shape of m16n8k16 (two consecutive k per register) once the k order inside the
// chunk is relabelled: MMA 0 takes rows 8t + {0,1} as k = 2t, 2t + 1 and rows
// 8t + {2,3} as k = 2t + 8, 2t + 9; MMA 1 does the same with rows 8t + 4 .. 8t + 7.
// The A fragment under that relabelling is x[row][8t .. 8t + 7], one 16-byte
// shared-memory load per row, so x needs no permutation either. N-tile i of the
// warp holds columns c0 + 4g + i in its slot g, so a lane's accumulators cover 8
// adjacent output columns c0 + 8t .. c0 + 8t + 7 (slots 2t, 2t + 1 of the 4 tiles).
//
// Dequantization is exact up to the fp16 product: (0x6400 | q) + zeros = q - zero,
// then times the scale (as gptq_dequant.cu does for the cuBLAS path).
// Split-K: like the fused kernel, fp32 atomics into the workspace accumulator and
// the last block of a tile writes y (the fp32 order varies between runs).
#include <cuda_fp16.h>

#include "common/device_utils.cuh"
#include "gptq_gemm/gptq_mma.cuh"
#include "gptq_gemm/gptq_mma_device.cuh"
#include "gptq_gemm/gptq_mma_plan.h"

namespace nibble::kernels::detail {
namespace {

using mma::cp_async16;
using mma::cp_async16_if;
using mma::cp_async8_if;
using mma::cp_async_commit;
using mma::cp_async_wait;
using mma::cp_async_wait_all;

using mma::as_h2;
using mma::as_u32;

// The four half2 pairs (q[2j], q[2j + 1]) of a word as (q - zero) * scale, exact
// up to the product's rounding (the same rounding as gptq_dequant.cu).
__device__ __forceinline__ void dequant_word_scaled(uint32_t w, __half2 z, __half2 z64, __half2 s, uint32_t (&b)[4]) {
  mma::dequant_word(w, z, z64, b);
#pragma unroll
  for (int j = 0; j < 4; ++j) b[j] = as_u32(__hmul2(as_h2(b[j]), s));
}

// Index of 16-byte chunk `c` of x row `m` in a stage's x tile: rows m and m + 1 land
// on different bank halves, so the 8 lanes of a load phase never collide.
__device__ __forceinline__ int a_chunk(int m, int c) { return c ^ ((m & 1) << 2); }
// Index of 16-byte chunk `c` of weight word row `r` in a stage (same reason, for
// the 4 word rows a phase reads).
__device__ __forceinline__ int w_chunk(int r, int c) { return c ^ ((r & 3) << 1); }

template <int MI>
__global__ void __launch_bounds__(kMmaWideThreads, kMmaWideBlocksPerSm) gptq_mma_wide_kernel(MmaParams p) {
  constexpr int MT = 16 * MI;
  constexpr int STAGE = mma_wide_stage_bytes(MT);
  constexpr int A_CHUNKS = MT * kMmaWideStageRows / 8;  // 16-byte chunks of x per stage
  constexpr int A_PER_THREAD = (A_CHUNKS + kMmaWideThreads - 1) / kMmaWideThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ bool last_block;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int mchunk = blockIdx.x, ntile = blockIdx.y, split = blockIdx.z;
  const int m0 = mchunk * MT, n0 = ntile * kMmaWideTileN;
  const int k_begin = split * p.rows_per_split;
  const int k_end = min(p.K, k_begin + p.rows_per_split);
  const int nstages = (k_end - k_begin + kMmaWideStageRows - 1) / kMmaWideStageRows;
  // Stage buffer (ring slot): weights [8 word rows][256] uint32 | scales, zeros
  // [2 halves][2][256] fp16 | x [MT][64] fp16.
  auto stage_buf = [&](int slot) { return smem + slot * STAGE; };
  auto x_tile = [&](int slot) { return reinterpret_cast<__half*>(stage_buf(slot) + kMmaWideStageQuantBytes); };

  // Loader state: stages are requested in order, so each thread keeps its source
  // pointers and the group of its scale row and advances them by one stage per call.
  const int w_row = tid >> 6, w_col = tid & 63;  // weight chunks (w_row + 4i, w_col), i = 0, 1
  const bool w_col_ok = n0 + 4 * w_col < p.N;
  const uint32_t* w_src = p.qweight + (static_cast<size_t>(k_begin / 8 + w_row) * p.N + n0 + 4 * w_col);
  const size_t w_step = static_cast<size_t>(kMmaWideStageRows / 8) * p.N;
  int w_dst[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) w_dst[i] = (w_row + 4 * i) * kMmaWideTileN + 4 * w_chunk(w_row + 4 * i, w_col);
  const int s_half = tid >> 7, s_kind = (tid >> 6) & 1;  // scale/zero chunk: (half, kind, w_col)
  const __half* s_src = (s_kind ? p.zeros : p.scales) + n0 + 4 * w_col;
  int s_group = min(min(k_begin + 32 * s_half, p.K - 1) / p.group_rows, p.groups - 1);
  int s_group_end = (s_group + 1) * p.group_rows;  // first row of the next group
  const int s_dst = kMmaWideStageWeightBytes / 2 + (s_half * 2 + s_kind) * kMmaWideTileN + 4 * w_col;  // in halves
  // x chunk i of a thread: row (tid / 8) + 32 i, columns 8 (tid % 8) .. + 7 of the stage.
  const int x_m = tid >> 3, x_cc = tid & 7;
  const __half* x_src = p.x + (static_cast<size_t>(m0 + x_m) * p.K + k_begin + x_cc * 8);
  const int x_dst = x_m * kMmaWideStageRows + 8 * a_chunk(x_m, x_cc);  // rows 32 apart keep their parity
  int x_k = k_begin + x_cc * 8;
  int load_k = k_begin;  // first row of the next stage to load

  // Weights and the scales and zeros of both 32-row halves (skipped past k_end or
  // N: stale shared memory there only meets zero x or unwritten columns; any bit
  // pattern dequantizes to a finite value), and x when it can be copied as is
  // (zero-filled past M and k_end, so that stale weights add nothing).
  auto load_stage_weights = [&](int slot) {
    unsigned char* buf = stage_buf(slot);
#pragma unroll
    for (int i = 0; i < 2; ++i)
      cp_async16_if(reinterpret_cast<uint32_t*>(buf) + w_dst[i], w_src + i * 4 * p.N,
                    w_col_ok && load_k + (w_row + 4 * i) * 8 < k_end);
    while (load_k + 32 * s_half >= s_group_end && s_group < p.groups - 1) {
      ++s_group;
      s_group_end += p.group_rows;
    }
    cp_async8_if(reinterpret_cast<__half*>(buf) + s_dst, s_src + static_cast<size_t>(s_group) * p.N, w_col_ok);
    w_src += w_step;
    load_k += kMmaWideStageRows;
  };
  auto load_stage_x = [&](int slot) {
    if (p.x_vec) {
      __half* xs = x_tile(slot);
#pragma unroll
      for (int i = 0; i < A_PER_THREAD; ++i) {
        if (tid + i * kMmaWideThreads >= A_CHUNKS) break;
        const bool valid = m0 + x_m + 32 * i < p.M && x_k < k_end;
        cp_async16(xs + x_dst + 32 * i * kMmaWideStageRows, valid ? x_src + static_cast<size_t>(32 * i) * p.K : p.x,
                   valid);
      }
      x_src += kMmaWideStageRows;
      x_k += kMmaWideStageRows;
    }
  };
  auto load_next_stage = [&](int slot) {
    load_stage_weights(slot);
    load_stage_x(slot);
  };

  // x gathered through perm (no room to gather it beforehand) or not 16-byte
  // aligned: plain loads, stored before the stage's compute (the slow fallback).
  uint4 gathered[A_PER_THREAD];
  auto gather_x = [&](int st) {
    const int kb = k_begin + st * kMmaWideStageRows;
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) {
      const int c = tid + i * kMmaWideThreads;
      const int m = c >> 3, cc = c & 7;
      const int k = kb + cc * 8;
      gathered[i] = make_uint4(0, 0, 0, 0);
      if (c >= A_CHUNKS || st >= nstages || m0 + m >= p.M || k >= k_end) continue;
      gathered[i] = mma::gather8(p.x + static_cast<size_t>(m0 + m) * p.K, p.perm, k);
    }
  };
  auto store_x = [&](int slot) {
    __half* xs = x_tile(slot);
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) {
      const int c = tid + i * kMmaWideThreads;
      if (c >= A_CHUNKS) break;
      const int m = c >> 3, cc = c & 7;
      *reinterpret_cast<uint4*>(xs + m * kMmaWideStageRows + 8 * a_chunk(m, cc)) = gathered[i];
    }
  };

  float acc[MI][4][4];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mi][i][c] = 0.f;

  // The prologue's weights first (constant: they may load while the kernel before
  // us finishes, with programmatic dependent launch), x after the wait. The first
  // commit group then holds every prologue stage's weights.
#pragma unroll 1
  for (int st = 0; st < kMmaWideStages - 1; ++st)
    if (st < nstages) load_stage_weights(st);
  wait_for_previous_grid();
#pragma unroll 1
  for (int st = 0; st < kMmaWideStages - 1; ++st) {
    if (st < nstages) {
      load_stage_x(st);
      if (!p.x_vec) {
        gather_x(st);
        store_x(st);
      }
    }
    cp_async_commit();
  }

  // Per-thread shared-memory byte offsets inside a stage: the weight chunk and
  // the scales of each 32-row half, the x rows 16 mi + g (+ 8 at +1024 bytes).
  int w_off[2], x_off[2];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int wrow = 4 * half + t;
    w_off[half] = (wrow * kMmaWideTileN + 4 * w_chunk(wrow, 8 * warp + g)) * 4;
    x_off[half] = kMmaWideStageQuantBytes + (g * kMmaWideStageRows + 8 * a_chunk(g, 4 * half + t)) * 2;
  }
  const int sz_off = kMmaWideStageWeightBytes + (warp * 32 + 4 * g) * 2;  // + 1024 per half, zeros + 512

  int read_slot = 0, write_slot = kMmaWideStages - 1;
#pragma unroll 1
  for (int st = 0; st < nstages; ++st) {
    cp_async_wait<kMmaWideStages - 2>();
    __syncthreads();  // stage st visible; every warp is done with the slot written next
    const int next = st + kMmaWideStages - 1;
    if (next < nstages) {
      load_next_stage(write_slot);
      if (!p.x_vec) {
        gather_x(next);
        store_x(write_slot);
      }
    }
    cp_async_commit();

    const unsigned char* buf = stage_buf(read_slot);
    const int kb = k_begin + st * kMmaWideStageRows;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      if (kb + half * 32 >= k_end) break;
      const uint4 wq = *reinterpret_cast<const uint4*>(buf + w_off[half]);
      const uint2 sraw = *reinterpret_cast<const uint2*>(buf + sz_off + half * 1024);
      const uint2 zraw = *reinterpret_cast<const uint2*>(buf + sz_off + half * 1024 + 512);
      const __half2 s01 = as_h2(sraw.x), s23 = as_h2(sraw.y), z01 = as_h2(zraw.x), z23 = as_h2(zraw.y);
      const __half2 scale[4] = {__low2half2(s01), __high2half2(s01), __low2half2(s23), __high2half2(s23)};
      const __half2 zero[4] = {__low2half2(z01), __high2half2(z01), __low2half2(z23), __high2half2(z23)};
      const __half2 to64 = as_h2(0x63806380u);  // 960: -(1024 + zero) + 960 = -(64 + zero)
      const uint32_t words[4] = {wq.x, wq.y, wq.z, wq.w};
      uint32_t b[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) dequant_word_scaled(words[i], zero[i], __hadd2(zero[i], to64), scale[i], b[i]);
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const uint4 u = *reinterpret_cast<const uint4*>(buf + x_off[half] + mi * 16 * kMmaWideStageRows * 2);
        const uint4 v = *reinterpret_cast<const uint4*>(buf + x_off[half] + mi * 16 * kMmaWideStageRows * 2 + 1024);
        // Rows 8t .. 8t + 3 of the chunk for all four column tiles, then rows
        // 8t + 4 .. 8t + 7: no two consecutive MMAs share an accumulator.
#pragma unroll
        for (int i = 0; i < 4; ++i) mma::mma_16816(acc[mi][i], u.x, v.x, u.y, v.y, b[i][0], b[i][1]);
#pragma unroll
        for (int i = 0; i < 4; ++i) mma::mma_16816(acc[mi][i], u.z, v.z, u.w, v.w, b[i][2], b[i][3]);
      }
    }
    read_slot = read_slot + 1 == kMmaWideStages ? 0 : read_slot + 1;
    write_slot = write_slot + 1 == kMmaWideStages ? 0 : write_slot + 1;
  }
  cp_async_wait_all();

  // Lane's outputs: rows 16 mi + g (+ 8), columns wb + 8t + 4h + i = acc[mi][i][2 * hrow + h].
  const int wb = n0 + warp * 32 + 8 * t;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const int row = m0 + 16 * mi + g + 8 * hrow;
      if (row >= p.M) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int n = wb + 4 * h;
        if (n >= p.N) continue;
        const int c = 2 * hrow + h;
        const float4 v = make_float4(acc[mi][0][c], acc[mi][1][c], acc[mi][2][c], acc[mi][3][c]);
        if (p.splits == 1) {
          const float4 b = mma::load_bias4(p.bias, n);
          *reinterpret_cast<uint2*>(p.y + static_cast<size_t>(row) * p.N + n) =
              mma::pack_half4(v.x + b.x, v.y + b.y, v.z + b.z, v.w + b.w);
        } else {
          mma::add_to_partial(p.partial + static_cast<size_t>(row) * p.N + n, v);
        }
      }
    }
  if (p.splits == 1) return;
  mma::finish_split_tile(p.partial, p.counters, p.splits, p.y, p.bias, p.M, p.N, m0, MT, n0, kMmaWideTileN,
                         last_block);
}

template <int MI>
void launch_wide_tile(const MmaParams& p, dim3 grid, size_t smem, bool programmatic, cudaStream_t stream) {
  // The largest plan's shared memory, allowed once per instantiation.
  static const cudaError_t configured =
      cudaFuncSetAttribute(gptq_mma_wide_kernel<MI>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           kMmaWideStages * mma_wide_stage_bytes(16 * MI));
  (void)configured;
  launch_maybe_programmatic(gptq_mma_wide_kernel<MI>, grid, dim3(kMmaWideThreads), smem, stream, programmatic, p);
}

}  // namespace

void launch_mma_wide(const MmaParams& p, int m_tile, dim3 grid, size_t smem, bool programmatic, cudaStream_t stream) {
  if (m_tile == 32)
    launch_wide_tile<2>(p, grid, smem, programmatic, stream);
  else
    launch_wide_tile<4>(p, grid, smem, programmatic, stream);
}

}  // namespace nibble::kernels::detail

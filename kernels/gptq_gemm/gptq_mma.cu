// Tensor-core GPTQ GEMM for 4-bit weights and up to 64 tokens per block (the
// wide kernel in gptq_mma_wide.cu serves larger batches when cuBLAS is absent):
// y[M, N] = x[M, K] W[K, N] (+ bias) with mma.sync m16n8k16 (fp16 in, fp32
// accumulate), sm_80 and later.
//
// The weights are the MMA's A operand (y^T = W^T x^T): 16 output columns by 16
// input rows per MMA, and 8 tokens of x as its B operand, so a batch of 1-64
// rows costs 1-8 MMAs per dequantized fragment. Block (mchunk, ntile, split)
// computes tokens [m0, m0 + 8 NT) over 128 columns from input rows
// [k_begin, k_end). Its 4 warps each own 32 columns and walk the K range in
// steps of one or two 32-row halves, keeping a few steps of weights, scales and
// zeros in flight in a register ring (every weight byte comes from DRAM once per
// M chunk, straight into the registers that dequantize it). Two halves per step
// halve the bookkeeping per weight; 32-row groups take one. With one token tile
// (up to 8 tokens) each lane also keeps its x fragments in the ring and the
// warps never meet; from two tiles x is staged in shared memory 128 rows at a
// time (two buffers, cp.async, one barrier per chunk), which frees the registers
// for 3-4x more weights in flight (bench/NOTES.md, session 6).
//
// No repacking of the weight layout (gptq_layout.h): in a half, lane (g = lane / 4,
// t = lane % 4) loads one 16-byte chunk, word row t (rows 8t .. 8t + 7) of the 4
// adjacent columns c = 4g + i. A word's half2 pairs P_j = (q[2j], q[2j + 1]),
// j = 0..3, are exactly A-fragment registers once the k order inside the half is
// relabelled: MMA "a" takes rows 8t + {0, 1} as k = 2t, 2t + 1 and rows 8t + {2, 3}
// as k = 2t + 8, 2t + 9; MMA "b" does the same with rows 8t + 4 .. 8t + 7. Tile h
// (h = 0, 1) puts column 4g + 2h in A row g and column 4g + 2h + 1 in row g + 8.
// Under that relabelling the B fragment of token g is x[g][8t .. 8t + 7], one
// 16-byte load per 8 tokens, no permutation. The accumulators of tile h, token
// tile j hold (column 4g + 2h + c / 2, token 8j + 2t + c % 2) in c = 0..3, so a
// lane's results for one token are 4 adjacent columns (one 8-byte store).
//
// Dequantization: (0x6400 | q) + zeros = q - zero exactly in fp16 (odd pairs are
// read in place as 1024 + 16 q and brought down by an exact HFMA2). Up to 16
// tokens the MMA sums (q - zero) x in fp32 and the group's scale multiplies that
// sum in fp32 when the group ends (one FFMA per accumulator per group instead of
// one HMUL2 per weight pair). From 32 tokens a weight pair's HMUL2 by the scale is
// shared by 4-8 MMAs, and one accumulator set instead of two (group sums and
// totals) frees 32-64 registers for another block per SM: the A fragments are
// (q - zero) scale rounded to fp16, as in most GPTQ kernels. Split-K: fp32 float4
// atomics into the workspace, the last block of a tile writes y (the fp32 order
// varies between runs).
#include <cuda_fp16.h>

#include "common/device_utils.cuh"
#include "gptq_gemm/gptq_mma.cuh"
#include "gptq_gemm/gptq_mma_device.cuh"
#include "gptq_gemm/gptq_mma_epilogue.cuh"
#include "gptq_gemm/gptq_mma_plan.h"

namespace nibble::kernels::detail {
namespace {

using mma::and_or;
using mma::as_h2;
using mma::as_u32;

// Whether a block of NT token tiles takes x from shared memory (else each lane
// loads its own B fragments into the register ring).
constexpr bool mma_x_in_smem(int nt) { return nt >= 2; }
// Whether a block of NT token tiles scales the A fragments in fp16 (one
// accumulator set) rather than the group sums in fp32.
constexpr bool mma_scaled_a(int nt) { return nt >= 4; }

// One step of HPS 32-row halves in flight: the lane's weight chunks, the scales
// and zeros of its 4 columns (loaded at group starts only), its x fragments (register
// path only), and where the step sits in its group.
template <int NT, int HPS>
struct Step {
  static constexpr int XH = mma_x_in_smem(NT) ? 1 : HPS, XT = mma_x_in_smem(NT) ? 1 : NT;
  uint4 w[HPS];
  uint2 s, z;
  uint4 x[XH][XT];
  bool starts_group, ends_group;
};

// HPS halves per step: 2 when every group boundary falls on a 64-row step (fewer
// bookkeeping instructions per weight), 1 for 32-row groups.
template <int NT, int HPS>
__global__ void __launch_bounds__(kMmaThreads, mma_blocks_per_sm(8 * NT)) gptq_mma_kernel(MmaParams p) {
  constexpr bool XS = mma_x_in_smem(NT);
  // One-half steps carry their own scales and zeros: two halves fewer fit without spilling.
  constexpr int HALVES = mma_depth(8 * NT) - (XS && HPS == 1 ? 2 : 0);
  constexpr int DEPTH = HALVES / HPS > 1 ? HALVES / HPS : 1;
  constexpr int ROWS = 32 * HPS;
  constexpr int SPC = kMmaXChunkRows / ROWS;    // steps per staged x chunk
  extern __shared__ __align__(16) __half xs[];  // XS: [2][8 NT][kMmaXStride]
  __shared__ bool last_block;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int mchunk = blockIdx.x, ntile = blockIdx.y, split = blockIdx.z;
  const int m0 = mchunk * 8 * NT;
  const int col = ntile * kMmaTileN + warp * 32 + 4 * g;  // the lane's 4 columns col .. col + 3
  const bool col_ok = col < p.N;
  const int k_begin = split * p.rows_per_split;
  const int k_end = min(p.K, k_begin + p.rows_per_split);
  const int steps = (k_end - k_begin + ROWS - 1) / ROWS;

  // Loader state: steps are requested in order; the source pointers and the
  // group advance by one step per request (a step never straddles groups).
  mma::LaneWeightSource<MmaParams> src(p, k_begin, t, col);
  const size_t w_half = static_cast<size_t>(4) * p.N;
  int load_k = k_begin;
  const __half* x_src[NT];  // row m0 + 8j + g at column k_begin + 8t
  bool x_ok[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int m = m0 + 8 * j + g;
    x_ok[j] = m < p.M;
    x_src[j] = p.x + (static_cast<size_t>(x_ok[j] ? m : 0) * p.K + k_begin + 8 * t);
  }
  const int t_rows = 8 * t;

  auto load_weights_of = [&](Step<NT, HPS>& st) {
    const bool new_group = src.enter_row(p, load_k);
    st.starts_group = load_k == k_begin || new_group;
    st.ends_group = load_k + ROWS >= src.group_end || load_k + ROWS >= k_end;
#pragma unroll
    for (int hh = 0; hh < HPS; ++hh)
      st.w[hh] = col_ok && load_k + 32 * hh + t_rows < k_end ? load_streaming(src.w + hh * w_half)
                                                             : make_uint4(0, 0, 0, 0);
    if (st.starts_group && col_ok && load_k < k_end) {
      st.s = __ldg(reinterpret_cast<const uint2*>(src.s));
      st.z = __ldg(reinterpret_cast<const uint2*>(src.z));
    }
    src.w += HPS * w_half;
  };
  // Register path: x of the step, token 8j + g, rows load_k + 32 hh + 8t .. + 7
  // (zero past M and k_end).
  auto load_x_of = [&](Step<NT, HPS>& st) {
    if constexpr (!XS) {
#pragma unroll
      for (int hh = 0; hh < HPS; ++hh) {
        const int r = load_k + 32 * hh + t_rows;
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          st.x[hh][j] = make_uint4(0, 0, 0, 0);
          if (!x_ok[j] || r >= k_end) continue;
          if (p.x_vec) {
            st.x[hh][j] = __ldg(reinterpret_cast<const uint4*>(x_src[j] + 32 * hh));
          } else {
            st.x[hh][j] = mma::gather8(p.x + static_cast<size_t>(m0 + 8 * j + g) * p.K, p.perm, r);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) x_src[j] += ROWS;
    }
    load_k += ROWS;
  };
  // XS: x rows [k_begin + 128 c, + 128) of the block's tokens into buffer c % 2
  // (cp.async, zero past M and k_end; gathered through perm when x is not plain).
  auto stage_x = [&](int c) {
    __half* dst = xs + (c & 1) * (8 * NT * kMmaXStride);
    const int kc = k_begin + c * kMmaXChunkRows;
    constexpr int kPieces = kMmaXChunkRows / 8;  // 16-byte pieces per token
#pragma unroll
    for (int i = tid; i < 8 * NT * kPieces; i += kMmaThreads) {
      const int tok = i / kPieces, r = kc + 8 * (i % kPieces), m = m0 + tok;
      __half* d = dst + tok * kMmaXStride + 8 * (i % kPieces);
      const bool ok = m < p.M && r < k_end;
      if (p.x_vec)
        mma::cp_async16(d, ok ? p.x + (static_cast<size_t>(m) * p.K + r) : p.x, ok);
      else
        *reinterpret_cast<uint4*>(d) =
            ok ? mma::gather8(p.x + static_cast<size_t>(m) * p.K, p.perm, r) : make_uint4(0, 0, 0, 0);
    }
    mma::cp_async_commit();
  };

  Step<NT, HPS> ring[DEPTH];
  // The weights of the first steps do not depend on the kernel before us: with
  // programmatic dependent launch they load while it finishes; x after the wait.
#pragma unroll
  for (int d = 0; d < DEPTH; ++d) {
    load_weights_of(ring[d]);
    load_k += ROWS;
  }
  wait_for_previous_grid();
  if constexpr (XS) {
    stage_x(0);
  } else {
    load_k = k_begin;  // load_x_of advances it again
#pragma unroll
    for (int d = 0; d < DEPTH; ++d) load_x_of(ring[d]);
  }

  constexpr bool SA = mma_scaled_a(NT);
  // SA: the MMAs accumulate into `total` itself (acc unused, optimised away).
  float acc[NT][2][4], total[NT][2][4];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[j][h][c] = total[j][h][c] = 0.f;
  auto& sums = SA ? total : acc;
  mma::ColumnQuant quant;
  float scale[4];

#pragma unroll 1
  for (int s0 = 0; s0 < steps; s0 += DEPTH) {
#pragma unroll
    for (int d = 0; d < DEPTH; ++d) {
      const int step = s0 + d;
      if (step >= steps) break;
      Step<NT, HPS>& cur = ring[d];
      if (XS && step % SPC == 0) {
        // A new x chunk: wait for its copies, then (everyone past the previous
        // chunk) request the next one into the other buffer.
        mma::cp_async_wait<0>();
        __syncthreads();
        if (step + SPC < steps) stage_x(step / SPC + 1);
      }
      // XS: the B fragments of token g of tile j, half hh, at x_frag + 8 j kMmaXStride + 32 hh.
      const __half* x_frag =
          xs + ((step / SPC) & 1) * (8 * NT * kMmaXStride) + g * kMmaXStride + (step % SPC) * ROWS + t_rows;
      if (cur.starts_group) {
        mma::unpack_column_quant(cur.s, cur.z, quant);
        const float2 s01 = __half22float2(as_h2(cur.s.x)), s23 = __half22float2(as_h2(cur.s.y));
        scale[0] = s01.x;
        scale[1] = s01.y;
        scale[2] = s23.x;
        scale[3] = s23.y;
      }
#pragma unroll
      for (int hh = 0; hh < HPS; ++hh) {
        uint32_t a[4][4];
        mma::dequant_chunk<SA>(cur.w[hh], quant, a);
        // MMA "a" (rows 8t .. 8t + 3) of every tile, then MMA "b": no two
        // consecutive MMAs share an accumulator.
        uint4 b[NT];
#pragma unroll
        for (int j = 0; j < NT; ++j)
          b[j] = XS ? *reinterpret_cast<const uint4*>(x_frag + 8 * j * kMmaXStride + 32 * hh)
                    : cur.x[XS ? 0 : hh][XS ? 0 : j];
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            mma::mma_16816(sums[j][h], a[2 * h][0], a[2 * h + 1][0], a[2 * h][1], a[2 * h + 1][1], b[j].x, b[j].y);
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            mma::mma_16816(sums[j][h], a[2 * h][2], a[2 * h + 1][2], a[2 * h][3], a[2 * h + 1][3], b[j].z, b[j].w);
      }
      if (!SA && cur.ends_group) {  // scale the group's sums
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              total[j][h][c] = fmaf(scale[2 * h + c / 2], acc[j][h][c], total[j][h][c]);
              acc[j][h][c] = 0.f;
            }
      }
      load_weights_of(cur);
      load_x_of(cur);  // (XS: only advances load_k)
    }
  }

  // The 8- and 16-token tiles may add their splits in a cluster.
  finish_mma_tile<NT, kMmaTileN, kMmaThreads, NT <= 2 ? kMmaMaxClusterSplits : 0>(
      p, total, reinterpret_cast<float*>(xs), m0, ntile, split, warp, g, t, col, col_ok, last_block);
}

__global__ void gather_columns_kernel(const __half* x, const int32_t* perm, int M, int K, __half* out) {
  const int chunks = K / 8;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(M) * chunks) return;
  const int m = static_cast<int>(i / chunks), r = static_cast<int>(i % chunks) * 8;
  *reinterpret_cast<uint4*>(out + static_cast<size_t>(m) * K + r) = mma::gather8(x + static_cast<size_t>(m) * K, perm, r);
}

// Dynamic shared memory of an NT-tile block: its x buffers, or the staged tile
// of a cluster's reduction when that is larger.
template <int NT>
constexpr size_t tile_smem_bytes(bool cluster) {
  const int x_bytes = mma_x_smem_bytes(8 * NT);
  return static_cast<size_t>(cluster && mma_stage_bytes<NT, kMmaTileN>() > x_bytes ? mma_stage_bytes<NT, kMmaTileN>()
                                                                                  : x_bytes);
}

// Clusters of 9-16 blocks are a non-portable size: allowed once per kernel.
template <int NT>
void allow_large_clusters() {
  static const bool allowed = [] {
    for (auto kernel : {gptq_mma_kernel<NT, 1>, gptq_mma_kernel<NT, 2>})
      if (cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess)
        cudaGetLastError();  // before compute capability 9.0: no clusters at all
    return true;
  }();
  (void)allowed;
}

template <int NT>
void launch_tile(const MmaParams& p, dim3 grid, bool programmatic, cudaStream_t stream) {
  const bool steps64 = p.group_rows % 64 == 0 || p.groups == 1;
  const bool cluster = NT <= 2 && p.cluster != 0;
  if (cluster) allow_large_clusters<NT>();
  launch_maybe_clustered(steps64 ? gptq_mma_kernel<NT, 2> : gptq_mma_kernel<NT, 1>, grid, dim3(kMmaThreads),
                         tile_smem_bytes<NT>(cluster), stream, cluster, programmatic, p);
}

template <int NT>
int narrow_max_active_clusters(int cluster_size) {
  allow_large_clusters<NT>();
  return max_active_clusters(gptq_mma_kernel<NT, 2>, dim3(kMmaThreads), tile_smem_bytes<NT>(true), cluster_size);
}

}  // namespace

void launch_gather_columns(const __half* x, const int32_t* perm, int M, int K, __half* out, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(M) * (K / 8);
  if (total == 0) return;
  const int threads = 256;
  gather_columns_kernel<<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, stream>>>(x, perm, M, K,
                                                                                                      out);
}

void launch_mma(const MmaParams& p, int m_tile, dim3 grid, bool programmatic, cudaStream_t stream) {
  switch (m_tile) {
    case 8: launch_tile<1>(p, grid, programmatic, stream); break;
    case 16: launch_tile<2>(p, grid, programmatic, stream); break;
    case 32: launch_tile<4>(p, grid, programmatic, stream); break;
    default: launch_tile<8>(p, grid, programmatic, stream); break;
  }
}

}  // namespace nibble::kernels::detail

namespace nibble::kernels {

int narrow_mma_max_active_clusters(int m_tile, int cluster_size) {
  return m_tile == 8 ? detail::narrow_max_active_clusters<1>(cluster_size)
                     : detail::narrow_max_active_clusters<2>(cluster_size);
}

}  // namespace nibble::kernels

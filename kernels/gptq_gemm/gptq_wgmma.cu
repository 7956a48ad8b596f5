// Tensor-core GPTQ GEMM for 32- and 64-token tiles on Hopper (sm_90a): the
// narrow kernel's tiling (gptq_mma.cu) with the warpgroup MMA instead of
// mma.sync.
//
// Block = two warpgroups side by side (256 columns), T = 32 or 64 tokens, one K
// split. As in the narrow kernel each lane streams word row t of its 4 adjacent
// columns per 32-row half into a register ring and dequantizes it into the A
// fragments of two 16-column tiles (h = 0, 1) and two k16 steps: warp w of a
// warpgroup holds rows 16w .. 16w + 15 of two m64 tiles, so each half is 4
// wgmma m64nTk16 with the A operand in registers. They run asynchronously:
// while one half's MMAs run, the warps dequantize the next (mma.sync at 64
// tokens left the tensor cores waiting on 2-3 resident warps per scheduler).
// The two warpgroups share one copy of x: at 64 tokens the x each block reads
// from L2 was the limit (one warpgroup per block: 8B fused gate+up 63 us, two:
// 50 us; bench/NOTES.md, session 8).
//
// The B operand (x) comes from shared memory, in the canonical K-major layout
// without swizzle: 8x8 core matrices of 128 contiguous bytes, the two of a k16
// step 128 bytes apart (LBO), token groups 256 bytes apart (SBO), k16 steps
// T x 32 bytes apart. The narrow kernel's k relabelling (row 8t + 2j + b of a
// half is k = 16 (j / 2) + 8 (j % 2) + 2t + b) is a 4 x 4 transpose of the
// 4-byte pairs of each token's 64-byte half: x is copied raw (cp.async, a
// 3-stage ring of 128-row chunks) and each chunk transposed into one of two
// operand buffers before its MMAs.
//
// The accumulators have the narrow kernel's layout (wgmma's m64nNk16 fp32
// fragment is mma.sync's m16n8 one per warp and token tile), so without a K
// split its epilogue (gptq_mma_epilogue.cuh) finishes the tile. Where all of a
// product's clusters fit on the GPU at once (the plan's `cluster`), the K splits
// of a tile run as one thread-block cluster and add their sums in distributed
// shared memory (reduce_tile_in_cluster); otherwise they add fp32 atomics into
// the split-K workspace, which costs 0.8-1 us per MB of partial sums, 6-14 us a
// product at 64-128 tokens (bench/NOTES.md, session 9).
#include <cuda_fp16.h>

#include "common/device_utils.cuh"
#include "gptq_gemm/gptq_mma.cuh"
#include "gptq_gemm/gptq_mma_device.cuh"
#include "gptq_gemm/gptq_mma_epilogue.cuh"
#include "gptq_gemm/gptq_mma_plan.h"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define NIBBLE_WGMMA_KERNEL 1
#endif

namespace nibble::kernels::detail {
namespace {

#if defined(NIBBLE_WGMMA_KERNEL)
constexpr int kWgDepth = 4;  // halves of weights in flight per lane

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Generic-proxy writes to shared memory (the transposed x) before wgmma reads them.
__device__ __forceinline__ void fence_operands_for_wgmma() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Pins a value's definition (or use) to this point of the instruction stream:
// accumulators after a wgmma wait, A fragments and descriptors before the fence
// that starts their MMAs (a definition between the MMAs serializes them).
__device__ __forceinline__ void pin(float& v) { asm volatile("" : "+f"(v)::"memory"); }
__device__ __forceinline__ void pin(uint32_t& v) { asm volatile("" : "+r"(v)::"memory"); }

// B descriptor: K-major, no swizzle, LBO 128 bytes (k), SBO 256 bytes (tokens).
__device__ __forceinline__ uint64_t b_descriptor(uint32_t smem_addr) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(128 >> 4) << 16) |
         (static_cast<uint64_t>(256 >> 4) << 32);
}

// acc[.][H][.] += A (this warp's 16 rows of an m64 tile, k16) x B (k16 x 64 or
// 32 tokens).
template <int H>
__device__ __forceinline__ void wgmma_tile(float (&acc)[8][2][4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                           uint64_t desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, 1, 1, 1, 0;\n"
      : "+f"(acc[0][H][0]), "+f"(acc[0][H][1]), "+f"(acc[0][H][2]), "+f"(acc[0][H][3]), "+f"(acc[1][H][0]),
        "+f"(acc[1][H][1]), "+f"(acc[1][H][2]), "+f"(acc[1][H][3]), "+f"(acc[2][H][0]), "+f"(acc[2][H][1]),
        "+f"(acc[2][H][2]), "+f"(acc[2][H][3]), "+f"(acc[3][H][0]), "+f"(acc[3][H][1]), "+f"(acc[3][H][2]),
        "+f"(acc[3][H][3]), "+f"(acc[4][H][0]), "+f"(acc[4][H][1]), "+f"(acc[4][H][2]), "+f"(acc[4][H][3]),
        "+f"(acc[5][H][0]), "+f"(acc[5][H][1]), "+f"(acc[5][H][2]), "+f"(acc[5][H][3]), "+f"(acc[6][H][0]),
        "+f"(acc[6][H][1]), "+f"(acc[6][H][2]), "+f"(acc[6][H][3]), "+f"(acc[7][H][0]), "+f"(acc[7][H][1]),
        "+f"(acc[7][H][2]), "+f"(acc[7][H][3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc));
}
template <int H>
__device__ __forceinline__ void wgmma_tile(float (&acc)[4][2][4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                           uint64_t desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
      "{%16, %17, %18, %19}, %20, 1, 1, 1, 0;\n"
      : "+f"(acc[0][H][0]), "+f"(acc[0][H][1]), "+f"(acc[0][H][2]), "+f"(acc[0][H][3]), "+f"(acc[1][H][0]),
        "+f"(acc[1][H][1]), "+f"(acc[1][H][2]), "+f"(acc[1][H][3]), "+f"(acc[2][H][0]), "+f"(acc[2][H][1]),
        "+f"(acc[2][H][2]), "+f"(acc[2][H][3]), "+f"(acc[3][H][0]), "+f"(acc[3][H][1]), "+f"(acc[3][H][2]),
        "+f"(acc[3][H][3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc));
}

template <int H>
__device__ __forceinline__ void wgmma_tile(float (&acc)[16][2][4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                           uint64_t desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, 1, 1, 1, 0;\n"
      : "+f"(acc[0][H][0]), "+f"(acc[0][H][1]), "+f"(acc[0][H][2]), "+f"(acc[0][H][3]), "+f"(acc[1][H][0]), "+f"(acc[1][H][1]), "+f"(acc[1][H][2]), "+f"(acc[1][H][3]), "+f"(acc[2][H][0]), "+f"(acc[2][H][1]), "+f"(acc[2][H][2]), "+f"(acc[2][H][3]), "+f"(acc[3][H][0]), "+f"(acc[3][H][1]), "+f"(acc[3][H][2]), "+f"(acc[3][H][3]), "+f"(acc[4][H][0]), "+f"(acc[4][H][1]), "+f"(acc[4][H][2]), "+f"(acc[4][H][3]), "+f"(acc[5][H][0]), "+f"(acc[5][H][1]), "+f"(acc[5][H][2]), "+f"(acc[5][H][3]), "+f"(acc[6][H][0]), "+f"(acc[6][H][1]), "+f"(acc[6][H][2]), "+f"(acc[6][H][3]), "+f"(acc[7][H][0]), "+f"(acc[7][H][1]), "+f"(acc[7][H][2]), "+f"(acc[7][H][3]), "+f"(acc[8][H][0]), "+f"(acc[8][H][1]), "+f"(acc[8][H][2]), "+f"(acc[8][H][3]), "+f"(acc[9][H][0]), "+f"(acc[9][H][1]), "+f"(acc[9][H][2]), "+f"(acc[9][H][3]), "+f"(acc[10][H][0]), "+f"(acc[10][H][1]), "+f"(acc[10][H][2]), "+f"(acc[10][H][3]), "+f"(acc[11][H][0]), "+f"(acc[11][H][1]), "+f"(acc[11][H][2]), "+f"(acc[11][H][3]), "+f"(acc[12][H][0]), "+f"(acc[12][H][1]), "+f"(acc[12][H][2]), "+f"(acc[12][H][3]), "+f"(acc[13][H][0]), "+f"(acc[13][H][1]), "+f"(acc[13][H][2]), "+f"(acc[13][H][3]), "+f"(acc[14][H][0]), "+f"(acc[14][H][1]), "+f"(acc[14][H][2]), "+f"(acc[14][H][3]), "+f"(acc[15][H][0]), "+f"(acc[15][H][1]), "+f"(acc[15][H][2]), "+f"(acc[15][H][3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "l"(desc));
}

// One 32-row half of the lane's weights in the ring, with its group's scales and
// zeros when it starts a group.
struct WgHalf {
  uint4 w;
  uint2 s, z;
  bool starts_group;
};
#endif

// T tokens per block (32 or 64).
template <int T>
__global__ void __launch_bounds__(kWgmmaThreads, kWgmmaBlocksPerSm) gptq_wgmma_kernel(MmaParams p) {
#if defined(NIBBLE_WGMMA_KERNEL)
  constexpr int NT = T / 8;                       // token tiles of the accumulator layout
  constexpr int kStepBytes = T * 32;              // one k16 step of B: T tokens x 16 halves
  constexpr int kRawBytes = wgmma_raw_bytes(T);
  constexpr int kOperandBytes = wgmma_operand_bytes(T);
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ bool last_block;
  __half* raw = reinterpret_cast<__half*>(smem);                  // [stages][T tokens][kWgmmaRawStride]
  unsigned char* operand = smem + kWgmmaRawStages * kRawBytes;  // [2][8 k16 steps][kStepBytes]
  const uint32_t operand_addr = static_cast<uint32_t>(__cvta_generic_to_shared(operand));
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int mchunk = blockIdx.x, ntile = blockIdx.y, split = blockIdx.z;
  const int m0 = mchunk * T;
  const int col = ntile * kWgmmaTileN + warp * 32 + 4 * g;  // the lane's 4 columns col .. col + 3
  const bool col_ok = col < p.N;
  const int k_begin = split * p.rows_per_split;
  const int k_end = min(p.K, k_begin + p.rows_per_split);
  // Whole passes of kWgDepth halves: a data-dependent exit inside the unrolled
  // pass serializes every wgmma (ptxas C7513). Halves past k_end multiply zero x
  // (the plan keeps them to a split's partial end, see plan_mma).
  const int halves = (k_end - k_begin + 32 * kWgDepth - 1) / (32 * kWgDepth) * kWgDepth;
  const int chunks = halves / 4;

  // Weight loader: halves are requested in order, the pointers and the group
  // advancing with each request.
  mma::LaneWeightSource<MmaParams> src(p, k_begin, t, col);
  const size_t w_half = static_cast<size_t>(4) * p.N;
  int load_k = k_begin;
  auto load_half = [&](WgHalf& h) {
    const bool new_group = src.enter_row(p, load_k);
    const bool live = col_ok && load_k < k_end;
    h.starts_group = load_k == k_begin || new_group;
    h.w = live && load_k + 8 * t < k_end ? load_streaming(src.w) : make_uint4(0, 0, 0, 0);
    if (h.starts_group) {  // zeros past k_end: finite A fragments against zero x
      h.s = live ? __ldg(reinterpret_cast<const uint2*>(src.s)) : make_uint2(0, 0);
      h.z = live ? __ldg(reinterpret_cast<const uint2*>(src.z)) : make_uint2(0, 0);
    }
    src.w += w_half;
    load_k += 32;
  };

  // x chunk c (rows k_begin + 128 c ..) of the T tokens into raw stage
  // c % kWgmmaRawStages (zero past M and k_end); one commit group per call, empty
  // past the last chunk. Thread tid copies piece tid % 16 of tokens tid / 16 + 16 r.
  constexpr int kPieces = kMmaXChunkRows / 8;  // 16-byte pieces per token row
  constexpr int kTokenStep = kWgmmaThreads / kPieces;
  const int copy_tok = tid / kPieces, copy_piece = tid % kPieces;
  const __half* copy_src = p.x + (static_cast<size_t>(m0 + copy_tok) * p.K + k_begin + 8 * copy_piece);
  auto stage_raw = [&](int c) {
    if (c < chunks) {
      __half* dst = raw + (c % kWgmmaRawStages) * (T * kWgmmaRawStride) + copy_tok * kWgmmaRawStride +
                    8 * copy_piece;
      const bool row_ok = k_begin + c * kMmaXChunkRows + 8 * copy_piece < k_end;
#pragma unroll
      for (int r = 0; r < T / kTokenStep; ++r) {
        const bool ok = row_ok && m0 + copy_tok + kTokenStep * r < p.M;
        mma::cp_async16(dst + kTokenStep * r * kWgmmaRawStride,
                        ok ? copy_src + (static_cast<size_t>(kTokenStep * r) * p.K + c * kMmaXChunkRows) : p.x, ok);
      }
    }
    mma::cp_async_commit();
  };
  // Raw chunk c -> operand buffer c % 2: token tok's half hh (16 words, word j of
  // row 8t being pair j) becomes k16 step 2 hh + j / 2, core column j % 2, word t.
  // Thread tid moves token tid % T, halves tid / T + r kHalfStep (threads past
  // 4 T idle when 4 T < 256).
  constexpr int kHalfStep = kWgmmaThreads / T > 0 ? kWgmmaThreads / T : 1;
  const int move_tok = tid % T, move_half = tid / T;
  const int move_src = move_tok * kWgmmaRawStride + 32 * move_half;                            // halves
  const int move_dst = 2 * move_half * kStepBytes + (move_tok / 8) * 256 + (move_tok % 8) * 16;  // bytes
  static_assert(kWgmmaThreads % T == 0 || T % kWgmmaThreads == 0, "tokens and threads tile the chunk");
  auto transpose_chunk = [&](int c) {
    const __half* src_stage = raw + (c % kWgmmaRawStages) * (T * kWgmmaRawStride) + move_src;
    unsigned char* dst_stage = operand + (c & 1) * kOperandBytes + move_dst;
#pragma unroll
    for (int r = 0; r < (4 + kHalfStep - 1) / kHalfStep; ++r) {
      if (move_half + r * kHalfStep >= 4) break;
      const __half* src = src_stage + 32 * kHalfStep * r;
      uint4 row[4];
#pragma unroll
      for (int w = 0; w < 4; ++w) row[w] = *reinterpret_cast<const uint4*>(src + 8 * w);
      unsigned char* dst = dst_stage + 2 * kHalfStep * r * kStepBytes;
      *reinterpret_cast<uint4*>(dst) = make_uint4(row[0].x, row[1].x, row[2].x, row[3].x);
      *reinterpret_cast<uint4*>(dst + 128) = make_uint4(row[0].y, row[1].y, row[2].y, row[3].y);
      *reinterpret_cast<uint4*>(dst + kStepBytes) = make_uint4(row[0].z, row[1].z, row[2].z, row[3].z);
      *reinterpret_cast<uint4*>(dst + kStepBytes + 128) = make_uint4(row[0].w, row[1].w, row[2].w, row[3].w);
    }
  };

  WgHalf ring[kWgDepth];
  // The weights do not depend on the kernel before us (programmatic launch).
#pragma unroll
  for (int d = 0; d < kWgDepth; ++d) load_half(ring[d]);
  wait_for_previous_grid();
#pragma unroll
  for (int c = 0; c + 1 < kWgmmaRawStages; ++c) stage_raw(c);

  float total[NT][2][4];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        total[j][h][c] = 0.f;
        pin(total[j][h][c]);
      }
  mma::ColumnQuant quant;

  const uint64_t desc_base = b_descriptor(operand_addr);
  static_assert(kWgDepth % 4 == 0, "a pass of halves is whole chunks");
#pragma unroll 1
  for (int h0 = 0; h0 < halves; h0 += kWgDepth) {
    // The operand buffer of the pass's first chunk (passes of two chunks always
    // start on buffer 0).
    const uint64_t desc_pass = kWgDepth % 8 != 0 && ((h0 / 4) & 1) ? desc_base + (kOperandBytes >> 4) : desc_base;
#pragma unroll
    for (int d = 0; d < kWgDepth; ++d) {
      const int half = h0 + d;
      if (half % 4 == 0) {
        // A new chunk: its raw copy has landed (the next one may be in flight);
        // the operand buffer it goes to was last read two chunks ago.
        const int c = half / 4;
        mma::cp_async_wait<kWgmmaRawStages - 2>();
        __syncthreads();
        transpose_chunk(c);
        stage_raw(c + kWgmmaRawStages - 1);
        fence_operands_for_wgmma();
        __syncthreads();
      }
      WgHalf& cur = ring[d];
      if (cur.starts_group) mma::unpack_column_quant(cur.s, cur.z, quant);
      uint32_t a[4][4];
      mma::dequant_chunk<true>(cur.w, quant, a);
      // The slot refills at once: the proxy fence at the next chunk waits for
      // this thread's loads in flight (ncu: its long-scoreboard stall), so the
      // youngest is best issued before this half's MMAs rather than after.
      load_half(cur);
      // The step's operand buffer and offset inside it are compile-time offsets
      // from the pass's descriptor.
      const uint32_t step_offset = ((d / 4) & 1) * kOperandBytes + (d % 4) * 2 * kStepBytes;
      const uint64_t b0 = desc_pass + (step_offset >> 4), b1 = desc_pass + ((step_offset + kStepBytes) >> 4);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) pin(a[i][j]);
      wgmma_fence();
      wgmma_tile<0>(total, a[0][0], a[1][0], a[0][1], a[1][1], b0);
      wgmma_tile<1>(total, a[2][0], a[3][0], a[2][1], a[3][1], b0);
      wgmma_tile<0>(total, a[0][2], a[1][2], a[0][3], a[1][3], b1);
      wgmma_tile<1>(total, a[2][2], a[3][2], a[2][3], a[3][3], b1);
      wgmma_commit();
      // The previous half's MMAs are done: its A registers and, at a chunk's
      // end, its operand buffer are free again.
      wgmma_wait<1>();
    }
  }
  wgmma_wait<0>();
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int c = 0; c < 4; ++c) pin(total[j][h][c]);
  mma::cp_async_wait_all();
  static_assert(mma_stage_bytes<NT, kWgmmaTileN>() <= wgmma_smem_bytes(T), "the staged tile fits the x buffers");
  finish_mma_tile<NT, kWgmmaTileN, kWgmmaThreads, kWgmmaMaxClusterSplits>(
      p, total, reinterpret_cast<float*>(smem), m0, ntile, split, warp, g, t, col, col_ok, last_block);
#else
  (void)p;  // built for an architecture without wgmma: never launched (wgmma_kernel_available)
#endif
}

template <int T>
void launch_wgmma_tile(const MmaParams& p, dim3 grid, bool programmatic, cudaStream_t stream) {
  static const cudaError_t configured =
      cudaFuncSetAttribute(gptq_wgmma_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, wgmma_smem_bytes(T));
  (void)configured;
  // A tile's K splits as one cluster when the plan says so.
  launch_maybe_clustered(gptq_wgmma_kernel<T>, grid, dim3(kWgmmaThreads), static_cast<size_t>(wgmma_smem_bytes(T)), stream,
                         p.cluster != 0, programmatic, p);
}

template <int T>
int max_active_clusters_of(int cluster_size) {
  cudaFuncSetAttribute(gptq_wgmma_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, wgmma_smem_bytes(T));
  return max_active_clusters(gptq_wgmma_kernel<T>, dim3(kWgmmaThreads), static_cast<size_t>(wgmma_smem_bytes(T)),
                             cluster_size);
}

}  // namespace

void launch_wgmma(const MmaParams& p, int m_tile, dim3 grid, bool programmatic, cudaStream_t stream) {
  if (m_tile == kWgmmaSmallTokens)
    launch_wgmma_tile<kWgmmaSmallTokens>(p, grid, programmatic, stream);
  else if (m_tile == kWgmmaLargeTokens)
    launch_wgmma_tile<kWgmmaLargeTokens>(p, grid, programmatic, stream);
  else
    launch_wgmma_tile<kWgmmaTokens>(p, grid, programmatic, stream);
}

}  // namespace nibble::kernels::detail

namespace nibble::kernels {

int wgmma_max_active_clusters(int m_tile, int cluster_size) {
  return m_tile == kWgmmaSmallTokens   ? detail::max_active_clusters_of<kWgmmaSmallTokens>(cluster_size)
         : m_tile == kWgmmaLargeTokens ? detail::max_active_clusters_of<kWgmmaLargeTokens>(cluster_size)
                                       : detail::max_active_clusters_of<kWgmmaTokens>(cluster_size);
}

bool wgmma_kernel_available() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major != 9)
    return false;
  // Every compute capability 9.0 device loads the same image: the sm_90a one when
  // the build has it. The real kernel holds its sums in registers (150 or more);
  // the stub compiled for other architectures uses a handful.
  static const bool compiled = [] {
    cudaFuncAttributes attributes{};
    return cudaFuncGetAttributes(&attributes, detail::gptq_wgmma_kernel<kWgmmaTokens>) == cudaSuccess &&
           attributes.numRegs >= 64;
  }();
  return compiled;
}

}  // namespace nibble::kernels

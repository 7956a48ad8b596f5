// The tensor-core kernel of kernels/attention, flash-attention-2 style: each
// warp owns 16 query rows (tokens x heads of one GQA group, as in the CUDA-core
// kernel) and multiplies them with 64-key chunks of the paged cache
// through mma.sync m16n8k16 (fp16 in, fp32 accumulate): S = Q K^T, online
// softmax on the S fragments in registers (base-2, the scale folded into one
// multiply), then O += P V with P re-used from the S accumulators as the A
// operand. K and V chunks are double-buffered in shared memory by cp.async
// (16-byte pieces gathered through the block table), so the loads of chunk
// i + 1 run under the math of chunk i; fragments come from ldmatrix (.trans
// for V) on rows padded by 16 bytes (no bank conflicts). Only chunks that
// reach past the tile's first query or before its last query's window are
// masked. Blocks run heaviest tiles first (the last tiles of a causal prompt
// see the most keys), so the tail wave is short.
//
// Two block shapes: 4 warps on one planner tile (64 rows), or 8 warps on two
// consecutive tiles of one sequence (128 rows: half the K/V reads per query),
// where the block of the odd tile has nothing to do.
#include <cmath>

#include "attention/attention_work.cuh"
#include "attention/prefill_attention_mma.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kPlannerRows = 64;  // attention_tile_rows(head_dim) for head_dim <= 128
constexpr int kChunk = 64;        // keys per step
constexpr float kLog2e = 1.4426950408889634f;

// Shared memory of one block: two stages of (K chunk, V chunk); the Q tile (at
// most 128 rows) is staged in stage 1 before the first chunk lands there (Q
// lives in registers from then on).
template <int D>
struct MmaSmem {
  static constexpr int kStride = D + 8;                  // halves per row (16-byte pad)
  static constexpr int kChunkHalves = kChunk * kStride;  // one K or V chunk
  static constexpr int kStageHalves = 2 * kChunkHalves;
  static constexpr size_t kBytes = 2 * kStageHalves * sizeof(__half);
  static_assert(128 * kStride <= kStageHalves, "the Q tile must fit one stage");
};

__device__ __forceinline__ void mma_16816(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 fp16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// 16 bytes global -> shared, bypassing L1; zero-filled when !valid (src not read).
__device__ __forceinline__ void cp_async_16(__half* dst, const __half* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most one committed group is still in flight.
__device__ __forceinline__ void cp_async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

__device__ __forceinline__ float fast_exp2(float x) {  // 2^x; 2^-inf = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Starts the copy of keys [first_key, first_key + kChunk) of KV head kvh into
// k_dst / v_dst (rows of kStride halves); keys >= n_keys become zeros.
template <int D, int kThreads>
__device__ __forceinline__ void load_chunk_async(const PagedAttentionParams& p, const int32_t* table, int kvh,
                                                 int first_key, int n_keys, __half* k_dst, __half* v_dst, int tid) {
  constexpr int kStride = MmaSmem<D>::kStride;
  constexpr int kVecs = D / 8;                    // 16-byte pieces per row
  constexpr int kKeysPerPass = kThreads / kVecs;  // rows one pass of the block covers
  const int vi = tid % kVecs;
  const int bs = p.block_size;
  const bool pow2 = (bs & (bs - 1)) == 0;  // the usual case: shifts instead of divisions
  const int shift = __ffs(bs) - 1;
#pragma unroll
  for (int jj = tid / kVecs; jj < kChunk; jj += kKeysPerPass) {
    const int j = first_key + jj;
    const bool valid = j < n_keys;
    size_t off = 0;
    if (valid) {
      const int b = pow2 ? j >> shift : j / bs;
      const size_t block = table[b];
      off = ((block * p.num_kv_heads + kvh) * bs + (j - b * bs)) * D + vi * 8;
    }
    cp_async_16(k_dst + jj * kStride + vi * 8, p.k_cache + off, valid);
    cp_async_16(v_dst + jj * kStride + vi * 8, p.v_cache + off, valid);
  }
}

// 4 warps: three blocks per SM at head_dim 128 (3 x 68 KiB of shared memory,
// at most 170 registers per thread; 167 without the bound, no spills).
template <int D, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, kWarps == 4 ? 3 : 1) mma_attention_kernel(PagedAttentionParams p) {
  static_assert(kWarps == 4 || kWarps == 8, "one or two planner tiles per block");
  constexpr int kThreads = kWarps * 32;
  constexpr int kRows = kWarps * 16;
  constexpr int kTiles = kRows / kPlannerRows;  // planner tiles per block
  using Smem = MmaSmem<D>;
  constexpr int kStride = Smem::kStride;
  constexpr int kDSteps = D / 16;  // k-steps of S = Q K^T
  constexpr int kDTiles = D / 8;   // n-tiles of O
  constexpr int kKeyTiles = kChunk / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* const stage_base = reinterpret_cast<__half*>(smem_raw);

  // blockIdx.x runs over (item, KV head) with the last items (the most keys in
  // a causal prompt) first.
  const int nkv = p.num_kv_heads;
  const int item = p.num_work - 1 - static_cast<int>(blockIdx.x) / nkv;
  const int kvh = static_cast<int>(blockIdx.x) % nkv, split = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;  // mma fragment coordinates
  // The planner cuts each sequence into tiles of tile_tokens tokens; a block of
  // two tiles starts at an even one (the odd tile's block returns).
  const int tile_tokens = kPlannerRows / (p.num_heads / nkv);
  if (kTiles > 1 && (p.work_qoff[item] / tile_tokens) % kTiles != 0) return;
  const BlockWork work = block_work(p, kTiles * tile_tokens * (p.num_heads / nkv), kChunk, item, split);
  if (work.n_tok <= 0) return;
  const auto [seq, q_first, q_len, qoff, group, n_tok, n_rows, ctx_start, n_keys, k_begin, c_begin, c_end] = work;

  if (c_begin >= c_end) {
    for (int r = tid; r < n_rows; r += kThreads) {
      const int token = q_first + qoff + r / group, head = kvh * group + r % group;
      const size_t idx = (static_cast<size_t>(split) * p.num_tokens + token) * p.num_heads + head;
      p.split_lse[idx * 2] = -INFINITY;
      p.split_lse[idx * 2 + 1] = 0.0f;
    }
    return;
  }

  const int32_t* table = p.kv_indices + p.kv_indptr[seq];
  auto k_stage = [&](int s) { return stage_base + s * Smem::kStageHalves; };
  auto v_stage = [&](int s) { return stage_base + s * Smem::kStageHalves + Smem::kChunkHalves; };
  load_chunk_async<D, kThreads>(p, table, kvh, k_begin + c_begin * kChunk, n_keys, k_stage(0), v_stage(0), tid);
  cp_async_commit();

  // The Q tile goes through stage 1 (free until the second chunk's loads).
  __half* const q_s = k_stage(1);
  constexpr int kVecs = D / 8;
  for (int idx = tid; idx < kRows * kVecs; idx += kThreads) {
    const int r = idx / kVecs, vi = idx % kVecs;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < n_rows) {
      const int token = q_first + qoff + r / group, head = kvh * group + r % group;
      val = *reinterpret_cast<const uint4*>(p.q + (static_cast<size_t>(token) * p.num_heads + head) * D + vi * 8);
    }
    *reinterpret_cast<uint4*>(q_s + r * kStride + vi * 8) = val;
  }
  __syncthreads();

  // This warp's Q rows as A fragments, kept in registers for the whole kernel.
  const int row0 = warp * 16 + g, row1 = row0 + 8;
  uint32_t qa[kDSteps][4];
  {
    const __half* q_ld = q_s + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride + (lane >> 4) * 8;
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) ldmatrix_x4(qa[ks], q_ld + ks * 16);
  }
  // Positions of this thread's two rows and the first keys of their windows
  // (rows past the tile see no key; their output is dropped).
  const int qpos0 = row0 < n_rows ? ctx_start + qoff + row0 / group : -1;
  const int qpos1 = row1 < n_rows ? ctx_start + qoff + row1 / group : -1;
  const int qlo0 = p.window > 0 ? qpos0 + 1 - p.window : 0;
  const int qlo1 = p.window > 0 ? qpos1 + 1 - p.window : 0;
  // Chunks entirely at or before the tile's first query and inside its last
  // query's window need no mask.
  const int first_qpos = ctx_start + qoff, last_window_lo = p.window > 0 ? n_keys - p.window : 0;

  // Per-lane ldmatrix row offsets: K (keys x dims, as the col-major B of
  // Q K^T) and V (keys x dims, transposed into the B of P V).
  const int k_ld = ((lane & 7) + (lane >> 4) * 8) * kStride + ((lane >> 3) & 1) * 8;
  const int v_ld = ((lane & 7) + ((lane >> 3) & 1) * 8) * kStride + (lane >> 4) * 8;

  float o[kDTiles][4];
#pragma unroll
  for (int j = 0; j < kDTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;  // m: base-2 scaled; l: this thread's partial sums
  const float scale_log2 = p.scale * kLog2e;
  __syncthreads();  // every warp has its Q fragments: stage 1 may be overwritten

  for (int chunk = c_begin; chunk < c_end; ++chunk) {
    const int stage = (chunk - c_begin) & 1;
    if (chunk + 1 < c_end)
      load_chunk_async<D, kThreads>(p, table, kvh, k_begin + (chunk + 1) * kChunk, n_keys, k_stage(stage ^ 1),
                                    v_stage(stage ^ 1), tid);
    cp_async_commit();  // possibly empty: keeps the wait below uniform
    cp_async_wait_all_but_one();
    __syncthreads();  // this chunk is in shared memory for every warp
    const __half* k_s = k_stage(stage);
    const __half* v_s = v_stage(stage);

    // S = Q K^T: 16 rows x 64 keys as eight n-tiles of 8 keys.
    float s[kKeyTiles][4];
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) {
#pragma unroll
      for (int kb = 0; kb < kKeyTiles / 2; ++kb) {
        uint32_t b[4];
        ldmatrix_x4(b, k_s + k_ld + kb * 16 * kStride + ks * 16);
        mma_16816(s[2 * kb], qa[ks], b);
        mma_16816(s[2 * kb + 1], qa[ks], b + 2);
      }
    }
    // Scale into base 2; mask (causal, window, past the keys) where the chunk needs it.
    const int key0 = k_begin + chunk * kChunk;
    const bool needs_mask = key0 + kChunk - 1 > first_qpos || key0 < last_window_lo;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] *= scale_log2;
    }
    if (needs_mask) {
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
        const int key = key0 + nt * 8 + t * 2;
        if (!(key <= qpos0 && key >= qlo0)) s[nt][0] = -INFINITY;
        if (!(key + 1 <= qpos0 && key + 1 >= qlo0)) s[nt][1] = -INFINITY;
        if (!(key <= qpos1 && key >= qlo1)) s[nt][2] = -INFINITY;
        if (!(key + 1 <= qpos1 && key + 1 >= qlo1)) s[nt][3] = -INFINITY;
      }
    }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
      mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
      mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float new0 = fmaxf(m0, mx0), new1 = fmaxf(m1, mx1);
    const float base0 = new0 == -INFINITY ? 0.0f : new0, base1 = new1 == -INFINITY ? 0.0f : new1;
    const float alpha0 = fast_exp2(m0 - base0), alpha1 = fast_exp2(m1 - base1);
    m0 = new0;
    m1 = new1;
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kKeyTiles; ++nt) {
      s[nt][0] = fast_exp2(s[nt][0] - base0);
      s[nt][1] = fast_exp2(s[nt][1] - base0);
      s[nt][2] = fast_exp2(s[nt][2] - base1);
      s[nt][3] = fast_exp2(s[nt][3] - base1);
      sum0 += s[nt][0] + s[nt][1];
      sum1 += s[nt][2] + s[nt][3];
    }
    l0 = l0 * alpha0 + sum0;
    l1 = l1 * alpha1 + sum1;
#pragma unroll
    for (int j = 0; j < kDTiles; ++j) {
      o[j][0] *= alpha0;
      o[j][1] *= alpha0;
      o[j][2] *= alpha1;
      o[j][3] *= alpha1;
    }
    // O += P V, 16 keys per k-step: P as A fragments straight from S.
#pragma unroll
    for (int kk = 0; kk < kChunk / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = pack_half2(s[2 * kk][0], s[2 * kk][1]);
      pa[1] = pack_half2(s[2 * kk][2], s[2 * kk][3]);
      pa[2] = pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[3] = pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int jp = 0; jp < kDTiles / 2; ++jp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_s + v_ld + kk * 16 * kStride + jp * 16);
        mma_16816(o[2 * jp], pa, b);
        mma_16816(o[2 * jp + 1], pa, b + 2);
      }
    }
    __syncthreads();  // this stage is consumed before the next iteration refills it
  }

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
#pragma unroll
  for (int half_row = 0; half_row < 2; ++half_row) {
    const int r = half_row == 0 ? row0 : row1;
    if (r >= n_rows) continue;
    const float l = half_row == 0 ? l0 : l1;
    const float m = half_row == 0 ? m0 : m1;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const int token = q_first + qoff + r / group, head = kvh * group + r % group;
    const size_t idx = static_cast<size_t>(token) * p.num_heads + head;
    if (p.num_splits == 1) {
#pragma unroll
      for (int j = 0; j < kDTiles; ++j) {
        const int d = j * 8 + t * 2;
        *reinterpret_cast<__half2*>(p.out + idx * D + d) =
            __floats2half2_rn(o[j][half_row * 2] * inv, o[j][half_row * 2 + 1] * inv);
      }
    } else {
      const size_t sidx = static_cast<size_t>(split) * p.num_tokens * p.num_heads + idx;
#pragma unroll
      for (int j = 0; j < kDTiles; ++j) {
        const int d = j * 8 + t * 2;
        *reinterpret_cast<float2*>(p.split_out + sidx * D + d) =
            make_float2(o[j][half_row * 2] * inv, o[j][half_row * 2 + 1] * inv);
      }
      if (t == 0) {
        p.split_lse[sidx * 2] = m;
        p.split_lse[sidx * 2 + 1] = l;
      }
    }
  }
}

// Opts the kernel into its dynamic shared memory once per process (beyond
// 48 KiB needs it); the error, if any, comes back on every launch.
template <int D, int kWarps>
cudaError_t launch_d(const PagedAttentionParams& p, cudaStream_t stream) {
  constexpr size_t kSmem = MmaSmem<D>::kBytes;
  static const cudaError_t opt_in =
      kSmem > 48 * 1024
          ? cudaFuncSetAttribute(mma_attention_kernel<D, kWarps>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(kSmem))
          : cudaSuccess;
  if (opt_in != cudaSuccess) return opt_in;
  const dim3 grid(static_cast<unsigned>(p.num_work) * p.num_kv_heads, p.num_splits);
  mma_attention_kernel<D, kWarps><<<grid, kWarps * 32, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

bool mma_attention_supported(const PagedAttentionParams& p) {
  return p.use_tensor_cores && (p.head_dim == 64 || p.head_dim == 128) && p.num_kv_heads > 0 &&
         p.num_heads / p.num_kv_heads <= kPlannerRows;
}

cudaError_t launch_mma_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  return launch_mma_attention_warps(p, kMmaAttentionWarps, stream);
}

cudaError_t launch_mma_attention_warps(const PagedAttentionParams& p, int warps, cudaStream_t stream) {
  if (!mma_attention_supported(p) || (warps != 4 && warps != 8)) return cudaErrorInvalidValue;
  if (p.head_dim == 64) return warps == 4 ? launch_d<64, 4>(p, stream) : launch_d<64, 8>(p, stream);
  return warps == 4 ? launch_d<128, 4>(p, stream) : launch_d<128, 8>(p, stream);
}

}  // namespace nibble::kernels

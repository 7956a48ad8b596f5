// The tensor-core kernel of kernels/attention, flash-attention-2 style: each
// warp owns 16 or 32 query rows (tokens x heads of one GQA group, as in the
// CUDA-core kernel) and multiplies them with 64-key chunks of the paged cache
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
// Block shapes: see mma_attention_kernel.
#include <climits>
#include <cmath>

#include "attention/attention_work.cuh"
#include "attention/prefill_attention_mma.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kPlannerRows = 64;  // attention_tile_rows(head_dim) for head_dim <= 128
constexpr int kChunk = 64;        // keys per step
constexpr float kLog2e = 1.4426950408889634f;

// Shared memory of one block: the Q tile when it stays there, then two stages
// of (K chunk, V chunk). A Q tile whose fragments go to registers (at most 128
// rows) is staged in stage 1 before the first chunk lands there.
template <int D>
struct MmaSmem {
  static constexpr int kStride = D + 8;                  // halves per row (16-byte pad)
  static constexpr int kChunkHalves = kChunk * kStride;  // one K or V chunk
  static constexpr int kStageHalves = 2 * kChunkHalves;
  static_assert(128 * kStride <= kStageHalves, "the Q tile must fit one stage");
  static constexpr int q_halves(int rows, bool q_in_registers) { return q_in_registers ? 0 : rows * kStride; }
  static constexpr size_t bytes(int rows, bool q_in_registers) {
    return (q_halves(rows, q_in_registers) + 2 * kStageHalves) * sizeof(__half);
  }
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

// Block shapes (kWarps x kMTiles m-tiles of 16 rows per warp):
//  4 x 1: one planner tile (64 rows), Q fragments in registers; three blocks
//         per SM at head_dim 128 (3 x 68 KiB of shared memory, at most 170
//         registers per thread).
//  8 x 1: two planner tiles (128 rows), Q in registers, one block per SM.
//  4 x 2: two planner tiles (128 rows); each K and V fragment feeds two m-tiles
//         (half the shared-memory reads per FLOP of 4 x 1), Q re-read from its
//         own shared tile per chunk (no registers for it); two blocks per SM.
// A block of two tiles starts at an even planner tile of its sequence; the
// block of the odd tile returns at once.
template <int D, int kWarps, int kMTiles>
__global__ void __launch_bounds__(kWarps * 32, kMTiles == 2 ? 2 : (kWarps == 4 ? 3 : 1))
    mma_attention_kernel(PagedAttentionParams p) {
  static_assert((kWarps == 4 || kWarps == 8) && (kMTiles == 1 || kMTiles == 2) && kWarps * kMTiles <= 8,
                "one or two planner tiles per block");
  constexpr int kThreads = kWarps * 32;
  constexpr int kWarpRows = 16 * kMTiles;
  constexpr int kRows = kWarps * kWarpRows;
  constexpr int kTiles = kRows / kPlannerRows;  // planner tiles per block
  constexpr bool kQInRegisters = kMTiles == 1;
  using Smem = MmaSmem<D>;
  constexpr int kStride = Smem::kStride;
  constexpr int kDSteps = D / 16;  // k-steps of S = Q K^T
  constexpr int kDTiles = D / 8;   // n-tiles of O
  constexpr int kKeyTiles = kChunk / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __half* const smem = reinterpret_cast<__half*>(smem_raw);
  __half* const stage_base = smem + Smem::q_halves(kRows, kQInRegisters);

  // blockIdx.x runs over (item, KV head) with the last items (the most keys in
  // a causal prompt) first.
  const int nkv = p.num_kv_heads;
  const int item = p.num_work - 1 - static_cast<int>(blockIdx.x) / nkv;
  const int kvh = static_cast<int>(blockIdx.x) % nkv, split = blockIdx.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;  // mma fragment coordinates
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

  // The Q tile: in its own region, or through stage 1 (free until the second
  // chunk's loads) when the fragments stay in registers.
  __half* const q_s = kQInRegisters ? k_stage(1) : smem;
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

  // Per-lane ldmatrix offsets: Q (A operand, this warp's first m-tile), K
  // (keys x dims, as the col-major B of Q K^T) and V (keys x dims, transposed
  // into the B of P V).
  const int q_ld = (warp * kWarpRows + (lane & 7) + ((lane >> 3) & 1) * 8) * kStride + (lane >> 4) * 8;
  const int k_ld = ((lane & 7) + (lane >> 4) * 8) * kStride + ((lane >> 3) & 1) * 8;
  const int v_ld = ((lane & 7) + ((lane >> 3) & 1) * 8) * kStride + (lane >> 4) * 8;
  uint32_t qa[kQInRegisters ? kDSteps : 1][4];
  if constexpr (kQInRegisters) {
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) ldmatrix_x4(qa[ks], q_s + q_ld + ks * 16);
  }

  // This thread's rows: m-tile mt, half h (fragment rows g and g + 8), and
  // their positions (rows past the tile see no key; their output is dropped).
  int qpos[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp * kWarpRows + mt * 16 + h * 8 + g;
      qpos[mt][h] = r < n_rows ? ctx_start + qoff + r / group : -1;
    }
  }
  const int window = p.window > 0 ? p.window : INT_MAX / 2;  // a row sees keys (qpos - window, qpos]
  // Chunks entirely at or before the tile's first query and inside its last
  // query's window need no mask.
  const int first_qpos = ctx_start + qoff, last_window_lo = p.window > 0 ? n_keys - p.window : 0;

  float o[kMTiles][kDTiles][4];
  float m[kMTiles][2], l[kMTiles][2];  // m: base-2 scaled row maxima; l: this thread's partial sums
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int j = 0; j < kDTiles; ++j) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.0f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }
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

    // S = Q K^T: per m-tile, 16 rows x 64 keys as eight n-tiles of 8 keys.
    float s[kMTiles][kKeyTiles][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
    }
#pragma unroll
    for (int ks = 0; ks < kDSteps; ++ks) {
      uint32_t a[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        if constexpr (kQInRegisters) {
#pragma unroll
          for (int i = 0; i < 4; ++i) a[mt][i] = qa[ks][i];
        } else {
          ldmatrix_x4(a[mt], q_s + q_ld + mt * 16 * kStride + ks * 16);
        }
      }
#pragma unroll
      for (int kb = 0; kb < kKeyTiles / 2; ++kb) {
        uint32_t b[4];
        ldmatrix_x4(b, k_s + k_ld + kb * 16 * kStride + ks * 16);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_16816(s[mt][2 * kb], a[mt], b);
          mma_16816(s[mt][2 * kb + 1], a[mt], b + 2);
        }
      }
    }
    // Scale into base 2; mask (causal, window, past the keys) where the chunk
    // needs it; online softmax per row; P replaces S.
    const int key0 = k_begin + chunk * kChunk;
    const bool needs_mask = key0 + kChunk - 1 > first_qpos || key0 < last_window_lo;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] *= scale_log2;
      }
      if (needs_mask) {
#pragma unroll
        for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = key0 + nt * 8 + t * 2 + (e & 1), h = e >> 1;
            if (!(key <= qpos[mt][h] && key > qpos[mt][h] - window)) s[mt][nt][e] = -INFINITY;
          }
        }
      }
      float mx[2] = {-INFINITY, -INFINITY}, base[2], alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
        mx[0] = fmaxf(mx[0], fmaxf(s[mt][nt][0], s[mt][nt][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[mt][nt][2], s[mt][nt][3]));
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        const float m_new = fmaxf(m[mt][h], mx[h]);
        base[h] = m_new == -INFINITY ? 0.0f : m_new;
        alpha[h] = fast_exp2(m[mt][h] - base[h]);
        m[mt][h] = m_new;
      }
#pragma unroll
      for (int nt = 0; nt < kKeyTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = fast_exp2(s[mt][nt][e] - base[e >> 1]);
        sum[0] += s[mt][nt][0] + s[mt][nt][1];
        sum[1] += s[mt][nt][2] + s[mt][nt][3];
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) l[mt][h] = l[mt][h] * alpha[h] + sum[h];
#pragma unroll
      for (int j = 0; j < kDTiles; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) o[mt][j][e] *= alpha[e >> 1];
      }
    }
    // O += P V, 16 keys per k-step: P as A fragments straight from S; each V
    // fragment feeds every m-tile.
#pragma unroll
    for (int kk = 0; kk < kChunk / 16; ++kk) {
      uint32_t pa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        pa[mt][0] = pack_half2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pa[mt][1] = pack_half2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pa[mt][2] = pack_half2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pa[mt][3] = pack_half2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int jp = 0; jp < kDTiles / 2; ++jp) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_s + v_ld + kk * 16 * kStride + jp * 16);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_16816(o[mt][2 * jp], pa[mt], b);
          mma_16816(o[mt][2 * jp + 1], pa[mt], b + 2);
        }
      }
    }
    __syncthreads();  // this stage is consumed before the next iteration refills it
  }

#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float lsum = l[mt][h];
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
      const int r = warp * kWarpRows + mt * 16 + h * 8 + g;
      if (r >= n_rows) continue;
      const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
      const int token = q_first + qoff + r / group, head = kvh * group + r % group;
      const size_t idx = static_cast<size_t>(token) * p.num_heads + head;
      if (p.num_splits == 1) {
#pragma unroll
        for (int j = 0; j < kDTiles; ++j) {
          const int d = j * 8 + t * 2;
          *reinterpret_cast<__half2*>(p.out + idx * D + d) =
              __floats2half2_rn(o[mt][j][2 * h] * inv, o[mt][j][2 * h + 1] * inv);
        }
      } else {
        const size_t sidx = static_cast<size_t>(split) * p.num_tokens * p.num_heads + idx;
#pragma unroll
        for (int j = 0; j < kDTiles; ++j) {
          const int d = j * 8 + t * 2;
          *reinterpret_cast<float2*>(p.split_out + sidx * D + d) =
              make_float2(o[mt][j][2 * h] * inv, o[mt][j][2 * h + 1] * inv);
        }
        if (t == 0) {
          p.split_lse[sidx * 2] = m[mt][h];
          p.split_lse[sidx * 2 + 1] = lsum;
        }
      }
    }
  }
}

// Opts the kernel into its dynamic shared memory once per process (beyond
// 48 KiB needs it); the error, if any, comes back on every launch.
template <int D, int kWarps, int kMTiles>
cudaError_t launch_d(const PagedAttentionParams& p, cudaStream_t stream) {
  constexpr size_t kSmem = MmaSmem<D>::bytes(kWarps * 16 * kMTiles, kMTiles == 1);
  static const cudaError_t opt_in =
      kSmem > 48 * 1024 ? cudaFuncSetAttribute(mma_attention_kernel<D, kWarps, kMTiles>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem))
                        : cudaSuccess;
  if (opt_in != cudaSuccess) return opt_in;
  const dim3 grid(static_cast<unsigned>(p.num_work) * p.num_kv_heads, p.num_splits);
  mma_attention_kernel<D, kWarps, kMTiles><<<grid, kWarps * 32, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

bool mma_attention_supported(const PagedAttentionParams& p) {
  return p.use_tensor_cores && (p.head_dim == 64 || p.head_dim == 128) && p.num_kv_heads > 0 &&
         p.num_heads / p.num_kv_heads <= kPlannerRows;
}

cudaError_t launch_mma_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  return launch_mma_attention_shape(p, kMmaAttentionShape, stream);
}

namespace {

template <int D>
cudaError_t launch_head_dim(const PagedAttentionParams& p, MmaAttentionShape shape, cudaStream_t stream) {
  if (shape.warps == 4 && shape.m_tiles == 1) return launch_d<D, 4, 1>(p, stream);
  if (shape.warps == 8 && shape.m_tiles == 1) return launch_d<D, 8, 1>(p, stream);
  if (shape.warps == 4 && shape.m_tiles == 2) return launch_d<D, 4, 2>(p, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_mma_attention_shape(const PagedAttentionParams& p, MmaAttentionShape shape, cudaStream_t stream) {
  if (!mma_attention_supported(p)) return cudaErrorInvalidValue;
  return p.head_dim == 64 ? launch_head_dim<64>(p, shape, stream) : launch_head_dim<128>(p, shape, stream);
}

}  // namespace nibble::kernels

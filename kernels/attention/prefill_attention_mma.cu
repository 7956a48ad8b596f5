// The tensor-core kernel of kernels/attention, flash-attention-2 style: each of
// the four warps owns 16 query rows (tokens x heads of one GQA group, as in the
// CUDA-core kernel) and multiplies them with 32-key chunks of the paged cache
// through mma.sync m16n8k16 (fp16 in, fp32 accumulate): S = Q K^T, online
// softmax on the S fragments in registers, then O += P V with P re-used from
// the S accumulators as the A operand. K and V chunks go through shared memory
// with rows padded by 16 bytes (no bank conflicts on the fragment loads).
#include <cmath>

#include "attention/attention_work.cuh"
#include "attention/prefill_attention_mma.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 64;   // query rows per block, 16 per warp
constexpr int kChunk = 32;  // keys per step
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ void mma_16816(float* c, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ uint32_t pack_halves(__half lo, __half hi) {
  const uint32_t l = *reinterpret_cast<const unsigned short*>(&lo);
  const uint32_t h = *reinterpret_cast<const unsigned short*>(&hi);
  return l | (h << 16);
}

template <int D>
__global__ void __launch_bounds__(kThreads) mma_attention_kernel(PagedAttentionParams p) {
  constexpr int kStride = D + 8;   // halves per shared row (16-byte pad)
  constexpr int kDSteps = D / 16;  // k-steps of S = Q K^T
  constexpr int kDTiles = D / 8;   // n-tiles of O
  __shared__ __align__(16) __half q_s[kRows * kStride];
  __shared__ __align__(16) __half k_s[kChunk * kStride];
  __shared__ __align__(16) __half v_s[kChunk * kStride];

  const int item = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;  // mma fragment coordinates
  const BlockWork work = block_work(p, kRows, kChunk, item, split);
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

  constexpr int kVecs = D / 8;  // 16-byte vectors per row
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
#pragma unroll
  for (int ks = 0; ks < kDSteps; ++ks) {
    const int col = ks * 16 + t * 2;
    qa[ks][0] = *reinterpret_cast<const uint32_t*>(q_s + row0 * kStride + col);
    qa[ks][1] = *reinterpret_cast<const uint32_t*>(q_s + row1 * kStride + col);
    qa[ks][2] = *reinterpret_cast<const uint32_t*>(q_s + row0 * kStride + col + 8);
    qa[ks][3] = *reinterpret_cast<const uint32_t*>(q_s + row1 * kStride + col + 8);
  }
  // Positions of this thread's two rows and the first keys of their windows
  // (rows past the tile see no key; their output is dropped).
  const int qpos0 = row0 < n_rows ? ctx_start + qoff + row0 / group : -1;
  const int qpos1 = row1 < n_rows ? ctx_start + qoff + row1 / group : -1;
  const int qlo0 = p.window > 0 ? qpos0 + 1 - p.window : 0;
  const int qlo1 = p.window > 0 ? qpos1 + 1 - p.window : 0;

  float o[kDTiles][4];
#pragma unroll
  for (int j = 0; j < kDTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;  // l: this thread's partial sums
  const float scale_log2 = p.scale * kLog2e;
  const int32_t* table = p.kv_indices + p.kv_indptr[seq];

  for (int chunk = c_begin; chunk < c_end; ++chunk) {
    __syncthreads();  // the previous chunk is consumed
    for (int idx = tid; idx < kChunk * kVecs; idx += kThreads) {
      const int jj = idx / kVecs, vi = idx % kVecs;
      const int j = k_begin + chunk * kChunk + jj;
      uint4 kv, vv;
      load_kv_piece(p, table, kvh, D, j, n_keys, vi, kv, vv);
      *reinterpret_cast<uint4*>(k_s + jj * kStride + vi * 8) = kv;
      *reinterpret_cast<uint4*>(v_s + jj * kStride + vi * 8) = vv;
    }
    __syncthreads();

    // S = Q K^T: 16 rows x 32 keys as four n-tiles of 8 keys.
    float s[4][4];
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < kDSteps; ++ks) {
        const __half* krow = k_s + (nt * 8 + g) * kStride + ks * 16 + t * 2;
        uint32_t b[2];
        b[0] = *reinterpret_cast<const uint32_t*>(krow);
        b[1] = *reinterpret_cast<const uint32_t*>(krow + 8);
        mma_16816(s[nt], qa[ks], b);
      }
    }
    // Scale, causal and window mask, online softmax (rows row0 and row1 of this thread).
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      const int key = k_begin + chunk * kChunk + nt * 8 + t * 2;
      s[nt][0] = key <= qpos0 && key >= qlo0 ? s[nt][0] * scale_log2 : -INFINITY;
      s[nt][1] = key + 1 <= qpos0 && key + 1 >= qlo0 ? s[nt][1] * scale_log2 : -INFINITY;
      s[nt][2] = key <= qpos1 && key >= qlo1 ? s[nt][2] * scale_log2 : -INFINITY;
      s[nt][3] = key + 1 <= qpos1 && key + 1 >= qlo1 ? s[nt][3] * scale_log2 : -INFINITY;
      if (key >= n_keys) s[nt][0] = s[nt][2] = -INFINITY;
      if (key + 1 >= n_keys) s[nt][1] = s[nt][3] = -INFINITY;
      mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
      mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float new0 = fmaxf(m0, mx0), new1 = fmaxf(m1, mx1);
    const float base0 = new0 == -INFINITY ? 0.0f : new0, base1 = new1 == -INFINITY ? 0.0f : new1;
    const float alpha0 = exp2f(m0 - base0), alpha1 = exp2f(m1 - base1);
    m0 = new0;
    m1 = new1;
    uint32_t pa[2][4];  // P as A fragments: two k-steps of 16 keys
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      const float p0 = exp2f(s[nt][0] - base0), p1 = exp2f(s[nt][1] - base0);
      const float p2 = exp2f(s[nt][2] - base1), p3 = exp2f(s[nt][3] - base1);
      sum0 += p0 + p1;
      sum1 += p2 + p3;
      pa[nt / 2][(nt % 2) * 2 + 0] = pack_half2(p0, p1);
      pa[nt / 2][(nt % 2) * 2 + 1] = pack_half2(p2, p3);
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
    // O += P V: B fragment (keys x dims) read from V rows.
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      const __half* v0 = v_s + (kk * 16 + t * 2) * kStride + g;
#pragma unroll
      for (int j = 0; j < kDTiles; ++j) {
        const __half* v = v0 + j * 8;
        uint32_t b[2];
        b[0] = pack_halves(v[0], v[kStride]);
        b[1] = pack_halves(v[8 * kStride], v[9 * kStride]);
        mma_16816(o[j], pa[kk], b);
      }
    }
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
        p.split_out[sidx * D + d] = o[j][half_row * 2] * inv;
        p.split_out[sidx * D + d + 1] = o[j][half_row * 2 + 1] * inv;
      }
      if (t == 0) {
        p.split_lse[sidx * 2] = m;
        p.split_lse[sidx * 2 + 1] = l;
      }
    }
  }
}

}  // namespace

bool mma_attention_supported(const PagedAttentionParams& p) {
  return p.use_tensor_cores && (p.head_dim == 64 || p.head_dim == 128) && p.num_kv_heads > 0 &&
         p.num_heads / p.num_kv_heads <= kRows;
}

cudaError_t launch_mma_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  const dim3 grid(p.num_work, p.num_kv_heads, p.num_splits);
  if (p.head_dim == 64)
    mma_attention_kernel<64><<<grid, kThreads, 0, stream>>>(p);
  else if (p.head_dim == 128)
    mma_attention_kernel<128><<<grid, kThreads, 0, stream>>>(p);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace nibble::kernels

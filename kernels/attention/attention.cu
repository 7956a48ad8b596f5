#include <cmath>

#include "attention/attention.h"
#include "attention/decode_attention.cuh"
#include "attention/attention_work.cuh"
#include "attention/prefill_attention_mma.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 32;  // keys per step: one per lane
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float2 half2_bits_to_float2(uint32_t bits) {
  __half2 h;
  memcpy(&h, &bits, sizeof h);
  return __half22float2(h);
}

// Block layout: warp w owns query rows w, w + 4, w + 8, ... (RPW of them); in the
// score step lane l owns key l of the chunk, in the PV step head dims l, l+32, ...
// Shared memory: q [rows][D/2] half2, k [32][D/2 + 1] half2 (odd stride: no bank
// conflicts), v [32][D] half.
template <int DCOLS, int RPW>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(PagedAttentionParams p) {
  constexpr int kRows = kWarps * RPW;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int D = p.head_dim, D2 = D / 2, kstride = D2 + 1;
  uint32_t* q_s = reinterpret_cast<uint32_t*>(smem_raw);
  uint32_t* k_s = q_s + kRows * D2;
  __half* v_s = reinterpret_cast<__half*>(k_s + kChunk * kstride);

  const int item = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const BlockWork work = block_work(p, kRows, kChunk, item, split);
  if (work.n_tok <= 0) return;
  const auto [seq, q_first, q_len, qoff, group, n_tok, n_rows, ctx_start, n_keys, k_begin, c_begin, c_end] = work;

  if (c_begin >= c_end) {  // nothing for this split: tell the combine pass
    for (int r = tid; r < n_rows; r += kThreads) {
      const int token = q_first + qoff + r / group, head = kvh * group + r % group;
      const size_t idx = (static_cast<size_t>(split) * p.num_tokens + token) * p.num_heads + head;
      p.split_lse[idx * 2] = -INFINITY;
      p.split_lse[idx * 2 + 1] = 0.0f;
    }
    return;
  }

  const uint32_t* q_words = reinterpret_cast<const uint32_t*>(p.q);
  for (int idx = tid; idx < kRows * D2; idx += kThreads) {
    const int r = idx / D2, d2 = idx % D2;
    uint32_t val = 0;
    if (r < n_rows) {
      const int token = q_first + qoff + r / group, head = kvh * group + r % group;
      val = q_words[(static_cast<size_t>(token) * p.num_heads + head) * D2 + d2];
    }
    q_s[idx] = val;
  }

  float m[RPW], l[RPW], o[RPW][DCOLS];
#pragma unroll
  for (int i = 0; i < RPW; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < DCOLS; ++c) o[i][c] = 0.0f;
  }

  const float scale_log2 = p.scale * kLog2e;
  const int32_t* table = p.kv_indices + p.kv_indptr[seq];
  const int vecs = D / 8;
  for (int chunk = c_begin; chunk < c_end; ++chunk) {
    __syncthreads();  // the previous chunk is consumed
    for (int idx = tid; idx < kChunk * vecs; idx += kThreads) {
      const int jj = idx / vecs, vi = idx % vecs;
      const int j = k_begin + chunk * kChunk + jj;
      uint4 kv, vv;
      load_kv_piece(p, table, kvh, D, j, n_keys, vi, kv, vv);
      uint32_t* kd = k_s + jj * kstride + vi * 4;
      kd[0] = kv.x;
      kd[1] = kv.y;
      kd[2] = kv.z;
      kd[3] = kv.w;
      *reinterpret_cast<uint4*>(v_s + jj * D + vi * 8) = vv;
    }
    __syncthreads();

    const int key = k_begin + chunk * kChunk + lane;
    const uint32_t* kr = k_s + lane * kstride;
#pragma unroll
    for (int i = 0; i < RPW; ++i) {
      const int r = i * kWarps + warp;
      if (r >= n_rows) break;  // warp-uniform
      const int qpos = ctx_start + qoff + r / group;
      const int qlo = p.window > 0 ? qpos + 1 - p.window : 0;  // first key in the row's window
      const uint32_t* qr = q_s + r * D2;
      float s = 0.0f;
      for (int d2 = 0; d2 < D2; ++d2) {
        const float2 qf = half2_bits_to_float2(qr[d2]);
        const float2 kf = half2_bits_to_float2(kr[d2]);
        s = fmaf(qf.x, kf.x, s);
        s = fmaf(qf.y, kf.y, s);
      }
      s = key <= qpos && key >= qlo ? s * scale_log2 : -INFINITY;
      const float m_new = fmaxf(m[i], warp_max(s));
      if (m_new == -INFINITY) continue;  // nothing visible yet (warp-uniform)
      const float alpha = exp2f(m[i] - m_new);
      const float pj = exp2f(s - m_new);
      l[i] = l[i] * alpha + warp_sum(pj);
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < DCOLS; ++c) o[i][c] *= alpha;
      for (int jj = 0; jj < kChunk; ++jj) {
        const float pb = __shfl_sync(0xffffffffu, pj, jj);
        const __half* vr = v_s + jj * D;
#pragma unroll
        for (int c = 0; c < DCOLS; ++c) {
          const int d = lane + 32 * c;
          if (d < D) o[i][c] = fmaf(pb, __half2float(vr[d]), o[i][c]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < RPW; ++i) {
    const int r = i * kWarps + warp;
    if (r >= n_rows) break;
    const int token = q_first + qoff + r / group, head = kvh * group + r % group;
    const size_t idx = static_cast<size_t>(token) * p.num_heads + head;
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    if (p.num_splits == 1) {
#pragma unroll
      for (int c = 0; c < DCOLS; ++c) {
        const int d = lane + 32 * c;
        if (d < D) p.out[idx * D + d] = __float2half(o[i][c] * inv);
      }
    } else {
      const size_t sidx = static_cast<size_t>(split) * p.num_tokens * p.num_heads + idx;
#pragma unroll
      for (int c = 0; c < DCOLS; ++c) {
        const int d = lane + 32 * c;
        if (d < D) p.split_out[sidx * D + d] = o[i][c] * inv;
      }
      if (lane == 0) {
        p.split_lse[sidx * 2] = m[i];
        p.split_lse[sidx * 2 + 1] = l[i];
      }
    }
  }
}

// Merges the splits of one (token, head): weights l_s * 2^(m_s - max m).
__global__ void combine_splits_kernel(PagedAttentionParams p) {
  const size_t idx = blockIdx.x;  // token * num_heads + head
  const size_t stride = static_cast<size_t>(p.num_tokens) * p.num_heads;
  float m_max = -INFINITY;
  for (int s = 0; s < p.num_splits; ++s) {
    const float l = p.split_lse[(s * stride + idx) * 2 + 1];
    if (l > 0.0f) m_max = fmaxf(m_max, p.split_lse[(s * stride + idx) * 2]);
  }
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float acc = 0.0f, total = 0.0f;
    for (int s = 0; s < p.num_splits; ++s) {
      const float l = p.split_lse[(s * stride + idx) * 2 + 1];
      if (!(l > 0.0f)) continue;
      const float w = l * exp2f(p.split_lse[(s * stride + idx) * 2] - m_max);
      acc += w * p.split_out[(s * stride + idx) * p.head_dim + d];
      total += w;
    }
    p.out[idx * p.head_dim + d] = __float2half(total > 0.0f ? acc / total : 0.0f);
  }
}

template <int DCOLS, int RPW>
cudaError_t launch(const PagedAttentionParams& p, cudaStream_t stream) {
  constexpr int kRows = kWarps * RPW;
  const int D2 = p.head_dim / 2;
  const size_t smem = static_cast<size_t>(kRows) * D2 * 4 + static_cast<size_t>(kChunk) * (D2 + 1) * 4 +
                      static_cast<size_t>(kChunk) * p.head_dim * 2;
  const dim3 grid(p.num_work, p.num_kv_heads, p.num_splits);
  paged_attention_kernel<DCOLS, RPW><<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

bool paged_attention_fuses_rope(const PagedAttentionParams& p) {
  return p.decode_only && decode_attention_supported(p);
}

namespace {

// The fused RoPE / K/V write must describe the same step and cache as p.
bool rope_matches(const PagedAttentionParams& p) {
  const RopeKvParams& r = p.rope;
  return r.k && r.v && r.positions && r.inv_freq && r.slot_mapping && r.k_cache == p.k_cache &&
         r.v_cache == p.v_cache && r.tokens == p.num_tokens && r.num_q_heads == p.num_heads &&
         r.num_kv_heads == p.num_kv_heads && r.head_dim == p.head_dim && r.block_size == p.block_size &&
         r.ldq % 8 == 0 && r.ldk % 8 == 0 && r.ldv % 8 == 0 && paged_attention_fuses_rope(p);
}

}  // namespace

cudaError_t paged_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.num_work <= 0) return cudaSuccess;
  if (p.head_dim % 8 != 0 || p.head_dim > 256 || p.num_kv_heads <= 0 || p.num_heads % p.num_kv_heads != 0 ||
      p.num_splits < 1 || p.num_heads / p.num_kv_heads > attention_tile_rows(p.head_dim) || p.window < 0 ||
      p.decode_cluster < 0 || p.decode_cluster > 16)
    return cudaErrorInvalidValue;
  if (p.num_splits > 1 && (!p.split_out || !p.split_lse)) return cudaErrorInvalidValue;
  if (p.rope.q && !rope_matches(p)) return cudaErrorInvalidValue;
  cudaError_t err;
  if (p.decode_only && decode_attention_supported(p)) {
    err = launch_decode_attention(p, stream);
    if (p.split_counters) return err;  // the kernel merged its splits
  } else if (!p.decode_only && mma_attention_supported(p)) {
    err = launch_mma_attention(p, stream);
  } else if (p.head_dim <= 32) {
    err = launch<1, 16>(p, stream);
  } else if (p.head_dim <= 64) {
    err = launch<2, 16>(p, stream);
  } else if (p.head_dim <= 128) {
    err = launch<4, 16>(p, stream);
  } else {
    err = launch<8, 4>(p, stream);
  }
  if (err != cudaSuccess || p.num_splits == 1) return err;
  combine_splits_kernel<<<p.num_tokens * p.num_heads, 128, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace nibble::kernels

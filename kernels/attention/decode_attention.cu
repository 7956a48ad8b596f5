// The decode kernel of kernels/attention: one new token per sequence. Each block
// takes (sequence, KV head, split) like the general kernel, but its four warps
// take 32 different keys each (128 keys per step) instead of different query
// rows, since a decode tile has only the GQA group's rows. Each lane loads its
// key's K row straight into registers and the warp's 32 V rows (coalesced), so
// a step has 16-32 KB of loads in flight per block; the warps' partial softmax
// states are merged through shared memory at the end.
#include <cmath>

#include "attention/attention.h"
#include "attention/decode_attention.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kKeysPerStep = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

// DCOLS head dims per lane (head_dim = 32 * DCOLS), contiguous: d = lane * DCOLS + c.
template <int DCOLS>
struct VecOf;
template <>
struct VecOf<1> {
  using T = unsigned short;
};
template <>
struct VecOf<2> {
  using T = unsigned int;
};
template <>
struct VecOf<4> {
  using T = uint2;
};

template <int DCOLS>
__device__ __forceinline__ void to_floats(const typename VecOf<DCOLS>::T& v, float* out) {
  const __half* h = reinterpret_cast<const __half*>(&v);
#pragma unroll
  for (int c = 0; c < DCOLS; ++c) out[c] = __half2float(h[c]);
}

template <int DCOLS, int G>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedAttentionParams p) {
  constexpr int D = 32 * DCOLS;
  constexpr int KVEC = D / 8;  // uint4 per K row
  using VT = typename VecOf<DCOLS>::T;
  __shared__ float q_s[G][D];
  __shared__ float part_m[kWarps][G], part_l[kWarps][G];
  __shared__ float part_o[kWarps][G][D];

  const int item = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int seq = p.work_seq[item];
  const int q_first = p.query_start[seq];
  if (p.query_start[seq + 1] - q_first <= 0) return;
  const int group = p.num_heads / p.num_kv_heads;
  const int n_keys = p.seq_lens[seq];
  // The token (position n_keys - 1) sees keys [k_begin, n_keys): all, or its sliding window.
  const int k_begin = p.window > 0 ? max(0, n_keys - p.window) : 0;
  const int n_steps = (n_keys - k_begin + kKeysPerStep - 1) / kKeysPerStep;
  const int per_split = (n_steps + p.num_splits - 1) / p.num_splits;
  const int s_begin = split * per_split;
  const int s_end = min(n_steps, s_begin + per_split);
  if (s_begin >= s_end) {
    if (threadIdx.x < group) {
      const size_t idx = (static_cast<size_t>(split) * p.num_tokens + q_first) * p.num_heads + kvh * group + threadIdx.x;
      p.split_lse[idx * 2] = -INFINITY;
      p.split_lse[idx * 2 + 1] = 0.0f;
    }
    return;
  }

  const float scale_log2 = p.scale * kLog2e;
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int r = i / D, d = i % D;
    q_s[r][d] = r < group ? __half2float(p.q[(static_cast<size_t>(q_first) * p.num_heads + kvh * group + r) * D + d]) *
                                scale_log2
                          : 0.0f;
  }
  __syncthreads();

  float m[G], l[G], o[G][DCOLS];
#pragma unroll
  for (int r = 0; r < G; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < DCOLS; ++c) o[r][c] = 0.0f;
  }

  const int32_t* table = p.kv_indices + p.kv_indptr[seq];
  for (int step = s_begin; step < s_end; ++step) {
    const int warp_first = k_begin + step * kKeysPerStep + warp * 32;
    const int key = warp_first + lane;
    const bool valid = key < n_keys;
    size_t base = 0;
    if (valid) {
      const size_t block = table[key / p.block_size];
      base = ((block * p.num_kv_heads + kvh) * p.block_size + key % p.block_size) * D;
    }
    uint4 k_row[KVEC];
#pragma unroll
    for (int i = 0; i < KVEC; ++i)
      k_row[i] = valid ? reinterpret_cast<const uint4*>(p.k_cache + base)[i] : make_uint4(0, 0, 0, 0);
    // The warp's 32 V rows: row j lives at lane j's base; each lane takes its DCOLS dims.
    VT v_rows[32];
    const int warp_keys = min(32, n_keys - warp_first);
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const size_t bj = __shfl_sync(0xffffffffu, base, j);
      v_rows[j] = j < warp_keys ? reinterpret_cast<const VT*>(p.v_cache + bj)[lane] : VT{};
    }
    float s[G];
#pragma unroll
    for (int r = 0; r < G; ++r) {
      float acc = 0.0f;
      if (r < group) {
#pragma unroll
        for (int i = 0; i < KVEC; ++i) {
          const __half2* h = reinterpret_cast<const __half2*>(&k_row[i]);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 kf = __half22float2(h[e]);
            acc = fmaf(q_s[r][i * 8 + 2 * e], kf.x, acc);
            acc = fmaf(q_s[r][i * 8 + 2 * e + 1], kf.y, acc);
          }
        }
      }
      s[r] = valid ? acc : -INFINITY;
    }
    float pr[G];
#pragma unroll
    for (int r = 0; r < G; ++r) {
      pr[r] = 0.0f;
      if (r >= group) continue;
      const float m_new = fmaxf(m[r], warp_max(s[r]));
      if (m_new == -INFINITY) continue;  // warp-uniform: no visible key yet
      const float alpha = exp2f(m[r] - m_new);
      pr[r] = exp2f(s[r] - m_new);
      l[r] = l[r] * alpha + warp_sum(pr[r]);
      m[r] = m_new;
#pragma unroll
      for (int c = 0; c < DCOLS; ++c) o[r][c] *= alpha;
    }
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      float vf[DCOLS];
      to_floats<DCOLS>(v_rows[j], vf);
#pragma unroll
      for (int r = 0; r < G; ++r) {
        if (r >= group) continue;
        const float pj = __shfl_sync(0xffffffffu, pr[r], j);
#pragma unroll
        for (int c = 0; c < DCOLS; ++c) o[r][c] = fmaf(pj, vf[c], o[r][c]);
      }
    }
  }

  // Merge the four warps' softmax states.
#pragma unroll
  for (int r = 0; r < G; ++r) {
    if (lane == 0) {
      part_m[warp][r] = m[r];
      part_l[warp][r] = l[r];
    }
#pragma unroll
    for (int c = 0; c < DCOLS; ++c) part_o[warp][r][lane * DCOLS + c] = o[r][c];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < group * D; i += kThreads) {
    const int r = i / D, d = i % D;
    float m_max = -INFINITY;
    for (int w = 0; w < kWarps; ++w)
      if (part_l[w][r] > 0.0f) m_max = fmaxf(m_max, part_m[w][r]);
    float acc = 0.0f, total = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (!(part_l[w][r] > 0.0f)) continue;
      const float scale = exp2f(part_m[w][r] - m_max);
      acc += scale * part_o[w][r][d];
      total += scale * part_l[w][r];
    }
    const size_t idx = static_cast<size_t>(q_first) * p.num_heads + kvh * group + r;
    const float value = total > 0.0f ? acc / total : 0.0f;
    if (p.num_splits == 1) {
      p.out[idx * D + d] = __float2half(value);
    } else {
      const size_t sidx = static_cast<size_t>(split) * p.num_tokens * p.num_heads + idx;
      p.split_out[sidx * D + d] = value;
      if (d == 0) {
        p.split_lse[sidx * 2] = m_max;
        p.split_lse[sidx * 2 + 1] = total;
      }
    }
  }
}

template <int DCOLS, int G>
cudaError_t launch(const PagedAttentionParams& p, cudaStream_t stream) {
  const dim3 grid(p.num_work, p.num_kv_heads, p.num_splits);
  paged_decode_kernel<DCOLS, G><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <int DCOLS>
cudaError_t launch_group(const PagedAttentionParams& p, cudaStream_t stream) {
  const int group = p.num_heads / p.num_kv_heads;
  if (group <= 1) return launch<DCOLS, 1>(p, stream);
  if (group <= 2) return launch<DCOLS, 2>(p, stream);
  if (group <= 4) return launch<DCOLS, 4>(p, stream);
  return launch<DCOLS, 8>(p, stream);
}

}  // namespace

bool decode_attention_supported(const PagedAttentionParams& p) {
  const int group = p.num_kv_heads > 0 ? p.num_heads / p.num_kv_heads : 0;
  return (p.head_dim == 32 || p.head_dim == 64 || p.head_dim == 128) && group >= 1 && group <= 8;
}

cudaError_t launch_decode_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 32:
      return launch_group<1>(p, stream);
    case 64:
      return launch_group<2>(p, stream);
    case 128:
      return launch_group<4>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace nibble::kernels

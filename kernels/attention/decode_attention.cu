// The decode kernel of kernels/attention: one new token per sequence. Each block
// takes (sequence, KV head, split) like the general kernel, but its four warps
// take 32 different keys each (128 keys per step) instead of different query
// rows, since a decode tile has only the GQA group's rows. Each lane loads its
// key's K row straight into registers and the warp's 32 V rows (coalesced), so
// a step has 16-32 KB of loads in flight per block; the warps' partial softmax
// states are merged through shared memory at the end.
//
// A decode step is short at batch 1 (a few hundred keys per KV head), so the
// kernel also removes the launches around it: with PagedAttentionParams::rope it
// rotates the query and the new key itself and writes the new K/V into the cache
// (no rope_and_write_kv launch), and with split_counters the last split block of
// each (sequence, KV head) merges the splits (no combine launch). The first
// step's K/V loads are issued before the query is prepared, so their latency
// overlaps the query's.
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

// The K rows (one per lane: key warp_first + lane) and the warp's 32 V rows
// (each lane its DCOLS dims of every row) of one 32-key slice; zeros past n_keys.
template <int DCOLS>
__device__ __forceinline__ void load_warp_keys(const PagedAttentionParams& p, const int32_t* table, int kvh,
                                               int warp_first, int n_keys, int lane, uint4 (&k_row)[DCOLS * 4],
                                               typename VecOf<DCOLS>::T (&v_rows)[32]) {
  constexpr int D = 32 * DCOLS;
  using VT = typename VecOf<DCOLS>::T;
  const int key = warp_first + lane;
  const bool valid = key < n_keys;
  size_t base = 0;
  if (valid) {
    const size_t block = table[key / p.block_size];
    base = ((block * p.num_kv_heads + kvh) * p.block_size + key % p.block_size) * D;
  }
#pragma unroll
  for (int i = 0; i < DCOLS * 4; ++i)
    k_row[i] = valid ? reinterpret_cast<const uint4*>(p.k_cache + base)[i] : make_uint4(0, 0, 0, 0);
  // Row j lives at lane j's base.
  const int warp_keys = min(32, n_keys - warp_first);
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const size_t bj = __shfl_sync(0xffffffffu, base, j);
    v_rows[j] = j < warp_keys ? reinterpret_cast<const VT*>(p.v_cache + bj)[lane] : VT{};
  }
}

template <int DCOLS, int G>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedAttentionParams p) {
  constexpr int D = 32 * DCOLS;
  constexpr int HALF = D / 2;
  constexpr int KVEC = D / 8;  // uint4 per K row
  using VT = typename VecOf<DCOLS>::T;
  __shared__ float q_s[G][D];
  __shared__ __align__(16) __half new_k[D];  // the new token's rotated key and its value (fused RoPE)
  __shared__ __align__(16) __half new_v[D];
  __shared__ float part_m[kWarps][G], part_l[kWarps][G];
  __shared__ float part_o[kWarps][G][D];
  __shared__ bool merge_here;

  const int item = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int seq = p.work_seq[item];
  const int q_first = p.query_start[seq];
  if (p.query_start[seq + 1] - q_first <= 0) return;
  const int group = p.num_heads / p.num_kv_heads;
  const int n_keys = p.seq_lens[seq];
  // The token (position n_keys - 1) sees keys [k_begin, n_keys): all, or its sliding window.
  const int k_begin = p.window > 0 ? max(0, n_keys - p.window) : 0;
  const int n_steps = (n_keys - k_begin + kKeysPerStep - 1) / kKeysPerStep;
  const int per_split = max(1, (n_steps + p.num_splits - 1) / p.num_splits);
  const int s_begin = split * per_split;
  const int s_end = min(n_steps, s_begin + per_split);
  const int active_splits = (n_steps + per_split - 1) / per_split;  // splits [0, active) have keys
  const bool merge_in_kernel = p.split_counters != nullptr;
  if (s_begin >= s_end) {
    if (!merge_in_kernel && tid < group) {  // tell the combine pass
      const size_t idx = (static_cast<size_t>(split) * p.num_tokens + q_first) * p.num_heads + kvh * group + tid;
      p.split_lse[idx * 2] = -INFINITY;
      p.split_lse[idx * 2 + 1] = 0.0f;
    }
    return;
  }
  const bool fuse_rope = p.rope.q != nullptr;
  // With fused RoPE the split holding key n_keys - 1 (the new token's) takes its
  // K/V from shared memory, not from the cache slot it writes.
  const int new_key = fuse_rope && s_end == n_steps ? n_keys - 1 : -1;

  const int32_t* table = p.kv_indices + p.kv_indptr[seq];
  uint4 k_row[KVEC];
  VT v_rows[32];
  load_warp_keys<DCOLS>(p, table, kvh, k_begin + s_begin * kKeysPerStep + warp * 32, n_keys, lane, k_row, v_rows);

  const float scale_log2 = p.scale * kLog2e;
  if (fuse_rope) {
    // rope_and_write_kv's arithmetic: thread t takes rotation index t % HALF
    // (kThreads is a multiple of HALF) for rows t / HALF, + kThreads / HALF, ...:
    // the group's query heads, then the new key when this split holds it.
    const RopeKvParams& r = p.rope;
    const int i = tid % HALF;
    float sn, cs;
    sincosf(static_cast<float>(r.positions[q_first]) * r.inv_freq[i], &sn, &cs);
    const int rows = group + (new_key >= 0 ? 1 : 0);
    for (int h = tid / HALF; h < rows; h += kThreads / HALF) {
      const __half* src = h < group ? r.q + static_cast<size_t>(q_first) * r.ldq + (kvh * group + h) * D
                                    : r.k + static_cast<size_t>(q_first) * r.ldk + kvh * D;
      const float a = __half2float(src[i]), b = __half2float(src[i + HALF]);
      const __half ra = __float2half(a * cs - b * sn), rb = __float2half(b * cs + a * sn);
      if (h < group) {
        q_s[h][i] = __half2float(ra) * scale_log2;
        q_s[h][i + HALF] = __half2float(rb) * scale_log2;
      } else {
        new_k[i] = ra;
        new_k[i + HALF] = rb;
      }
    }
    for (int idx = group * D + tid; idx < G * D; idx += kThreads) q_s[idx / D][idx % D] = 0.0f;
    if (new_key >= 0 && tid < KVEC)
      reinterpret_cast<uint4*>(new_v)[tid] =
          reinterpret_cast<const uint4*>(r.v + static_cast<size_t>(q_first) * r.ldv + kvh * D)[tid];
  } else {
    for (int idx = tid; idx < G * D; idx += kThreads) {
      const int r = idx / D, d = idx % D;
      q_s[r][d] = r < group ? __half2float(p.q[(static_cast<size_t>(q_first) * p.num_heads + kvh * group + r) * D + d]) *
                                  scale_log2
                            : 0.0f;
    }
  }
  __syncthreads();
  if (new_key >= 0 && tid < 2 * KVEC) {  // the new token's K/V into its cache slot
    const int slot = p.rope.slot_mapping[q_first];
    if (slot >= 0) {
      const size_t row = ((static_cast<size_t>(slot / p.block_size) * p.num_kv_heads + kvh) * p.block_size +
                           slot % p.block_size) * D;
      const bool is_k = tid < KVEC;
      const int piece = is_k ? tid : tid - KVEC;
      __half* dst = (is_k ? p.rope.k_cache : p.rope.v_cache) + row;
      reinterpret_cast<uint4*>(dst)[piece] = reinterpret_cast<const uint4*>(is_k ? new_k : new_v)[piece];
    }
  }

  float m[G], l[G], o[G][DCOLS];
#pragma unroll
  for (int r = 0; r < G; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < DCOLS; ++c) o[r][c] = 0.0f;
  }

  for (int step = s_begin; step < s_end; ++step) {
    const int warp_first = k_begin + step * kKeysPerStep + warp * 32;
    if (step > s_begin) load_warp_keys<DCOLS>(p, table, kvh, warp_first, n_keys, lane, k_row, v_rows);
    const int key = warp_first + lane;
    if (key == new_key) {
#pragma unroll
      for (int i = 0; i < KVEC; ++i) k_row[i] = reinterpret_cast<const uint4*>(new_k)[i];
    }
    const bool valid = key < n_keys;
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
      VT vj = v_rows[j];
      if (warp_first + j == new_key) vj = reinterpret_cast<const VT*>(new_v)[lane];  // warp-uniform
      float vf[DCOLS];
      to_floats<DCOLS>(vj, vf);
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
  // One split for this sequence: the result; else this split's partial.
  const bool whole = p.num_splits == 1 || (merge_in_kernel && active_splits == 1);
  const size_t token_heads = static_cast<size_t>(q_first) * p.num_heads + kvh * group;  // the group's first row
  for (int i = tid; i < group * D; i += kThreads) {
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
    const size_t idx = token_heads + r;
    const float value = total > 0.0f ? acc / total : 0.0f;
    if (whole) {
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
  if (whole || !merge_in_kernel) return;

  // The last of the sequence's active splits to get here merges them all
  // (threadFenceReduction): partials visible device-wide, then one arrival each.
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    int32_t* counter = p.split_counters + static_cast<size_t>(item) * p.num_kv_heads + kvh;
    merge_here = atomicAdd(counter, 1) == active_splits - 1;
    if (merge_here) *counter = 0;  // every other split has arrived: ready for the next launch
  }
  __syncthreads();
  if (!merge_here) return;
  __threadfence();
  const size_t split_stride = static_cast<size_t>(p.num_tokens) * p.num_heads;
  for (int i = tid; i < group * D; i += kThreads) {
    const int r = i / D, d = i % D;
    const size_t idx = token_heads + r;
    float m_max = -INFINITY;
    for (int sp = 0; sp < active_splits; ++sp) {
      const size_t sidx = sp * split_stride + idx;
      if (__ldcg(p.split_lse + sidx * 2 + 1) > 0.0f) m_max = fmaxf(m_max, __ldcg(p.split_lse + sidx * 2));
    }
    float acc = 0.0f, total = 0.0f;
    for (int sp = 0; sp < active_splits; ++sp) {
      const size_t sidx = sp * split_stride + idx;
      const float l_sp = __ldcg(p.split_lse + sidx * 2 + 1);
      if (!(l_sp > 0.0f)) continue;
      const float w = l_sp * exp2f(__ldcg(p.split_lse + sidx * 2) - m_max);
      acc += w * __ldcg(p.split_out + sidx * D + d);
      total += w;
    }
    p.out[idx * D + d] = __float2half(total > 0.0f ? acc / total : 0.0f);
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

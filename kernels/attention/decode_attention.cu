// The decode kernel of kernels/attention: one new token per sequence. Each block
// takes (sequence, KV head, split) like the general kernel; its 128 threads form
// groups of head_dim / 8 (each thread 8 dims of a K/V row, one 16-byte load);
// each group takes two keys per pass and loads the next pass's two while this
// one computes. Dot products reduce over the group with a few
// shuffles and every group keeps its own online-softmax state; the groups are
// merged through shared memory at the end. The loops stay rolled: a decode
// block runs one warp per scheduler, so it cannot hide instruction-fetch
// misses, and a kernel that unrolls its key steps into ~100 KB of straight-line
// code (this file's previous version) spends most of its time fetching code.
//
// A decode step is short at batch 1 (a few hundred keys per KV head), so the
// kernel also removes the launches around it: with PagedAttentionParams::rope it
// rotates the query and the new key itself and writes the new K/V into the cache
// (no rope_and_write_kv launch), and with split_counters the last split block of
// each (sequence, KV head) merges the splits (no combine launch; slower than the
// combine pass beyond two splits, see attention.h). The first pass's K/V loads
// are issued before the query is prepared, so their latency overlaps the query's.
#include <cmath>

#include "attention/attention.h"
#include "attention/decode_attention.cuh"
#include "attention/attention_work.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kKeysPerStep = kDecodeKeysPerStep;  // the split granularity (attention_plan.h)
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 t = __half22float2(h[e]);
    f[2 * e] = t.x;
    f[2 * e + 1] = t.y;
  }
}

template <int D, int G>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedAttentionParams p) {
  constexpr int HALF = D / 2;
  constexpr int KVEC = D / 8;               // 16-byte pieces per K/V row
  constexpr int TPK = KVEC;                 // threads per key (a group)
  constexpr int GROUPS = kThreads / TPK;    // keys in flight per pass and group
  __shared__ float q_s[G][D];
  __shared__ __align__(16) __half new_k[D];  // the new token's rotated key and its value (fused RoPE)
  __shared__ __align__(16) __half new_v[D];
  __shared__ float part_m[GROUPS][G], part_l[GROUPS][G];
  __shared__ __align__(16) float part_o[GROUPS][G][D];
  __shared__ bool merge_here;

  const int item = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int tid = threadIdx.x, tx = tid % TPK, ty = tid / TPK;
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

  // This split's keys: [kb, ke). Group ty takes keys kb + ty, + GROUPS, ...
  const int kb = k_begin + s_begin * kKeysPerStep;
  const int ke = min(n_keys, k_begin + s_end * kKeysPerStep);
  const int32_t* table = p.kv_indices + p.kv_indptr[seq];
  uint4 k0, v0, k1, v1;  // this pass's two keys (piece tx)
  load_kv_piece(p, table, kvh, D, kb + ty, ke, tx, k0, v0);
  load_kv_piece(p, table, kvh, D, kb + GROUPS + ty, ke, tx, k1, v1);

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

  float q[G][8];
#pragma unroll
  for (int r = 0; r < G; ++r)
#pragma unroll
    for (int e = 0; e < 8; ++e) q[r][e] = q_s[r][tx * 8 + e];
  float m[G], l[G], o[G][8];
#pragma unroll
  for (int r = 0; r < G; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[r][e] = 0.0f;
  }

  const uint4* new_k4 = reinterpret_cast<const uint4*>(new_k);
  const uint4* new_v4 = reinterpret_cast<const uint4*>(new_v);
  for (int base = kb; base < ke; base += 2 * GROUPS) {  // uniform trip count: shuffles below
    const int key0 = base + ty, key1 = base + GROUPS + ty;
    uint4 nk0, nv0, nk1, nv1;
    load_kv_piece(p, table, kvh, D, base + 2 * GROUPS + ty, ke, tx, nk0, nv0);
    load_kv_piece(p, table, kvh, D, base + 3 * GROUPS + ty, ke, tx, nk1, nv1);
    if (key0 == new_key) {
      k0 = new_k4[tx];
      v0 = new_v4[tx];
    }
    if (key1 == new_key) {
      k1 = new_k4[tx];
      v1 = new_v4[tx];
    }
    float kf0[8], kf1[8];
    unpack8(k0, kf0);
    unpack8(k1, kf1);
    float s0[G], s1[G];
#pragma unroll
    for (int r = 0; r < G; ++r) {
      float a = 0.0f, b = 0.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        a = fmaf(q[r][e], kf0[e], a);
        b = fmaf(q[r][e], kf1[e], b);
      }
      s0[r] = a;
      s1[r] = b;
    }
#pragma unroll
    for (int off = TPK / 2; off > 0; off >>= 1)
#pragma unroll
      for (int r = 0; r < G; ++r) {
        s0[r] += __shfl_xor_sync(0xffffffffu, s0[r], off);
        s1[r] += __shfl_xor_sync(0xffffffffu, s1[r], off);
      }
    float vf0[8], vf1[8];
    unpack8(v0, vf0);
    unpack8(v1, vf1);
    const bool ok0 = key0 < ke, ok1 = key1 < ke;
#pragma unroll
    for (int r = 0; r < G; ++r) {
      const float a = ok0 ? s0[r] : -INFINITY, b = ok1 ? s1[r] : -INFINITY;
      const float m_new = fmaxf(m[r], fmaxf(a, b));
      if (m_new == -INFINITY) continue;  // no key of this group yet (no shuffles below)
      const float alpha = exp2f(m[r] - m_new), p0 = exp2f(a - m_new), p1 = exp2f(b - m_new);
      l[r] = l[r] * alpha + p0 + p1;
      m[r] = m_new;
#pragma unroll
      for (int e = 0; e < 8; ++e) o[r][e] = fmaf(p1, vf1[e], fmaf(p0, vf0[e], o[r][e] * alpha));
    }
    k0 = nk0;
    v0 = nv0;
    k1 = nk1;
    v1 = nv1;
  }

  // Merge the groups' softmax states.
#pragma unroll
  for (int r = 0; r < G; ++r) {
    if (tx == 0) {
      part_m[ty][r] = m[r];
      part_l[ty][r] = l[r];
    }
    float4* dst = reinterpret_cast<float4*>(&part_o[ty][r][tx * 8]);
    dst[0] = make_float4(o[r][0], o[r][1], o[r][2], o[r][3]);
    dst[1] = make_float4(o[r][4], o[r][5], o[r][6], o[r][7]);
  }
  __syncthreads();
  // One split for this sequence: the result; else this split's partial.
  const bool whole = p.num_splits == 1 || (merge_in_kernel && active_splits == 1);
  const size_t token_heads = static_cast<size_t>(q_first) * p.num_heads + kvh * group;  // the group's first row
  for (int i = tid; i < group * D; i += kThreads) {
    const int r = i / D, d = i % D;
    float m_max = -INFINITY;
    for (int w = 0; w < GROUPS; ++w)
      if (part_l[w][r] > 0.0f) m_max = fmaxf(m_max, part_m[w][r]);
    float acc = 0.0f, total = 0.0f;
    for (int w = 0; w < GROUPS; ++w) {
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

template <int D, int G>
cudaError_t launch(const PagedAttentionParams& p, cudaStream_t stream) {
  const dim3 grid(p.num_work, p.num_kv_heads, p.num_splits);
  paged_decode_kernel<D, G><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <int D>
cudaError_t launch_group(const PagedAttentionParams& p, cudaStream_t stream) {
  const int group = p.num_heads / p.num_kv_heads;
  if (group <= 1) return launch<D, 1>(p, stream);
  if (group <= 2) return launch<D, 2>(p, stream);
  if (group <= 4) return launch<D, 4>(p, stream);
  return launch<D, 8>(p, stream);
}

}  // namespace

bool decode_attention_supported(const PagedAttentionParams& p) {
  const int group = p.num_kv_heads > 0 ? p.num_heads / p.num_kv_heads : 0;
  return (p.head_dim == 32 || p.head_dim == 64 || p.head_dim == 128) && group >= 1 && group <= 8;
}

cudaError_t launch_decode_attention(const PagedAttentionParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 32:
      return launch_group<32>(p, stream);
    case 64:
      return launch_group<64>(p, stream);
    case 128:
      return launch_group<128>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace nibble::kernels

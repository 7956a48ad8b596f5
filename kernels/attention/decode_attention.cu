// The decode kernel of kernels/attention: one new token per sequence. Each block
// takes (sequence, KV head, split) like the general kernel; its 128 threads form
// groups of head_dim / 8 (each thread 8 dims of a K/V row, one 16-byte load);
// each group takes KPG keys per pass and loads the next pass's while this
// one computes. Dot products reduce over the group with a few
// shuffles and every group keeps its own online-softmax state; the groups are
// merged through shared memory at the end. The loops stay rolled: a decode
// block runs one warp per scheduler, so it cannot hide instruction-fetch
// misses, and a kernel that unrolls its key steps into ~100 KB of straight-line
// code (this file's first version) spends most of its time fetching code.
//
// Few blocks (batch 1-8: 8-64 blocks for 132 SMs): on sm_90 each (sequence, KV
// head, split) is a thread-block cluster of C blocks instead of one block. The
// cluster's blocks cut the split's keys into C contiguous ranges, so each walks
// keys / C of them (one or two passes at 129 keys instead of nine), and merge
// their softmax states through distributed shared memory: every block leaves
// its merged (max, sum, unnormalised output) in its shared memory, a cluster
// barrier, then each block reads the C states for its share of the outputs.
// No global partials, atomics or second launch (the in-kernel split merge of
// split_counters, below, measured slower than a combine launch). Both merges
// load eight states at a time before using any (one round trip, not one per
// group or peer) and merge them online, which keeps the registers (and so the
// blocks per SM at long contexts) where they were.
//
// A decode step is short at batch 1 (a few hundred keys per KV head), so the
// kernel also removes the launches around it: with PagedAttentionParams::rope it
// rotates the query and the new key itself and writes the new K/V into the cache
// (no rope_and_write_kv launch), and with split_counters the last split block of
// each (sequence, KV head) merges the splits (no combine launch; slower than the
// combine pass beyond two splits, see attention.h; not with clusters). The first
// pass's K/V loads are issued before the query is prepared, so their latency
// overlaps the query's.
#include <cmath>

#include "attention/attention.h"
#include "attention/decode_attention.cuh"
#include "attention/attention_work.cuh"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kPeerBatch = 8;  // cluster peers whose states one thread loads at once
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

// The cluster primitives (sm_90); the cluster variant is only launched there.
// The barrier orders shared-memory writes before it with peers' reads after it.
__device__ __forceinline__ void cluster_barrier() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __cluster_barrier_arrive();
  __cluster_barrier_wait();
#endif
}

__device__ __forceinline__ int cluster_rank() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return static_cast<int>(__clusterRelativeBlockRank());
#else
  return 0;
#endif
}

// `ptr` (this block's shared memory) in the cluster block `rank`'s shared memory.
template <typename T>
__device__ __forceinline__ const T* cluster_peer(const T* ptr, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return static_cast<const T*>(__cluster_map_shared_rank(ptr, static_cast<unsigned>(rank)));
#else
  return ptr;
#endif
}

// Folds N loaded softmax states (max m, sum l, unnormalised output o; l <= 0:
// no keys) into the running (m_max, acc, total), online.
template <int N>
__device__ __forceinline__ void merge_loaded_states(const float (&m)[N], const float (&l)[N], const float (&o)[N],
                                                    float& m_max, float& acc, float& total) {
  float m_new = m_max;
#pragma unroll
  for (int j = 0; j < N; ++j)
    if (l[j] > 0.0f) m_new = fmaxf(m_new, m[j]);
  if (m_new == -INFINITY) return;  // no keys in these states (nor before)
  const float alpha = exp2f(m_max - m_new);
  acc *= alpha;
  total *= alpha;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    if (!(l[j] > 0.0f)) continue;
    const float scale = exp2f(m[j] - m_new);
    acc += scale * o[j];
    total += scale * l[j];
  }
  m_max = m_new;
}

// Writes a merged state of query row idx, dim d: the result (whole) or this
// split's partial and, at d = 0, its max and sum for the combine pass.
template <int D>
__device__ __forceinline__ void store_state(const PagedAttentionParams& p, bool whole, int split, size_t idx, int d,
                                            float m_max, float acc, float total) {
  const float value = total > 0.0f ? acc / total : 0.0f;
  if (whole) {
    p.out[idx * D + d] = __float2half(value);
    return;
  }
  const size_t sidx = static_cast<size_t>(split) * p.num_tokens * p.num_heads + idx;
  p.split_out[sidx * D + d] = value;
  if (d == 0) {
    p.split_lse[sidx * 2] = m_max;
    p.split_lse[sidx * 2 + 1] = total;
  }
}

// The softmax states of a block's groups for query row r, merged: the max,
// the sum and output dim d (unnormalised). Eight groups' states are loaded at
// a time before any is used (one shared-memory round trip per eight, few
// registers) and merged online.
template <int GROUPS, int G, int D>
__device__ __forceinline__ void merge_groups(const float (&pm)[GROUPS][G], const float (&pl)[GROUPS][G],
                                             const float (&po)[GROUPS][G][D], int r, int d, float& m_max,
                                             float& acc, float& total) {
  constexpr int kBatch = GROUPS < 8 ? GROUPS : 8;
  m_max = -INFINITY;
  acc = 0.0f;
  total = 0.0f;
#pragma unroll 1
  for (int w0 = 0; w0 < GROUPS; w0 += kBatch) {
    float mw[kBatch], lw[kBatch], ow[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; ++j) {
      mw[j] = pm[w0 + j][r];
      lw[j] = pl[w0 + j][r];
      ow[j] = po[w0 + j][r][d];
    }
    merge_loaded_states(mw, lw, ow, m_max, acc, total);
  }
}

// D head_dim, G query heads per KV head (padded up), KPG keys per group and
// pass, CLUSTER: launched in clusters of `cluster` blocks along z (else 1).
template <int D, int G, int KPG, bool CLUSTER>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedAttentionParams p, int cluster) {
  constexpr int HALF = D / 2;
  constexpr int KVEC = D / 8;               // 16-byte pieces per K/V row
  constexpr int TPK = KVEC;                 // threads per key (a group)
  constexpr int GROUPS = kThreads / TPK;    // groups of a block
  constexpr int PASS = GROUPS * KPG;        // keys per pass
  __shared__ float q_s[G][D];
  __shared__ __align__(16) __half new_k[D];  // the new token's rotated key and its value (fused RoPE)
  __shared__ __align__(16) __half new_v[D];
  __shared__ float part_m[GROUPS][G], part_l[GROUPS][G];
  __shared__ __align__(16) float part_o[GROUPS][G][D];
  __shared__ float block_m[G], block_l[G];  // the block's merged state (clusters; its output in part_o[0])
  __shared__ bool merge_here;

  const int C = CLUSTER ? cluster : 1;
  const int item = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z / C;
  const int rank = CLUSTER ? cluster_rank() : 0;
  const int tid = threadIdx.x, tx = tid % TPK, ty = tid / TPK;
  // The step's metadata, all requested before any is used.
  const int seq = p.work_seq[item];
  const int q_first = p.query_start[seq];
  const int q_next = p.query_start[seq + 1];
  const int n_keys = p.seq_lens[seq];
  const int32_t* table = p.kv_indices + p.kv_indptr[seq];
  if (q_next - q_first <= 0) {  // the whole cluster: same sequence
    wait_for_previous_grid();  // every block waits (see device_utils.cuh)
    return;
  }
  const int group = p.num_heads / p.num_kv_heads;
  // The token (position n_keys - 1) sees keys [k_begin, n_keys): all, or its sliding window.
  const int k_begin = p.window > 0 ? max(0, n_keys - p.window) : 0;
  const int n_steps = (n_keys - k_begin + kKeysPerStep - 1) / kKeysPerStep;
  const int per_split = max(1, (n_steps + p.num_splits - 1) / p.num_splits);
  const int s_begin = split * per_split;
  const int s_end = min(n_steps, s_begin + per_split);
  const int active_splits = (n_steps + per_split - 1) / per_split;  // splits [0, active) have keys
  const bool merge_in_kernel = !CLUSTER && p.split_counters != nullptr;
  if (s_begin >= s_end) {  // the whole cluster: same split
    wait_for_previous_grid();
    if (!merge_in_kernel && rank == 0 && tid < group) {  // tell the combine pass
      const size_t idx = (static_cast<size_t>(split) * p.num_tokens + q_first) * p.num_heads + kvh * group + tid;
      p.split_lse[idx * 2] = -INFINITY;
      p.split_lse[idx * 2 + 1] = 0.0f;
    }
    return;
  }
  // This block's keys [kb, ke): the split's, or the rank-th of C contiguous
  // ranges of them (possibly empty). Group ty takes keys kb + ty, + GROUPS, ...
  const int split_kb = k_begin + s_begin * kKeysPerStep;
  const int split_ke = min(n_keys, k_begin + s_end * kKeysPerStep);
  const int per_block = (split_ke - split_kb + C - 1) / C;
  const int kb = split_kb + rank * per_block;
  const int ke = min(split_ke, kb + per_block);
  const bool fuse_rope = p.rope.q != nullptr;
  // With fused RoPE the block holding key n_keys - 1 (the new token's) takes its
  // K/V from shared memory, not from the cache slot it writes.
  const int new_key = fuse_rope && kb < n_keys && n_keys <= ke ? n_keys - 1 : -1;

  uint4 kc[KPG], vc[KPG];  // this pass's keys (piece tx)
#pragma unroll
  for (int i = 0; i < KPG; ++i) load_kv_piece(p, table, kvh, D, kb + i * GROUPS + ty, ke, tx, kc[i], vc[i]);
  // The RoPE angle needs only the step's positions and the frequencies, not the
  // q/k/v product: computed before the wait too.
  float sn = 0.0f, cs = 1.0f;
  if (fuse_rope) sincosf(static_cast<float>(p.rope.positions[q_first]) * p.rope.inv_freq[tid % HALF], &sn, &cs);
  // Cached keys are from earlier steps (the new token's comes from shared memory
  // below): they may load before the q/k/v product we read next has finished.
  wait_for_previous_grid();

  const float scale_log2 = p.scale * kLog2e;
  if (fuse_rope) {
    // rope_and_write_kv's arithmetic: thread t takes rotation index t % HALF
    // (kThreads is a multiple of HALF) for rows t / HALF, + kThreads / HALF, ...:
    // the group's query heads, then the new key when this block holds it.
    const RopeKvParams& r = p.rope;
    constexpr int ROWS_PER_ITER = kThreads / HALF;
    constexpr int ITERS = (G + 1 + ROWS_PER_ITER - 1) / ROWS_PER_ITER;  // the rows: G queries + the new key
    const int i = tid % HALF, h0 = tid / HALF;
    const int rows = group + (new_key >= 0 ? 1 : 0);
    // The new value and every row's pair are requested first, all in flight together.
    const bool loads_v = new_key >= 0 && tid < KVEC;
    const uint4* v_src = reinterpret_cast<const uint4*>(r.v + static_cast<size_t>(q_first) * r.ldv + kvh * D);
    const uint4 v_piece = loads_v ? v_src[tid] : make_uint4(0, 0, 0, 0);
    float a[ITERS], b[ITERS];
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
      const int h = h0 + it * ROWS_PER_ITER;
      a[it] = b[it] = 0.0f;
      if (h < rows) {
        const __half* src = h < group ? r.q + static_cast<size_t>(q_first) * r.ldq + (kvh * group + h) * D
                                      : r.k + static_cast<size_t>(q_first) * r.ldk + kvh * D;
        a[it] = __half2float(src[i]);
        b[it] = __half2float(src[i + HALF]);
      }
    }
#pragma unroll
    for (int it = 0; it < ITERS; ++it) {
      const int h = h0 + it * ROWS_PER_ITER;
      if (h >= rows) continue;
      const __half ra = __float2half(a[it] * cs - b[it] * sn), rb = __float2half(b[it] * cs + a[it] * sn);
      if (h < group) {
        q_s[h][i] = __half2float(ra) * scale_log2;
        q_s[h][i + HALF] = __half2float(rb) * scale_log2;
      } else {
        new_k[i] = ra;
        new_k[i + HALF] = rb;
      }
    }
    for (int idx = group * D + tid; idx < G * D; idx += kThreads) q_s[idx / D][idx % D] = 0.0f;
    if (loads_v) reinterpret_cast<uint4*>(new_v)[tid] = v_piece;
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
  for (int base = kb; base < ke; base += PASS) {  // uniform trip count: shuffles below
    uint4 kn[KPG], vn[KPG];
#pragma unroll
    for (int i = 0; i < KPG; ++i) load_kv_piece(p, table, kvh, D, base + PASS + i * GROUPS + ty, ke, tx, kn[i], vn[i]);
    float s[KPG][G];
#pragma unroll
    for (int i = 0; i < KPG; ++i) {
      if (base + i * GROUPS + ty == new_key) {
        kc[i] = new_k4[tx];
        vc[i] = new_v4[tx];
      }
      float kf[8];
      unpack8(kc[i], kf);
#pragma unroll
      for (int r = 0; r < G; ++r) {
        float a = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) a = fmaf(q[r][e], kf[e], a);
        s[i][r] = a;
      }
    }
#pragma unroll
    for (int off = TPK / 2; off > 0; off >>= 1)
#pragma unroll
      for (int i = 0; i < KPG; ++i)
#pragma unroll
        for (int r = 0; r < G; ++r) s[i][r] += __shfl_xor_sync(0xffffffffu, s[i][r], off);
    float vf[KPG][8];
#pragma unroll
    for (int i = 0; i < KPG; ++i) {
      unpack8(vc[i], vf[i]);
      if (base + i * GROUPS + ty >= ke)
#pragma unroll
        for (int r = 0; r < G; ++r) s[i][r] = -INFINITY;
    }
#pragma unroll
    for (int r = 0; r < G; ++r) {
      float m_new = m[r];
#pragma unroll
      for (int i = 0; i < KPG; ++i) m_new = fmaxf(m_new, s[i][r]);
      if (m_new == -INFINITY) continue;  // no key of this group yet (no shuffles below)
      const float alpha = exp2f(m[r] - m_new);
      l[r] *= alpha;
#pragma unroll
      for (int e = 0; e < 8; ++e) o[r][e] *= alpha;
#pragma unroll
      for (int i = 0; i < KPG; ++i) {
        const float pi = exp2f(s[i][r] - m_new);
        l[r] += pi;
#pragma unroll
        for (int e = 0; e < 8; ++e) o[r][e] = fmaf(pi, vf[i][e], o[r][e]);
      }
      m[r] = m_new;
    }
#pragma unroll
    for (int i = 0; i < KPG; ++i) {
      kc[i] = kn[i];
      vc[i] = vn[i];
    }
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
  const size_t token_heads = static_cast<size_t>(q_first) * p.num_heads + kvh * group;  // the group's first row

  if constexpr (CLUSTER) {
    // The block's state for each output: max, sum and unnormalised output (the
    // latter in part_o[0][r][d], which only this thread reads).
    for (int i = tid; i < group * D; i += kThreads) {
      const int r = i / D, d = i % D;
      float m_max, acc, total;
      merge_groups(part_m, part_l, part_o, r, d, m_max, acc, total);
      part_o[0][r][d] = acc;
      if (d == 0) {
        block_m[r] = m_max;
        block_l[r] = total;
      }
    }
    cluster_barrier();  // every block's state written (and visible cluster-wide)
    // Block `rank` takes outputs rank * kThreads + tid, + C * kThreads, ...
    // The peers' states are requested kPeerBatch at a time before any is used
    // (one DSMEM round trip per batch, and few registers), merged online.
    const float* block_o = &part_o[0][0][0];
    for (int i = rank * kThreads + tid; i < group * D; i += C * kThreads) {
      const int r = i / D, d = i % D;
      float m_max = -INFINITY, acc = 0.0f, total = 0.0f;
      for (int c0 = 0; c0 < C; c0 += kPeerBatch) {
        float mc[kPeerBatch], lc[kPeerBatch], oc[kPeerBatch];
#pragma unroll
        for (int j = 0; j < kPeerBatch; ++j) {
          mc[j] = -INFINITY;
          lc[j] = oc[j] = 0.0f;
          if (c0 + j < C) {
            mc[j] = cluster_peer(block_m, c0 + j)[r];
            lc[j] = cluster_peer(block_l, c0 + j)[r];
            oc[j] = cluster_peer(block_o, c0 + j)[r * D + d];
          }
        }
        merge_loaded_states(mc, lc, oc, m_max, acc, total);
      }
      store_state<D>(p, p.num_splits == 1, split, token_heads + r, d, m_max, acc, total);
    }
    cluster_barrier();  // no block leaves while another may still read its shared memory
    return;
  }

  // One split for this sequence: the result; else this split's partial.
  const bool whole = p.num_splits == 1 || (merge_in_kernel && active_splits == 1);
  for (int i = tid; i < group * D; i += kThreads) {
    const int r = i / D, d = i % D;
    float m_max, acc, total;
    merge_groups(part_m, part_l, part_o, r, d, m_max, acc, total);
    store_state<D>(p, whole, split, token_heads + r, d, m_max, acc, total);
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

// Launches the cluster variant in clusters of c blocks; false when the device
// cannot run clusters of that size (the caller then launches without).
template <int D, int G>
bool launch_cluster(const PagedAttentionParams& p, int c, cudaStream_t stream, cudaError_t& err) {
  constexpr int KPG = G >= 8 ? 2 : 4;  // four keys per group and pass; two where G = 8 needs the registers
  auto kernel = paged_decode_kernel<D, G, KPG, true>;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(p.num_work, p.num_kv_heads, p.num_splits * c);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = 0;
  config.stream = stream;
  cudaLaunchAttribute attributes[2] = {};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = 1;
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = c;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attributes;
  config.numAttrs = p.programmatic_launch ? 2 : 1;
  if (c > 8) {  // beyond the portable cluster size: ask whether one fits at all
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess || clusters < 1) {
      cudaGetLastError();
      return false;
    }
  }
  err = cudaLaunchKernelEx(&config, kernel, p, c);
  return true;
}

template <int D, int G>
cudaError_t launch(const PagedAttentionParams& p, cudaStream_t stream) {
  const DeviceShape device = current_device_shape();
  int c = 1;
  if (device.major >= 9 && !p.split_counters)
    c = p.decode_cluster > 0 ? p.decode_cluster
                             : decode_attention_cluster(p.num_work * p.num_kv_heads, device.sms, p.num_splits);
  cudaError_t err = cudaSuccess;
  for (; c > 1; c /= 2)
    if (launch_cluster<D, G>(p, c, stream, err)) return err != cudaSuccess ? err : cudaGetLastError();
  const dim3 grid(p.num_work, p.num_kv_heads, p.num_splits);
  return launch_maybe_programmatic(paged_decode_kernel<D, G, 2, false>, grid, dim3(kThreads), 0, stream,
                                   p.programmatic_launch, p, 1);
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

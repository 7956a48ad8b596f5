#pragma once
// Building blocks of the device sampler (internal to sampling.cu): the RNG,
// ordering keys, block reductions, one sample's row after steps 2-5, and the
// passes over a row (argmax, the draw).
#include <cfloat>
#include <climits>
#include <cmath>

#include "sampling/sampling.h"

namespace nibble::kernels::sampling_detail {


constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kDigits = 256;
constexpr unsigned kFull = 0xffffffffu;

// ---- the RNG (port of sampler_uniform) ----
__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ double sampler_uniform(uint64_t seed, uint64_t counter) {
  const uint64_t bits = splitmix64(splitmix64(seed) ^ (counter * 0xD1B54A32D192ED03ull + 0x9E3779B97F4A7C15ull));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// std::exp(float) as glibc computes it for the CPU Sampler (its expf): x =
// k/32 + r in double, 2^(k/32) from a 32-entry table of bit patterns
// (2^(i/32) minus i << 47), a degree-3 polynomial in r, one rounding to float.
// Every operation is spelled _rn so none is fused. About 12 double operations
// instead of a full double exp; the table lives in shared memory (indices
// differ per lane).
__constant__ uint64_t kExp2Table[32] = {
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull,
    0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull,
    0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull,
    0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull,
    0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull,
    0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull,
    0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull};
constexpr double kInvLn2N = 0x1.71547652b82fep+0 * 32;
constexpr double kExpShift = 0x1.8p+52;
constexpr double kExpC0 = 0x1.c6af84b912394p-5 / 32 / 32 / 32;
constexpr double kExpC1 = 0x1.ebfce50fac4f3p-3 / 32 / 32;
constexpr double kExpC2 = 0x1.62e42ff0c52d6p-1 / 32;

__device__ __forceinline__ float exp_float(float x, const uint64_t* table) {
  if (x < -0x1.9fe368p6f) return 0.0f;  // underflows (and -inf)
  if (x != x || x > 0x1.62e42ep6f) return x != x ? x : INFINITY;
  const double z = __dmul_rn(kInvLn2N, static_cast<double>(x));
  const double shifted = __dadd_rn(z, kExpShift);
  const uint64_t ki = static_cast<uint64_t>(__double_as_longlong(shifted));
  const double r = __dsub_rn(z, __dsub_rn(shifted, kExpShift));
  const double scale = __longlong_as_double(static_cast<long long>(table[ki & 31] + (ki << 47)));
  const double c = __dadd_rn(__dmul_rn(kExpC0, r), kExpC1);
  const double y = __dadd_rn(__dmul_rn(c, __dmul_rn(r, r)), __dadd_rn(__dmul_rn(kExpC2, r), 1.0));
  return __double2float_rn(__dmul_rn(y, scale));
}

// ---- ordering keys: a larger key comes first ----
struct Key {
  uint64_t hi = 0, lo = 0;
};
__device__ __forceinline__ bool key_ge(const Key& a, const Key& b) { return a.hi > b.hi || (a.hi == b.hi && a.lo >= b.lo); }

// (value descending, id ascending) as one integer; -0 and +0 compare equal.
__device__ __forceinline__ uint64_t main_key(float x, int id) {
  if (x == 0.0f) x = 0.0f;
  const uint32_t b = __float_as_uint(x);
  const uint32_t ord = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return (static_cast<uint64_t>(ord) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(id));
}

__device__ __forceinline__ int key_digit(const Key& k, int level) {
  const uint64_t word = level < 8 ? k.hi : k.lo;
  return static_cast<int>((word >> (56 - 8 * (level & 7))) & 0xff);
}

// Whether k agrees with prefix on the digits of levels [0, level).
__device__ __forceinline__ bool key_matches(const Key& k, const Key& prefix, int level) {
  if (level == 0) return true;
  if (level <= 8) return (k.hi >> (64 - 8 * level)) == (prefix.hi >> (64 - 8 * level));
  if (k.hi != prefix.hi) return false;
  return (k.lo >> (64 - 8 * (level - 8))) == (prefix.lo >> (64 - 8 * (level - 8)));
}

__device__ __forceinline__ void set_digit(Key& k, int level, int digit) {
  uint64_t& word = level < 8 ? k.hi : k.lo;
  word |= static_cast<uint64_t>(digit) << (56 - 8 * (level & 7));
}

// ---- shared scratch ----
struct Scratch {
  double mass[kDigits];
  int count[kDigits];
  double red_d[kWarps];
  float red_f[kWarps];
  int red_i[kWarps];
  double warp_total[kWarps];
  int warp_last[kWarps];
  Key prefix;
  double remaining;
  int bucket_count;
  int members;  // select_cutoff: how many ids are members
  int finished;
  int walker;
  double walker_prefix;
  int token;
  int last;
  int num_top;
  double total;
  uint64_t top_keys[kMaxSampleTopLogprobs];
  uint64_t exp_table[32];
};

// ---- warp / block reductions (every thread gets the result) ----
__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ double warp_inclusive_scan(double v) {
  const int lane = threadIdx.x & 31;
  for (int o = 1; o < 32; o <<= 1) {
    const double up = __shfl_up_sync(kFull, v, o);
    if (lane >= o) v += up;
  }
  return v;
}

__device__ inline double block_sum(double v, Scratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) s.red_d[warp] = v;
  __syncthreads();
  return warp_sum_d(lane < kWarps ? s.red_d[lane] : 0.0);
}

// fmaxf ignores NaN, as std::max(running, v) does.
__device__ inline float block_max_f(float v, Scratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  __syncthreads();
  if (lane == 0) s.red_f[warp] = v;
  __syncthreads();
  v = lane < kWarps ? s.red_f[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

__device__ inline int block_sum_i(int v, Scratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  __syncthreads();
  if (lane == 0) s.red_i[warp] = v;
  __syncthreads();
  v = lane < kWarps ? s.red_i[lane] : 0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

// ---- one sample's row after steps 2-5 (bias, suppression, penalties) ----
struct Row {
  const float* logits;
  const uint32_t* touched;  // shared bitmap: ids with a SampleEntry
  const SampleEntry* entries;
  int num_entries;
  float repetition_penalty;
  int vocab;
  const uint64_t* exp_table;  // shared copy of kExp2Table

  __device__ float raw(int i) const { return __ldg(logits + i); }
  __device__ float exp(float x) const { return exp_float(x, exp_table); }

  // Steps 2-5 on the raw logit x of id i.
  __device__ float adjust(int i, float x) const {
    if (touched[i >> 5] & (1u << (i & 31))) x = apply(x, find(i));
    return x;
  }
  __device__ float value(int i) const { return adjust(i, raw(i)); }

  __device__ const SampleEntry& find(int id) const {
    int lo = 0, hi = num_entries - 1;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (entries[mid].id < id) lo = mid + 1;
      else hi = mid;
    }
    return entries[lo];
  }

  __device__ float apply(float x, const SampleEntry& e) const {
    if (e.flags & kEntryBias) x = __fadd_rn(x, e.bias);
    if (e.flags & kEntrySuppress) x = -INFINITY;
    if (e.flags & kEntryRepeat) x = x > 0.0f ? __fdiv_rn(x, repetition_penalty) : __fmul_rn(x, repetition_penalty);
    if (e.flags & kEntryCounted) x = __fsub_rn(x, e.subtract);
    return x;
  }
};

// ---- passes over a row ----
// Every pass is memory-latency bound when each thread has one load in flight
// (one block per row, ~70 µs per pass at 128K ids). The helpers below issue
// kUnroll independent loads per thread before using any of them, while each
// thread still visits ids t, t + kThreads, t + 2 kThreads, ... in ascending
// order, so per-thread sums add up in the same order as a plain strided loop.
constexpr int kUnroll = 8;      // plain passes (max, sums, argmax)
constexpr int kHistUnroll = 4;  // histogram passes (larger bodies)

// fn(i, x, valid) for every id i < vocab (x: the raw logit with kRaw, else the
// value after steps 2-5), called the same number of times by every lane of a
// warp (ids past the row come with valid = false), so fn may use warp-wide
// votes and shuffles.
template <int kU, bool kRaw, typename Fn>
__device__ __forceinline__ void for_each_id_warp_uniform(const Row& row, Fn&& fn) {
  constexpr int kStep = kThreads * kU;
  const int full = row.vocab / kStep * kStep;
  for (int base = threadIdx.x; base < full; base += kStep) {
    float x[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) x[u] = row.raw(base + u * kThreads);
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int i = base + u * kThreads;
      fn(i, kRaw ? x[u] : row.adjust(i, x[u]), true);
    }
  }
  const int padded = (row.vocab + kThreads - 1) / kThreads * kThreads;
  for (int i = full + threadIdx.x; i < padded; i += kThreads) {
    const bool valid = i < row.vocab;
    fn(i, valid ? (kRaw ? row.raw(i) : row.value(i)) : 0.0f, valid);
  }
}

// fn(i, x) for every id i < vocab, in the same per-thread order.
template <int kU, bool kRaw, typename Fn>
__device__ __forceinline__ void for_each_id(const Row& row, Fn&& fn) {
  for_each_id_warp_uniform<kU, kRaw>(row, [&](int i, float x, bool valid) {
    if (valid) fn(i, x);
  });
}

__device__ __forceinline__ void keep_better(float& best_v, int& best_i, float v, int i) {
  if (v > best_v || (v == best_v && i < best_i)) {
    best_v = v;
    best_i = i;
  }
}

// Step 6: the argmax, lowest id on ties (NaN never wins).
__device__ inline int argmax_row(const Row& row, Scratch& s) {
  float best_v = -INFINITY;
  int best_i = INT_MAX;
  for_each_id<kUnroll, false>(row, [&](int i, float v) {
    if (v == v) keep_better(best_v, best_i, v, i);
  });
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(kFull, best_v, o);
    const int i = __shfl_xor_sync(kFull, best_i, o);
    keep_better(best_v, best_i, v, i);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    s.red_f[warp] = best_v;
    s.red_i[warp] = best_i;
  }
  __syncthreads();
  best_v = lane < kWarps ? s.red_f[lane] : -INFINITY;
  best_i = lane < kWarps ? s.red_i[lane] : INT_MAX;
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(kFull, best_v, o);
    const int i = __shfl_xor_sync(kFull, best_i, o);
    keep_better(best_v, best_i, v, i);
  }
  return best_i == INT_MAX ? 0 : best_i;
}

constexpr int kDrawUnroll = 4;  // 32-id chunks loaded ahead in the draw's segment pass

// Step 12: the first id (ascending) whose running sum of weight(id) exceeds
// u * (sum of all weights); the last id of positive weight when rounding leaves none. Each warp
// owns a contiguous segment and sums it 32 ids at a time, keeping its running
// sum after every 32-id chunk in chunk_incl; the warp whose segment holds the
// crossing finds the chunk from those sums and walks it with a warp scan.
// weight(i, v) takes the value of id i after steps 2-5. Since the target is a
// fraction of the weights' own total, weights need not be normalized.
template <typename Weight>
__device__ inline int draw(const Row& row, double u, Weight weight, double* chunk_incl, Scratch& s) {
  const int vocab = row.vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int seg = ((vocab + kWarps - 1) / kWarps + 31) & ~31;
  const int begin = min(warp * seg, vocab), end = min(begin + seg, vocab);
  double running = 0.0;
  int last = -1;
  for (int base = begin; base < end; base += 32 * kDrawUnroll) {
    // kDrawUnroll chunks' loads first, then their weights, then the scans in order.
    float x[kDrawUnroll];
#pragma unroll
    for (int c = 0; c < kDrawUnroll; ++c) {
      const int i = base + 32 * c + lane;
      x[c] = i < end ? row.raw(i) : 0.0f;
    }
    double w[kDrawUnroll];
#pragma unroll
    for (int c = 0; c < kDrawUnroll; ++c) {
      const int i = base + 32 * c + lane;
      w[c] = i < end ? weight(i, row.adjust(i, x[c])) : 0.0;
    }
#pragma unroll
    for (int c = 0; c < kDrawUnroll; ++c) {
      const int chunk_base = base + 32 * c;
      if (chunk_base >= end) break;  // warp-uniform
      const double incl = warp_inclusive_scan(w[c]);
      running += __shfl_sync(kFull, incl, 31);
      if (lane == 0) chunk_incl[chunk_base >> 5] = running;
      if (w[c] > 0.0) last = chunk_base + lane;
    }
  }
  for (int o = 16; o > 0; o >>= 1) last = max(last, __shfl_xor_sync(kFull, last, o));
  __syncthreads();
  if (lane == 0) {
    s.warp_total[warp] = running;
    s.warp_last[warp] = last;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    // The total of the weights (step 12's sum of kept p) from the warps' sums.
    double total = 0.0;
    for (int w = 0; w < kWarps; ++w) total += s.warp_total[w];
    s.total = u * total;
    const double target = s.total;
    double prefix = 0.0;
    int walker = -1, last_any = -1;
    for (int w = 0; w < kWarps; ++w) last_any = max(last_any, s.warp_last[w]);
    for (int w = 0; w < kWarps; ++w) {
      if (prefix + s.warp_total[w] > target) {
        walker = w;
        break;
      }
      prefix += s.warp_total[w];
    }
    s.walker = walker;
    s.walker_prefix = prefix;
    s.last = last_any;
    s.token = -1;
  }
  __syncthreads();
  if (warp == s.walker) {
    const double target = s.total;
    const double prefix = s.walker_prefix;
    const int first_chunk = begin >> 5, end_chunk = (end + 31) >> 5;
    // The first chunk whose running sum passes target (the last one does).
    int chunk = end_chunk - 1;
    for (int c0 = first_chunk; c0 < end_chunk; c0 += 32) {
      const int c = c0 + lane;
      const unsigned hit = __ballot_sync(kFull, c < end_chunk && prefix + chunk_incl[c] > target);
      if (hit) {
        chunk = c0 + __ffs(hit) - 1;
        break;
      }
    }
    running = prefix + (chunk > first_chunk ? chunk_incl[chunk - 1] : 0.0);
    for (int base = chunk * 32; base < vocab; base += 32) {  // past the chunk only if rounding says so
      const int i = base + lane;
      const double w = i < vocab ? weight(i, row.value(i)) : 0.0;
      const double incl = warp_inclusive_scan(w);
      const unsigned hit = __ballot_sync(kFull, w > 0.0 && running + incl > target);
      if (hit) {
        if (lane == 0) s.token = base + __ffs(hit) - 1;
        break;
      }
      running += __shfl_sync(kFull, incl, 31);
    }
  }
  __syncthreads();
  const int token = s.token >= 0 ? s.token : max(s.last, 0);
  __syncthreads();
  return token;
}

}  // namespace nibble::kernels::sampling_detail

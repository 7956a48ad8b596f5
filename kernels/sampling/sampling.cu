#include <cfloat>
#include <climits>
#include <cmath>

#include "sampling/sampling.h"

// Mirrors src/engine/sampler.cpp step by step; comments name the step of
// sampler.h. Where the CPU rounds a float (exp of a float argument, the
// penalties) this code rounds the same way with explicit _rn intrinsics, so
// only the order of double summations differs (and the draw's weights skip a
// renormalization that no later filter reads: the draw divides by their total).
namespace nibble::kernels {
namespace {

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

__device__ double block_sum(double v, Scratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) s.red_d[warp] = v;
  __syncthreads();
  return warp_sum_d(lane < kWarps ? s.red_d[lane] : 0.0);
}

// fmaxf ignores NaN, as std::max(running, v) does.
__device__ float block_max_f(float v, Scratch& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  __syncthreads();
  if (lane == 0) s.red_f[warp] = v;
  __syncthreads();
  v = lane < kWarps ? s.red_f[lane] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

__device__ int block_sum_i(int v, Scratch& s) {
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

// fn(i, x) for every id i < vocab; x is the raw logit (kRaw) or the value after
// steps 2-5.
template <int kU, bool kRaw, typename Fn>
__device__ __forceinline__ void for_each_id(const Row& row, Fn&& fn) {
  constexpr int kStep = kThreads * kU;
  const int full = row.vocab / kStep * kStep;
  for (int base = threadIdx.x; base < full; base += kStep) {
    float x[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) x[u] = row.raw(base + u * kThreads);
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int i = base + u * kThreads;
      fn(i, kRaw ? x[u] : row.adjust(i, x[u]));
    }
  }
  for (int i = full + threadIdx.x; i < row.vocab; i += kThreads) fn(i, kRaw ? row.raw(i) : row.value(i));
}

// As for_each_id, but fn(i, x, valid) is called the same number of times by
// every lane of a warp (ids past the row come with valid = false), so fn may
// use warp-wide votes and shuffles.
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

__device__ __forceinline__ void keep_better(float& best_v, int& best_i, float v, int i) {
  if (v > best_v || (v == best_v && i < best_i)) {
    best_v = v;
    best_i = i;
  }
}

// Step 6: the argmax, lowest id on ties (NaN never wins).
__device__ int argmax_row(const Row& row, Scratch& s) {
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
__device__ int draw(const Row& row, double u, Weight weight, double* chunk_incl, Scratch& s) {
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

// ---- histograms of one radix level ----
// d: this lane's digit, or -1 when its id does not take part. Lanes of a warp
// with the same digit are counted together (__match_any_sync), so a hot bucket
// sees one shared atomic per warp and digit, not one per id.
__device__ __forceinline__ void count_digit(int d, Scratch& s) {
  if (__ballot_sync(kFull, d >= 0) == 0) return;
  const unsigned peers = __match_any_sync(kFull, d);
  if (d >= 0 && (threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&s.count[d], __popc(peers));
}

// As count_digit, also adding the lanes' weights w (0 where d < 0) into
// s.mass[d]. A group of lanes with the same digit is summed with one 5-step
// butterfly per group while there are few groups (peaked rows, deep levels);
// with many (a flat row's first level has ~10 per warp) each group leader
// gathers its peers' weights with one pass of shuffles over the active lanes.
// Only the order of the double additions depends on the path, as across warps.
constexpr int kMaxButterflyGroups = 4;
__device__ __forceinline__ void add_digit_mass(int d, double w, Scratch& s) {
  const int lane = threadIdx.x & 31;
  const unsigned active = __ballot_sync(kFull, d >= 0);
  if (active == 0) return;
  const unsigned peers = __match_any_sync(kFull, d);
  const bool leader = d >= 0 && lane == __ffs(peers) - 1;
  const unsigned leaders = __ballot_sync(kFull, leader);
  double group = 0.0;
  if (__popc(leaders) <= kMaxButterflyGroups) {
    for (unsigned pending = leaders; pending; pending &= pending - 1) {
      const int first = __ffs(pending) - 1;
      const int digit = __shfl_sync(kFull, d, first);
      const double sum = warp_sum_d(d == digit ? w : 0.0);
      if (lane == first) group = sum;
    }
  } else {
    for (unsigned pending = active; pending; pending &= pending - 1) {
      const int src = __ffs(pending) - 1;
      const double x = __shfl_sync(kFull, w, src);
      if ((peers >> src) & 1u) group += x;
    }
  }
  if (leader) {
    atomicAdd(&s.count[d], __popc(peers));
    atomicAdd(&s.mass[d], group);
  }
}

// A member's key and, when known as a by-product of the key, its weight.
struct Candidate {
  Key key;
  double weight = -1.0;  // < 0: not computed, select_cutoff asks weight_of
};

// Radix selection over the members' keys (most significant 8-bit digit first):
// the key of the element at which the running weight, in descending key order,
// first reaches target. Members with key >= the result are the shortest prefix
// reaching target; all members when it is never reached. key_of(i, v, c) says
// whether i (value v after steps 2-5, or the raw logit with kRaw) is a member
// and sets c; weight_of(i, v) is its weight. kCountOnly: every weight is 1 (the
// histogram only counts; counts are exact, as the sums of 1.0 were).
//
// relative: target is a fraction of the members' total weight, which is
// returned in *total (the softmax denominator for top_p, from the same pass).
// members (optional): how many ids are members, from the first level.
template <bool kCountOnly, bool kRaw, typename KeyOf, typename WeightOf>
__device__ Key select_cutoff(const Row& row, int levels, double target, KeyOf key_of, WeightOf weight_of,
                             Scratch& s, bool relative = false, double* total = nullptr, int* members = nullptr) {
  const int lane = threadIdx.x & 31;
  if (threadIdx.x == 0) {
    s.prefix = Key{};
    s.remaining = target;
    s.finished = 0;
    s.members = 0;
  }
  for (int level = 0; level < levels; ++level) {
    __syncthreads();
    if (s.finished) break;
    for (int d = threadIdx.x; d < kDigits; d += kThreads) {
      s.mass[d] = 0.0;
      s.count[d] = 0;
    }
    __syncthreads();
    const Key prefix = s.prefix;
    for_each_id_warp_uniform<kHistUnroll, kRaw>(row, [&](int i, float v, bool valid) {
      Candidate c;
      int d = -1;
      if (valid && key_of(i, v, c) && key_matches(c.key, prefix, level)) d = key_digit(c.key, level);
      if constexpr (kCountOnly) {
        count_digit(d, s);
      } else {
        const double w = d < 0 ? 0.0 : (c.weight >= 0.0 ? c.weight : weight_of(i, v));
        add_digit_mass(d, w, s);
      }
    });
    __syncthreads();
    if constexpr (kCountOnly) {
      for (int d = threadIdx.x; d < kDigits; d += kThreads) s.mass[d] = static_cast<double>(s.count[d]);
      __syncthreads();
    }
    if (threadIdx.x < 32) {
      // Lane l holds digits 255-8l .. 248-8l (descending).
      double lane_mass = 0.0;
      int lane_count = 0;
      for (int j = 0; j < 8; ++j) {
        const int d = 255 - (lane * 8 + j);
        lane_mass += s.mass[d];
        lane_count += s.count[d];
      }
      const double incl = warp_inclusive_scan(lane_mass);
      const double up = __shfl_up_sync(kFull, incl, 1);
      const double excl = lane > 0 ? up : 0.0;
      if (level == 0) {
        int all = lane_count;
        for (int o = 16; o > 0; o >>= 1) all += __shfl_xor_sync(kFull, all, o);
        if (lane == 0) s.members = all;
      }
      double remaining = s.remaining;
      if (relative && level == 0) {
        const double all = __shfl_sync(kFull, incl, 31);
        remaining = target * all;
        if (lane == 0) s.total = all;
      }
      const unsigned crossing = __ballot_sync(kFull, lane_count > 0 && incl >= remaining);
      const unsigned nonempty = __ballot_sync(kFull, lane_count > 0);
      // The crossing lane, or else the last lane with members (take them all).
      const int owner = crossing ? __ffs(crossing) - 1 : (nonempty ? 31 - __clz(nonempty) : -1);
      if (lane == owner) {
        double before = excl;
        int chosen = -1;
        double chosen_before = before;
        for (int j = 0; j < 8; ++j) {
          const int d = 255 - (lane * 8 + j);
          if (s.count[d] == 0) continue;
          chosen = d;
          chosen_before = before;
          if (before + s.mass[d] >= remaining) break;
          before += s.mass[d];
        }
        set_digit(s.prefix, level, chosen);
        s.remaining = remaining - chosen_before;
        s.bucket_count = s.count[chosen];
        if (s.bucket_count <= 1) s.finished = 1;
      }
      if (owner < 0 && lane == 0) s.finished = 1;
    }
  }
  __syncthreads();
  const Key result = s.prefix;
  if (total) *total = s.total;
  if (members) *members = s.members;
  __syncthreads();
  return result;
}

__device__ __forceinline__ bool is_finite(float v) { return isfinite(v); }

// Steps 8-11 as a membership test and probability per id, stage by stage.
struct Filter {
  Row row;
  double temperature;
  double max_value;
  uint64_t cut_k = 0;   // top_k: main key >= cut_k
  uint64_t cut_p = 0;   // top_p
  double sum0 = 1.0;    // softmax denominator over the top_k survivors
  double sum_p = 1.0;   // top_p renormalization
  double min_p_threshold = -1.0;
  double sum_m = 1.0;   // min_p renormalization
  double entropy = 0.0;
  bool typical = false;
  Key cut_t;            // typical_p: typical key >= cut_t

  // v: the value of id i after steps 2-5.
  // stage 0: after top_k (p = softmax); 1: after top_p; 2: after min_p; 3: after typical_p.
  // A renormalization that no later stage reads is left at 1: the draw
  // divides by the kept weights' own total.
  __device__ bool eval(int i, float v, int stage, double& p, uint64_t& key) const {
    if (!is_finite(v)) return false;
    key = main_key(v, i);
    if (key < cut_k) return false;
    if (stage >= 1 && key < cut_p) return false;
    const double value = static_cast<double>(v) / temperature;
    const float e = row.exp(__double2float_rn(value - max_value));
    p = static_cast<double>(e) / sum0;
    if (stage == 0) return true;
    p /= sum_p;
    if (stage == 1) return true;
    if (!(p >= min_p_threshold)) return false;
    p /= sum_m;
    if (stage == 2) return true;
    return !typical || key_ge(typical_key(p, key), cut_t);
  }

  // Ascending |surprise - entropy| first, then more probable first.
  __device__ Key typical_key(double p, uint64_t key) const {
    const double surprise = p > 0.0 ? -log(p) : INFINITY;
    const double distance = fabs(surprise - entropy);
    return Key{~static_cast<uint64_t>(__double_as_longlong(distance)), key};
  }

  // The block-wide sum of p over the ids kept after stage.
  __device__ double kept_sum(int stage, Scratch& s) const {
    double sum = 0.0;
    for_each_id<kUnroll, false>(row, [&](int i, float v) {
      double p = 0.0;
      uint64_t key;
      if (eval(i, v, stage, p, key)) sum += p;
    });
    return block_sum(sum, s);
  }
};

__device__ int sample_unfiltered(const Row& row, const SampleJob& job, double u, double* chunk_incl, Scratch& s) {
  // Steps 9 and 12 straight over the row, in float as the CPU does.
  float m = -INFINITY;
  for_each_id<kUnroll, false>(row, [&](int, float v) { m = fmaxf(m, v); });
  m = block_max_f(m, s);
  if (!is_finite(m)) return argmax_row(row, s);
  const float inv_t = __double2float_rn(1.0 / job.temperature);
  auto weight = [&](int, float v) -> double {
    if (!is_finite(v)) return 0.0;
    return row.exp(__fmul_rn(__fsub_rn(v, m), inv_t));
  };
  return draw(row, u, weight, chunk_incl, s);
}

__device__ int sample_filtered(const Row& row, const SampleJob& job, double u, double* chunk_incl, Scratch& s) {
  const int vocab = row.vocab;
  float vmax = -INFINITY;
  int finite = 0;
  uint64_t cut_k = 0;
  if (job.top_k > 0 && job.top_k < vocab) {
    // Step 8: top_k by count over the finite values. The maximum and the
    // finite count ride along its first level instead of a pass of their own
    // (key_of sees every id at the first level).
    auto key_of = [&](int i, float v, Candidate& c) {
      if (!is_finite(v)) return false;
      vmax = fmaxf(vmax, v);
      c.key = Key{main_key(v, i), 0};
      return true;
    };
    cut_k = select_cutoff<true, false>(row, 8, static_cast<double>(job.top_k), key_of,
                                       [](int, float) { return 1.0; }, s, false, nullptr, &finite)
                .hi;
    if (job.top_k >= finite) cut_k = 0;  // keeps every finite value
  } else {
    for_each_id<kUnroll, false>(row, [&](int, float v) {
      if (is_finite(v)) {
        vmax = fmaxf(vmax, v);
        ++finite;
      }
    });
    finite = block_sum_i(finite, s);
  }
  vmax = block_max_f(vmax, s);
  if (finite == 0) return argmax_row(row, s);

  // min_p and typical_p read normalized probabilities; without them the
  // softmax and top_p renormalizations are left out (the draw normalizes).
  const bool later_filters_need_p = job.min_p > 0.0 || job.typical_p < 1.0;
  Filter f{row, job.temperature, static_cast<double>(vmax) / job.temperature};
  f.cut_k = cut_k;
  // Step 9: softmax over the survivors. With top_p its denominator comes from
  // the first selection pass, whose weights are then the unnormalized exps.
  f.sum0 = 1.0;
  if (job.top_p >= 1.0) {
    if (later_filters_need_p) f.sum0 = f.kept_sum(0, s);
  } else {
    auto key_of = [&](int i, float v, Candidate& c) {  // stage-0 membership needs no exp
      if (!is_finite(v)) return false;
      c.key = Key{main_key(v, i), 0};
      return c.key.hi >= f.cut_k;
    };
    auto weight_of = [&](int i, float v) {
      double q = 0.0;
      uint64_t mk;
      f.eval(i, v, 0, q, mk);
      return q;
    };
    double denominator = 1.0;
    f.cut_p = select_cutoff<false, false>(row, 8, job.top_p, key_of, weight_of, s, true, &denominator).hi;
    f.sum0 = denominator;
    if (later_filters_need_p) f.sum_p = f.kept_sum(1, s);
  }
  // Step 10: min_p against the most probable survivor.
  if (job.min_p > 0.0) {
    // The most probable survivor is the row's maximum, whose exp is exactly 1.
    const double p_max = (1.0 / f.sum0) / f.sum_p;
    f.min_p_threshold = job.min_p * p_max;
    if (job.typical_p < 1.0) f.sum_m = f.kept_sum(2, s);
  }
  // Step 11: typical_p.
  if (job.typical_p < 1.0) {
    double h = 0.0;
    for_each_id<kUnroll, false>(row, [&](int i, float v) {
      double p = 0.0;
      uint64_t key;
      if (f.eval(i, v, 2, p, key) && p > 0.0) h -= p * log(p);
    });
    f.entropy = block_sum(h, s);
    auto key_of = [&](int i, float v, Candidate& c) {  // the probability comes with the key
      double q;
      uint64_t mk;
      if (!f.eval(i, v, 2, q, mk)) return false;
      c.key = f.typical_key(q, mk);
      c.weight = q;
      return true;
    };
    auto weight_of = [&](int i, float v) {
      double q = 0.0;
      uint64_t mk;
      f.eval(i, v, 2, q, mk);
      return q;
    };
    f.cut_t = select_cutoff<false, false>(row, 16, job.typical_p, key_of, weight_of, s);
    f.typical = true;
  }
  // Step 12 over the final probabilities.
  auto weight = [&](int i, float v) -> double {
    double q = 0.0;
    uint64_t mk;
    return f.eval(i, v, 3, q, mk) ? q : 0.0;
  };
  return draw(row, u, weight, chunk_incl, s);
}

// Step 1: raw log_softmax of the token and the top alternatives.
__device__ void fill_logprobs(const Row& row, const SampleJob& job, int token, Scratch& s, SampleOutput& out) {
  const int vocab = row.vocab;
  float m = -INFINITY;
  for_each_id<kUnroll, true>(row, [&](int, float x) { m = fmaxf(m, x); });
  m = block_max_f(m, s);
  double sum = 0.0;
  for_each_id<kUnroll, true>(row, [&](int, float x) { sum += row.exp(__fsub_rn(x, m)); });
  sum = block_sum(sum, s);
  const double log_z = static_cast<double>(m) + log(sum);
  const int n = min(min(job.top_logprobs, kMaxSampleTopLogprobs), vocab);
  if (threadIdx.x == 0) s.num_top = 0;
  if (n > 0) {
    auto key_of = [&](int i, float x, Candidate& c) {
      c.key = Key{main_key(x, i), 0};
      return true;
    };
    const uint64_t cut =
        select_cutoff<true, true>(row, 8, static_cast<double>(n), key_of, [](int, float) { return 1.0; }, s).hi;
    for_each_id<kUnroll, true>(row, [&](int i, float x) {
      const uint64_t k = main_key(x, i);
      if (k < cut) return;
      const int slot = atomicAdd(&s.num_top, 1);
      if (slot < n) s.top_keys[slot] = k;
    });
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const int found = min(s.num_top, n);
    for (int a = 1; a < found; ++a) {  // insertion sort, best first
      const uint64_t k = s.top_keys[a];
      int b = a;
      for (; b > 0 && s.top_keys[b - 1] < k; --b) s.top_keys[b] = s.top_keys[b - 1];
      s.top_keys[b] = k;
    }
    out.token = token;
    out.logprob = __double2float_rn(static_cast<double>(row.raw(token)) - log_z);
    out.num_top = found;
    for (int a = 0; a < found; ++a) {
      const int id = static_cast<int>(0xFFFFFFFFu - static_cast<uint32_t>(s.top_keys[a]));
      out.top_ids[a] = id;
      out.top_logprobs[a] = __double2float_rn(static_cast<double>(row.raw(id)) - log_z);
    }
  }
}

__device__ bool is_filtered(const SampleJob& job, int vocab) {
  return (job.top_k > 0 && job.top_k < vocab) || job.top_p < 1.0 || job.min_p > 0.0 || job.typical_p < 1.0;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits, int vocab,
                                                          const SampleJob* __restrict__ jobs,
                                                          const SampleEntry* __restrict__ entries,
                                                          SampleOutput* __restrict__ outputs) {
  extern __shared__ double dynamic_smem[];
  __shared__ Scratch s;
  const SampleJob job = jobs[blockIdx.x];
  const int words = (vocab + 31) / 32;
  double* chunk_incl = dynamic_smem;  // [words]
  uint32_t* touched = reinterpret_cast<uint32_t*>(dynamic_smem + words);  // [words]
  for (int w = threadIdx.x; w < words; w += kThreads) touched[w] = 0;
  if (threadIdx.x < 32) s.exp_table[threadIdx.x] = kExp2Table[threadIdx.x];
  __syncthreads();
  const SampleEntry* mine = entries + job.entry_begin;
  for (int e = threadIdx.x; e < job.entry_count; e += kThreads) {
    const int id = mine[e].id;
    atomicOr(&touched[id >> 5], 1u << (id & 31));
  }
  __syncthreads();
  const Row row{logits + static_cast<size_t>(job.logits_row) * vocab, touched, mine, job.entry_count,
                job.repetition_penalty, vocab, s.exp_table};
  int token;
  if (job.temperature <= 0.0) {
    token = argmax_row(row, s);
  } else {
    const double u = sampler_uniform(job.seed, job.counter);
    token = is_filtered(job, vocab) ? sample_filtered(row, job, u, chunk_incl, s)
                                     : sample_unfiltered(row, job, u, chunk_incl, s);
  }
  SampleOutput& out = outputs[blockIdx.x];
  if (job.logprobs) {
    fill_logprobs(row, job, token, s, out);
  } else if (threadIdx.x == 0) {
    out.token = token;
    out.logprob = 0.0f;
    out.num_top = 0;
  }
}

}  // namespace

cudaError_t sample_rows(const float* logits, int vocab, const SampleJob* jobs, int num_jobs,
                        const SampleEntry* entries, SampleOutput* out, cudaStream_t stream) {
  if (num_jobs <= 0) return cudaSuccess;
  if (vocab <= 0) return cudaErrorInvalidValue;
  const size_t smem = static_cast<size_t>((vocab + 31) / 32) * (sizeof(double) + sizeof(uint32_t));
  if (smem + sizeof(Scratch) > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  sample_kernel<<<num_jobs, kThreads, smem, stream>>>(logits, vocab, jobs, entries, out);
  return cudaGetLastError();
}

}  // namespace nibble::kernels

#include <cfloat>
#include <climits>
#include <cmath>

#include "sampling/sampling.h"
#include "sampling/sampling_row.cuh"

// Mirrors src/engine/sampler.cpp step by step; comments name the step of
// sampler.h. Where the CPU rounds a float (exp of a float argument, the
// penalties) this code rounds the same way with explicit _rn intrinsics, so
// only the order of double summations differs (and the draw's weights skip a
// renormalization that no later filter reads: the draw divides by their total).
namespace nibble::kernels {
namespace {

using namespace sampling_detail;

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

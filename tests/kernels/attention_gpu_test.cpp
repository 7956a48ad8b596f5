// Paged attention (prefill chunks, decode tokens, prefix hits, GQA, flash-decoding
// splits, sliding windows) against the scalar reference, on shuffled block tables.
#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "attention/attention.h"
#include "attention/attention_ref.h"
#include "attention/prefill_attention_mma.cuh"
#include "gpu_test_util.h"
#include "nibble/core/half.h"
#include "random_fill/random_fill.h"

namespace nibble::test {
namespace {

struct SeqSpec {
  int cached;  // tokens already in the cache before this step
  int q_len;   // new tokens this step
};

struct AttentionCase {
  int num_heads, num_kv_heads, head_dim, block_size;
  std::vector<SeqSpec> seqs;
};

// How a case is run: split count (0: the planner's), decode kernel, tensor
// cores, splits merged by the decode kernel itself (split_counters), and the
// tensor-core kernel launched directly with this block shape (warps 0: through
// paged_attention; otherwise its split partials are merged here on the host).
struct Variant {
  int splits = 0;
  bool decode_only = false;
  bool tensor_cores = true;
  bool merge_in_kernel = false;
  int cluster = 0;  // decode kernel's blocks per cluster (0: its own choice)
  kernels::MmaAttentionShape mma_shape{0, 0};
};

// paged_attention's parameters over device arrays: the tensors, the step's
// metadata (query starts, sequence lengths, block table, work items) and the
// shape, with scale 1 / sqrt(head_dim); the rest at its defaults.
struct AttentionArrays {
  const DeviceArray<uint16_t>& q;
  const DeviceArray<uint16_t>& k;
  const DeviceArray<uint16_t>& v;
  const DeviceArray<uint16_t>& out;
  const DeviceArray<int32_t>& query_start;
  const DeviceArray<int32_t>& seq_lens;
  const DeviceArray<int32_t>& kv_indptr;
  const DeviceArray<int32_t>& kv_indices;
  const DeviceArray<int32_t>& work_seq;
  const DeviceArray<int32_t>& work_qoff;
};

kernels::PagedAttentionParams attention_params(const AttentionArrays& a, int num_work, int tokens, int heads,
                                               int kv_heads, int head_dim, int block_size) {
  kernels::PagedAttentionParams p;
  p.q = a.q.as<__half>();
  p.k_cache = a.k.as<__half>();
  p.v_cache = a.v.as<__half>();
  p.out = a.out.as<__half>();
  p.query_start = a.query_start.get();
  p.seq_lens = a.seq_lens.get();
  p.kv_indptr = a.kv_indptr.get();
  p.kv_indices = a.kv_indices.get();
  p.work_seq = a.work_seq.get();
  p.work_qoff = a.work_qoff.get();
  p.num_work = num_work;
  p.num_tokens = tokens;
  p.num_heads = heads;
  p.num_kv_heads = kv_heads;
  p.head_dim = head_dim;
  p.block_size = block_size;
  p.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return p;
}

// Every block shape of the tensor-core kernel, launched directly, with one
// split and with `splits`.
std::vector<Variant> mma_block_shapes(int splits) {
  std::vector<Variant> v;
  for (int s : {1, splits})
    for (kernels::MmaAttentionShape shape : {kernels::MmaAttentionShape{4, 1}, kernels::MmaAttentionShape{8, 1},
                                             kernels::MmaAttentionShape{4, 2}})
      v.push_back({s, false, true, false, 0, shape});
  return v;
}

// The combine pass on the host: split s of row i weighs l * 2^(m - max m).
std::vector<uint16_t> merge_splits(const std::vector<float>& split_out, const std::vector<float>& split_lse,
                                   int splits, size_t rows, int head_dim) {
  std::vector<uint16_t> out(rows * head_dim);
  for (size_t i = 0; i < rows; ++i) {
    float m_max = -INFINITY;
    for (int s = 0; s < splits; ++s)
      if (split_lse[(s * rows + i) * 2 + 1] > 0.0f) m_max = std::max(m_max, split_lse[(s * rows + i) * 2]);
    for (int d = 0; d < head_dim; ++d) {
      double acc = 0.0, total = 0.0;
      for (int s = 0; s < splits; ++s) {
        const float l = split_lse[(s * rows + i) * 2 + 1];
        if (!(l > 0.0f)) continue;
        const double w = l * std::exp2(static_cast<double>(split_lse[(s * rows + i) * 2]) - m_max);
        acc += w * split_out[(s * rows + i) * head_dim + d];
        total += w;
      }
      out[i * head_dim + d] = float_to_fp16(static_cast<float>(total > 0.0 ? acc / total : 0.0));
    }
  }
  return out;
}

// Decode variants run both with the combine pass and with in-kernel merging.
std::vector<Variant> variants(std::initializer_list<int> splits, bool decode_only = false, bool also_cuda_cores = false) {
  std::vector<Variant> v;
  for (int s : splits) {
    v.push_back({s, decode_only, true});
    if (also_cuda_cores) v.push_back({s, decode_only, false});
    if (decode_only) v.push_back({s, decode_only, true, true});
  }
  return v;
}

// Builds one random batch on shuffled block tables, computes the reference once
// and checks every variant against it. With a sliding window, the keys no query
// of a sequence sees are poisoned with NaN in the cache: a kernel that reads one
// (even masked, as 0 * NaN) fails.
void run_case(const AttentionCase& c, const std::vector<Variant>& runs, std::mt19937_64& rng, uint64_t seed,
              int window = 0) {
  const int num_seqs = static_cast<int>(c.seqs.size());
  std::vector<int32_t> query_start(1, 0), seq_lens, kv_indptr(1, 0), kv_indices;
  int total_blocks = 0;
  for (const auto& s : c.seqs) total_blocks += (s.cached + s.q_len + c.block_size - 1) / c.block_size;
  const int num_blocks = total_blocks + 5;
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  int next_block = 0, max_keys = 0;
  for (const auto& s : c.seqs) {
    const int len = s.cached + s.q_len;
    query_start.push_back(query_start.back() + s.q_len);
    seq_lens.push_back(len);
    max_keys = std::max(max_keys, len);
    const int nb = (len + c.block_size - 1) / c.block_size;
    for (int b = 0; b < nb; ++b) kv_indices.push_back(pool[next_block++]);
    kv_indptr.push_back(static_cast<int32_t>(kv_indices.size()));
  }
  const int tokens = query_start.back();
  const size_t cache_n = static_cast<size_t>(num_blocks) * c.num_kv_heads * c.block_size * c.head_dim;
  auto k_cache = random_half(cache_n, rng, -2, 2), v_cache = random_half(cache_n, rng);
  auto q = random_half(static_cast<size_t>(tokens) * c.num_heads * c.head_dim, rng, -2, 2);
  size_t poisoned = 0;
  for (int si = 0; si < num_seqs && window > 0; ++si)
    for (int pos = 0; pos < c.seqs[si].cached + 1 - window; ++pos) {
      const size_t block = kv_indices[kv_indptr[si] + pos / c.block_size];
      for (int h = 0; h < c.num_kv_heads; ++h) {
        const size_t row = ((block * c.num_kv_heads + h) * c.block_size + pos % c.block_size) * c.head_dim;
        std::fill_n(k_cache.begin() + row, c.head_dim, uint16_t{0x7e00});
        std::fill_n(v_cache.begin() + row, c.head_dim, uint16_t{0x7e00});
        ++poisoned;
      }
    }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<uint16_t> want(q.size());
  kernels::ref::paged_attention(q.data(), k_cache.data(), v_cache.data(), want.data(), query_start.data(),
                                seq_lens.data(), kv_indptr.data(), kv_indices.data(), num_seqs, c.num_heads,
                                c.num_kv_heads, c.head_dim, c.block_size, scale, window);

  const int group = c.num_heads / c.num_kv_heads;
  const int tile_tokens = kernels::attention_tile_tokens(c.head_dim, group);
  auto work = kernels::plan_attention_work(query_start, tile_tokens);
  DeviceArray<uint16_t> d_q(q), d_k(k_cache), d_v(v_cache);
  DeviceArray<int32_t> d_qs(query_start), d_sl(seq_lens), d_ip(kv_indptr), d_ix(kv_indices), d_ws(work.seq),
      d_wq(work.qoff);
  for (const Variant& run : runs) {
    const int item_keys = kernels::attention_item_keys(max_keys, window, run.decode_only ? 1 : tile_tokens);
    const int splits = run.splits > 0 ? run.splits
                                      : kernels::attention_num_splits(static_cast<int>(work.seq.size()),
                                                                      c.num_kv_heads, item_keys, 132);
    DeviceArray<uint16_t> d_out(std::vector<uint16_t>(q.size(), 0x7e00));
    DeviceArray<float> d_split_out(static_cast<size_t>(splits) * q.size());
    DeviceArray<float> d_split_lse(static_cast<size_t>(splits) * tokens * c.num_heads * 2);
    DeviceArray<int32_t> d_counters(std::vector<int32_t>(work.seq.size() * c.num_kv_heads, 0));
    const AttentionArrays arrays{d_q, d_k, d_v, d_out, d_qs, d_sl, d_ip, d_ix, d_ws, d_wq};
    kernels::PagedAttentionParams p =
        attention_params(arrays, static_cast<int>(work.seq.size()), tokens, c.num_heads, c.num_kv_heads, c.head_dim,
                         c.block_size);
    p.window = window;
    p.num_splits = splits;
    p.decode_only = run.decode_only;
    p.use_tensor_cores = run.tensor_cores;
    p.split_out = d_split_out.get();
    p.split_lse = d_split_lse.get();
    p.split_counters = run.merge_in_kernel ? d_counters.get() : nullptr;
    p.decode_cluster = run.cluster;
    const bool direct = run.mma_shape.warps > 0;
    if (direct)
      CUDA_OK(kernels::launch_mma_attention_shape(p, run.mma_shape, nullptr));
    else
      CUDA_OK(kernels::paged_attention(p, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    const auto counters = d_counters.download();
    EXPECT_TRUE(std::all_of(counters.begin(), counters.end(), [](int32_t n) { return n == 0; }))
        << "split counters not reset, seed " << seed;

    const auto got = direct && splits > 1 ? merge_splits(d_split_out.download(), d_split_lse.download(), splits,
                                                         static_cast<size_t>(tokens) * c.num_heads, c.head_dim)
                                          : d_out.download();
    auto cmp = compare_half(got, want);
    report("attention h" + std::to_string(c.num_heads) + "/kv" + std::to_string(c.num_kv_heads) + " d" +
               std::to_string(c.head_dim) + " bs" + std::to_string(c.block_size) + " splits " +
               std::to_string(splits) + (run.decode_only ? " decode" : "") +
               (run.merge_in_kernel ? " merged in kernel" : "") + (run.tensor_cores ? "" : " cuda-cores") +
               (direct ? " mma " + std::to_string(run.mma_shape.warps) + "x" + std::to_string(run.mma_shape.m_tiles)
                       : "") +
               (run.cluster > 0 ? " cluster " + std::to_string(run.cluster) : "") +
               (window > 0 ? " window " + std::to_string(window) + " (" + std::to_string(poisoned) + " NaN keys)" : ""),
           cmp);
    EXPECT_EQ(cmp.non_finite, 0u) << "seed " << seed << " window " << window << " splits " << splits << " cluster "
                                  << run.cluster;
    EXPECT_LT(cmp.rel_error, 2e-3) << "seed " << seed << " window " << window << " splits " << splits << " cluster "
                                   << run.cluster;
  }
}

using AttentionTest = SeededGpuTest;

// Mixed batch: a cold prefill, a chunk over a cached prefix (prefix-cache hit or
// chunked prefill), decode tokens at short and long contexts.
const std::vector<SeqSpec> kMixed = {{0, 77}, {100, 40}, {299, 1}, {1, 1}, {0, 1}, {1500, 1}, {31, 33}};

TEST_F(AttentionTest, MixedBatchMatchesReference) {
  for (const AttentionCase& c : {AttentionCase{8, 2, 64, 16, kMixed}, AttentionCase{4, 4, 16, 16, kMixed},
                                 AttentionCase{32, 8, 128, 16, kMixed}, AttentionCase{8, 1, 256, 16, kMixed},
                                 AttentionCase{16, 2, 32, 7, kMixed}, AttentionCase{64, 8, 128, 32, kMixed}})
    run_case(c, variants({1, 3, 0}), rng_, seed_);
}

TEST_F(AttentionTest, LongDecodeWithManySplitsMatchesReference) {
  const AttentionCase c{32, 8, 128, 16, {{4095, 1}, {2000, 1}, {17, 1}}};
  run_case(c, variants({1, 8, 32, 0}), rng_, seed_);
}

// Decode steps (one new token per sequence) through the decode kernel, against
// the same reference; head_dim 16 and 256 fall back to the general kernel.
TEST_F(AttentionTest, DecodeStepsMatchReference) {
  const std::vector<SeqSpec> decode = {{0, 1}, {1, 1}, {126, 1}, {127, 1}, {128, 1}, {300, 1}, {2100, 1}, {17, 1}};
  for (const AttentionCase& c : {AttentionCase{32, 8, 128, 16, decode}, AttentionCase{8, 2, 64, 16, decode},
                                 AttentionCase{16, 2, 32, 7, decode}, AttentionCase{64, 8, 128, 32, decode},
                                 AttentionCase{4, 4, 128, 16, decode}, AttentionCase{4, 4, 16, 16, decode},
                                 AttentionCase{8, 1, 256, 16, decode}, AttentionCase{12, 4, 64, 16, decode}})
    run_case(c, variants({1, 3, 0}, true), rng_, seed_);
}

// Sliding windows smaller than, equal to and larger than the contexts of the
// mixed batch (77 and 140 are the contexts of two prefills; a one-key window
// too), with a chunk far into a long prompt, through the tensor-core kernel
// (d64, d128; and the CUDA-core kernel with tensor cores off) and the CUDA-core
// kernel (d16, d32, d256), with and without splits.
TEST_F(AttentionTest, SlidingWindowMixedBatchMatchesReference) {
  const std::vector<SeqSpec> seqs = {{0, 77}, {100, 40}, {1000, 40}, {299, 1}, {1, 1}, {0, 1}, {1500, 1}, {31, 33}};
  for (const AttentionCase& c : {AttentionCase{8, 2, 64, 16, seqs}, AttentionCase{32, 8, 128, 16, seqs},
                                 AttentionCase{4, 4, 16, 16, seqs}, AttentionCase{8, 1, 256, 16, seqs},
                                 AttentionCase{16, 2, 32, 7, seqs}})
    for (int window : {1, 16, 33, 77, 140, 5000}) run_case(c, variants({1, 3, 0}, false, c.head_dim == 64 || c.head_dim == 128), rng_, seed_, window);
}

// Decode steps with a window (the decode kernel for d32/64/128, the general
// kernel for d16/d256): contexts below, at and past the window; with a small
// window most splits have no keys at all.
TEST_F(AttentionTest, SlidingWindowDecodeMatchesReference) {
  const std::vector<SeqSpec> decode = {{0, 1}, {1, 1}, {126, 1}, {127, 1}, {128, 1}, {300, 1}, {4095, 1}, {17, 1}};
  for (const AttentionCase& c : {AttentionCase{32, 8, 128, 16, decode}, AttentionCase{8, 2, 64, 16, decode},
                                 AttentionCase{16, 2, 32, 7, decode}, AttentionCase{4, 4, 16, 16, decode},
                                 AttentionCase{8, 1, 256, 16, decode}})
    for (int window : {1, 100, 128, 129, 1000}) run_case(c, variants({1, 8, 32, 0}, true), rng_, seed_, window);
}

// Long causal prompts through the tensor-core kernel (64-key chunks, double
// buffered): a cold prompt of several hundred tokens (many full chunks, the
// unmasked fast path, a ragged last tile), a chunk of a chunked prefill against
// a cached prefix whose start is not chunk-aligned, a decode token and a short
// chunk in the same step; GQA groups of 4, 8, 1, 2 and 3 (16, 8, 64, 32 and 21
// tokens per tile, the last leaving a padding row), head_dim 128 and 64, block
// sizes 16 and 7; with and without splits.
// (The CPU reference is slow: few heads keep the test at about a second.)
const std::vector<SeqSpec> kLongPrompts = {{0, 301}, {333, 90}, {0, 1}, {37, 3}};

TEST_F(AttentionTest, LongCausalPromptsMatchReference) {
  for (const AttentionCase& c : {AttentionCase{4, 1, 128, 16, kLongPrompts}, AttentionCase{8, 1, 64, 7, kLongPrompts},
                                 AttentionCase{2, 2, 128, 16, kLongPrompts}, AttentionCase{4, 2, 64, 16, kLongPrompts},
                                 AttentionCase{6, 2, 64, 16, kLongPrompts}})
  {
    auto runs = variants({1, 3});
    for (const Variant& v : mma_block_shapes(3)) runs.push_back(v);
    run_case(c, runs, rng_, seed_);
  }
}

// The same prompts with sliding windows that cut inside the cold prompt, inside
// the cached prefix, and at one chunk (64 keys): the window mask and the
// skipped leading chunks on long rows (keys before the windows are NaN).
TEST_F(AttentionTest, LongCausalPromptsWithSlidingWindowMatchReference) {
  for (const AttentionCase& c : {AttentionCase{4, 1, 128, 16, kLongPrompts}, AttentionCase{8, 1, 64, 7, kLongPrompts}})
    for (int window : {64, 200, 350}) {
      auto runs = variants({1, 2});
      for (const Variant& v : mma_block_shapes(2)) runs.push_back(v);
      run_case(c, runs, rng_, seed_, window);
    }
}

// Every block shape of the tensor-core kernel on the mixed batch (decode
// tokens, prefix hits, ragged tiles) and a window, every head_dim they take.
TEST_F(AttentionTest, TensorCoreBlockShapesMatchReference) {
  for (const AttentionCase& c : {AttentionCase{8, 2, 64, 16, kMixed}, AttentionCase{8, 2, 128, 16, kMixed},
                                 AttentionCase{16, 2, 128, 32, kMixed}, AttentionCase{12, 4, 128, 7, kMixed}})
    for (int window : {0, 50}) run_case(c, mma_block_shapes(3), rng_, seed_, window);
}

// Decode steps of one or a few sequences (batch 1-2: the decode kernel runs
// thread-block clusters on sm_90) through clusters of 1-16 blocks, the
// kernel's own choice and with splits (combine pass): GQA groups 1, 4 and 8,
// head_dim 32/64/128, contexts from 1 key (most cluster blocks empty) to 4,096,
// with and without a sliding window. Devices without clusters run these unclustered.
TEST_F(AttentionTest, FewSequenceDecodeClustersMatchReference) {
  const std::vector<std::vector<SeqSpec>> batches = {{{128, 1}}, {{0, 1}}, {{1024, 1}}, {{4095, 1}, {37, 1}}};
  const std::vector<std::array<int, 3>> shapes = {{32, 8, 128}, {8, 8, 64}, {64, 8, 128}, {16, 4, 32}, {8, 1, 128}};
  for (const auto& seqs : batches)
    for (const auto& [heads, kv_heads, dim] : shapes)
      for (int window : {0, 100}) {
        std::vector<Variant> runs;
        for (int splits : {1, 3, 0})
          for (int cluster : {0, 2, 3, 8, 16}) runs.push_back({splits, true, true, false, cluster});
        run_case(AttentionCase{heads, kv_heads, dim, 16, seqs}, runs, rng_, seed_, window);
      }
}

// Mean time in microseconds of `launch` (after a warm-up call).
template <typename Launch>
double time_us(Launch launch, int reps) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  launch();
  cudaEventRecord(start);
  for (int i = 0; i < reps; ++i) launch();
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return 1000.0 * ms / reps;
}

// Mean time of one paged_attention call in microseconds (after a warm-up call).
double time_attention_us(const kernels::PagedAttentionParams& p, int reps) {
  return time_us([&] { kernels::paged_attention(p, nullptr); }, reps);
}

// A 4096-key window over 32768 keys (decode, 8 sequences, and a 512-token
// prefill chunk): everything before the last 5120 keys of each sequence is NaN,
// so finite outputs show that nothing before the window is read at this scale.
// The timings it prints (full context, window, short context) are information
// for bench/RESULTS.md, not assertions: speed belongs to benchmarks.
TEST_F(AttentionTest, SlidingWindowReadsOnlyTheWindowAtScale) {
  constexpr int kSeqs = 8, kCtx = 32768, kWindow = 4096, kHeads = 32, kKvHeads = 8, kDim = 128, kBs = 16;
  constexpr int kChunkTokens = 512, kFinite = kWindow + 1024, kReps = 20;
  const int blocks_per_seq = kCtx / kBs;
  const size_t row_halves = static_cast<size_t>(kKvHeads) * kBs * kDim;  // one block
  const size_t cache_n = row_halves * kSeqs * blocks_per_seq;
  DeviceArray<uint16_t> d_k(cache_n), d_v(cache_n), d_q(static_cast<size_t>(kChunkTokens) * kHeads * kDim),
      d_out(static_cast<size_t>(kChunkTokens) * kHeads * kDim);
  ASSERT_NE(d_k.get(), nullptr);
  ASSERT_NE(d_v.get(), nullptr);
  CUDA_OK(cudaMemset(d_k.get(), 0xff, cache_n * 2));  // fp16 NaN
  CUDA_OK(cudaMemset(d_v.get(), 0xff, cache_n * 2));
  for (int s = 0; s < kSeqs; ++s) {
    const size_t first = (static_cast<size_t>(s) * blocks_per_seq + (kCtx - kFinite) / kBs) * row_halves;
    const size_t n = static_cast<size_t>(kFinite / kBs) * row_halves;
    CUDA_OK(cudaMemset(d_k.get() + first, 0x30, n * 2));  // 0x3030: about 0.13
    CUDA_OK(cudaMemset(d_v.get() + first, 0x3c, n * 2));  // 0x3c3c: about 1.06
  }
  CUDA_OK(cudaMemset(d_q.get(), 0x3c, d_q.size() * 2));
  std::vector<int32_t> indices(static_cast<size_t>(kSeqs) * blocks_per_seq), indptr(kSeqs + 1);
  std::iota(indices.begin(), indices.end(), 0);
  for (int s = 0; s <= kSeqs; ++s) indptr[s] = s * blocks_per_seq;
  DeviceArray<int32_t> d_ix(indices), d_ip(indptr);
  DeviceArray<float> d_split_out(static_cast<size_t>(32) * kChunkTokens * kHeads * kDim),
      d_split_lse(static_cast<size_t>(32) * kChunkTokens * kHeads * 2);
  auto non_finite = [&](size_t n) {
    auto out = d_out.download();
    return std::count_if(out.begin(), out.begin() + n, [](uint16_t h) { return (h & 0x7c00) == 0x7c00; });
  };

  // Decode: one token per sequence at context ctx.
  auto decode_us = [&](int ctx, int window, bool check) {
    std::vector<int32_t> qs(kSeqs + 1), lens(kSeqs, ctx);
    std::iota(qs.begin(), qs.end(), 0);
    const auto work = kernels::plan_attention_work(qs, kernels::attention_tile_tokens(kDim, kHeads / kKvHeads));
    DeviceArray<int32_t> d_qs(qs), d_sl(lens), d_ws(work.seq), d_wq(work.qoff);
    const AttentionArrays arrays{d_q, d_k, d_v, d_out, d_qs, d_sl, d_ip, d_ix, d_ws, d_wq};
    kernels::PagedAttentionParams p =
        attention_params(arrays, static_cast<int>(work.seq.size()), kSeqs, kHeads, kKvHeads, kDim, kBs);
    p.window = window;
    p.decode_only = true;
    p.num_splits = kernels::attention_num_splits(p.num_work, kKvHeads, kernels::attention_item_keys(ctx, window, 1), 132);
    p.split_out = d_split_out.get();
    p.split_lse = d_split_lse.get();
    const double us = time_attention_us(p, kReps);
    if (check) {
      EXPECT_EQ(non_finite(static_cast<size_t>(kSeqs) * kHeads * kDim), 0) << "decode window " << window;
    }
    return us;
  };
  // Prefill: the last kChunkTokens tokens of sequence 0, all of its context cached.
  auto prefill_us = [&](int window, bool check) {
    std::vector<int32_t> qs = {0, kChunkTokens}, lens = {kCtx};
    const int tile = kernels::attention_tile_tokens(kDim, kHeads / kKvHeads);
    const auto work = kernels::plan_attention_work(qs, tile);
    DeviceArray<int32_t> d_qs(qs), d_sl(lens), d_ws(work.seq), d_wq(work.qoff);
    const AttentionArrays arrays{d_q, d_k, d_v, d_out, d_qs, d_sl, d_ip, d_ix, d_ws, d_wq};
    kernels::PagedAttentionParams p =
        attention_params(arrays, static_cast<int>(work.seq.size()), kChunkTokens, kHeads, kKvHeads, kDim, kBs);
    p.window = window;
    p.num_splits =
        kernels::attention_num_splits(p.num_work, kKvHeads, kernels::attention_item_keys(kCtx, window, tile), 132);
    p.split_out = d_split_out.get();
    p.split_lse = d_split_lse.get();
    const double us = time_attention_us(p, kReps);
    if (check) {
      EXPECT_EQ(non_finite(d_out.size()), 0) << "prefill window " << window;
    }
    return us;
  };
  const double dec_full = decode_us(kCtx, 0, false), dec_window = decode_us(kCtx, kWindow, true),
               dec_short = decode_us(kWindow, 0, false);
  const double pre_full = prefill_us(0, false), pre_window = prefill_us(kWindow, true);
  CUDA_OK(cudaGetLastError());

  // Same-run copy bandwidth (read + write) for the decode's bytes-read fraction.
  const size_t copy_bytes = cache_n;  // half of K into V (after the timed runs)
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaMemcpy(d_v.get(), d_k.get(), copy_bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(start);
  for (int i = 0; i < kReps; ++i) cudaMemcpy(d_v.get(), d_k.get(), copy_bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float copy_ms = 0;
  cudaEventElapsedTime(&copy_ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const double copy_gbs = 2.0 * copy_bytes * kReps / (copy_ms * 1e-3) / 1e9;
  const double window_bytes = 2.0 * kSeqs * kWindow * kKvHeads * kDim * 2;
  const double dec_gbs = window_bytes / (dec_window * 1e-6) / 1e9;
  std::printf("[bench] decode 8 seqs h32/kv8 d128: ctx 32768 no window %.1f us, ctx 32768 window 4096 %.1f us "
              "(%.0f GB/s of K/V, %.2f of copy %.0f GB/s), ctx 4096 no window %.1f us\n",
              dec_full, dec_window, dec_gbs, dec_gbs / copy_gbs, copy_gbs, dec_short);
  std::printf("[bench] prefill 512 tokens at 32768 h32/kv8 d128 (tensor cores): no window %.1f us, window 4096 %.1f us\n",
              pre_full, pre_window);
}

// Issue 7's prefill shapes (Llama-3-8B attention: 32 query / 8 KV heads,
// head_dim 128, block size 16, shuffled block table): a cold 2,048-token
// prompt, a 512-token chunk after 3,584 cached tokens and a cold 8,192-token
// prompt, one split, through every block shape of the tensor-core kernel
// (warps x m-tiles per warp). Asserts that all agree with the CUDA-core kernel
// on the 2,048-token prompt (and are finite elsewhere);
// the timings it prints are information for bench/RESULTS.md.
TEST_F(AttentionTest, TensorCoreBlockShapesAtPrefillScale) {
  constexpr int kHeads = 32, kKvHeads = 8, kDim = 128, kBs = 16, kReps = 20;
  struct Shape {
    int cached, q_len;
  };
  for (const Shape sh : {Shape{0, 2048}, Shape{3584, 512}, Shape{0, 8192}}) {
    const int len = sh.cached + sh.q_len, blocks = (len + kBs - 1) / kBs;
    const size_t cache_n = static_cast<size_t>(blocks) * kKvHeads * kBs * kDim;
    const size_t q_n = static_cast<size_t>(sh.q_len) * kHeads * kDim;
    DeviceArray<uint16_t> d_k(cache_n), d_v(cache_n), d_q(q_n), d_out(q_n);
    ASSERT_NE(d_k.get(), nullptr);
    ASSERT_NE(d_out.get(), nullptr);
    CUDA_OK(kernels::fill_random_half(d_k.as<__half>(), cache_n, seed_, 2.0f, 0.0f, nullptr));
    CUDA_OK(kernels::fill_random_half(d_v.as<__half>(), cache_n, seed_ + 1, 1.0f, 0.0f, nullptr));
    CUDA_OK(kernels::fill_random_half(d_q.as<__half>(), q_n, seed_ + 2, 2.0f, 0.0f, nullptr));
    std::vector<int32_t> indices(blocks);
    std::iota(indices.begin(), indices.end(), 0);
    std::shuffle(indices.begin(), indices.end(), rng_);
    const std::vector<int32_t> qs = {0, sh.q_len}, lens = {len}, indptr = {0, blocks};
    const auto work = kernels::plan_attention_work(qs, kernels::attention_tile_tokens(kDim, kHeads / kKvHeads));
    DeviceArray<int32_t> d_qs(qs), d_sl(lens), d_ip(indptr), d_ix(indices), d_ws(work.seq), d_wq(work.qoff);
    const AttentionArrays arrays{d_q, d_k, d_v, d_out, d_qs, d_sl, d_ip, d_ix, d_ws, d_wq};
    kernels::PagedAttentionParams p =
        attention_params(arrays, static_cast<int>(work.seq.size()), sh.q_len, kHeads, kKvHeads, kDim, kBs);
    std::vector<uint16_t> cuda_cores;
    if (sh.q_len == 2048) {
      p.use_tensor_cores = false;
      CUDA_OK(kernels::paged_attention(p, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      cuda_cores = d_out.download();
      p.use_tensor_cores = true;
    }
    const double flops = 4.0 * kHeads * kDim * sh.q_len * (sh.cached + (sh.q_len + 1) / 2.0);
    std::printf("[bench] prefill attention h32/kv8 d128, %d new after %d cached, one split, warps x m-tiles:",
                sh.q_len, sh.cached);
    for (kernels::MmaAttentionShape shape : {kernels::MmaAttentionShape{4, 1}, kernels::MmaAttentionShape{8, 1},
                                             kernels::MmaAttentionShape{4, 2}}) {
      const std::string name = std::to_string(shape.warps) + "x" + std::to_string(shape.m_tiles);
      CUDA_OK(cudaMemset(d_out.get(), 0xff, q_n * 2));
      CUDA_OK(kernels::launch_mma_attention_shape(p, shape, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      const auto out = d_out.download();
      if (!cuda_cores.empty()) {
        const auto cmp = compare_half(out, cuda_cores);
        EXPECT_EQ(cmp.non_finite, 0u) << name << ", seed " << seed_;
        EXPECT_LT(cmp.rel_error, 2e-3) << name << ", seed " << seed_;
      } else {
        EXPECT_EQ(std::count_if(out.begin(), out.end(), [](uint16_t h) { return (h & 0x7c00) == 0x7c00; }), 0)
            << name;
      }
      const double us = time_us([&] { kernels::launch_mma_attention_shape(p, shape, nullptr); }, kReps);
      std::printf(" %s %.1f us (%.1f TFLOP/s)", name.c_str(), us, flops / (us * 1e-6) / 1e12);
    }
    std::printf("\n");
    CUDA_OK(cudaGetLastError());
  }
}

}  // namespace
}  // namespace nibble::test

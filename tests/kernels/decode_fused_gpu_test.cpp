// The decode attention kernel with RoPE and the K/V cache write fused in
// (PagedAttentionParams::rope) and its splits merged in the kernel
// (split_counters), against the CPU references of the three steps it replaces:
// rotate (ref::apply_rope), write (ref::write_kv_cache), attend
// (ref::paged_attention). Batches as the backend builds them: shuffled block
// tables, GQA, sliding windows, CUDA-graph padding, and several decode steps
// replayed through one captured graph.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

#include "attention/attention.h"
#include "attention/attention_ref.h"
#include "gpu_test_util.h"
#include "kv_cache/kv_cache.h"
#include "kv_cache/kv_cache_ref.h"
#include "rope/rope_ref.h"

namespace nibble::test {
namespace {

constexpr uint16_t kHalfNaN = 0x7e00;

struct Shape {
  int num_heads, num_kv_heads, head_dim, block_size;
  int width() const { return (num_heads + 2 * num_kv_heads) * head_dim; }
};

// A decode batch and its paged cache, on the host: sequence s has contexts[s]
// cached keys and adds one token; `padding` more sequences without tokens, as
// make_step_plan pads a CUDA-graph bucket. Cache rows no query may read (before
// a sliding window, and the new tokens' slots) are NaN, so reading one shows.
class DecodeBatch {
 public:
  DecodeBatch(const Shape& shape, std::vector<int> contexts, int padding, int window, int room, std::mt19937_64& rng)
      : shape_(shape), contexts_(std::move(contexts)), padding_(padding), window_(window) {
    const int bs = shape.block_size;
    int total = 0;
    for (int ctx : contexts_) total += (ctx + room + bs) / bs;
    std::vector<int32_t> pool(total + 3);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    kv_indptr_.push_back(0);
    int next = 0;
    for (int ctx : contexts_) {
      for (int b = 0; b < (ctx + room + bs) / bs; ++b) kv_indices_.push_back(pool[next++]);
      kv_indptr_.push_back(static_cast<int32_t>(kv_indices_.size()));
    }
    const size_t cache_n = pool.size() * shape.num_kv_heads * bs * shape.head_dim;
    k_cache_ = random_half(cache_n, rng, -2, 2);
    v_cache_ = random_half(cache_n, rng);
    inv_freq_ = kernels::ref::rope_inv_freq(shape.head_dim, 500000.0, RopeScaling{});
    for (size_t s = 0; s < contexts_.size(); ++s)
      for (int pos = contexts_[s]; pos < contexts_[s] + room + 1; ++pos) poison(s, pos);
    for (size_t s = 0; s < contexts_.size() && window > 0; ++s)
      for (int pos = 0; pos < contexts_[s] + 1 - window; ++pos) poison(s, pos);
  }

  int seqs() const { return static_cast<int>(contexts_.size()) + padding_; }
  int real_tokens() const { return static_cast<int>(contexts_.size()); }
  int work() const { return seqs(); }  // one item per sequence, as for a decode step

  // The step's metadata, as make_step_plan lays it out.
  std::vector<int32_t> query_start() const {
    std::vector<int32_t> v(seqs() + 1);
    for (int s = 0; s <= seqs(); ++s) v[s] = std::min(s, real_tokens());
    return v;
  }
  std::vector<int32_t> seq_lens() const {
    std::vector<int32_t> v(seqs(), 0);
    for (int s = 0; s < real_tokens(); ++s) v[s] = contexts_[s] + 1;
    return v;
  }
  std::vector<int32_t> kv_indptr() const {
    std::vector<int32_t> v = kv_indptr_;
    v.resize(seqs() + 1, kv_indptr_.back());
    return v;
  }
  std::vector<int32_t> positions() const {
    std::vector<int32_t> v(seqs(), 0);
    for (int s = 0; s < real_tokens(); ++s) v[s] = contexts_[s];
    return v;
  }
  std::vector<int32_t> slots() const {
    std::vector<int32_t> v(seqs(), -1);
    for (int s = 0; s < real_tokens(); ++s) v[s] = slot(s, contexts_[s]);
    return v;
  }
  std::vector<int32_t> work_seq() const {
    std::vector<int32_t> v(seqs());
    std::iota(v.begin(), v.end(), 0);
    return v;
  }

  // The reference of the step for the un-rotated products qkv ([tokens, q | k | v]):
  // rotate, write K/V into the host cache (which then holds the step's result),
  // attend. Returns the real tokens' outputs.
  std::vector<uint16_t> reference_step(const std::vector<uint16_t>& qkv) {
    const int T = real_tokens(), D = shape_.head_dim, qd = shape_.num_heads * D, kd = shape_.num_kv_heads * D;
    std::vector<uint16_t> q(static_cast<size_t>(T) * qd), k(static_cast<size_t>(T) * kd), v(k.size());
    for (int t = 0; t < T; ++t) {
      const auto row = qkv.begin() + static_cast<ptrdiff_t>(t) * shape_.width();
      std::copy(row, row + qd, q.begin() + static_cast<ptrdiff_t>(t) * qd);
      std::copy(row + qd, row + qd + kd, k.begin() + static_cast<ptrdiff_t>(t) * kd);
      std::copy(row + qd + kd, row + qd + 2 * kd, v.begin() + static_cast<ptrdiff_t>(t) * kd);
    }
    const auto pos = positions(), sl = slots(), lens = seq_lens(), indptr = kv_indptr(), qs = query_start();
    kernels::ref::apply_rope(q.data(), k.data(), pos.data(), inv_freq_.data(), T, shape_.num_heads,
                             shape_.num_kv_heads, D);
    kernels::ref::write_kv_cache(k.data(), v.data(), sl.data(), k_cache_.data(), v_cache_.data(), T,
                                 shape_.num_kv_heads, D, shape_.block_size);
    std::vector<uint16_t> out(q.size());
    kernels::ref::paged_attention(q.data(), k_cache_.data(), v_cache_.data(), out.data(), qs.data(), lens.data(),
                                  indptr.data(), kv_indices_.data(), T, shape_.num_heads, shape_.num_kv_heads, D,
                                  shape_.block_size, 1.0f / std::sqrt(static_cast<float>(D)), window_);
    return out;
  }

  void advance() {
    for (int& ctx : contexts_) ++ctx;
  }
  // Takes the device's K cache (its rotated keys may differ from the reference's in the last bit).
  void adopt_k_cache(std::vector<uint16_t> k) { k_cache_ = std::move(k); }

  // Offsets (in halves) of the K/V rows the step writes: slot x KV head.
  std::vector<size_t> written_rows() const {
    std::vector<size_t> rows;
    for (int s = 0; s < real_tokens(); ++s) {
      const size_t sl = slot(s, contexts_[s]);
      const size_t block = sl / shape_.block_size, off = sl % shape_.block_size;
      for (int h = 0; h < shape_.num_kv_heads; ++h)
        rows.push_back(((block * shape_.num_kv_heads + h) * shape_.block_size + off) * shape_.head_dim);
    }
    return rows;
  }

  const Shape& shape() const { return shape_; }
  int window() const { return window_; }
  int max_keys() const { return *std::max_element(contexts_.begin(), contexts_.end()) + 1; }
  const std::vector<int32_t>& kv_indices() const { return kv_indices_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  const std::vector<uint16_t>& k_cache() const { return k_cache_; }
  const std::vector<uint16_t>& v_cache() const { return v_cache_; }

 private:
  int32_t slot(size_t s, int pos) const {
    return kv_indices_[kv_indptr_[s] + pos / shape_.block_size] * shape_.block_size + pos % shape_.block_size;
  }
  void poison(size_t s, int pos) {
    const size_t block = kv_indices_[kv_indptr_[s] + pos / shape_.block_size];
    for (int h = 0; h < shape_.num_kv_heads; ++h) {
      const size_t row = ((block * shape_.num_kv_heads + h) * shape_.block_size + pos % shape_.block_size) *
                         shape_.head_dim;
      std::fill_n(k_cache_.begin() + row, shape_.head_dim, kHalfNaN);
      std::fill_n(v_cache_.begin() + row, shape_.head_dim, kHalfNaN);
    }
  }

  Shape shape_;
  std::vector<int> contexts_;
  int padding_, window_;
  std::vector<int32_t> kv_indptr_, kv_indices_;
  std::vector<float> inv_freq_;
  std::vector<uint16_t> k_cache_, v_cache_;
};

// Device copies of a step's metadata, products and cache, and the parameters
// of the fused call over them.
struct DeviceStep {
  DeviceStep(const DecodeBatch& b, int splits, bool merge_in_kernel, bool separate_products)
      : qs(b.query_start()), lens(b.seq_lens()), indptr(b.kv_indptr()), indices(b.kv_indices()),
        work_seq(b.work_seq()), work_qoff(std::vector<int32_t>(b.work(), 0)), positions(b.positions()),
        slots(b.slots()), inv_freq(b.inv_freq()), k_cache(b.k_cache()), v_cache(b.v_cache()),
        qkv(static_cast<size_t>(b.seqs()) * b.shape().width()),
        out(std::vector<uint16_t>(static_cast<size_t>(b.seqs()) * b.shape().num_heads * b.shape().head_dim,
                                  kHalfNaN)),
        split_out(static_cast<size_t>(splits) * out.size()),
        split_lse(static_cast<size_t>(splits) * b.seqs() * b.shape().num_heads * 2),
        counters(std::vector<int32_t>(static_cast<size_t>(b.work()) * b.shape().num_kv_heads, 0)),
        separate(separate_products) {
    const Shape& s = b.shape();
    const int qd = s.num_heads * s.head_dim, kd = s.num_kv_heads * s.head_dim, T = b.seqs();
    p.k_cache = k_cache.as<__half>();
    p.v_cache = v_cache.as<__half>();
    p.out = out.as<__half>();
    p.query_start = qs.get();
    p.seq_lens = lens.get();
    p.kv_indptr = indptr.get();
    p.kv_indices = indices.get();
    p.work_seq = work_seq.get();
    p.work_qoff = work_qoff.get();
    p.num_work = b.work();
    p.num_tokens = T;
    p.num_heads = s.num_heads;
    p.num_kv_heads = s.num_kv_heads;
    p.head_dim = s.head_dim;
    p.block_size = s.block_size;
    p.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    p.window = b.window();
    p.num_splits = splits;
    p.decode_only = true;
    p.split_out = split_out.get();
    p.split_lse = split_lse.get();
    p.split_counters = merge_in_kernel ? counters.get() : nullptr;
    kernels::RopeKvParams& r = p.rope;
    if (separate) {  // three matrices one after another, as from unfused q/k/v products
      r.q = qkv.as<__half>(), r.k = r.q + static_cast<size_t>(T) * qd, r.v = r.k + static_cast<size_t>(T) * kd;
      r.ldq = qd, r.ldk = r.ldv = kd;
    } else {
      r.q = qkv.as<__half>(), r.k = r.q + qd, r.v = r.k + kd;
      r.ldq = r.ldk = r.ldv = s.width();
    }
    r.positions = positions.get();
    r.inv_freq = inv_freq.get();
    r.slot_mapping = slots.get();
    r.k_cache = k_cache.as<__half>();
    r.v_cache = v_cache.as<__half>();
    r.tokens = T, r.num_q_heads = s.num_heads, r.num_kv_heads = s.num_kv_heads, r.head_dim = s.head_dim;
    r.block_size = s.block_size;
  }

  // Uploads the step's metadata and products (fused layout on the host) into the same buffers.
  void upload(const DecodeBatch& b, const std::vector<uint16_t>& fused_qkv) {
    qs.upload(b.query_start());
    lens.upload(b.seq_lens());
    indptr.upload(b.kv_indptr());
    positions.upload(b.positions());
    slots.upload(b.slots());
    if (!separate) {
      qkv.upload(fused_qkv);
      return;
    }
    const Shape& s = b.shape();
    const int qd = s.num_heads * s.head_dim, kd = s.num_kv_heads * s.head_dim, T = b.seqs();
    std::vector<uint16_t> planar(fused_qkv.size());
    for (int t = 0; t < T; ++t) {
      const auto row = fused_qkv.begin() + static_cast<ptrdiff_t>(t) * s.width();
      std::copy(row, row + qd, planar.begin() + static_cast<ptrdiff_t>(t) * qd);
      std::copy(row + qd, row + qd + kd, planar.begin() + static_cast<ptrdiff_t>(T) * qd + t * kd);
      std::copy(row + qd + kd, row + s.width(), planar.begin() + static_cast<ptrdiff_t>(T) * (qd + kd) + t * kd);
    }
    qkv.upload(planar);
  }

  DeviceArray<int32_t> qs, lens, indptr, indices, work_seq, work_qoff, positions, slots;
  DeviceArray<float> inv_freq;
  DeviceArray<uint16_t> k_cache, v_cache, qkv, out;
  DeviceArray<float> split_out, split_lse;
  DeviceArray<int32_t> counters;
  bool separate;
  kernels::PagedAttentionParams p;
};

// The device results of a step against the reference's (run after
// reference_step): the outputs, the written K rows within rounding of the
// reference's rotation, every other cache half (V rows included) unchanged or
// equal to the reference's, the counters back at zero.
void expect_step_matches(const DecodeBatch& b, const DeviceStep& d, const std::vector<uint16_t>& want,
                         const std::string& what) {
  auto out = d.out.download();
  out.resize(want.size());
  const auto cmp = compare_half(out, want);
  report("fused decode " + what, cmp);
  EXPECT_EQ(cmp.non_finite, 0u) << what;
  EXPECT_LT(cmp.rel_error, 2e-3) << what;

  auto k_got = d.k_cache.download();
  std::vector<uint16_t> k_rows_got, k_rows_want;
  auto k_expected = b.k_cache();
  const int D = b.shape().head_dim;
  for (size_t row : b.written_rows()) {
    k_rows_got.insert(k_rows_got.end(), k_got.begin() + row, k_got.begin() + row + D);
    k_rows_want.insert(k_rows_want.end(), k_expected.begin() + row, k_expected.begin() + row + D);
    std::copy_n(k_got.begin() + row, D, k_expected.begin() + row);  // compared above, within rounding
  }
  const auto ck = compare_half(k_rows_got, k_rows_want);
  EXPECT_EQ(ck.non_finite, 0u) << what;
  EXPECT_LT(ck.rel_error, 2e-3) << what << ": rotated keys in the cache";
  EXPECT_TRUE(k_got == k_expected) << what << ": K cache rows other than the new tokens' changed";
  EXPECT_TRUE(d.v_cache.download() == b.v_cache()) << what << ": V cache differs";
  const auto counters = d.counters.download();
  EXPECT_TRUE(std::all_of(counters.begin(), counters.end(), [](int32_t c) { return c == 0; }))
      << what << ": split counters not reset";
}

using FusedDecodeTest = SeededGpuTest;

const std::vector<int> kContexts = {0, 1, 126, 127, 128, 300, 2100, 17, 255};

// One step per variant: split counts (1, 3, 32 and the planner's), merged in
// the kernel or by the combine pass, fused or separate q/k/v products, GQA
// groups 1-8, head_dim 32/64/128, block sizes 7/16/32, windows, two padded sequences.
TEST_F(FusedDecodeTest, OneStepMatchesReference) {
  const std::vector<Shape> shapes = {{32, 8, 128, 16}, {4, 4, 128, 16}, {8, 2, 64, 16},
                                     {16, 2, 32, 7},   {64, 8, 128, 32}, {12, 4, 64, 16}};
  for (const Shape& shape : shapes) {
    for (int window : {0, 100, 129}) {
      DecodeBatch batch(shape, kContexts, 2, window, 0, rng_);
      const auto qkv = random_half(static_cast<size_t>(batch.seqs()) * shape.width(), rng_, -2, 2);
      DecodeBatch reference = batch;
      const auto want = reference.reference_step(qkv);
      const int keys = kernels::attention_item_keys(batch.max_keys(), window, 1);
      const int planned = kernels::decode_attention_num_splits(batch.work(), shape.num_kv_heads, keys, 132);
      for (int splits : {1, 3, 32, planned}) {
        for (bool merge : {true, false}) {
          for (bool separate : {false, true}) {
            if (separate && (splits != 3 || !merge)) continue;
            DeviceStep d(batch, splits, merge, separate);
            d.upload(batch, qkv);
            ASSERT_TRUE(kernels::paged_attention_fuses_rope(d.p));
            CUDA_OK(kernels::paged_attention(d.p, nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            char what[160];
            std::snprintf(what, sizeof what, "h%d/kv%d d%d bs%d window %d splits %d %s%s seed %llu",
                          shape.num_heads, shape.num_kv_heads, shape.head_dim, shape.block_size, window, splits,
                          merge ? "merged in kernel" : "combine", separate ? " separate q/k/v" : "",
                          static_cast<unsigned long long>(seed_));
            expect_step_matches(reference, d, want, what);
          }
        }
      }
    }
  }
}

// Batch 1-2 (the decode kernel runs thread-block clusters on sm_90): one step
// through clusters of 1-16 blocks and the kernel's own choice, with no split,
// the planner's and 3 (combine pass), GQA 1-8, head_dim 32/64/128, windows, a
// context of 0 (one key: most cluster blocks have none) and long ones. The
// new token's key and value come from the block that holds the last key.
TEST_F(FusedDecodeTest, FewSequenceClustersMatchReference) {
  const std::vector<Shape> shapes = {{32, 8, 128, 16}, {8, 2, 64, 16}, {16, 2, 32, 7}, {64, 8, 128, 32}, {4, 4, 128, 16}};
  const std::vector<std::vector<int>> batches = {{128}, {0}, {1024}, {2100, 5}};
  for (const Shape& shape : shapes)
    for (const auto& contexts : batches)
      for (int window : {0, 100}) {
        DecodeBatch batch(shape, contexts, contexts.size() > 1 ? 1 : 0, window, 0, rng_);
        const auto qkv = random_half(static_cast<size_t>(batch.seqs()) * shape.width(), rng_, -2, 2);
        DecodeBatch reference = batch;
        const auto want = reference.reference_step(qkv);
        const int keys = kernels::attention_item_keys(batch.max_keys(), window, 1);
        const int planned = kernels::decode_attention_num_splits(batch.work(), shape.num_kv_heads, keys, 132);
        for (int splits : {1, 3, planned})
          for (int cluster : {0, 1, 4, 8, 16}) {
            DeviceStep d(batch, splits, false, false);
            d.p.decode_cluster = cluster;
            d.upload(batch, qkv);
            CUDA_OK(kernels::paged_attention(d.p, nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            char what[160];
            std::snprintf(what, sizeof what, "h%d/kv%d d%d bs%d ctx %d (%zu seqs) window %d splits %d cluster %d seed %llu",
                          shape.num_heads, shape.num_kv_heads, shape.head_dim, shape.block_size, contexts[0],
                          contexts.size(), window, splits, cluster, static_cast<unsigned long long>(seed_));
            expect_step_matches(reference, d, want, what);
          }
      }
}

// Decode steps of a batch through one CUDA graph captured once, as the
// backend replays it: metadata and products re-uploaded into the same buffers,
// the cache carried from step to step, the counters reset by each replay.
void replay_steps(std::vector<int> contexts, int padding, int splits, bool merge, uint64_t seed, std::mt19937_64& rng) {
  const Shape shape{32, 8, 128, 16};
  const int steps = 4;
  for (int window : {0, 64}) {
    DecodeBatch batch(shape, contexts, padding, window, steps, rng);
    DecodeBatch reference = batch;
    DeviceStep d(batch, splits, merge, false);
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph = nullptr;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const cudaError_t launched = kernels::paged_attention(d.p, stream);
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(launched);
    cudaGraphExec_t exec = nullptr;
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int step = 0; step < steps; ++step) {
      const auto qkv = random_half(static_cast<size_t>(batch.seqs()) * shape.width(), rng, -2, 2);
      d.upload(batch, qkv);
      CUDA_OK(cudaGraphLaunch(exec, stream));
      CUDA_OK(cudaStreamSynchronize(stream));
      const auto want = reference.reference_step(qkv);
      char what[128];
      std::snprintf(what, sizeof what, "graph step %d ctx %d window %d splits %d%s seed %llu", step, contexts[0],
                    window, splits, merge ? " merged in kernel" : "", static_cast<unsigned long long>(seed));
      expect_step_matches(reference, d, want, what);
      reference.adopt_k_cache(d.k_cache.download());  // the next step compares the rows it writes only
      batch.advance();
      reference.advance();
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  }
}

TEST_F(FusedDecodeTest, GraphReplayedStepsMatchReference) {
  replay_steps({200, 5, 1000, 127}, 1, 8, true, seed_, rng_);
}

// Batch 1 as the backend runs it (clusters on sm_90): no split at 126-129
// keys, one split for a 1,024-key graph bound.
TEST_F(FusedDecodeTest, GraphReplayedSingleSequenceStepsMatchReference) {
  replay_steps({126}, 0, 1, false, seed_, rng_);
  replay_steps({1021}, 0, kernels::decode_attention_num_splits(1, 8, 2048, 132), false, seed_, rng_);
}

// Shapes the decode kernel does not take (head_dim 16 or 256, more than 8
// query heads per KV head) do not fuse, and paged_attention refuses a rope
// it cannot apply instead of skipping it.
TEST_F(FusedDecodeTest, UnsupportedShapesDoNotFuse) {
  for (const Shape& shape : {Shape{4, 4, 16, 16}, Shape{8, 1, 256, 16}, Shape{16, 1, 64, 16}}) {
    DecodeBatch batch(shape, {5, 40}, 0, 0, 0, rng_);
    DeviceStep d(batch, 1, true, false);
    EXPECT_FALSE(kernels::paged_attention_fuses_rope(d.p)) << "head_dim " << shape.head_dim;
    EXPECT_EQ(kernels::paged_attention(d.p, nullptr), cudaErrorInvalidValue) << "head_dim " << shape.head_dim;
  }
  DecodeBatch batch({32, 8, 128, 16}, {5, 40}, 0, 0, 0, rng_);
  DeviceStep d(batch, 1, true, false);
  d.p.decode_only = false;  // a prefill step never fuses
  EXPECT_FALSE(kernels::paged_attention_fuses_rope(d.p));
  EXPECT_EQ(kernels::paged_attention(d.p, nullptr), cudaErrorInvalidValue);
  d.p.decode_only = true;
  d.p.rope.num_q_heads = 16;  // a rope that does not describe this step
  EXPECT_EQ(kernels::paged_attention(d.p, nullptr), cudaErrorInvalidValue);
  CUDA_OK(cudaGetLastError());
}

}  // namespace
}  // namespace nibble::test

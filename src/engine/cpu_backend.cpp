#include "nibble/engine/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "cpu_attention.h"
#include "cpu_dense.h"
#include "cpu_linear.h"
#include "cpu_paged_kv.h"
#include "nibble/core/error.h"
#include "nibble/core/thread_pool.h"
#include "nibble/engine/batch_check.h"
#include "nibble/engine/rope.h"

namespace nibble {

namespace {

// Elementwise work below this many elements runs on the calling thread.
constexpr size_t kParallelElementwise = 1 << 15;

struct CpuLayer {
  std::vector<float> input_norm, post_attention_norm;
  CpuLinear q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
};

void check_linear_shape(const CpuLinear& l, int in, int out, const std::string& what) {
  NIBBLE_CHECK(l.in_features() == in && l.out_features() == out,
               what + " is " + std::to_string(l.out_features()) + "x" + std::to_string(l.in_features()) + ", expected " +
                   std::to_string(out) + "x" + std::to_string(in));
}

CpuLayer make_layer(const LayerWeights& w, const ModelConfig& c, int index) {
  const std::string p = "layer " + std::to_string(index) + " ";
  CpuLayer layer{dense_vector(w.input_layernorm, c.hidden_size, p + "input_layernorm"),
                 dense_vector(w.post_attention_layernorm, c.hidden_size, p + "post_attention_layernorm"),
                 CpuLinear(w.q_proj, p + "q_proj"),
                 CpuLinear(w.k_proj, p + "k_proj"),
                 CpuLinear(w.v_proj, p + "v_proj"),
                 CpuLinear(w.o_proj, p + "o_proj"),
                 CpuLinear(w.gate_proj, p + "gate_proj"),
                 CpuLinear(w.up_proj, p + "up_proj"),
                 CpuLinear(w.down_proj, p + "down_proj")};
  const int h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  check_linear_shape(layer.q_proj, h, q, p + "q_proj");
  check_linear_shape(layer.k_proj, h, kv, p + "k_proj");
  check_linear_shape(layer.v_proj, h, kv, p + "v_proj");
  check_linear_shape(layer.o_proj, q, h, p + "o_proj");
  check_linear_shape(layer.gate_proj, h, c.intermediate_size, p + "gate_proj");
  check_linear_shape(layer.up_proj, h, c.intermediate_size, p + "up_proj");
  check_linear_shape(layer.down_proj, c.intermediate_size, h, p + "down_proj");
  return layer;
}

void check_config(const ModelConfig& c) {
  NIBBLE_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 && c.vocab_size > 0 &&
                   c.head_dim > 0,
               "cpu backend: config needs positive hidden_size, intermediate_size, num_hidden_layers, vocab_size and "
               "head_dim");
  NIBBLE_CHECK(c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
                   c.num_attention_heads % c.num_key_value_heads == 0,
               "cpu backend: num_attention_heads (" + std::to_string(c.num_attention_heads) +
                   ") must be a positive multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) + ")");
}

int kv_blocks_for(const CpuBackendOptions& o, const ModelConfig& c) {
  NIBBLE_CHECK(o.block_size > 0, "cpu backend: block_size must be positive, got " + std::to_string(o.block_size));
  NIBBLE_CHECK(o.kv_cache_blocks >= 0 && o.kv_cache_tokens >= 0, "cpu backend: KV cache size must not be negative");
  if (o.kv_cache_blocks > 0) return o.kv_cache_blocks;
  int tokens = o.kv_cache_tokens;
  if (tokens == 0) {
    tokens = c.max_position_embeddings > 0 ? std::min(c.max_position_embeddings, CpuBackendOptions::kDefaultKvTokens)
                                           : CpuBackendOptions::kDefaultKvTokens;
  }
  return (tokens + o.block_size - 1) / o.block_size;
}

size_t thread_count(const CpuBackendOptions& o) {
  NIBBLE_CHECK(o.threads >= 0, "cpu backend: threads must not be negative, got " + std::to_string(o.threads));
  return static_cast<size_t>(o.threads);  // 0: ThreadPool takes every core
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const LoadedModel& model, const CpuBackendOptions& options)
      : config_(model.config()),
        weights_(model.weights()),
        pool_(thread_count(options)),
        kv_(config_.num_hidden_layers, kv_blocks_for(options, config_), options.block_size, config_.num_key_value_heads,
            config_.head_dim) {
    check_config(config_);
    NIBBLE_CHECK(static_cast<int>(weights_.layers.size()) == config_.num_hidden_layers,
                 "cpu backend: the model has " + std::to_string(weights_.layers.size()) + " layers, config.json says " +
                     std::to_string(config_.num_hidden_layers));
    check_dense(weights_.embed_tokens, {config_.vocab_size, config_.hidden_size}, "embed_tokens");
    for (int i = 0; i < config_.num_hidden_layers; ++i) layers_.push_back(make_layer(weights_.layers[i], config_, i));
    final_norm_ = dense_vector(weights_.norm, config_.hidden_size, "norm");
    lm_head_.emplace(weights_.lm_head, "lm_head");
    check_linear_shape(*lm_head_, config_.hidden_size, config_.vocab_size, "lm_head");
    inv_freq_ = rope_inv_freq(config_);
  }

  std::string name() const override { return "cpu"; }
  const ModelConfig& config() const override { return config_; }
  KvCacheShape kv_cache_shape() const override { return {kv_.num_blocks(), kv_.block_size()}; }

  void forward(const Batch& batch, std::vector<float>& logits) override;

 private:
  void rms_norm(const float* x, int rows, const std::vector<float>& weight, float* out);
  void rope_tables(const Batch& batch, std::vector<float>& cos_table, std::vector<float>& sin_table) const;

  ModelConfig config_;
  ModelWeights weights_;
  ThreadPool pool_;
  CpuPagedKv kv_;
  std::vector<CpuLayer> layers_;
  std::vector<float> final_norm_;
  std::optional<CpuLinear> lm_head_;
  std::vector<float> inv_freq_;
};

void CpuBackend::rms_norm(const float* x, int rows, const std::vector<float>& weight, float* out) {
  const int n = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  pool_.parallel_for(rows, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* yr = out + r * n;
      double sum = 0.0;
      for (int i = 0; i < n; ++i) sum += static_cast<double>(xr[i]) * xr[i];
      const float inv = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
      for (int i = 0; i < n; ++i) yr[i] = weight[i] * (xr[i] * inv);
    }
  });
}

void CpuBackend::rope_tables(const Batch& batch, std::vector<float>& cos_table, std::vector<float>& sin_table) const {
  const size_t half = inv_freq_.size();
  cos_table.resize(batch.num_tokens() * half);
  sin_table.resize(batch.num_tokens() * half);
  for (int t = 0; t < batch.num_tokens(); ++t) {
    const float pos = static_cast<float>(batch.positions[t]);
    for (size_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq_[i];  // fp32, as transformers' position_ids @ inv_freq
      cos_table[t * half + i] = std::cos(angle);
      sin_table[t * half + i] = std::sin(angle);
    }
  }
}

void CpuBackend::forward(const Batch& batch, std::vector<float>& logits) {
  validate_batch(batch, config_.vocab_size, kv_cache_shape());
  const int T = batch.num_tokens();
  const int H = config_.hidden_size, hd = config_.head_dim, half = hd / 2;
  const int nq = config_.num_attention_heads, nkv = config_.num_key_value_heads;
  const int I = config_.intermediate_size;
  const int bs = kv_.block_size();

  std::vector<int> token_seq(T);
  for (int s = 0; s < batch.num_seqs(); ++s)
    for (int t = batch.query_start[s]; t < batch.query_start[s + 1]; ++t) token_seq[t] = s;

  std::vector<float> x(static_cast<size_t>(T) * H);
  for (int t = 0; t < T; ++t) dense_row(weights_.embed_tokens, batch.token_ids[t], H, x.data() + static_cast<size_t>(t) * H);

  std::vector<float> cos_table, sin_table;
  rope_tables(batch, cos_table, sin_table);

  std::vector<float> h(static_cast<size_t>(T) * H), q(static_cast<size_t>(T) * nq * hd),
      k(static_cast<size_t>(T) * nkv * hd), v(static_cast<size_t>(T) * nkv * hd), attn(static_cast<size_t>(T) * nq * hd),
      gate(static_cast<size_t>(T) * I), up(static_cast<size_t>(T) * I);

  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    const CpuLayer& layer = layers_[l];
    rms_norm(x.data(), T, layer.input_norm, h.data());
    layer.q_proj.forward(h.data(), T, q.data(), pool_);
    layer.k_proj.forward(h.data(), T, k.data(), pool_);
    layer.v_proj.forward(h.data(), T, v.data(), pool_);
    pool_.parallel_for(T, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        const float* c = cos_table.data() + t * half;
        const float* s = sin_table.data() + t * half;
        for (int head = 0; head < nq; ++head) apply_rope_rotate_half(q.data() + (t * nq + head) * hd, hd, c, s);
        for (int head = 0; head < nkv; ++head) apply_rope_rotate_half(k.data() + (t * nkv + head) * hd, hd, c, s);
      }
    });
    for (int t = 0; t < T; ++t) {
      const int s = token_seq[t], pos = batch.positions[t];
      const int block = batch.kv_indices[batch.kv_indptr[s] + pos / bs], slot = pos % bs;
      for (int head = 0; head < nkv; ++head) {
        const size_t src = (static_cast<size_t>(t) * nkv + head) * hd;
        std::copy_n(k.data() + src, hd, kv_.key(l, block, head, slot));
        std::copy_n(v.data() + src, hd, kv_.value(l, block, head, slot));
      }
    }
    cpu_paged_attention(q.data(), nq, kv_, l, batch, token_seq, config_.sliding_window.value_or(0), attn.data(), pool_);
    layer.o_proj.forward(attn.data(), T, h.data(), pool_);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];

    rms_norm(x.data(), T, layer.post_attention_norm, h.data());
    layer.gate_proj.forward(h.data(), T, gate.data(), pool_);
    layer.up_proj.forward(h.data(), T, up.data(), pool_);
    auto swiglu = [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    };
    if (gate.size() >= kParallelElementwise)
      pool_.parallel_for(gate.size(), swiglu);
    else
      swiglu(0, gate.size());  // waking the workers would cost more than the work
    layer.down_proj.forward(gate.data(), T, h.data(), pool_);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
  }

  const int rows = static_cast<int>(batch.logits_indices.size());
  std::vector<float> selected(static_cast<size_t>(rows) * H);
  for (int r = 0; r < rows; ++r)
    std::copy_n(x.data() + static_cast<size_t>(batch.logits_indices[r]) * H, H, selected.data() + static_cast<size_t>(r) * H);
  rms_norm(selected.data(), rows, final_norm_, selected.data());
  logits.resize(static_cast<size_t>(rows) * config_.vocab_size);
  lm_head_->forward(selected.data(), rows, logits.data(), pool_);
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const LoadedModel& model, const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(model, options);
}

}  // namespace nibble

#include "random_model.h"

#include <deque>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "nibble/core/half.h"
#include "nibble/model/gptq.h"

namespace nibble::test {

namespace {

// Owns every buffer the views of its ModelWeights point into.
class OwnedModel final : public LoadedModel {
 public:
  const std::filesystem::path& dir() const override { return dir_; }
  const ModelConfig& config() const override { return weights_.config; }
  const GenerationConfig& generation_config() const override { return generation_; }
  const ModelWeights& weights() const override { return weights_; }

  ModelWeights weights_;

  template <typename T>
  TensorView own(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<T> data) {
    buffers_.emplace_back(reinterpret_cast<const uint8_t*>(data.data()),
                          reinterpret_cast<const uint8_t*>(data.data() + data.size()));
    TensorView v;
    v.name = name;
    v.dtype = dtype;
    v.shape = std::move(shape);
    v.data = buffers_.back().data();
    return v;
  }

 private:
  std::filesystem::path dir_ = "<random>";
  GenerationConfig generation_;
  std::deque<std::vector<uint8_t>> buffers_;
};

class Generator {
 public:
  Generator(OwnedModel& m, const RandomModelSpec& spec) : m_(m), spec_(spec), rng_(spec.seed) {}

  TensorView dense(const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::uniform_real_distribution<float> dist(-scale, scale);
    if (spec_.dtype == DType::F32) {
      std::vector<float> v(n);
      for (auto& x : v) x = offset + dist(rng_);
      return m_.own(name, DType::F32, std::move(shape), std::move(v));
    }
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = spec_.dtype == DType::F16 ? float_to_fp16(offset + dist(rng_)) : float_to_bf16(offset + dist(rng_));
    return m_.own(name, spec_.dtype, std::move(shape), std::move(v));
  }

  LinearWeights linear(const std::string& name, int in, int out, bool bias) {
    LinearWeights w;
    w.in_features = in;
    w.out_features = out;
    const float scale = 1.0f / std::sqrt(static_cast<float>(in));
    if (spec_.quant) {
      const QuantConfig& q = *spec_.quant;
      w.quantized = true;
      w.quant = q;
      const int pack = 32 / q.bits;
      const int groups = q.group_size == -1 ? 1 : (in + q.group_size - 1) / q.group_size;
      std::uniform_int_distribution<uint32_t> bits_dist;
      std::vector<int32_t> qweight(static_cast<size_t>(in / pack) * out), qzeros(static_cast<size_t>(groups) * out / pack);
      for (auto& x : qweight) x = static_cast<int32_t>(bits_dist(rng_));
      if (q.sym) {
        // Symmetric checkpoints store the midpoint (minus one in the gptq format).
        const uint32_t stored = (1u << (q.bits - 1)) - (q.format == QuantConfig::Format::Gptq ? 1u : 0u);
        uint32_t word = 0;
        for (int i = 0; i < pack; ++i) word |= stored << (i * q.bits);
        for (auto& x : qzeros) x = static_cast<int32_t>(word);
      } else {
        for (auto& x : qzeros) x = static_cast<int32_t>(bits_dist(rng_));
      }
      std::uniform_real_distribution<float> scale_dist(0.5f * scale, 1.5f * scale);
      std::vector<uint16_t> scales(static_cast<size_t>(groups) * out);
      for (auto& x : scales) x = float_to_fp16(scale_dist(rng_) * 2.0f / static_cast<float>(1 << q.bits));
      std::vector<int32_t> g_idx(in);
      const int group_size = q.group_size == -1 ? in : q.group_size;
      if (q.desc_act) {
        std::vector<int32_t> order(in);
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng_);
        for (int k = 0; k < in; ++k) g_idx[order[k]] = k / group_size;
      } else {
        for (int k = 0; k < in; ++k) g_idx[k] = k / group_size;
      }
      w.qweight = m_.own(name + ".qweight", DType::I32, {in / pack, out}, std::move(qweight));
      w.qzeros = m_.own(name + ".qzeros", DType::I32, {groups, out / pack}, std::move(qzeros));
      w.scales = m_.own(name + ".scales", DType::F16, {groups, out}, std::move(scales));
      w.g_idx = m_.own(name + ".g_idx", DType::I32, {in}, std::move(g_idx));
    } else {
      w.weight = dense(name + ".weight", {out, in}, scale);
    }
    if (bias) w.bias = dense(name + ".bias", {out}, 0.5f);
    return w;
  }

 private:
  OwnedModel& m_;
  const RandomModelSpec& spec_;
  std::mt19937 rng_;
};

}  // namespace

std::unique_ptr<LoadedModel> make_random_model(const RandomModelSpec& spec) {
  auto model = std::make_unique<OwnedModel>();
  ModelConfig& c = model->weights_.config;
  c.architecture = spec.architecture;
  c.architecture_name = spec.architecture == Architecture::Llama     ? "LlamaForCausalLM"
                         : spec.architecture == Architecture::Mistral ? "MistralForCausalLM"
                                                                      : "Qwen2ForCausalLM";
  c.hidden_size = spec.hidden_size;
  c.intermediate_size = spec.intermediate_size;
  c.num_hidden_layers = spec.num_layers;
  c.num_attention_heads = spec.num_heads;
  c.num_key_value_heads = spec.num_kv_heads;
  c.head_dim = spec.head_dim;
  c.vocab_size = spec.vocab_size;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = spec.rope_theta;
  c.rope_scaling = spec.rope_scaling;
  c.tie_word_embeddings = spec.tie_word_embeddings;
  c.attention_bias = spec.architecture == Architecture::Qwen2;
  c.torch_dtype = spec.dtype;
  if (spec.quant) {
    c.quant = *spec.quant;
    c.quant.quantized = true;
  }

  Generator gen(*model, spec);
  ModelWeights& w = model->weights_;
  w.embed_tokens = gen.dense("model.embed_tokens.weight", {spec.vocab_size, spec.hidden_size}, 1.0f);
  const int q_out = spec.num_heads * spec.head_dim, kv_out = spec.num_kv_heads * spec.head_dim;
  for (int l = 0; l < spec.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights layer;
    layer.input_layernorm = gen.dense(p + "input_layernorm.weight", {spec.hidden_size}, 0.2f, 1.0f);
    layer.post_attention_layernorm = gen.dense(p + "post_attention_layernorm.weight", {spec.hidden_size}, 0.2f, 1.0f);
    layer.q_proj = gen.linear(p + "self_attn.q_proj", spec.hidden_size, q_out, c.attention_bias);
    layer.k_proj = gen.linear(p + "self_attn.k_proj", spec.hidden_size, kv_out, c.attention_bias);
    layer.v_proj = gen.linear(p + "self_attn.v_proj", spec.hidden_size, kv_out, c.attention_bias);
    layer.o_proj = gen.linear(p + "self_attn.o_proj", q_out, spec.hidden_size, false);
    layer.gate_proj = gen.linear(p + "mlp.gate_proj", spec.hidden_size, spec.intermediate_size, false);
    layer.up_proj = gen.linear(p + "mlp.up_proj", spec.hidden_size, spec.intermediate_size, false);
    layer.down_proj = gen.linear(p + "mlp.down_proj", spec.intermediate_size, spec.hidden_size, false);
    w.layers.push_back(std::move(layer));
  }
  w.norm = gen.dense("model.norm.weight", {spec.hidden_size}, 0.2f, 1.0f);
  w.lm_head.in_features = spec.hidden_size;
  w.lm_head.out_features = spec.vocab_size;
  w.lm_head.weight = spec.tie_word_embeddings ? w.embed_tokens
                                              : gen.dense("lm_head.weight", {spec.vocab_size, spec.hidden_size}, 0.2f);
  return model;
}

std::unique_ptr<LoadedModel> dequantized_copy(const LoadedModel& source) {
  auto model = std::make_unique<OwnedModel>();
  model->weights_ = source.weights();
  model->weights_.config.quant.quantized = false;
  auto densify = [&](LinearWeights& w) {
    if (!w.quantized) return;
    std::vector<float> transposed(static_cast<size_t>(w.in_features) * w.out_features);
    gptq_dequantize_rows(w, 0, w.in_features, transposed.data());
    std::vector<float> dense(transposed.size());
    for (int k = 0; k < w.in_features; ++k)
      for (int n = 0; n < w.out_features; ++n)
        dense[static_cast<size_t>(n) * w.in_features + k] = transposed[static_cast<size_t>(k) * w.out_features + n];
    std::string name = w.qweight.name.substr(0, w.qweight.name.rfind('.')) + ".weight";
    w.weight = model->own(name, DType::F32, {w.out_features, w.in_features}, std::move(dense));
    w.quantized = false;
    w.qweight = w.qzeros = w.scales = w.g_idx = TensorView{};
  };
  for (auto& layer : model->weights_.layers)
    for (LinearWeights* w : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj, &layer.gate_proj,
                             &layer.up_proj, &layer.down_proj})
      densify(*w);
  return model;
}

}  // namespace nibble::test

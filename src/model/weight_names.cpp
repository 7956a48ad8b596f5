#include "nibble/model/weight_names.h"

#include "nibble/core/error.h"

namespace nibble {

bool dtype_in_class(DType t, DTypeClass c) {
  switch (c) {
    case DTypeClass::Float:
      return t == DType::F16 || t == DType::BF16 || t == DType::F32;
    case DTypeClass::Int32:
      return t == DType::I32;
    case DTypeClass::F16:
      return t == DType::F16;
  }
  return false;
}

std::string dtype_class_name(DTypeClass c) {
  switch (c) {
    case DTypeClass::Float:
      return "F16, BF16 or F32";
    case DTypeClass::Int32:
      return "I32";
    case DTypeClass::F16:
      return "F16";
  }
  return "?";
}

int gptq_groups(int in_features, const QuantConfig& q) {
  if (q.group_size <= 0) return 1;
  return (in_features + q.group_size - 1) / q.group_size;
}

std::vector<TensorSpec> linear_tensor_specs(const LinearSpec& s, bool quantized, const QuantConfig& q) {
  std::vector<TensorSpec> out;
  const int64_t in = s.in_features;
  const int64_t n = s.out_features;
  if (!quantized) {
    out.push_back({s.prefix + ".weight", DTypeClass::Float, {n, in}, true});
  } else {
    const int pack = 32 / q.bits;
    if (in % pack != 0 || n % pack != 0)
      throw Error(s.prefix + ": a " + std::to_string(q.bits) + "-bit GPTQ linear needs in_features (" +
                  std::to_string(in) + ") and out_features (" + std::to_string(n) + ") divisible by " +
                  std::to_string(pack));
    const int64_t groups = gptq_groups(s.in_features, q);
    out.push_back({s.prefix + ".qweight", DTypeClass::Int32, {in / pack, n}, true});
    out.push_back({s.prefix + ".qzeros", DTypeClass::Int32, {groups, n / pack}, true});
    out.push_back({s.prefix + ".scales", DTypeClass::F16, {groups, n}, true});
    out.push_back({s.prefix + ".g_idx", DTypeClass::Int32, {in}, false});
  }
  out.push_back({s.prefix + ".bias", DTypeClass::Float, {n}, s.bias_required});
  return out;
}

void for_each_weight(const ModelConfig& c, ModelWeights& w, const WeightVisitor& visit) {
  const int64_t hidden = c.hidden_size;
  const int q_width = c.num_attention_heads * c.head_dim;
  const int kv_width = c.num_key_value_heads * c.head_dim;
  // Llama's attention_bias puts a bias on all four projections, Qwen2's only on q/k/v.
  const bool o_bias = c.attention_bias && c.architecture != Architecture::Qwen2;
  auto linear = [&](const std::string& prefix, int in, int out, bool bias, LinearWeights& dst) {
    visit.linear(LinearSpec{prefix, in, out, bias}, dst);
  };

  visit.tensor({"model.embed_tokens.weight", DTypeClass::Float, {c.vocab_size, hidden}, true}, w.embed_tokens);
  w.layers.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    visit.tensor({p + "input_layernorm.weight", DTypeClass::Float, {hidden}, true}, l.input_layernorm);
    linear(p + "self_attn.q_proj", c.hidden_size, q_width, c.attention_bias, l.q_proj);
    linear(p + "self_attn.k_proj", c.hidden_size, kv_width, c.attention_bias, l.k_proj);
    linear(p + "self_attn.v_proj", c.hidden_size, kv_width, c.attention_bias, l.v_proj);
    linear(p + "self_attn.o_proj", q_width, c.hidden_size, o_bias, l.o_proj);
    visit.tensor({p + "post_attention_layernorm.weight", DTypeClass::Float, {hidden}, true},
                 l.post_attention_layernorm);
    linear(p + "mlp.gate_proj", c.hidden_size, c.intermediate_size, false, l.gate_proj);
    linear(p + "mlp.up_proj", c.hidden_size, c.intermediate_size, false, l.up_proj);
    linear(p + "mlp.down_proj", c.intermediate_size, c.hidden_size, false, l.down_proj);
  }
  visit.tensor({"model.norm.weight", DTypeClass::Float, {hidden}, true}, w.norm);
  if (!c.tie_word_embeddings) linear("lm_head", c.hidden_size, c.vocab_size, false, w.lm_head);
}

uint64_t total_weight_bytes(const ModelConfig& c, const ModelWeights& w) {
  uint64_t total = 0;
  auto add = [&](const TensorView& v) {
    if (v.present()) total += v.nbytes();
  };
  ModelWeights copy = w;
  for_each_weight(c, copy,
                  {[&](const TensorSpec&, TensorView& v) { add(v); },
                   [&](const LinearSpec&, LinearWeights& l) {
                     for (const TensorView* v : {&l.weight, &l.qweight, &l.qzeros, &l.scales, &l.g_idx, &l.bias})
                       add(*v);
                   }});
  return total;
}

void tie_word_embeddings(const ModelConfig& c, ModelWeights& w) {
  if (!c.tie_word_embeddings) return;
  w.lm_head = LinearWeights{};
  w.lm_head.in_features = c.hidden_size;
  w.lm_head.out_features = c.vocab_size;
  w.lm_head.quantized = false;
  w.lm_head.weight = w.embed_tokens;
}

}  // namespace nibble

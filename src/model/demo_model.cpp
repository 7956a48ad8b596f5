#include "nibble/model/demo_model.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "model_writer.h"
#include "nibble/core/error.h"
#include "nibble/model/gptq.h"
#include "nibble/model/weight_names.h"

namespace nibble {
namespace {

using detail::TensorList;

// splitmix64 + Box-Muller: the same numbers on every platform and standard
// library (std::normal_distribution is implementation-defined).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  float normal() {
    double u1 = uniform(), u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  uint64_t state_;
};

// Each tensor draws from its own stream, so its values depend only on the seed
// and its name.
Random stream_for(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return Random(seed * 0x9e3779b97f4a7c15ull ^ h);
}

std::vector<float> normal_values(Random& rng, size_t n, float mean, float std) {
  std::vector<float> v(n);
  for (auto& x : v) x = mean + std * rng.normal();
  return v;
}

}  // namespace

ModelConfig demo_model_config(const DemoModelOptions& o) {
  ModelConfig c;
  c.architecture = o.architecture;
  c.architecture_name = architecture_name(o.architecture);
  QuantConfig q;
  q.quantized = o.quantized;
  q.bits = 4;
  q.sym = true;
  q.format = QuantConfig::Format::Gptq;
  if (o.preset == "tiny") {
    c.hidden_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.intermediate_size = 192;
    c.max_position_embeddings = 2048;
    c.vocab_size = 512;
    q.group_size = 32;
    q.desc_act = false;
  } else if (o.preset == "small") {
    c.hidden_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 2;
    c.intermediate_size = 768;
    c.max_position_embeddings = 4096;
    c.vocab_size = 2048;
    q.group_size = 128;
    q.desc_act = true;
    if (o.architecture == Architecture::Llama) {
      c.rope_scaling.type = RopeScaling::Type::Llama3;
      c.rope_scaling.factor = 4.0;
      c.rope_scaling.low_freq_factor = 1.0;
      c.rope_scaling.high_freq_factor = 4.0;
      c.rope_scaling.original_max_position_embeddings = 1024;
    }
  } else {
    throw Error("unknown demo model preset '" + o.preset + "' (tiny or small)");
  }
  if (o.vocab_size != 0) {
    if (o.vocab_size < 8 || o.vocab_size > (1 << 22))
      throw Error("demo model vocab_size must be in [8, 4194304], got " + std::to_string(o.vocab_size));
    c.vocab_size = o.vocab_size;
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = o.architecture == Architecture::Llama ? 500000.0 : 1000000.0;
  c.tie_word_embeddings = o.architecture == Architecture::Qwen2;
  c.attention_bias = o.architecture == Architecture::Qwen2;
  if (o.dense_dtype != DType::F16 && o.dense_dtype != DType::BF16 && o.dense_dtype != DType::F32)
    throw Error("demo model dense_dtype must be F16, BF16 or F32");
  c.torch_dtype = o.dense_dtype;
  c.bos_token_id = o.bos_token_id;
  c.eos_token_ids = o.eos_token_ids.empty() ? std::vector<int>{2} : o.eos_token_ids;
  for (int id : c.eos_token_ids)
    if (id < 0 || id >= c.vocab_size) throw Error("demo model eos id " + std::to_string(id) + " outside the vocabulary");
  if (c.bos_token_id && (*c.bos_token_id < 0 || *c.bos_token_id >= c.vocab_size))
    throw Error("demo model bos id " + std::to_string(*c.bos_token_id) + " outside the vocabulary");
  if (o.quantized && o.quant_override) {
    q = *o.quant_override;
    q.quantized = true;
    if (q.bits != 4 && q.bits != 8) throw Error("demo model GPTQ bits must be 4 or 8");
    if (q.group_size != 32 && q.group_size != 64 && q.group_size != 128 && q.group_size != -1)
      throw Error("demo model GPTQ group_size must be 32, 64, 128 or -1");
  }
  c.quant = q;
  if (o.shards < 1) throw Error("demo model shards must be >= 1");
  return c;
}

void write_demo_model_weights(const std::filesystem::path& dir, const DemoModelOptions& o) {
  const ModelConfig c = demo_model_config(o);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());

  TensorList out;
  ModelWeights unused;
  for_each_weight(
      c, unused,
      {[&](const TensorSpec& spec, TensorView&) {
         Random rng = stream_for(o.seed, spec.name);
         size_t n = 1;
         for (int64_t d : spec.shape) n *= static_cast<size_t>(d);
         const bool is_norm = spec.shape.size() == 1;
         out.add_floats(spec.name, o.dense_dtype, spec.shape,
                        is_norm ? normal_values(rng, n, 1.0f, 0.05f) : normal_values(rng, n, 0.0f, 1.0f));
       },
       [&](const LinearSpec& spec, LinearWeights&) {
         Random rng = stream_for(o.seed, spec.prefix);
         const size_t in = static_cast<size_t>(spec.in_features), n_out = static_cast<size_t>(spec.out_features);
         const bool is_head = spec.prefix == "lm_head";
         // std 1/sqrt(in) keeps activations near unit scale; the head a bit
         // wider so the next-token distribution is peaked, not flat.
         const float std = (is_head ? 2.0f : 1.0f) / std::sqrt(static_cast<float>(in));
         std::vector<float> w_t = normal_values(rng, in * n_out, 0.0f, std);  // [in, out]
         if (c.quant.quantized && !is_head) {
           std::vector<int32_t> g_idx;
           if (c.quant.desc_act) {  // act-order: groups hold scattered input rows
             const int group_size = c.quant.group_size > 0 ? c.quant.group_size : spec.in_features;
             std::vector<int32_t> perm(in);
             std::iota(perm.begin(), perm.end(), 0);
             for (size_t i = in - 1; i > 0; --i) std::swap(perm[i], perm[rng.next() % (i + 1)]);
             g_idx.resize(in);
             for (size_t i = 0; i < in; ++i) g_idx[static_cast<size_t>(perm[i])] = static_cast<int32_t>(i) / group_size;
           }
           GptqTensors t = gptq_quantize(w_t.data(), spec.in_features, spec.out_features, c.quant, g_idx);
           const int pack = 32 / c.quant.bits;
           const int64_t in64 = spec.in_features, out64 = spec.out_features;
           out.add_vector(spec.prefix + ".qweight", DType::I32, {in64 / pack, out64}, t.qweight);
           out.add_vector(spec.prefix + ".qzeros", DType::I32, {t.groups, out64 / pack}, t.qzeros);
           out.add_vector(spec.prefix + ".scales", DType::F16, {t.groups, out64}, t.scales);
           out.add_vector(spec.prefix + ".g_idx", DType::I32, {in64}, t.g_idx);
         } else {
           std::vector<float> w(in * n_out);  // [out, in]
           for (size_t k = 0; k < in; ++k)
             for (size_t n = 0; n < n_out; ++n) w[n * in + k] = w_t[k * n_out + n];
           out.add_floats(spec.prefix + ".weight", o.dense_dtype,
                          {static_cast<int64_t>(n_out), static_cast<int64_t>(in)}, w);
         }
         if (spec.bias_required)
           out.add_floats(spec.prefix + ".bias", o.dense_dtype, {static_cast<int64_t>(n_out)},
                          normal_values(rng, n_out, 0.0f, 0.1f));
       }});
  out.write(dir, o.shards);

  detail::write_text(dir / "config.json", model_config_json(c));
  nlohmann::ordered_json gen;
  if (c.bos_token_id) gen["bos_token_id"] = *c.bos_token_id;
  gen["eos_token_id"] = detail::ids_json(c.eos_token_ids);
  detail::write_text(dir / "generation_config.json", gen.dump(2) + "\n");
}

}  // namespace nibble

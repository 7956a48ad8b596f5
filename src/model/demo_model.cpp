#include "nibble/model/demo_model.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "json_fields.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/model/gptq.h"
#include "nibble/model/loader.h"
#include "nibble/model/safetensors.h"
#include "nibble/model/weight_names.h"

namespace nibble {
namespace {

using ordered_json = nlohmann::ordered_json;

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

const char* model_type(Architecture a) {
  switch (a) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
  }
  return "llama";
}

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::BF16:
      return "bfloat16";
    case DType::F32:
      return "float32";
    default:
      return "float16";
  }
}

// Owns the bytes of the tensors being written.
class TensorList {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> bytes) {
    storage_.push_back(std::move(bytes));
    tensors_.push_back({name, dtype, std::move(shape), std::span<const std::byte>(storage_.back())});
  }
  void add_floats(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<float>& v) {
    std::vector<std::byte> bytes(v.size() * dtype_size(dtype));
    for (size_t i = 0; i < v.size(); ++i) {
      if (dtype == DType::F32) {
        std::memcpy(bytes.data() + 4 * i, &v[i], 4);
      } else {
        uint16_t h = dtype == DType::BF16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    add(name, dtype, std::move(shape), std::move(bytes));
  }
  template <typename T>
  void add_vector(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
    std::vector<std::byte> bytes(v.size() * sizeof(T));
    std::memcpy(bytes.data(), v.data(), bytes.size());
    add(name, dtype, std::move(shape), std::move(bytes));
  }
  void write(const std::filesystem::path& dir, int shards) const {
    const std::map<std::string, std::string> metadata{{"format", "pt"}};
    if (shards <= 1) {
      write_safetensors(dir / "model.safetensors", tensors_, metadata);
    } else {
      write_sharded_safetensors(dir, tensors_, shards, metadata);
    }
  }

 private:
  std::deque<std::vector<std::byte>> storage_;
  std::vector<TensorToWrite> tensors_;
};

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error("cannot write " + path.string());
}

ordered_json ids_json(const std::vector<int>& ids) {
  if (ids.size() == 1) return ids[0];
  return ids;
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

std::string model_config_json(const ModelConfig& c) {
  ordered_json j;
  j["architectures"] = {architecture_name(c.architecture)};
  j["model_type"] = model_type(c.architecture);
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::None:
      j["rope_scaling"] = nullptr;
      break;
    case RopeScaling::Type::Linear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
      break;
    case RopeScaling::Type::Llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.architecture == Architecture::Llama) j["attention_bias"] = c.attention_bias;
  if (c.architecture != Architecture::Llama) j["sliding_window"] = c.sliding_window ? ordered_json(*c.sliding_window) : nullptr;
  if (c.architecture == Architecture::Qwen2) j["use_sliding_window"] = c.sliding_window.has_value();
  j["torch_dtype"] = torch_dtype_name(c.torch_dtype);
  j["bos_token_id"] = c.bos_token_id ? ordered_json(*c.bos_token_id) : nullptr;
  j["eos_token_id"] = ids_json(c.eos_token_ids);
  if (c.quant.quantized) {
    j["quantization_config"] = {{"quant_method", "gptq"},
                                {"bits", c.quant.bits},
                                {"group_size", c.quant.group_size},
                                {"desc_act", c.quant.desc_act},
                                {"sym", c.quant.sym},
                                {"checkpoint_format",
                                 c.quant.format == QuantConfig::Format::Gptq ? "gptq" : "gptq_v2"}};
  }
  return j.dump(2) + "\n";
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

  write_text(dir / "config.json", model_config_json(c));
  ordered_json gen;
  if (c.bos_token_id) gen["bos_token_id"] = *c.bos_token_id;
  gen["eos_token_id"] = ids_json(c.eos_token_ids);
  write_text(dir / "generation_config.json", gen.dump(2) + "\n");
}

void write_dequantized_copy(const std::filesystem::path& src_dir, const std::filesystem::path& dst_dir, int shards) {
  std::error_code ec;
  if (std::filesystem::equivalent(src_dir, dst_dir, ec))
    throw Error("write_dequantized_copy: source and destination are the same folder " + src_dir.string());
  auto model = load_model(src_dir);
  const ModelConfig& c = model->config();
  std::filesystem::create_directories(dst_dir, ec);
  if (ec) throw Error("cannot create " + dst_dir.string() + ": " + ec.message());

  TensorList out;
  auto copy = [&](const TensorView& v) {
    if (!v.present()) return;
    const auto* p = static_cast<const std::byte*>(v.data);
    out.add(v.name, v.dtype, v.shape, std::vector<std::byte>(p, p + v.nbytes()));
  };
  ModelWeights weights = model->weights();
  for_each_weight(c, weights,
                  {[&](const TensorSpec&, TensorView& v) { copy(v); },
                   [&](const LinearSpec& spec, LinearWeights& l) {
                     if (l.quantized) {
                       const size_t in = static_cast<size_t>(l.in_features), n_out = static_cast<size_t>(l.out_features);
                       std::vector<float> w_t(in * n_out), w(in * n_out);
                       gptq_dequantize_rows(l, 0, l.in_features, w_t.data());
                       for (size_t k = 0; k < in; ++k)
                         for (size_t n = 0; n < n_out; ++n) w[n * in + k] = w_t[k * n_out + n];
                       out.add_floats(spec.prefix + ".weight", DType::F32,
                                      {static_cast<int64_t>(n_out), static_cast<int64_t>(in)}, w);
                     } else {
                       copy(l.weight);
                     }
                     copy(l.bias);
                   }});
  out.write(dst_dir, shards);

  auto config_path = (std::filesystem::is_regular_file(src_dir, ec) ? src_dir.parent_path() : src_dir);
  const std::string config_file = (config_path / "config.json").string();
  auto config_json = detail::parse_json_object(detail::read_text_file(config_file), config_file);
  config_json.erase("quantization_config");
  write_text(dst_dir / "config.json", config_json.dump(2) + "\n");
  for (const auto& entry : std::filesystem::directory_iterator(config_path)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || entry.path().extension() == ".safetensors" || name == "config.json" ||
        name == "quantize_config.json" || name == "model.safetensors.index.json")
      continue;
    std::filesystem::copy_file(entry.path(), dst_dir / name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) throw Error("cannot copy " + entry.path().string() + " to " + dst_dir.string() + ": " + ec.message());
  }
}

}  // namespace nibble

#include "device_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "gptq_gemm/gptq_layout.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "random_fill/random_fill.h"

namespace nibble::cuda {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void check_shape(const TensorView& t, std::vector<int64_t> want, const std::string& what) {
  NIBBLE_CHECK(t.present(), "cuda backend: tensor " + what + " is missing");
  NIBBLE_CHECK(t.shape == want, "cuda backend: tensor " + t.name + " (" + what + ") has shape " + shape_text(t.shape) +
                                    ", expected " + shape_text(want));
  NIBBLE_CHECK(t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F32,
               "cuda backend: tensor " + t.name + " has dtype " + std::string(dtype_name(t.dtype)) +
                   ", expected F16, BF16 or F32");
}

// Any float tensor as fp16 values.
std::vector<uint16_t> to_half(const TensorView& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<uint16_t> out(n);
  if (t.dtype == DType::F16) {
    std::memcpy(out.data(), t.data, n * 2);
  } else if (t.dtype == DType::BF16) {
    const auto* p = static_cast<const uint16_t*>(t.data);
    for (size_t i = 0; i < n; ++i) out[i] = float_to_fp16(bf16_to_float(p[i]));
  } else {
    const auto* p = static_cast<const float*>(t.data);
    for (size_t i = 0; i < n; ++i) out[i] = float_to_fp16(p[i]);
  }
  return out;
}

uint64_t gptq_bytes(int64_t K, int64_t N, int bits, int group_size, bool act_order) {
  const int64_t groups = kernels::gptq_group_count(K, group_size);
  return static_cast<uint64_t>(K / (32 / bits) * N * 4 + 2 * groups * N * 2 + (act_order ? K * 4 : 0));
}

uint64_t linear_bytes(const LinearWeights& l) {
  uint64_t bytes = l.bias.present() ? static_cast<uint64_t>(l.out_features) * 2 : 0;
  if (l.quantized)
    return bytes + gptq_bytes(l.in_features, l.out_features, l.quant.bits, l.quant.group_size, l.g_idx.present());
  return bytes + static_cast<uint64_t>(l.in_features) * l.out_features * 2;
}

// Allocates device memory owned by the model and copies bytes into it.
class Uploader {
 public:
  Uploader(DeviceModel& m, cudaStream_t stream) : m_(m), stream_(stream) {}

  template <typename T>
  const T* copy(const T* host, size_t count) {
    if (count == 0) return nullptr;
    DeviceBuffer buf(count * sizeof(T));
    CUDA_CHECK(cudaMemcpyAsync(buf.get(), host, count * sizeof(T), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vector may die after this call
    m_.bytes += buf.bytes();
    const T* p = buf.get<T>();
    m_.storage.push_back(std::move(buf));
    return p;
  }
  template <typename T>
  const T* copy(const std::vector<T>& v) {
    return copy(v.data(), v.size());
  }
  const __half* copy_half(const TensorView& t) {
    return reinterpret_cast<const __half*>(copy(to_half(t)));
  }
  template <typename T>
  T* alloc(size_t count) {
    DeviceBuffer buf(count * sizeof(T));
    m_.bytes += buf.bytes();
    T* p = buf.get<T>();
    m_.storage.push_back(std::move(buf));
    return p;
  }

 private:
  DeviceModel& m_;
  cudaStream_t stream_;
};

// A linear converted on the host, ready to upload: the GPTQ kernel layout, or
// dense fp16 [out, in]; bias fp16 [out] (empty: none).
struct HostLinear {
  int in_features = 0;
  int out_features = 0;
  bool quantized = false;
  kernels::GptqPrepared gptq;
  std::vector<uint16_t> dense;
  std::vector<uint16_t> bias;
};

HostLinear prepare_linear(const LinearWeights& l) {
  HostLinear h;
  h.in_features = l.in_features;
  h.out_features = l.out_features;
  h.quantized = l.quantized;
  if (l.bias.present()) {
    check_shape(l.bias, {l.out_features}, "bias");
    h.bias = to_half(l.bias);
  }
  if (!l.quantized) {
    check_shape(l.weight, {l.out_features, l.in_features}, "weight");
    h.dense = to_half(l.weight);
    return h;
  }
  NIBBLE_CHECK(l.qweight.dtype == DType::I32 && l.qzeros.dtype == DType::I32 && l.scales.dtype == DType::F16 &&
                   (!l.g_idx.present() || l.g_idx.dtype == DType::I32),
               "cuda backend: GPTQ tensors of " + l.qweight.name + " need I32 qweight/qzeros/g_idx and F16 scales");
  kernels::GptqCheckpointView view;
  view.K = l.in_features;
  view.N = l.out_features;
  view.bits = l.quant.bits;
  view.group_size = l.quant.group_size;
  view.zero_minus_one = l.quant.format == QuantConfig::Format::Gptq;
  view.qweight = static_cast<const int32_t*>(l.qweight.data);
  view.qzeros = static_cast<const int32_t*>(l.qzeros.data);
  view.scales = static_cast<const uint16_t*>(l.scales.data);
  view.g_idx = l.g_idx.present() ? static_cast<const int32_t*>(l.g_idx.data) : nullptr;
  try {
    h.gptq = kernels::gptq_prepare(view);
  } catch (const Error& e) {
    throw Error("cuda backend: " + l.qweight.name + ": " + e.what());
  }
  return h;
}

// Whether the linears (same input) can be one product: all dense, or all GPTQ
// with the same bits, group rows and act-order permutation.
bool can_concatenate(const std::vector<HostLinear>& parts) {
  const HostLinear& a = parts.front();
  for (const HostLinear& b : parts) {
    if (b.in_features != a.in_features || b.quantized != a.quantized) return false;
    if (a.quantized && (b.gptq.bits != a.gptq.bits || b.gptq.group_rows != a.gptq.group_rows ||
                        b.gptq.groups != a.gptq.groups || b.gptq.perm != a.gptq.perm))
      return false;
  }
  return true;
}

// The parts side by side along the outputs (a bias of zeros for parts without one).
HostLinear concatenate(const std::vector<HostLinear>& parts) {
  HostLinear out;
  out.in_features = parts.front().in_features;
  out.quantized = parts.front().quantized;
  const bool any_bias = std::any_of(parts.begin(), parts.end(), [](const HostLinear& p) { return !p.bias.empty(); });
  for (const HostLinear& p : parts) {
    out.out_features += p.out_features;
    if (any_bias) {
      if (p.bias.empty())
        out.bias.insert(out.bias.end(), static_cast<size_t>(p.out_features), uint16_t{0});
      else
        out.bias.insert(out.bias.end(), p.bias.begin(), p.bias.end());
    }
    if (!out.quantized) out.dense.insert(out.dense.end(), p.dense.begin(), p.dense.end());  // [out, in] rows
  }
  if (!out.quantized) return out;
  const kernels::GptqPrepared& first = parts.front().gptq;
  kernels::GptqPrepared& g = out.gptq;
  g.K = first.K;
  g.N = out.out_features;
  g.bits = first.bits;
  g.group_rows = first.group_rows;
  g.groups = first.groups;
  g.perm = first.perm;
  // Row-major [rows, N] arrays: each row is the parts' rows one after another.
  auto join_rows = [&](auto member, int64_t rows) {
    using Vec = std::remove_cvref_t<decltype(first.*member)>;
    Vec joined;
    joined.reserve(static_cast<size_t>(rows * g.N));
    for (int64_t r = 0; r < rows; ++r)
      for (const HostLinear& p : parts) {
        const Vec& v = p.gptq.*member;
        const auto begin = v.begin() + static_cast<ptrdiff_t>(r * p.gptq.N);
        joined.insert(joined.end(), begin, begin + static_cast<ptrdiff_t>(p.gptq.N));
      }
    return joined;
  };
  g.qweight = join_rows(&kernels::GptqPrepared::qweight, g.K / g.pack());
  g.scales = join_rows(&kernels::GptqPrepared::scales, g.groups);
  g.zeros = join_rows(&kernels::GptqPrepared::zeros, g.groups);
  return out;
}

DeviceLinear upload_linear(const HostLinear& h, Uploader& up) {
  DeviceLinear d;
  d.in_features = h.in_features;
  d.out_features = h.out_features;
  d.quantized = h.quantized;
  if (!h.bias.empty()) d.bias = reinterpret_cast<const __half*>(up.copy(h.bias));
  if (!h.quantized) {
    d.dense = reinterpret_cast<const __half*>(up.copy(h.dense));
    return d;
  }
  const auto* qweight = up.copy(h.gptq.qweight);
  const auto* scales = reinterpret_cast<const __half*>(up.copy(h.gptq.scales));
  const auto* zeros = reinterpret_cast<const __half*>(up.copy(h.gptq.zeros));
  const auto* perm = h.gptq.act_order() ? up.copy(h.gptq.perm) : nullptr;
  d.gptq = kernels::gptq_device_view(h.gptq, qweight, scales, zeros, perm);
  return d;
}

// Linears reading the same input: one fused product when they can be, else each on its own.
std::vector<DeviceLinear> upload_side_by_side(const std::vector<const LinearWeights*>& linears, Uploader& up) {
  std::vector<HostLinear> parts;
  for (const LinearWeights* l : linears) parts.push_back(prepare_linear(*l));
  if (can_concatenate(parts)) return {upload_linear(concatenate(parts), up)};
  std::vector<DeviceLinear> out;
  for (const HostLinear& p : parts) out.push_back(upload_linear(p, up));
  return out;
}

// Bytes of a bias the fused linear of `linears` carries (zeros stand in for missing ones).
uint64_t fused_bias_bytes(const std::vector<const LinearWeights*>& linears) {
  uint64_t outs = 0;
  bool any = false;
  for (const LinearWeights* l : linears) {
    outs += static_cast<uint64_t>(l->out_features);
    any = any || l->bias.present();
  }
  return any ? outs * 2 : 0;
}

}  // namespace

void check_model_config(const ModelConfig& c) {
  NIBBLE_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 && c.vocab_size > 0,
               "cuda backend: config needs positive hidden_size, intermediate_size, num_hidden_layers and vocab_size");
  NIBBLE_CHECK(c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
                   c.num_attention_heads % c.num_key_value_heads == 0,
               "cuda backend: num_attention_heads (" + std::to_string(c.num_attention_heads) +
                   ") must be a positive multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) +
                   ")");
  NIBBLE_CHECK(c.head_dim > 0 && c.head_dim % 8 == 0 && c.head_dim <= 256,
               "cuda backend: head_dim " + std::to_string(c.head_dim) + " is not supported (a multiple of 8, <= 256)");
  const int group = c.num_attention_heads / c.num_key_value_heads;
  NIBBLE_CHECK(group <= (c.head_dim > 128 ? 16 : 64),
               "cuda backend: " + std::to_string(group) + " query heads per KV head is more than the kernels support");
}

void check_model_weights(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  check_model_config(c);
  NIBBLE_CHECK(static_cast<int>(w.layers.size()) == c.num_hidden_layers,
               "cuda backend: the model has " + std::to_string(w.layers.size()) + " layers, config.json says " +
                   std::to_string(c.num_hidden_layers));
  check_shape(w.embed_tokens, {c.vocab_size, c.hidden_size}, "embed_tokens");
  check_shape(w.norm, {c.hidden_size}, "norm");
  const int h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim,
            inter = c.intermediate_size;
  auto check_linear = [](const LinearWeights& l, int in, int out, const std::string& what) {
    NIBBLE_CHECK(l.in_features == in && l.out_features == out,
                 "cuda backend: " + what + " is " + std::to_string(l.out_features) + "x" +
                     std::to_string(l.in_features) + ", expected " + std::to_string(out) + "x" + std::to_string(in));
  };
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = "layer " + std::to_string(i) + " ";
    check_shape(l.input_layernorm, {h}, p + "input_layernorm");
    check_shape(l.post_attention_layernorm, {h}, p + "post_attention_layernorm");
    check_linear(l.q_proj, h, q, p + "q_proj");
    check_linear(l.k_proj, h, kv, p + "k_proj");
    check_linear(l.v_proj, h, kv, p + "v_proj");
    check_linear(l.o_proj, q, h, p + "o_proj");
    check_linear(l.gate_proj, h, inter, p + "gate_proj");
    check_linear(l.up_proj, h, inter, p + "up_proj");
    check_linear(l.down_proj, inter, h, p + "down_proj");
  }
  check_linear(w.lm_head, h, c.vocab_size, "lm_head");
  NIBBLE_CHECK(!w.lm_head.quantized, "cuda backend: a quantized lm_head is not supported");
}

uint64_t model_device_bytes(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  uint64_t bytes = static_cast<uint64_t>(c.vocab_size) * c.hidden_size * 2 + c.hidden_size * 2;
  if (w.lm_head.weight.data != w.embed_tokens.data) bytes += linear_bytes(w.lm_head);
  for (const LayerWeights& l : w.layers) {
    bytes += 2ull * c.hidden_size * 2;
    for (const LinearWeights* lin :
         {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      bytes += linear_bytes(*lin);
    // A fused product may carry a bias (zeros) for parts that have none.
    bytes += fused_bias_bytes({&l.q_proj, &l.k_proj, &l.v_proj}) + fused_bias_bytes({&l.gate_proj, &l.up_proj});
  }
  return bytes;
}

DeviceModel upload_model(const ModelWeights& w, cudaStream_t stream) {
  check_model_weights(w);
  DeviceModel m;
  m.config = w.config;
  Uploader up(m, stream);
  m.embed_tokens = up.copy_half(w.embed_tokens);
  m.final_norm = up.copy_half(w.norm);
  if (w.lm_head.weight.data == w.embed_tokens.data) {
    m.lm_head = m.embed_tokens;
  } else {
    check_shape(w.lm_head.weight, {w.config.vocab_size, w.config.hidden_size}, "lm_head");
    m.lm_head = up.copy_half(w.lm_head.weight);
  }
  for (const LayerWeights& l : w.layers) {
    DeviceLayer d;
    d.input_norm = up.copy_half(l.input_layernorm);
    d.post_attention_norm = up.copy_half(l.post_attention_layernorm);
    d.qkv = upload_side_by_side({&l.q_proj, &l.k_proj, &l.v_proj}, up);
    d.o_proj = upload_linear(prepare_linear(l.o_proj), up);
    d.gate_up = upload_side_by_side({&l.gate_proj, &l.up_proj}, up);
    d.down_proj = upload_linear(prepare_linear(l.down_proj), up);
    m.layers.push_back(d);
  }
  return m;
}

QuantConfig dummy_quant(const ModelConfig& c) {
  QuantConfig q;
  q.quantized = true;
  q.bits = c.quant.quantized && (c.quant.bits == 4 || c.quant.bits == 8) ? c.quant.bits : 4;
  q.group_size = c.quant.quantized && c.quant.group_size != 0 ? c.quant.group_size : 128;
  q.desc_act = false;
  q.sym = true;
  return q;
}

namespace {

struct LinearShape {
  int in, out;
  bool bias;
};

// The products of a layer with dummy weights: [q | k | v], o, [gate | up], down
// (dummy weights share one format, so the projections are always fused).
std::vector<LinearShape> layer_linear_shapes(const ModelConfig& c) {
  const int h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim,
            inter = c.intermediate_size;
  const bool qkv_bias = c.attention_bias || c.architecture == Architecture::Qwen2;
  return {{h, q + 2 * kv, qkv_bias}, {q, h, false}, {h, 2 * inter, false}, {inter, h, false}};
}

}  // namespace

uint64_t dummy_model_device_bytes(const ModelConfig& c) {
  const QuantConfig q = dummy_quant(c);
  uint64_t bytes = static_cast<uint64_t>(c.vocab_size) * c.hidden_size * 2 * (c.tie_word_embeddings ? 1 : 2) +
                   c.hidden_size * 2;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    bytes += 2ull * c.hidden_size * 2;
    for (const LinearShape& s : layer_linear_shapes(c))
      bytes += gptq_bytes(s.in, s.out, q.bits, q.group_size, false) + (s.bias ? s.out * 2 : 0);
  }
  return bytes;
}

DeviceModel make_dummy_model(const ModelConfig& c, uint64_t seed, cudaStream_t stream) {
  check_model_config(c);
  const QuantConfig q = dummy_quant(c);
  const int pack = 32 / q.bits;
  for (const LinearShape& s : layer_linear_shapes(c))
    NIBBLE_CHECK(s.in % pack == 0 && s.out % 4 == 0 && (q.group_size <= 0 || q.group_size % 32 == 0),
                 "cuda backend: dummy weights need in_features % " + std::to_string(pack) +
                     " == 0, out_features % 4 == 0 and a group size that is a multiple of 32");
  DeviceModel m;
  m.config = c;
  Uploader up(m, stream);
  uint64_t stream_id = 0;
  auto next_seed = [&] { return seed * 1000003ull + (++stream_id); };
  auto random_half = [&](size_t n, float scale, float offset) {
    __half* p = up.alloc<__half>(n);
    CUDA_CHECK(kernels::fill_random_half(p, n, next_seed(), scale, offset, stream));
    return static_cast<const __half*>(p);
  };
  const size_t vh = static_cast<size_t>(c.vocab_size) * c.hidden_size;
  m.embed_tokens = random_half(vh, 1.0f, 0.0f);
  m.final_norm = random_half(c.hidden_size, 0.1f, 1.0f);
  m.lm_head = c.tie_word_embeddings ? m.embed_tokens
                                    : random_half(vh, std::sqrt(3.0f / static_cast<float>(c.hidden_size)), 0.0f);
  // Weight values (q - zero) * scale with q uniform: std(q) = 2^bits / sqrt(12);
  // scales give the weights a std of about 1/sqrt(in_features).
  const float q_std = static_cast<float>(1 << q.bits) / std::sqrt(12.0f);
  const float zero = static_cast<float>(1 << (q.bits - 1));
  auto make_linear = [&](const LinearShape& s) {
    DeviceLinear d;
    d.in_features = s.in;
    d.out_features = s.out;
    d.quantized = true;
    const int group_rows = q.group_size > 0 ? q.group_size : s.in;
    const int64_t groups = kernels::gptq_group_count(s.in, q.group_size);
    auto* qweight = up.alloc<uint32_t>(static_cast<size_t>(s.in / pack) * s.out);
    CUDA_CHECK(kernels::fill_random_bits(qweight, static_cast<size_t>(s.in / pack) * s.out, next_seed(), stream));
    const float scale = 1.0f / (q_std * std::sqrt(static_cast<float>(s.in)));
    const __half* scales = random_half(static_cast<size_t>(groups) * s.out, 0.25f * scale, scale);
    // Kernel layout zeros: -(1024 + zero), the same for every group and column.
    const __half* zeros = random_half(static_cast<size_t>(groups) * s.out, 0.0f, -(1024.0f + zero));
    d.gptq.K = s.in;
    d.gptq.N = s.out;
    d.gptq.bits = q.bits;
    d.gptq.group_rows = group_rows;
    d.gptq.groups = groups;
    d.gptq.qweight = qweight;
    d.gptq.scales = scales;
    d.gptq.zeros = zeros;
    d.gptq.perm = nullptr;
    if (s.bias) d.bias = random_half(s.out, 0.02f, 0.0f);
    return d;
  };
  const auto shapes = layer_linear_shapes(c);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    DeviceLayer d;
    d.input_norm = random_half(c.hidden_size, 0.1f, 1.0f);
    d.post_attention_norm = random_half(c.hidden_size, 0.1f, 1.0f);
    d.qkv = {make_linear(shapes[0])};
    d.o_proj = make_linear(shapes[1]);
    d.gate_up = {make_linear(shapes[2])};
    d.down_proj = make_linear(shapes[3]);
    m.layers.push_back(d);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return m;
}

}  // namespace nibble::cuda

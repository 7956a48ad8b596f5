#include "nibble/model/dummy_weights.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/core/thread_pool.h"
#include "nibble/model/weight_names.h"

namespace nibble {
namespace {

// Values are drawn in chunks, each from its own splitmix64 stream keyed by the
// seed, the tensor's name and the chunk index, so the bytes do not depend on
// the thread count.
constexpr size_t kChunkElements = size_t{1} << 16;

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float symmetric() { return static_cast<float>(static_cast<double>(next() >> 11) * (2.0 / 9007199254740992.0) - 1.0); }

 private:
  uint64_t state_;
};

uint64_t name_hash(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::string gib(uint64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1ull << 30)); }

// How one tensor's elements are made.
struct Fill {
  enum class Kind { Bits, Zeros, GroupIndex, Half } kind = Kind::Half;
  float center = 0.0f;  // Half: center + spread * uniform[-1, 1)
  float spread = 0.0f;
  uint32_t packed_zero = 0;  // Zeros: every int32 word
  int group_size = 0;        // GroupIndex
};

std::string suffix_of(const std::string& name) { return name.substr(name.rfind('.') + 1); }

class DummyWeights final : public LoadedModel {
 public:
  DummyWeights(const ModelConfig& config, const std::filesystem::path& config_path, const DummyWeightsOptions& options)
      : dir_(config_path), config_(config) {
    config_.quant = dummy_weights_quant(config);
    const uint64_t bytes = dummy_weights_bytes(config_);
    const uint64_t limit = options.max_bytes > 0 ? options.max_bytes : default_dummy_weights_limit();
    if (bytes > limit)
      throw Error(fmt::format("{}: dummy weights at these shapes need {} of host memory, more than the {} allowed{}; "
                              "use --device cuda or a smaller config",
                              config_path.string(), gib(bytes), gib(limit),
                              options.max_bytes > 0 ? "" : " (half of this machine's memory)"));
    generation_ = load_generation_config(std::filesystem::is_directory(config_path) ? config_path
                                                                                    : config_path.parent_path());
    if (generation_.eos_token_ids.empty()) generation_.eos_token_ids = config_.eos_token_ids;
    if (!generation_.bos_token_id) generation_.bos_token_id = config_.bos_token_id;
    generate(options.seed);
  }

  const std::filesystem::path& dir() const override { return dir_; }
  const ModelConfig& config() const override { return config_; }
  const GenerationConfig& generation_config() const override { return generation_; }
  const ModelWeights& weights() const override { return weights_; }

 private:
  void generate(uint64_t seed) {
    ThreadPool pool;
    weights_.config = config_;
    const QuantConfig& q = config_.quant;
    // Weight values (q - zero) * scale with q uniform over 2^bits levels: std(q)
    // = 2^bits / sqrt(12); the scale gives weights a std of 1/sqrt(in).
    const float q_std = static_cast<float>(1 << q.bits) / std::sqrt(12.0f);
    const int pack = 32 / q.bits;
    uint32_t packed_zero = 0;
    const uint32_t stored_zero = (1u << (q.bits - 1)) - 1;  // format gptq stores zero - 1
    for (int i = 0; i < pack; ++i) packed_zero |= stored_zero << (i * q.bits);

    auto tensor = [&](const TensorSpec& spec, const Fill& fill) {
      TensorView v;
      v.name = spec.name;
      v.shape = spec.shape;
      v.dtype = fill.kind == Fill::Kind::Half ? DType::F16 : DType::I32;
      const size_t n = static_cast<size_t>(v.numel());
      auto& buffer = owned_.emplace_back(new std::byte[std::max<size_t>(v.nbytes(), 1)]);
      v.data = buffer.get();
      fill_tensor(pool, seed, spec.name, fill, n, buffer.get());
      return v;
    };
    auto float_fill = [&](const std::string& name) {
      Fill f;
      const std::string suffix = suffix_of(name);
      if (name == "model.embed_tokens.weight") f.spread = 1.0f;
      else if (name.find("norm") != std::string::npos) f.center = 1.0f, f.spread = 0.1f;
      else if (suffix == "bias") f.spread = 0.02f;
      else f.spread = std::sqrt(3.0f / static_cast<float>(config_.hidden_size));  // lm_head: std 1/sqrt(hidden)
      return f;
    };
    for_each_weight(config_, weights_,
                    {[&](const TensorSpec& spec, TensorView& dst) { dst = tensor(spec, float_fill(spec.name)); },
                     [&](const LinearSpec& spec, LinearWeights& dst) {
                       dst = LinearWeights{};
                       dst.in_features = spec.in_features;
                       dst.out_features = spec.out_features;
                       dst.quantized = spec.prefix != "lm_head";
                       dst.quant = q;
                       const float scale = 1.0f / (q_std * std::sqrt(static_cast<float>(spec.in_features)));
                       for (const TensorSpec& part : linear_tensor_specs(spec, dst.quantized, q)) {
                         const std::string suffix = suffix_of(part.name);
                         if (suffix == "bias" && !part.required) continue;
                         Fill f = float_fill(part.name);
                         if (suffix == "qweight") f.kind = Fill::Kind::Bits;
                         if (suffix == "qzeros") f.kind = Fill::Kind::Zeros, f.packed_zero = packed_zero;
                         if (suffix == "g_idx")
                           f.kind = Fill::Kind::GroupIndex,
                           f.group_size = q.group_size > 0 ? q.group_size : spec.in_features;
                         if (suffix == "scales") f.center = scale, f.spread = 0.25f * scale;
                         TensorView v = tensor(part, f);
                         if (suffix == "weight") dst.weight = std::move(v);
                         else if (suffix == "qweight") dst.qweight = std::move(v);
                         else if (suffix == "qzeros") dst.qzeros = std::move(v);
                         else if (suffix == "scales") dst.scales = std::move(v);
                         else if (suffix == "g_idx") dst.g_idx = std::move(v);
                         else if (suffix == "bias") dst.bias = std::move(v);
                       }
                     }});
    tie_word_embeddings(config_, weights_);
  }

  static void fill_tensor(ThreadPool& pool, uint64_t seed, const std::string& name, const Fill& fill, size_t n,
                          std::byte* out) {
    const uint64_t key = seed * 0x9e3779b97f4a7c15ull ^ name_hash(name);
    const size_t chunks = (n + kChunkElements - 1) / kChunkElements;
    pool.parallel_for(chunks, [&](size_t begin, size_t end) {
      for (size_t c = begin; c < end; ++c) {
        SplitMix64 rng(key + c * 0xd1b54a32d192ed03ull);
        const size_t lo = c * kChunkElements, hi = std::min(n, lo + kChunkElements);
        auto* i32 = reinterpret_cast<uint32_t*>(out);
        auto* f16 = reinterpret_cast<uint16_t*>(out);
        for (size_t i = lo; i < hi; ++i) {
          switch (fill.kind) {
            case Fill::Kind::Bits: i32[i] = static_cast<uint32_t>(rng.next()); break;
            case Fill::Kind::Zeros: i32[i] = fill.packed_zero; break;
            case Fill::Kind::GroupIndex: i32[i] = static_cast<uint32_t>(i / static_cast<size_t>(fill.group_size)); break;
            case Fill::Kind::Half: f16[i] = float_to_fp16(fill.center + fill.spread * rng.symmetric()); break;
          }
        }
      }
    });
  }

  std::filesystem::path dir_;
  ModelConfig config_;
  GenerationConfig generation_;
  ModelWeights weights_;
  std::vector<std::unique_ptr<std::byte[]>> owned_;
};

}  // namespace

QuantConfig dummy_weights_quant(const ModelConfig& config) {
  QuantConfig q;
  q.quantized = true;
  const bool gptq = config.quant.quantized && (config.quant.bits == 4 || config.quant.bits == 8);
  q.bits = gptq ? config.quant.bits : 4;
  q.group_size = gptq && config.quant.group_size != 0 ? config.quant.group_size : 128;
  q.desc_act = false;
  q.sym = true;
  q.format = QuantConfig::Format::Gptq;
  return q;
}

uint64_t dummy_weights_bytes(const ModelConfig& config) {
  ModelConfig c = config;
  c.quant = dummy_weights_quant(config);
  uint64_t bytes = 0;
  auto add = [&](const TensorSpec& spec, DType dtype) {
    uint64_t n = 1;
    for (int64_t d : spec.shape) n *= static_cast<uint64_t>(d);
    bytes += n * dtype_size(dtype);
  };
  ModelWeights scratch;
  for_each_weight(c, scratch,
                  {[&](const TensorSpec& spec, TensorView&) { add(spec, DType::F16); },
                   [&](const LinearSpec& spec, LinearWeights&) {
                     for (const TensorSpec& part : linear_tensor_specs(spec, spec.prefix != "lm_head", c.quant))
                       if (part.required || suffix_of(part.name) == "g_idx")
                         add(part, part.dtype_class == DTypeClass::Int32 ? DType::I32 : DType::F16);
                   }});
  return bytes;
}

uint64_t default_dummy_weights_limit() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return UINT64_MAX;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) / 2;
}

std::unique_ptr<LoadedModel> make_dummy_weights(const ModelConfig& config, const std::filesystem::path& config_path,
                                                const DummyWeightsOptions& options) {
  return std::make_unique<DummyWeights>(config, config_path, options);
}

}  // namespace nibble

#include "nibble/model/loader.h"

#include <cstring>

#include "nibble/core/error.h"
#include "nibble/model/tensor_store.h"
#include "nibble/model/weight_names.h"

namespace nibble {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The folder holding the weights: dir itself, or the folder of a config file.
std::filesystem::path weights_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir, ec) ? dir.parent_path() : dir;
}

class LoadedModelImpl final : public LoadedModel {
 public:
  LoadedModelImpl(const std::filesystem::path& dir, const LoadOptions& options)
      : dir_(dir),
        config_(load_model_config(dir)),
        generation_(load_generation_config(dir)),
        store_(weights_dir(dir), options.use_mmap) {
    if (generation_.eos_token_ids.empty()) generation_.eos_token_ids = config_.eos_token_ids;
    if (!generation_.bos_token_id) generation_.bos_token_id = config_.bos_token_id;
    weights_.config = config_;
    bind_weights(options);
  }

  const std::filesystem::path& dir() const override { return dir_; }
  const ModelConfig& config() const override { return config_; }
  const GenerationConfig& generation_config() const override { return generation_; }
  const ModelWeights& weights() const override { return weights_; }

 private:
  void bind_weights(const LoadOptions& options) {
    LoadProgress progress;
    ModelWeights counting;
    for_each_weight(config_, counting, {[&](const TensorSpec&, TensorView&) { ++progress.total; },
                                        [&](const LinearSpec&, LinearWeights&) { ++progress.total; }});
    auto step = [&] {
      ++progress.done;
      if (options.on_progress) options.on_progress(progress);
    };
    for_each_weight(config_, weights_,
                    {[&](const TensorSpec& spec, TensorView& dst) {
                       dst = bind(spec);
                       step();
                     },
                     [&](const LinearSpec& spec, LinearWeights& dst) {
                       dst = bind_linear(spec);
                       step();
                     }});
    tie_word_embeddings(config_, weights_);
  }

  // The view of one tensor, checked against its spec; absent optional tensors
  // give an empty view.
  TensorView bind(const TensorSpec& spec) {
    TensorView view;
    view.name = spec.name;
    view.shape = spec.shape;
    const SafetensorsTensor* t = store_.find(spec.name);
    if (t == nullptr) {
      if (spec.required)
        throw Error("missing tensor '" + spec.name + "' (searched " + store_.files_searched() + ")");
      return view;
    }
    const std::string file = store_.file_of(spec.name).string();
    if (!dtype_in_class(t->dtype, spec.dtype_class))
      throw Error(file + ": tensor '" + spec.name + "' has dtype " + std::string(dtype_name(t->dtype)) +
                  ", expected " + dtype_class_name(spec.dtype_class));
    if (t->shape != spec.shape)
      throw Error(file + ": tensor '" + spec.name + "' has shape " + shape_text(t->shape) +
                  " but config.json implies " + shape_text(spec.shape));
    view.dtype = t->dtype;
    view.data = aligned(t);
    return view;
  }

  LinearWeights bind_linear(const LinearSpec& spec) {
    LinearWeights w;
    w.in_features = spec.in_features;
    w.out_features = spec.out_features;
    const bool has_qweight = store_.find(spec.prefix + ".qweight") != nullptr;
    const bool has_weight = store_.find(spec.prefix + ".weight") != nullptr;
    if (!has_qweight && !has_weight)
      throw Error("missing tensor '" + spec.prefix + ".qweight' or '" + spec.prefix + ".weight' (searched " +
                  store_.files_searched() + ")");
    if (has_qweight && !config_.quant.quantized)
      throw Error(store_.file_of(spec.prefix + ".qweight").string() + ": tensor '" + spec.prefix +
                  ".qweight' is GPTQ-quantized, but config.json has no quantization_config and there is no "
                  "quantize_config.json");
    w.quantized = has_qweight;
    w.quant = config_.quant;
    for (const TensorSpec& part : linear_tensor_specs(spec, w.quantized, config_.quant)) {
      TensorView v = bind(part);
      const std::string suffix = part.name.substr(spec.prefix.size() + 1);
      if (suffix == "weight") w.weight = std::move(v);
      else if (suffix == "qweight") w.qweight = std::move(v);
      else if (suffix == "qzeros") w.qzeros = std::move(v);
      else if (suffix == "scales") w.scales = std::move(v);
      else if (suffix == "g_idx") w.g_idx = std::move(v);
      else if (suffix == "bias") w.bias = std::move(v);
    }
    if (w.quantized) check_g_idx(spec, w);
    return w;
  }

  // Every g_idx entry must name an existing group (dequantization indexes the
  // scales with it); a missing g_idx becomes the sequential one.
  void check_g_idx(const LinearSpec& spec, LinearWeights& w) {
    const int groups = gptq_groups(spec.in_features, w.quant);
    if (!w.g_idx.present()) {
      const int group_size = w.quant.group_size > 0 ? w.quant.group_size : spec.in_features;
      auto& buffer = owned_.emplace_back(new std::byte[static_cast<size_t>(spec.in_features) * sizeof(int32_t)]);
      auto* g = reinterpret_cast<int32_t*>(buffer.get());
      for (int k = 0; k < spec.in_features; ++k) g[k] = k / group_size;
      w.g_idx.dtype = DType::I32;
      w.g_idx.data = g;
      return;
    }
    const auto* g = static_cast<const int32_t*>(w.g_idx.data);
    for (int k = 0; k < spec.in_features; ++k) {
      if (g[k] < 0 || g[k] >= groups)
        throw Error(store_.file_of(w.g_idx.name).string() + ": tensor '" + w.g_idx.name + "' entry " +
                    std::to_string(k) + " is " + std::to_string(g[k]) + ", outside the " + std::to_string(groups) +
                    " groups");
    }
  }

  // Tensor data aligned to its element size: safetensors only promises byte
  // offsets, so a misaligned tensor is copied out once.
  const void* aligned(const SafetensorsTensor* t) {
    const size_t align = dtype_size(t->dtype);
    if (reinterpret_cast<uintptr_t>(t->data) % align == 0) return t->data;
    auto& buffer = owned_.emplace_back(new std::byte[t->nbytes() == 0 ? 1 : t->nbytes()]);
    std::memcpy(buffer.get(), t->data, t->nbytes());
    return buffer.get();
  }

  std::filesystem::path dir_;
  ModelConfig config_;
  GenerationConfig generation_;
  TensorStore store_;
  ModelWeights weights_;
  std::vector<std::unique_ptr<std::byte[]>> owned_;
};

}  // namespace

std::unique_ptr<LoadedModel> load_model(const std::filesystem::path& model_dir, const LoadOptions& options) {
  return std::make_unique<LoadedModelImpl>(model_dir, options);
}

}  // namespace nibble

#include "json_fields.h"
#include "model_writer.h"
#include "nibble/core/error.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/gptq.h"
#include "nibble/model/loader.h"
#include "nibble/model/weight_names.h"

namespace nibble {

void write_dequantized_copy(const std::filesystem::path& src_dir, const std::filesystem::path& dst_dir, int shards) {
  std::error_code ec;
  if (std::filesystem::equivalent(src_dir, dst_dir, ec))
    throw Error("write_dequantized_copy: source and destination are the same folder " + src_dir.string());
  auto model = load_model(src_dir);
  const ModelConfig& c = model->config();
  std::filesystem::create_directories(dst_dir, ec);
  if (ec) throw Error("cannot create " + dst_dir.string() + ": " + ec.message());

  detail::TensorList out;
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
  detail::write_text(dst_dir / "config.json", config_json.dump(2) + "\n");
  std::filesystem::directory_iterator entries(config_path, ec);
  if (ec) throw Error("cannot list " + config_path.string() + ": " + ec.message());
  for (const auto& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec) || entry.path().extension() == ".safetensors" || name == "config.json" ||
        name == "quantize_config.json" || name == "model.safetensors.index.json")
      continue;
    std::filesystem::copy_file(entry.path(), dst_dir / name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) throw Error("cannot copy " + entry.path().string() + " to " + dst_dir.string() + ": " + ec.message());
  }
}

}  // namespace nibble

#include "model_writer.h"

#include <fstream>
#include <map>

#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble::detail {

void TensorList::add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> bytes) {
  storage_.push_back(std::move(bytes));
  tensors_.push_back({name, dtype, std::move(shape), std::span<const std::byte>(storage_.back())});
}

void TensorList::add_floats(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const std::vector<float>& v) {
  std::vector<std::byte> bytes(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  add(name, dtype, std::move(shape), std::move(bytes));
}

void TensorList::write(const std::filesystem::path& dir, int shards) const {
  std::error_code ec;
  std::vector<std::filesystem::path> stale;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".safetensors" || name == "model.safetensors.index.json")
      stale.push_back(entry.path());
  }
  for (const auto& p : stale) std::filesystem::remove(p, ec);
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  if (shards <= 1) {
    write_safetensors(dir / "model.safetensors", tensors_, metadata);
  } else {
    write_sharded_safetensors(dir, tensors_, shards, metadata);
  }
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error("cannot write " + path.string());
}

nlohmann::ordered_json ids_json(const std::vector<int>& ids) {
  if (ids.size() == 1) return ids[0];
  return ids;
}

}  // namespace nibble::detail

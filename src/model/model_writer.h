#pragma once
// Internal helpers of the model-folder writers (demo model, dequantized copy):
// a list of owned tensors written as one or several safetensors files.
#include <cstring>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "nibble/core/dtype.h"
#include "nibble/model/safetensors.h"

namespace nibble::detail {

class TensorList {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> bytes);
  // Stores floats as dtype (F16, BF16 or F32).
  void add_floats(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<float>& v);
  template <typename T>
  void add_vector(const std::string& name, DType dtype, std::vector<int64_t> shape, const std::vector<T>& v) {
    std::vector<std::byte> bytes(v.size() * sizeof(T));
    std::memcpy(bytes.data(), v.data(), bytes.size());
    add(name, dtype, std::move(shape), std::move(bytes));
  }
  // Writes model.safetensors (shards <= 1) or shards + index into dir,
  // replacing any weights already there: a stale single file would shadow a
  // new index, and stale shards would linger.
  void write(const std::filesystem::path& dir, int shards) const;

 private:
  std::deque<std::vector<std::byte>> storage_;  // deque: no reallocation moves the bytes
  std::vector<TensorToWrite> tensors_;
};

// Writes text to path; throws nibble::Error on failure.
void write_text(const std::filesystem::path& path, const std::string& text);

// An id list as Hugging Face configs write it: a bare integer when there is one.
nlohmann::ordered_json ids_json(const std::vector<int>& ids);

}  // namespace nibble::detail

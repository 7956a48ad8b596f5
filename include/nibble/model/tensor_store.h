#pragma once
// All tensors of a model folder: model.safetensors, a single other *.safetensors
// file, or the shards listed by model.safetensors.index.json.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nibble/model/safetensors.h"

namespace nibble {

class TensorStore {
 public:
  // Opens and validates every safetensors file of the folder. Throws
  // nibble::Error naming the file at fault.
  explicit TensorStore(const std::filesystem::path& model_dir, bool use_mmap = true);

  // The tensor called `name`, or null. Throws when the index names a shard
  // that does not hold it.
  const SafetensorsTensor* find(const std::string& name) const;
  // The file that holds (or, per the index, should hold) `name`.
  std::filesystem::path file_of(const std::string& name) const;
  // "a.safetensors, b.safetensors" for error messages.
  std::string files_searched() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // Every tensor name, in file order.
  std::vector<std::string> names() const;

 private:
  std::filesystem::path dir_;
  std::filesystem::path index_path_;  // empty without an index
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> files_ index
};

}  // namespace nibble

#include "nibble/model/tensor_store.h"

#include <algorithm>

#include "json_fields.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

std::vector<std::filesystem::path> safetensors_files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec)) found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

bool plain_file_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name.find('\\') == std::string::npos &&
         name != "." && name != "..";
}

}  // namespace

TensorStore::TensorStore(const std::filesystem::path& model_dir, bool use_mmap) : dir_(model_dir) {
  std::error_code ec;
  const auto single = dir_ / "model.safetensors";
  const auto index = dir_ / "model.safetensors.index.json";
  if (std::filesystem::is_regular_file(single, ec)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single, use_mmap));
  } else if (std::filesystem::is_regular_file(index, ec)) {
    index_path_ = index;
    const std::string source = index.string();
    auto root = detail::parse_json_object(detail::read_text_file(source), source);
    auto map_it = root.find("weight_map");
    if (map_it == root.end() || !map_it->is_object()) throw Error(source + ": key 'weight_map' is missing or not an object");
    std::map<std::string, size_t> file_index;
    for (auto it = map_it->begin(); it != map_it->end(); ++it) {
      if (!it->is_string() || !plain_file_name(it->get<std::string>()))
        throw Error(source + ": weight_map entry '" + it.key() + "' must name a file in the model folder, got " +
                    it->dump());
      const std::string file = it->get<std::string>();
      auto [pos, inserted] = file_index.emplace(file, files_.size());
      if (inserted) {
        if (!std::filesystem::is_regular_file(dir_ / file, ec))
          throw Error(source + ": shard '" + file + "' (holding tensor '" + it.key() + "') does not exist");
        files_.push_back(std::make_unique<SafetensorsFile>(dir_ / file, use_mmap));
      }
      where_[it.key()] = pos->second;
    }
    return;
  } else {
    auto found = safetensors_files_in(dir_);
    if (found.empty())
      throw Error("model folder " + dir_.string() +
                  " has no model.safetensors, model.safetensors.index.json or other *.safetensors file");
    if (found.size() > 1)
      throw Error("model folder " + dir_.string() + " has several *.safetensors files (" + found[0].filename().string() +
                  ", " + found[1].filename().string() + ", ...) but no model.safetensors.index.json");
    files_.push_back(std::make_unique<SafetensorsFile>(found[0], use_mmap));
  }
  for (const auto& t : files_[0]->tensors()) where_[t.name] = 0;
}

const SafetensorsTensor* TensorStore::find(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return nullptr;
  const auto& file = *files_[it->second];
  const SafetensorsTensor* t = file.find(name);
  if (t == nullptr)
    throw Error(index_path_.string() + ": tensor '" + name + "' is mapped to " + file.path().filename().string() +
                ", which does not contain it");
  return t;
}

std::filesystem::path TensorStore::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return files_.size() == 1 ? files_[0]->path() : index_path_;
  return files_[it->second]->path();
}

std::string TensorStore::files_searched() const {
  std::string s;
  for (const auto& f : files_) s += (s.empty() ? "" : ", ") + f->path().string();
  if (!index_path_.empty()) s += " (via " + index_path_.string() + ")";
  return s;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (const auto& f : files_)
    for (const auto& t : f->tensors())
      if (auto it = where_.find(t.name); it != where_.end() && files_[it->second].get() == f.get())
        out.push_back(t.name);
  return out;
}

}  // namespace nibble

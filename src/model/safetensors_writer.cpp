#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/model/safetensors.h"

namespace nibble {
namespace {

using json = nlohmann::ordered_json;

uint64_t expected_bytes(const TensorToWrite& t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) throw Error("write_safetensors: tensor '" + t.name + "' has a negative dimension");
    n *= static_cast<uint64_t>(d);
  }
  return n * dtype_size(t.dtype);
}

std::string shard_name(int i, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i, n);
  return buf;
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) {
    json meta = json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t bytes = expected_bytes(t);
    if (bytes != t.data.size())
      throw Error("write_safetensors: tensor '" + t.name + "' has " + std::to_string(t.data.size()) +
                  " bytes of data but its shape needs " + std::to_string(bytes));
    if (header.contains(t.name)) throw Error("write_safetensors: duplicate tensor '" + t.name + "'");
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot create " + path.string());
  uint64_t len = text.size();
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out.write(len_bytes, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors)
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
  out.close();
  if (!out) throw Error("cannot write " + path.string());
}

void write_sharded_safetensors(const std::filesystem::path& dir, const std::vector<TensorToWrite>& tensors,
                               int shards, const std::map<std::string, std::string>& metadata) {
  if (shards < 1) throw Error("write_sharded_safetensors: shards must be >= 1, got " + std::to_string(shards));
  uint64_t total = 0;
  for (const auto& t : tensors) total += t.data.size();
  // Greedy split into `shards` runs of roughly equal bytes, keeping order.
  const uint64_t target = (total + static_cast<uint64_t>(shards) - 1) / static_cast<uint64_t>(shards);
  std::vector<std::vector<TensorToWrite>> parts(static_cast<size_t>(shards));
  size_t part = 0;
  uint64_t in_part = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const size_t remaining_tensors = tensors.size() - i;
    const size_t remaining_parts = static_cast<size_t>(shards) - part;
    if (!parts[part].empty() && part + 1 < parts.size() &&
        (in_part + tensors[i].data.size() > target || remaining_tensors < remaining_parts)) {
      ++part;
      in_part = 0;
    }
    parts[part].push_back(tensors[i]);
    in_part += tensors[i].data.size();
  }
  json weight_map = json::object();
  for (size_t p = 0; p < parts.size(); ++p) {
    const std::string name = shard_name(static_cast<int>(p) + 1, shards);
    write_safetensors(dir / name, parts[p], metadata);
    for (const auto& t : parts[p]) weight_map[t.name] = name;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream out(dir / "model.safetensors.index.json", std::ios::trunc);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) throw Error("cannot write " + (dir / "model.safetensors.index.json").string());
}

}  // namespace nibble

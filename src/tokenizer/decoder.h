#pragma once
// tokenizer.json "decoder": ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace,
// Sequence. Each works on the list of token strings as HF's decode_chain does.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble::tokenizer_detail {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& where);

}  // namespace nibble::tokenizer_detail

#pragma once
// tokenizer.json "post_processor": TemplateProcessing, ByteLevel, RobertaProcessing,
// BertProcessing and Sequence, for single sequences (no pairs).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble::tokenizer_detail {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens around one encoded sequence.
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec, const std::string& where);

// The TemplateProcessing transformers installs for add_bos_token / add_eos_token.
std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<int32_t> bos, std::optional<int32_t> eos);

}  // namespace nibble::tokenizer_detail

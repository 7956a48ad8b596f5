#include "post_processor.h"

#include <nlohmann/json.hpp>

#include "json_fields.h"

namespace nibble::tokenizer_detail {

namespace {

// The single-sequence template: ids before and after the sequence.
class AffixProcessor : public PostProcessor {
 public:
  AffixProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void process(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_, after_;
};

class NoOpProcessor : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : parts_) p->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

// TemplateProcessing: "single" is a list of {"SpecialToken": {"id": name}} and {"Sequence": {"id": "A"}}
// (or, in older files, a string like "<s> $A </s>").
std::unique_ptr<PostProcessor> make_template(const nlohmann::json& spec, const std::string& where) {
  const auto& special = spec.contains("special_tokens") ? spec["special_tokens"] : nlohmann::json::object();
  auto special_ids = [&](const std::string& name, const std::string& at) {
    if (!special.is_object() || !special.contains(name)) {
      throw Error(at + ": special token \"" + name + "\" is missing from " + where + ".special_tokens");
    }
    const auto& entry = special[name];
    const auto& ids = require_array(entry, "ids", where + ".special_tokens[\"" + name + "\"]");
    std::vector<int32_t> out;
    for (const auto& id : ids) {
      if (!id.is_number_integer()) throw Error(where + ".special_tokens[\"" + name + "\"].ids: expected integers");
      out.push_back(id.get<int32_t>());
    }
    return out;
  };
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  auto add_item = [&](const std::string& special_name, bool is_sequence, const std::string& at) {
    if (is_sequence) {
      if (seen_sequence) throw Error(at + ": the single template uses the sequence twice");
      seen_sequence = true;
      return;
    }
    const auto ids = special_ids(special_name, at);
    auto& target = seen_sequence ? after : before;
    target.insert(target.end(), ids.begin(), ids.end());
  };
  const auto& single = require_field(spec, "single", where);
  if (single.is_string()) {
    const std::string s = single.get<std::string>();
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t end = std::min(s.find(' ', pos), s.size());
      std::string item = s.substr(pos, end - pos);
      pos = end + 1;
      if (item.empty()) continue;
      if (const auto colon = item.rfind(':'); colon != std::string::npos && colon > 0) item = item.substr(0, colon);
      add_item(item, item[0] == '$', where + ".single");
    }
  } else if (single.is_array()) {
    for (size_t i = 0; i < single.size(); ++i) {
      const auto& piece = single[i];
      const std::string at = where + ".single[" + std::to_string(i) + "]";
      if (piece.is_object() && piece.contains("SpecialToken")) {
        add_item(require_string(piece["SpecialToken"], "id", at + ".SpecialToken"), false, at);
      } else if (piece.is_object() && piece.contains("Sequence")) {
        add_item("", true, at);
      } else {
        throw Error(at + ": expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, got " + piece.dump());
      }
    }
  } else {
    throw Error(where + ".single: expected a list or a string");
  }
  return std::make_unique<AffixProcessor>(std::move(before), std::move(after));
}

// RobertaProcessing / BertProcessing: "cls": [token, id], "sep": [token, id].
int32_t pair_id(const nlohmann::json& spec, const char* key, const std::string& where) {
  const auto& v = require_field(spec, key, where);
  if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer()) {
    throw Error(where + "." + key + ": expected [token, id], got " + v.dump());
  }
  return v[1].get<int32_t>();
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where);
  if (type == "TemplateProcessing") return make_template(spec, where);
  if (type == "ByteLevel") return std::make_unique<NoOpProcessor>();
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    return std::make_unique<AffixProcessor>(std::vector<int32_t>{pair_id(spec, "cls", where)},
                                            std::vector<int32_t>{pair_id(spec, "sep", where)});
  }
  if (type == "Sequence") {
    const auto& list = require_array(spec, "processors", where);
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceProcessor>(std::move(parts));
  }
  throw Error(where + ": unsupported post_processor type \"" + type + "\"");
}

std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<int32_t> bos, std::optional<int32_t> eos) {
  std::vector<int32_t> before, after;
  if (bos) before.push_back(*bos);
  if (eos) after.push_back(*eos);
  return std::make_unique<AffixProcessor>(std::move(before), std::move(after));
}

}  // namespace nibble::tokenizer_detail

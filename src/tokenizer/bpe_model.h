#pragma once
// The tokenizer.json "model" of type BPE: vocab, merges (as "a b" strings or
// ["a", "b"] pairs), unk token, fuse_unk, byte_fallback, ignore_merges,
// continuing_subword_prefix / end_of_word_suffix. The merge loop runs on a linked
// list of symbols with a priority queue (n log n in the word length), and results
// for short words are cached.
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble::tokenizer_detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// model.vocab and model.merges taken out of the JSON while it is parsed (building the
// JSON tree of a 262k-entry vocab costs more than the rest of loading together).
struct BpeTables {
  bool has_vocab = false;
  bool has_merges = false;
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};

// Parses tokenizer.json text, moving model.vocab / model.merges into `tables` (they are
// left empty in the returned JSON). Throws nibble::Error naming `where` on bad JSON.
nlohmann::json parse_tokenizer_json(std::string_view text, BpeTables& tables, const std::string& where);

class BpeModel {
 public:
  // Takes vocab and merges from `tables` when they were captured, else from `spec`.
  BpeModel(const nlohmann::json& spec, BpeTables tables, const std::string& where);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // null when the id is not in the vocab
  bool is_byte_fallback(int32_t id) const {
    return byte_fallback_ && id >= 0 && static_cast<size_t>(id) < is_byte_token_.size() && is_byte_token_[id];
  }
  size_t vocab_len() const { return vocab_.size(); }
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct MergeResult {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void tokenize_uncached(std::string_view word, std::vector<int32_t>& out) const;
  void add_vocab(std::string token, int64_t id, const std::string& where);
  void add_merge(size_t rank, const std::string& a, const std::string& b, const std::string& where);

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::vector<bool> is_byte_token_;  // ids of the <0xNN> tokens
  std::unordered_map<uint64_t, MergeResult> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::array<int32_t, 256> byte_fallback_ids_{};

  static constexpr size_t kCacheCapacity = 20000;
  static constexpr size_t kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace nibble::tokenizer_detail

#include "bpe_model.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "json_fields.h"
#include "utf8.h"

namespace nibble::tokenizer_detail {

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  uint32_t len;  // 0 once merged into its left neighbour
};

struct QueuedMerge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue pops the largest: lowest rank first, then leftmost.
  bool operator<(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

nlohmann::json parse_tokenizer_json(std::string_view text, BpeTables& tables, const std::string& where) {
  // Keys seen at each depth tell where the parser is: depth 1 "model", depth 2 "vocab"/"merges".
  std::string keys[3];
  bool in_vocab = false, in_merges = false;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    if (event == E::key && depth <= 2) keys[depth] = parsed.get<std::string>();
    const bool model_field = depth == 2 && keys[1] == "model";
    if (model_field && event == E::object_start && keys[2] == "vocab") in_vocab = tables.has_vocab = true;
    if (model_field && event == E::array_start && keys[2] == "merges") in_merges = tables.has_merges = true;
    if (model_field && (event == E::object_end || event == E::array_end)) in_vocab = in_merges = false;
    if (in_vocab && depth == 3) {
      if (event == E::key) {
        tables.vocab.emplace_back(parsed.get<std::string>(), -1);
        return false;
      }
      if (event == E::value) {
        if (!parsed.is_number_integer()) {
          throw Error(where + ".model.vocab[\"" + tables.vocab.back().first +
                      "\"]: expected a non-negative integer id, got " + parsed.dump());
        }
        tables.vocab.back().second = parsed.get<int64_t>();
        return false;
      }
    }
    if (in_merges && depth == 3 && (event == E::value || event == E::array_end)) {
      const std::string at = where + ".model.merges[" + std::to_string(tables.merges.size()) + "]";
      if (parsed.is_string()) {
        const auto& m = parsed.get_ref<const std::string&>();
        const size_t space = m.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
            m.find(' ', space + 1) != std::string::npos) {
          throw Error(at + ": expected \"left right\", got \"" + m + "\"");
        }
        tables.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
      } else if (parsed.is_array() && parsed.size() == 2 && parsed[0].is_string() && parsed[1].is_string()) {
        tables.merges.emplace_back(parsed[0].get<std::string>(), parsed[1].get<std::string>());
      } else {
        throw Error(at + ": expected a \"left right\" string or a [left, right] pair, got " + parsed.dump());
      }
      return false;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, callback);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
}

BpeModel::BpeModel(const nlohmann::json& spec, BpeTables tables, const std::string& where) {
  if (!tables.has_vocab) {
    const auto& vocab = require_field(spec, "vocab", where);
    if (!vocab.is_object()) throw Error(where + ".vocab: expected an object of token -> id");
    for (const auto& [token, id] : vocab.items()) {
      if (!id.is_number_integer()) {
        throw Error(where + ".vocab[\"" + token + "\"]: expected a non-negative integer id, got " + id.dump());
      }
      tables.vocab.emplace_back(token, id.get<int64_t>());
    }
  }
  vocab_.reserve(tables.vocab.size());
  int32_t max_id = -1;
  for (auto& [token, id] : tables.vocab) {
    if (id < 0 || id > 0x7FFFFFFF) {
      throw Error(where + ".vocab[\"" + token + "\"]: expected a non-negative integer id, got " + std::to_string(id));
    }
    max_id = std::max(max_id, static_cast<int32_t>(id));
    vocab_[std::move(token)] = static_cast<int32_t>(id);  // a repeated key keeps its last id, as JSON parsers do
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    has_id_[id] = true;
  }

  const std::string unk = optional_string(spec, "unk_token", where, "");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw Error(where + ".unk_token: \"" + unk + "\" is not in the vocab");
    unk_id_ = it->second;
  }
  fuse_unk_ = optional_bool(spec, "fuse_unk", where, false);
  byte_fallback_ = optional_bool(spec, "byte_fallback", where, false);
  ignore_merges_ = optional_bool(spec, "ignore_merges", where, false);
  continuing_subword_prefix_ = optional_string(spec, "continuing_subword_prefix", where, "");
  end_of_word_suffix_ = optional_string(spec, "end_of_word_suffix", where, "");
  if (spec.contains("dropout") && spec["dropout"].is_number() && spec["dropout"].get<double>() > 0.0) {
    throw Error(where + ".dropout: BPE dropout is not supported for inference (got " + spec["dropout"].dump() + ")");
  }
  byte_fallback_ids_.fill(-1);
  if (byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (auto it = vocab_.find(std::string_view(name)); it != vocab_.end()) {
        byte_fallback_ids_[b] = it->second;
        if (is_byte_token_.empty()) is_byte_token_.assign(id_to_token_.size(), false);
        is_byte_token_[it->second] = true;
      }
    }
  }

  if (!tables.has_merges) {
    const auto& merges = require_array(spec, "merges", where);
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& m = merges[rank];
      const std::string at = where + ".merges[" + std::to_string(rank) + "]";
      if (m.is_string()) {
        const auto& str = m.get_ref<const std::string&>();
        const size_t space = str.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == str.size() ||
            str.find(' ', space + 1) != std::string::npos) {
          throw Error(at + ": expected \"left right\", got \"" + str + "\"");
        }
        tables.merges.emplace_back(str.substr(0, space), str.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        tables.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        throw Error(at + ": expected a \"left right\" string or a [left, right] pair, got " + m.dump());
      }
    }
  }
  merges_.reserve(tables.merges.size());
  for (size_t rank = 0; rank < tables.merges.size(); ++rank) {
    add_merge(rank, tables.merges[rank].first, tables.merges[rank].second, where);
  }
}

void BpeModel::add_merge(size_t rank, const std::string& a, const std::string& b, const std::string& where) {
  const auto ia = vocab_.find(a), ib = vocab_.find(b);
  if (ia == vocab_.end() || ib == vocab_.end()) {
    throw Error(where + ".merges[" + std::to_string(rank) + "]: token \"" + (ia == vocab_.end() ? a : b) +
                "\" is not in the vocab");
  }
  // With a continuing-subword prefix, the right part's prefix disappears in the merge.
  const size_t prefix_len = continuing_subword_prefix_.size();
  std::string merged;
  merged.reserve(a.size() + b.size());
  merged.append(a);
  if (prefix_len && b.compare(0, prefix_len, continuing_subword_prefix_) == 0) {
    merged.append(b, prefix_len);
  } else {
    merged.append(b);
  }
  const auto im = vocab_.find(merged);
  if (im == vocab_.end()) {
    throw Error(where + ".merges[" + std::to_string(rank) + "]: merged token \"" + merged + "\" is not in the vocab");
  }
  // Like HF (a HashMap collect), a repeated pair keeps its last rank.
  merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(rank), im->second};
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  tokenize_uncached(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

void BpeModel::tokenize_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id, uint32_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, len});
  };
  // A run of unknown characters waiting to become one unk symbol (or several without fuse_unk).
  int32_t pending_unk_len = 0;
  auto flush_unk = [&] {
    if (pending_unk_len > 0) add(*unk_id_, static_cast<uint32_t>(pending_unk_len));
    pending_unk_len = 0;
  };
  std::string piece;
  size_t i = 0;
  while (i < word.size()) {
    const size_t begin = i;
    next_code_point(word, i);
    const std::string_view ch = word.substr(begin, i - begin);
    const auto len = static_cast<uint32_t>(ch.size());
    piece.clear();
    if (begin > 0) piece.append(continuing_subword_prefix_);
    piece.append(ch);
    if (i == word.size()) piece.append(end_of_word_suffix_);
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      flush_unk();
      add(it->second, len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch) all = all && byte_fallback_ids_[b] >= 0;
      if (all) {
        flush_unk();
        for (unsigned char b : ch) add(byte_fallback_ids_[b], 1);
        continue;
      }
    }
    if (!unk_id_) continue;  // HF drops characters it cannot represent when there is no unk token
    if (!fuse_unk_) flush_unk();
    pending_unk_len += static_cast<int32_t>(len);
  }
  if (unk_id_) flush_unk();
  if (symbols.empty()) return;
  symbols.back().next = -1;

  std::priority_queue<QueuedMerge> queue;
  auto lookup = [this](int32_t a, int32_t b) -> const MergeResult* {
    auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const auto* m = lookup(symbols[k].id, symbols[k + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(k), m->new_id});
    }
  }
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    Symbol right = symbols[right_pos];
    const auto* current = lookup(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    symbols[right_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const auto* m = lookup(symbols[left.prev].id, left.id)) queue.push({m->rank, left.prev, m->new_id});
    }
    if (left.next >= 0) {
      if (const auto* m = lookup(left.id, symbols[left.next].id)) queue.push({m->rank, top.pos, m->new_id});
    }
  }
  for (const auto& s : symbols) {
    if (s.len != 0) out.push_back(s.id);
  }
}

}  // namespace nibble::tokenizer_detail

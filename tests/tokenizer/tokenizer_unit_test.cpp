// Unit tests of the tokenizer's parts on small hand-written tokenizer.json files.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "../../src/tokenizer/pre_tokenizer.h"
#include "../../src/tokenizer/regex.h"
#include "../../src/tokenizer/utf8.h"
#include "nibble/core/error.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble {
namespace {

using nlohmann::json;
namespace td = tokenizer_detail;

// A byte-free BPE over the letters a-d with a few merges.
json letters_tokenizer() {
  return json::parse(R"({
    "added_tokens": [{"id": 9, "content": "<unk>", "special": true, "normalized": false},
                     {"id": 10, "content": "<s>", "special": true, "normalized": false},
                     {"id": 11, "content": "</s>", "special": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [10], "tokens": ["<s>"]},
                         "</s>": {"id": "</s>", "ids": [11], "tokens": ["</s>"]}}},
    "decoder": null,
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": false,
      "vocab": {"a": 0, "b": 1, "c": 2, "d": 3, "ab": 4, "bc": 5, "abc": 6, "cd": 7, "abcd": 8, "<unk>": 9},
      "merges": ["b c", "a b", "ab c", "c d", "abc d"]}
  })");
}

std::unique_ptr<Tokenizer> load(const json& spec, const std::string& config = "") {
  return Tokenizer::from_json_text(spec.dump(), config, "test.json");
}

TEST(Utf8, LossyConversionReplacesMaximalSubparts) {
  EXPECT_EQ(td::to_valid_utf8("abc"), "abc");
  EXPECT_EQ(td::to_valid_utf8("\xE4\xB8" "A"), "\xEF\xBF\xBD" "A");              // truncated sequence: one U+FFFD
  EXPECT_EQ(td::to_valid_utf8("\xF0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");           // bad second byte
  EXPECT_EQ(td::to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");           // overlong lead
  EXPECT_EQ(td::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(td::to_valid_utf8("x\xF0\x9F\x98"), "x\xEF\xBF\xBD");
  EXPECT_TRUE(td::is_valid_utf8("\xF0\x9F\x98\x80"));
}

TEST(Regex, WhitespaceAndWordFollowOniguruma) {
  const td::Regex s("\\s+", "test");
  const auto m = s.find_all("a\xC2\x85" "b");  // U+0085 is White_Space
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], td::Span(1, 3));
  const td::Regex cls("[^\\s\\p{L}]+", "test");
  EXPECT_EQ(cls.find_all("ab 12 cd").size(), 1u);
  const td::Regex ci("(?i:'s|'t)", "test");
  EXPECT_EQ(ci.find_all("it'S don'T").size(), 2u);
  const td::Regex lookahead("\\s+(?!\\S)|\\s+", "test");
  EXPECT_EQ(lookahead.find_all("a   b"), (std::vector<td::Span>{{1, 3}, {3, 4}}));
  const td::Regex word("\\w+", "test");
  EXPECT_EQ(word.find_all("\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D").size(), 1u);  // Devanagari with a virama
  EXPECT_THROW(td::Regex("(unclosed", "test.json.pre_tokenizer"), Error);
}

TEST(Regex, DeepBacktrackingOnLongInputs) {
  // A capturing group repeated 200k times needs more than PCRE2's default JIT stack.
  const td::Regex group("(a|b)*c", "test");
  const std::string text = std::string(200000, 'a') + "c";
  EXPECT_EQ(group.find_all(text), (std::vector<td::Span>{{0, text.size()}}));
  const td::Regex spaces("\\s+(?!\\S)|\\s+", "test");
  const std::string run = "x" + std::string(300000, ' ') + "y";
  EXPECT_EQ(spaces.find_all(run), (std::vector<td::Span>{{1, 300000}, {300000, 300001}}));
}

TEST(SplitBehavior, MatchesHuggingFaceDocumentation) {
  // "the-final--countdown" split on "-", as in the tokenizers documentation.
  const std::string text = "the-final--countdown";
  const auto matches = td::find_all_literal(text, "-");
  auto pieces = [&](td::SplitBehavior b, bool invert = false) {
    std::vector<std::string> out;
    for (const auto& [s, e] : td::split_by_matches(text.size(), matches, b, invert)) out.push_back(text.substr(s, e - s));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces(td::SplitBehavior::Removed), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pieces(td::SplitBehavior::Isolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pieces(td::SplitBehavior::MergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pieces(td::SplitBehavior::MergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pieces(td::SplitBehavior::Contiguous), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(pieces(td::SplitBehavior::Removed, true), (V{"-", "-", "-"}));
}

TEST(Bpe, MergesByRankAndAddsTemplateTokens) {
  const auto tok = load(letters_tokenizer());
  // "abcd": b+c (rank 0) first, then a+bc has no merge, so: a, bc, d -> no "bc d" merge.
  EXPECT_EQ(tok->encode("abcd", false), (std::vector<int32_t>{0, 5, 3}));
  EXPECT_EQ(tok->encode("ab", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(tok->encode("cd ab", true), (std::vector<int32_t>{10, 7, 4, 11}));
  EXPECT_EQ(tok->encode("", true), (std::vector<int32_t>{10, 11}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{10, 7, 4, 11}, false), "<s> cd ab </s>");  // no decoder: joined by spaces
  EXPECT_EQ(tok->decode(std::vector<int32_t>{10, 7, 4, 11}, true), "cd ab");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{7, 999999, -5}, true), "cd");  // unknown ids are left out, as HF does
  EXPECT_EQ(tok->vocab_size(), 12);
  EXPECT_EQ(tok->token_to_id("abcd"), 8);
  EXPECT_EQ(tok->id_to_token(5), "bc");
  EXPECT_FALSE(tok->id_to_token(12).has_value());
  EXPECT_TRUE(tok->is_special(10));
  EXPECT_FALSE(tok->is_special(4));
}

TEST(Bpe, UnknownCharactersAndFuseUnk) {
  auto spec = letters_tokenizer();
  const auto tok = load(spec);
  EXPECT_EQ(tok->encode("axxb", false), (std::vector<int32_t>{0, 9, 9, 1}));
  spec["model"]["fuse_unk"] = true;
  EXPECT_EQ(load(spec)->encode("axxb", false), (std::vector<int32_t>{0, 9, 1}));
  spec["model"]["unk_token"] = nullptr;
  EXPECT_EQ(load(spec)->encode("axxb", false), (std::vector<int32_t>{4}));  // dropped characters, as HF does
}

TEST(Bpe, MergePairsEqualMergeStrings) {
  auto spec = letters_tokenizer();
  json pairs = json::array();
  for (const auto& m : spec["model"]["merges"]) {
    const std::string s = m;
    pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  const auto a = load(spec);
  spec["model"]["merges"] = pairs;
  const auto b = load(spec);
  for (const char* text : {"abcd", "dcba", "abcabcd", "bcd"}) EXPECT_EQ(a->encode(text, false), b->encode(text, false));
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocab) {
  auto spec = letters_tokenizer();
  EXPECT_EQ(load(spec)->encode("abcd", false), (std::vector<int32_t>{0, 5, 3}));
  spec["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(spec)->encode("abcd", false), (std::vector<int32_t>{8}));
}

TEST(Bpe, ByteFallbackUsesByteTokens) {
  auto spec = letters_tokenizer();
  spec["model"]["byte_fallback"] = true;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    spec["model"]["vocab"][name] = 100 + b;
  }
  spec["decoder"] = json::parse(R"({"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]})");
  const auto tok = load(spec);
  EXPECT_EQ(tok->encode("a\xC3\xA9", false), (std::vector<int32_t>{0, 100 + 0xC3, 100 + 0xA9}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9", false), false), "a\xC3\xA9");
  EXPECT_TRUE(tok->is_byte_fallback(100 + 0xC3));
  EXPECT_FALSE(tok->is_byte_fallback(0));
  // An invalid byte run decodes to one U+FFFD per byte.
  EXPECT_EQ(tok->decode(std::vector<int32_t>{100 + 0xC3, 0}, false), "\xEF\xBF\xBD" "a");
}

TEST(Bpe, ContinuingSubwordPrefix) {
  const auto spec = json::parse(R"({
    "model": {"type": "BPE", "continuing_subword_prefix": "##",
      "vocab": {"a": 0, "##b": 1, "##c": 2, "ab": 3, "abc": 4, "b": 5},
      "merges": ["a ##b", "ab ##c"]}})");
  const auto tok = load(spec);
  EXPECT_EQ(tok->encode("abc", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(tok->encode("ab", false), (std::vector<int32_t>{3}));
}

TEST(Bpe, LongWordsAreNotQuadratic) {
  // Merges build runs of 'a' of every power of two: a worst case for a naive merge loop.
  json vocab = {{"a", 0}};
  json merges = json::array();
  std::string token = "a";
  for (int k = 1; k <= 14; ++k) {
    merges.push_back(token + " " + token);
    token += token;
    vocab[token] = k;
  }
  const auto tok = load(json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}});
  const std::string word(200000, 'a');
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok->encode(word, false);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t total = 0;
  for (int32_t id : ids) total += size_t{1} << id;
  EXPECT_EQ(total, word.size());
  EXPECT_LT(s, 2.0) << "encoding a 200k-character word took " << s << " s";
}

TEST(AddedTokens, StripAndSingleWordFlags) {
  auto spec = letters_tokenizer();
  spec["pre_tokenizer"] = nullptr;
  spec["added_tokens"].push_back({{"id", 20}, {"content", "<m>"}, {"lstrip", true}, {"rstrip", true}, {"special", true}, {"normalized", false}});
  spec["added_tokens"].push_back({{"id", 21}, {"content", "cab"}, {"single_word", true}, {"special", false}, {"normalized", false}});
  const auto tok = load(spec);
  // As in HF, tokens new to the vocab get the next free ids whatever the file says.
  EXPECT_EQ(tok->token_to_id("<m>"), 12);
  EXPECT_EQ(tok->token_to_id("cab"), 13);
  // lstrip/rstrip swallow the spaces around <m>.
  EXPECT_EQ(tok->encode("ab  <m>  cd", false), (std::vector<int32_t>{4, 12, 7}));
  // "cab" only matches as a whole word.
  EXPECT_EQ(tok->encode("cab", false), (std::vector<int32_t>{13}));
  EXPECT_EQ(tok->encode("dcab", false), (std::vector<int32_t>{3, 2, 4}));
}

TEST(Config, BosEosTemplateChatTemplateAndEosIds) {
  auto spec = letters_tokenizer();
  spec["post_processor"] = nullptr;
  const std::string config = R"({
    "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null,
    "add_bos_token": true, "add_eos_token": true, "tokenizer_class": "LlamaTokenizerFast",
    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})";
  const auto tok = load(spec, config);
  EXPECT_EQ(tok->encode("ab", true), (std::vector<int32_t>{10, 4, 11}));
  EXPECT_EQ(tok->encode("ab", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(tok->bos_token(), "<s>");
  EXPECT_EQ(tok->eos_token(), "</s>");
  EXPECT_EQ(tok->chat_template(), "D");
  EXPECT_EQ(tok->eos_token_ids(), std::vector<int32_t>{11});
  EXPECT_EQ(tok->special_tokens_map()["unk_token"], "<unk>");
  EXPECT_FALSE(tok->special_tokens_map().contains("pad_token"));
  // Other tokenizer classes keep the tokenizer.json post-processor.
  const auto plain = load(spec, R"({"add_bos_token": true, "bos_token": "<s>", "tokenizer_class": "Qwen2Tokenizer"})");
  EXPECT_EQ(plain->encode("ab", true), (std::vector<int32_t>{4}));
}

TEST(Config, FromModelDirReadsConfigGenerationConfigAndTemplateFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("nibble_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << letters_tokenizer().dump();
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "</s>"})";
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [11, 9]})";
  std::ofstream(dir / "chat_template.jinja") << "{{ messages }}";
  const auto tok = Tokenizer::from_model_dir(dir);
  EXPECT_EQ(tok->eos_token_ids(), (std::vector<int32_t>{11, 9}));
  EXPECT_EQ(tok->chat_template(), "{{ messages }}");
  std::filesystem::remove_all(dir);
}

TEST(IncrementalDecoder, HoldsIncompleteCharacters) {
  // Byte-level tokens: "é" is two bytes, here as two separate tokens.
  const auto spec = json::parse(R"({
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "Ã": 1, "©": 2, "Ġ": 3}, "merges": []}})");
  const auto tok = load(spec);
  EXPECT_EQ(tok->encode("a\xC3\xA9 ", false), (std::vector<int32_t>{0, 1, 2, 3}));
  IncrementalDecoder dec(*tok, false);
  EXPECT_EQ(dec.push(0), "a");
  EXPECT_EQ(dec.push(1), "");  // first byte of é
  EXPECT_EQ(dec.push(2), "\xC3\xA9");
  EXPECT_EQ(dec.push(1), "");
  EXPECT_EQ(dec.finish(), "\xEF\xBF\xBD");  // an unfinished character ends as U+FFFD
}

TEST(Encode, InvalidUtf8InputIsReplacedNotFatal) {
  const auto tok = load(letters_tokenizer());
  EXPECT_EQ(tok->encode("ab\xFF" "cd", false), (std::vector<int32_t>{4, 9, 7}));
}

TEST(Encode, ConcurrentCallsAgree) {
  const auto tok = load(letters_tokenizer());
  const auto expected = tok->encode("abcd cd ab dcba abc", true);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (tok->encode("abcd cd ab dcba abc", true) != expected) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace nibble

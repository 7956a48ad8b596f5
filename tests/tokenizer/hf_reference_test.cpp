// Token ids and decodes identical to Hugging Face's own tokenizer (npm `tokenizers`)
// on a generated corpus; the expected results come from hf_reference.js (a ctest fixture).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "nibble/tokenizer/tokenizer.h"
#include "test_paths.h"

namespace nibble {
namespace {

std::string show_ids(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump(); }

class HfReference : public ::testing::TestWithParam<std::string> {};

TEST_P(HfReference, MatchesHuggingFace) {
  const std::string name = GetParam();
  const auto ref_path = test::hf_reference_dir() / (name + ".json");
  if (!std::filesystem::exists(ref_path)) GTEST_SKIP() << ref_path << " absent (node or node_modules missing)";
  nlohmann::json ref;
  {
    std::ifstream in(ref_path);
    ref = nlohmann::json::parse(in);
  }
  const std::filesystem::path tok_path = ref["tokenizer"].get<std::string>();
  if (!std::filesystem::exists(tok_path)) GTEST_SKIP() << tok_path << " absent";
  const auto tok = Tokenizer::from_files(tok_path, std::nullopt);

  int failures = 0;
  auto report = [&](const std::string& what) {
    if (++failures <= 15) ADD_FAILURE() << name << ": " << what;
  };
  size_t compared = 0;
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"];
    const auto with = c["with_special"].get<std::vector<int32_t>>();
    const auto without = c["without_special"].get<std::vector<int32_t>>();
    const auto got_with = tok->encode(text, true);
    const auto got_without = tok->encode(text, false);
    if (got_without != without) {
      report("encode(" + nlohmann::json(text).dump() + ", add_special=false)\n  expected " + show_ids(without) +
             "\n  got      " + show_ids(got_without));
    } else if (got_with != with) {
      report("encode(" + nlohmann::json(text).dump() + ", add_special=true)\n  expected " + show_ids(with) +
             "\n  got      " + show_ids(got_with));
    }
    const std::string dec = tok->decode(with, false);
    if (dec != c["decode"].get<std::string>()) {
      report("decode(" + show_ids(with) + ")\n  expected " + c["decode"].dump() + "\n  got      " + nlohmann::json(dec).dump());
    }
    const std::string dec_skip = tok->decode(with, true);
    if (dec_skip != c["decode_skip"].get<std::string>()) {
      report("decode(" + show_ids(with) + ", skip_special)\n  expected " + c["decode_skip"].dump() + "\n  got      " +
             nlohmann::json(dec_skip).dump());
    }
    ++compared;
  }
  size_t decodes = 0;
  for (const auto& d : ref["random_decodes"]) {
    const auto ids = d["ids"].get<std::vector<int32_t>>();
    for (bool skip : {false, true}) {
      const std::string got = tok->decode(ids, skip);
      const std::string expected = d[skip ? "decode_skip" : "decode"];
      if (got != expected) {
        report("decode(" + show_ids(ids) + (skip ? ", skip_special" : "") + ")\n  expected " +
               nlohmann::json(expected).dump() + "\n  got      " + nlohmann::json(got).dump());
      }
    }
    ++decodes;
  }
  std::printf("[%s] compared %zu strings (encode with/without special tokens, decode with/without skipping) "
              "and %zu random id sequences with Hugging Face: %d mismatches\n",
              name.c_str(), compared, decodes, failures);
  EXPECT_GE(compared, name.find('_') == std::string::npos ? 2000u : 500u);
  EXPECT_EQ(failures, 0);
}

// The real files, then variants of them written by hf_reference.js (see VARIANTS there).
INSTANTIATE_TEST_SUITE_P(Tokenizers, HfReference,
                         ::testing::Values("llama3", "qwen3", "gemma3", "mistral", "llama2", "gpt2",
                                           "mistral_metaspace_first", "mistral_metaspace_always_split",
                                           "mistral_metaspace_never", "gpt2_lowercase_roberta", "gpt2_split_behaviours",
                                           "qwen3_whitespace_nfkd", "qwen3_whitespace_split"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace nibble

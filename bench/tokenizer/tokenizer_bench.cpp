// Encode throughput on about 1 MB of text: tokens/s and MB/s, cold (empty word cache)
// and warm, plus decode throughput. Default tokenizer: the demo tokenizer (2048); pass
// --tokenizer path/to/tokenizer.json for a real one, --text FILE for your own text.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "nibble/core/error.h"
#include "nibble/tokenizer/demo_tokenizer.h"
#include "nibble/tokenizer/tokenizer.h"

namespace {

// ~1 MB: the demo paragraphs shuffled line by line, with code, digits and non-Latin text mixed in.
std::string make_text() {
  std::vector<std::string> lines;
  std::istringstream in(nibble::demo_tokenizer_training_text());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const char* extra[] = {"for (int i = 0; i < n; ++i) { total += values[i] * 31; }",
                         "日本語のテキストと中文的句子，还有한국어 문장도 있습니다。",
                         "Привет, как дела? Ελληνικά κείμενα και العربية أيضا.",
                         "Numbers: 3.14159, 2.71828, 1234567890, 0xDEADBEEF, 1e-9.",
                         "Emoji 👩‍💻 🚀 🎉 and symbols ∑ ∫ √ ≤ ≥ ≠."};
  for (const char* e : extra) lines.push_back(e);
  std::mt19937 rng(42);
  std::string text;
  while (text.size() < (1u << 20)) {
    text += lines[rng() % lines.size()];
    text += (rng() % 4 == 0) ? "\n\n" : "\n";
  }
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path, text_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--tokenizer") == 0) tokenizer_path = argv[i + 1];
    else if (std::strcmp(argv[i], "--text") == 0) text_path = argv[i + 1];
  }
  try {
    std::unique_ptr<nibble::Tokenizer> tok;
    auto t0 = std::chrono::steady_clock::now();
    if (tokenizer_path.empty()) {
      const auto files = nibble::make_demo_tokenizer(2048);
      tok = nibble::Tokenizer::from_json_text(files.tokenizer_json, files.tokenizer_config_json, "demo tokenizer");
      tokenizer_path = "demo tokenizer (2048)";
    } else {
      tok = nibble::Tokenizer::from_file(tokenizer_path);
    }
    const double load_s = seconds_since(t0);
    std::string text;
    if (text_path.empty()) {
      text = make_text();
    } else {
      std::ifstream in(text_path, std::ios::binary);
      if (!in) throw nibble::Error("cannot open " + text_path);
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    const double mb = static_cast<double>(text.size()) / (1 << 20);
    std::printf("tokenizer: %s (loaded in %.2f s, vocab %d)\ntext: %.2f MB\n", tokenizer_path.c_str(), load_s,
                tok->vocab_size(), mb);
    for (const char* pass : {"cold", "warm"}) {
      t0 = std::chrono::steady_clock::now();
      const auto ids = tok->encode(text, false);
      const double s = seconds_since(t0);
      std::printf("encode (%s): %zu tokens in %.3f s = %.0f tokens/s, %.2f MB/s\n", pass, ids.size(), s,
                  ids.size() / s, mb / s);
    }
    // Line by line, as a server encodes many short prompts.
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    t0 = std::chrono::steady_clock::now();
    size_t count = 0;
    for (const auto& line : lines) count += tok->encode(line, true).size();
    double s = seconds_since(t0);
    std::printf("encode per line (%zu calls): %.0f tokens/s\n", lines.size(), count / s);
    const auto ids = tok->encode(text, false);
    t0 = std::chrono::steady_clock::now();
    const std::string back = tok->decode(ids, false);
    s = seconds_since(t0);
    std::printf("decode: %.0f tokens/s (round trip %s)\n", ids.size() / s, back == text ? "exact" : "differs");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// `nibble tokenize` and `nibble detokenize`: the model's tokenizer from the command line.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "commands.h"
#include "nibble/core/error.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::cli {

namespace {

struct TokenizerSource {
  std::string model_dir;
  std::string tokenizer_file;
};

void add_source_options(CLI::App& cmd, TokenizerSource& src) {
  auto* model = cmd.add_option("--model,-m", src.model_dir, "Model directory holding tokenizer.json")
                    ->check(CLI::ExistingDirectory);
  auto* file = cmd.add_option("--tokenizer,-t", src.tokenizer_file, "A tokenizer.json file")->check(CLI::ExistingFile);
  model->excludes(file);
  file->excludes(model);
}

std::unique_ptr<Tokenizer> load(const TokenizerSource& src) {
  if (!src.tokenizer_file.empty()) return Tokenizer::from_file(src.tokenizer_file);
  if (!src.model_dir.empty()) return Tokenizer::from_model_dir(src.model_dir);
  throw Error("give the tokenizer with --model DIR or --tokenizer FILE");
}

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// Ids as a JSON array ("[1, 2, 3]") or separated by whitespace and/or commas.
std::vector<int32_t> parse_ids(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  std::vector<int32_t> ids;
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(std::string("ids: invalid JSON array: ") + e.what());
    }
    for (const auto& v : j) {
      if (!v.is_number_integer()) throw Error("ids: expected integers, got " + v.dump());
      ids.push_back(v.get<int32_t>());
    }
    return ids;
  }
  std::string cleaned = text;
  for (char& c : cleaned) {
    if (c == ',') c = ' ';
  }
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < INT32_MIN || v > INT32_MAX) throw Error("ids: \"" + word + "\" is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace

void register_tokenize(CLI::App& app) {
  {
    auto src = std::make_shared<TokenizerSource>();
    auto text = std::make_shared<std::string>();
    auto flags = std::make_shared<std::array<bool, 4>>();  // ids, tokens, no_special, count
    auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (from --text or stdin) as JSON");
    add_source_options(*cmd, *src);
    auto* text_opt = cmd->add_option("--text", *text, "Text to tokenize (default: read stdin)");
    cmd->add_flag("--ids", (*flags)[0], "Print the ids as a JSON array (the default)");
    cmd->add_flag("--tokens", (*flags)[1], "Print [{\"id\", \"token\", \"text\"}] objects instead of bare ids");
    cmd->add_flag("--no-special", (*flags)[2], "Do not add the special tokens of the post-processor (BOS/EOS)");
    cmd->add_flag("--count", (*flags)[3], "Print only the number of tokens");
    cmd->callback([src, text, text_opt, flags] {
      const auto tok = load(*src);
      const std::string input = text_opt->count() ? *text : read_stdin();
      const auto ids = tok->encode(input, !(*flags)[2]);
      if ((*flags)[3]) {
        std::printf("%zu\n", ids.size());
        return;
      }
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      // "text" is what each token adds to the decoded text, as streaming would emit it
      // (empty while a multi-byte character is incomplete).
      IncrementalDecoder pieces(*tok, false);
      for (int32_t id : ids) {
        if ((*flags)[1]) {
          out.push_back({{"id", id}, {"token", tok->id_to_token(id).value_or("")}, {"text", pieces.push(id)}});
        } else {
          out.push_back(id);
        }
      }
      if ((*flags)[1] && !out.empty()) out.back()["text"] = out.back()["text"].get<std::string>() + pieces.finish();
      // Invalid UTF-8 pieces (a lone byte of a multi-byte character) print as U+FFFD.
      std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    });
  }
  {
    auto src = std::make_shared<TokenizerSource>();
    auto ids_text = std::make_shared<std::string>();
    auto skip_special = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand("detokenize",
                                   "Print the text of token ids (a JSON array or a whitespace list, from --ids or stdin)");
    add_source_options(*cmd, *src);
    auto* ids_opt = cmd->add_option("--ids", *ids_text, "Ids, e.g. \"[1, 2, 3]\" or \"1 2 3\" (default: read stdin)");
    cmd->add_flag("--skip-special", *skip_special, "Leave out special tokens (BOS, EOS, ...)");
    cmd->callback([src, ids_text, ids_opt, skip_special] {
      const auto tok = load(*src);
      const auto ids = parse_ids(ids_opt->count() ? *ids_text : read_stdin());
      for (int32_t id : ids) {
        if (!tok->id_to_token(id)) throw Error("ids: " + std::to_string(id) + " is not in the vocabulary");
      }
      std::fputs(tok->decode(ids, *skip_special).c_str(), stdout);
      std::fputs("\n", stdout);
    });
  }
}

}  // namespace nibble::cli

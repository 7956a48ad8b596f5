// A tiny deterministic BPE trainer and the files of the demo tokenizer.
#include "nibble/tokenizer/demo_tokenizer.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "byte_level.h"
#include "nibble/core/error.h"
#include "regex.h"
#include "utf8.h"

namespace nibble {

namespace {

using tokenizer_detail::byte_level_chars;
using tokenizer_detail::bytes_to_byte_level;
using tokenizer_detail::kGpt2SplitRegex;

constexpr const char* kNamedSpecialTokens[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                               "<|end_header_id|>", "<|eot_id|>"};
constexpr int kNamedSpecialCount = 5;

// Splits a byte-level word into its characters.
std::vector<std::string> characters(const std::string& word) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < word.size()) {
    const size_t begin = i;
    tokenizer_detail::next_code_point(word, i);
    out.push_back(word.substr(begin, i - begin));
  }
  return out;
}

struct Trained {
  std::vector<std::string> tokens;  // id -> token, bytes first
  std::vector<std::pair<std::string, std::string>> merges;
};

// Classic BPE training: repeatedly merge the most frequent adjacent pair (ties broken by
// the pair's strings, so the result never depends on hash order).
Trained train_bpe(const std::string& text, size_t max_tokens) {
  Trained t;
  for (const auto& c : byte_level_chars()) t.tokens.push_back(c);
  std::set<std::string> known(t.tokens.begin(), t.tokens.end());

  const tokenizer_detail::Regex split(kGpt2SplitRegex, "demo tokenizer");
  std::map<std::string, int> word_counts;
  for (const auto& [b, e] : split.find_all(text)) ++word_counts[bytes_to_byte_level(text.substr(b, e - b))];
  std::vector<std::pair<std::vector<std::string>, int>> words;
  for (const auto& [w, n] : word_counts) words.emplace_back(characters(w), n);

  while (t.tokens.size() < max_tokens) {
    std::map<std::pair<std::string, std::string>, int> pairs;
    for (const auto& [symbols, n] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += n;
    }
    const std::pair<std::string, std::string>* best = nullptr;
    int best_count = 0;
    for (const auto& [pair, n] : pairs) {
      if (n > best_count) {
        best = &pair;
        best_count = n;
      }
    }
    if (best == nullptr) break;  // every word is a single token
    const auto [a, b] = *best;
    const std::string merged = a + b;
    t.merges.emplace_back(a, b);
    if (known.insert(merged).second) t.tokens.push_back(merged);
    for (auto& [symbols, n] : words) {
      std::vector<std::string> next;
      next.reserve(symbols.size());
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == a && symbols[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
  }
  return t;
}

// Llama 3 style chat template: system message (plus tool descriptions), user/assistant
// turns, assistant tool calls as JSON, tool results under the "ipython" header.
constexpr const char* kChatTemplate = R"({{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = '' %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- set has_tools = tools is defined and tools %}
{%- if system_message or has_tools %}
    {{- '<|start_header_id|>system<|end_header_id|>\n\n' + system_message }}
    {%- if has_tools %}
        {%- if system_message %}
            {{- '\n\n' }}
        {%- endif %}
        {{- 'You can call these functions. To call one, answer with JSON of the form {"name": function name, "parameters": {argument name: value}}.\n' }}
        {%- for tool in tools %}
            {{- '\n' + (tool | tojson) }}
        {%- endfor %}
    {%- endif %}
    {{- '<|eot_id|>' }}
{%- endif %}
{%- for message in loop_messages %}
    {%- if message['role'] == 'tool' %}
        {{- '<|start_header_id|>ipython<|end_header_id|>\n\n' }}
        {%- if message['content'] is string %}
            {{- message['content'] | trim }}
        {%- else %}
            {{- message['content'] | tojson }}
        {%- endif %}
        {{- '<|eot_id|>' }}
    {%- elif message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
        {%- for tool_call in message['tool_calls'] %}
            {%- set call = tool_call['function'] if tool_call['function'] is defined else tool_call %}
            {{- '{"name": "' + call['name'] + '", "parameters": ' + (call['arguments'] | tojson) + '}' }}
        {%- endfor %}
        {{- '<|eot_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + (message['content'] | trim) + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)";

}  // namespace

DemoTokenizerFiles make_demo_tokenizer(int vocab_size) {
  if (vocab_size < 300 || vocab_size > 65536) {
    throw Error("demo tokenizer: vocab_size must be between 300 and 65536, got " + std::to_string(vocab_size));
  }
  const Trained trained = train_bpe(demo_tokenizer_training_text(), static_cast<size_t>(vocab_size - kNamedSpecialCount));

  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  for (size_t id = 0; id < trained.tokens.size(); ++id) vocab[trained.tokens[id]] = id;
  ojson merges = ojson::array();
  for (const auto& [a, b] : trained.merges) merges.push_back({a, b});

  std::vector<std::string> specials(std::begin(kNamedSpecialTokens), std::end(kNamedSpecialTokens));
  for (int n = 0; static_cast<int>(trained.tokens.size() + specials.size()) < vocab_size; ++n) {
    specials.push_back("<|reserved_special_token_" + std::to_string(n) + "|>");
  }
  ojson added = ojson::array();
  ojson added_decoder = ojson::object();
  for (size_t k = 0; k < specials.size(); ++k) {
    const auto id = static_cast<int>(trained.tokens.size() + k);
    ojson token = {{"id", id},           {"content", specials[k]}, {"single_word", false}, {"lstrip", false},
                   {"rstrip", false},    {"normalized", false},    {"special", true}};
    added.push_back(token);
    token.erase("id");
    added_decoder[std::to_string(id)] = token;
  }
  const int bos_id = static_cast<int>(trained.tokens.size());
  const std::string bos = kNamedSpecialTokens[0];

  ojson tok = ojson::object();
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  tok["added_tokens"] = added;
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", std::string(kGpt2SplitRegex)}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  tok["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
  tok["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  tok["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", false},
                  {"vocab", vocab},
                  {"merges", merges}};

  ojson config = ojson::object();
  config["added_tokens_decoder"] = added_decoder;
  config["bos_token"] = bos;
  config["eos_token"] = "<|eot_id|>";
  config["pad_token"] = "<|end_of_text|>";
  config["clean_up_tokenization_spaces"] = false;
  config["model_input_names"] = {"input_ids", "attention_mask"};
  config["model_max_length"] = 131072;
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  config["chat_template"] = kChatTemplate;

  return {tok.dump(2), config.dump(2)};
}

}  // namespace nibble

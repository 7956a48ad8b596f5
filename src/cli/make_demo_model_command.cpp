// `nibble make-demo-model DIR`: a small, deterministic Llama-family GPTQ model
// with random weights (its text is meaningless), made without any network, for
// the README's first run and for tests.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "commands.h"
#include "nibble/core/error.h"
#include "nibble/model/demo_model.h"
#include "nibble/tokenizer/demo_tokenizer.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::cli {
namespace {

struct MakeDemoModelArgs {
  std::string dir;
  std::string preset = "tiny";
  std::string architecture = "llama";
  uint64_t seed = 0;
  int shards = 1;
};

Architecture parse_architecture(const std::string& name) {
  if (name == "llama") return Architecture::Llama;
  if (name == "mistral") return Architecture::Mistral;
  if (name == "qwen2") return Architecture::Qwen2;
  throw_error("unknown architecture '" + name + "' (use llama, mistral or qwen2)");
}

int preset_vocab_size(const std::string& preset) {
  if (preset == "tiny") return 512;
  if (preset == "small") return 2048;
  throw_error("unknown preset '" + preset + "' (use tiny or small)");
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw_error("cannot write " + path.string());
}

void make_demo_model(const MakeDemoModelArgs& args) {
  std::filesystem::path dir(args.dir);
  std::filesystem::create_directories(dir);
  DemoTokenizerFiles tokenizer_files = make_demo_tokenizer(preset_vocab_size(args.preset));
  write_text(dir / "tokenizer.json", tokenizer_files.tokenizer_json);
  write_text(dir / "tokenizer_config.json", tokenizer_files.tokenizer_config_json);
  auto tokenizer = Tokenizer::from_model_dir(dir);

  DemoModelOptions options;
  options.preset = args.preset;
  options.architecture = parse_architecture(args.architecture);
  options.vocab_size = tokenizer->vocab_size();
  options.eos_token_ids = tokenizer->eos_token_ids();
  if (auto bos = tokenizer->bos_token()) options.bos_token_id = tokenizer->token_to_id(*bos);
  options.seed = args.seed;
  options.shards = args.shards;
  write_demo_model_weights(dir, options);
  spdlog::info("wrote the {} {} demo model (vocabulary {}, random weights: its text is meaningless) to {}",
               args.preset, args.architecture, options.vocab_size, dir.string());
}

}  // namespace

void register_make_demo_model(CLI::App& app) {
  auto args = std::make_shared<MakeDemoModelArgs>();
  auto* cmd = app.add_subcommand("make-demo-model",
                                 "Write a small random-weight GPTQ demo model (for trying nibble and for tests)");
  cmd->add_option("dir", args->dir, "Folder to write")->required();
  cmd->add_option("--preset", args->preset, "tiny (unit tests) or small (act-order, group 128)")
      ->check(CLI::IsMember({"tiny", "small"}))
      ->capture_default_str();
  cmd->add_option("--arch", args->architecture, "llama, mistral or qwen2")
      ->check(CLI::IsMember({"llama", "mistral", "qwen2"}))
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed of the random weights")->capture_default_str();
  cmd->add_option("--shards", args->shards, "Number of safetensors files")->check(CLI::Range(1, 16))->capture_default_str();
  cmd->callback([args] { make_demo_model(*args); });
}

}  // namespace nibble::cli

// nibble_serve_test: `serve` (the real src/cli/serve_command.cpp) and a
// `make-demo-model` for tests, so the HTTP end-to-end suite runs whatever
// other subcommands the `nibble` executable has.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <CLI/CLI.hpp>

#include "../../src/cli/commands.h"
#include "nibble/core/error.h"
#include "nibble/model/demo_model.h"
#include "nibble/tokenizer/demo_tokenizer.h"

namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  NIBBLE_CHECK(out.good(), "cannot write " + path.string());
}

void register_demo_model(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto preset = std::make_shared<std::string>("tiny");
  auto* cmd = app.add_subcommand("make-demo-model", "Write a demo model folder (weights + tokenizer)");
  cmd->add_option("dir", *dir)->required();
  cmd->add_option("--preset", *preset)->check(CLI::IsMember({"tiny", "small"}));
  cmd->callback([dir, preset] {
    nibble::DemoModelOptions options;
    options.preset = *preset;
    nibble::write_demo_model_weights(*dir, options);
    int vocab = nibble::demo_model_config(options).vocab_size;
    auto files = nibble::make_demo_tokenizer(vocab);
    write_text(std::filesystem::path(*dir) / "tokenizer.json", files.tokenizer_json);
    write_text(std::filesystem::path(*dir) / "tokenizer_config.json", files.tokenizer_config_json);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nibble serve (test build)"};
  app.require_subcommand(1);
  nibble::cli::register_serve(app);
  register_demo_model(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const nibble::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}

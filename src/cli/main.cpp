#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>

#include "commands.h"
#include "nibble/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"nibble: an OpenAI-compatible server for 4-bit GPTQ models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nibble 0.1.0");
  nibble::cli::register_make_demo_model(app);
  nibble::cli::register_generate(app);
  nibble::cli::register_tokenize(app);
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

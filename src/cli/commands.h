#pragma once
// Each `nibble` subcommand lives in its own file and registers itself here.
// A command's callback throws nibble::Error for user mistakes; main() prints it.
#include <CLI/CLI.hpp>

namespace nibble::cli {

void register_make_demo_model(CLI::App& app);
void register_generate(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_serve(CLI::App& app);

}  // namespace nibble::cli

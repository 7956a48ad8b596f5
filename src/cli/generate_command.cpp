// `nibble generate`: one prompt through the whole engine (scheduler, backend,
// sampler, streaming detokenizer), printing text as it is generated and then a
// line with token counts and speed.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "model_source.h"
#include "nibble/chat/chat_template.h"
#include "nibble/core/error.h"
#include "nibble/core/logging.h"
#include "nibble/engine/backend_factory.h"
#include "nibble/scheduler/engine_loop.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string load_format = "auto";
  std::string prompt;
  bool chat = false;
  int max_tokens = 64;
  std::optional<uint64_t> seed;
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  bool ignore_eos = false;
  BackendOptions backend;
  std::string log_level = "warn";
};

std::string render_chat_prompt(const ModelSource& source, const Tokenizer& tokenizer, const std::string& user_text) {
  ChatSource chat = load_model_chat_template(source, tokenizer);
  auto chat_template = ChatTemplate::parse(chat.config.source);
  ChatRenderInput input;
  input.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", user_text}}});
  input.special_tokens = chat.config.special_tokens;
  return chat_template->render(input);
}

void generate(const GenerateArgs& args) {
  setup_logging(args.log_level);
  const ModelSource source = resolve_model_source(args.model, args.load_format);
  auto tokenizer = load_model_tokenizer(source);
  // A chat template carries its own BOS; a raw prompt gets the tokenizer's.
  std::string text = args.chat ? render_chat_prompt(source, *tokenizer, args.prompt) : args.prompt;
  EngineModel model = load_engine_model(source, args.backend);
  if (source.dummy) spdlog::warn("{}: the text is meaningless", model.weights);

  GenerationRequest request;
  request.id = "generate";
  request.prompt = tokenizer->encode(text, /*add_special_tokens=*/!args.chat);
  request.sampling.temperature = args.temperature;
  request.sampling.top_p = args.top_p;
  request.sampling.top_k = args.top_k;
  request.sampling.seed = args.seed;
  request.stop.max_tokens = args.max_tokens;
  request.stop.ignore_eos = args.ignore_eos;

  Backend& backend = *model.backend;
  SchedulerConfig scheduler;
  scheduler.eos_token_ids = model.generation.eos_token_ids;
  for (int32_t id : tokenizer->eos_token_ids()) scheduler.eos_token_ids.push_back(id);
  auto engine = EngineLoop::start(backend, scheduler);

  auto start = std::chrono::steady_clock::now();
  SubmitResult submitted = engine->submit(request);
  if (submitted.status != SubmitStatus::Ok) throw_error(submitted.message);

  IncrementalDecoder decoder(*tokenizer, /*skip_special_tokens=*/true);
  decoder.set_prefix(request.prompt);
  int generated = 0;
  std::optional<std::chrono::steady_clock::time_point> first_token_at;
  std::optional<FinishReason> finish;
  std::string error;
  while (!finish) {
    auto output = submitted.handle->next(std::chrono::milliseconds(1000));
    if (!output) continue;
    if (!output->new_tokens.empty() && !first_token_at) first_token_at = std::chrono::steady_clock::now();
    for (int32_t id : output->new_tokens) std::fputs(decoder.push(id).c_str(), stdout);
    std::fflush(stdout);
    generated += static_cast<int>(output->new_tokens.size());
    finish = output->finish;
    error = output->error;
  }
  std::fputs(decoder.finish().c_str(), stdout);
  std::fputs("\n", stdout);
  auto end = std::chrono::steady_clock::now();
  engine->shutdown(std::chrono::milliseconds(0));
  if (*finish == FinishReason::Error) throw_error("generation failed: " + error);

  auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  double ttft = first_token_at ? seconds(*first_token_at - start) : 0.0;
  double decode_time = first_token_at ? seconds(end - *first_token_at) : 0.0;
  double decode_rate = generated > 1 && decode_time > 0 ? (generated - 1) / decode_time : 0.0;
  std::fprintf(stderr,
               "[%s] prompt tokens: %zu, generated tokens: %d, finish: %s, time to first token: %.1f ms, "
               "decode: %.1f tokens/s\n",
               backend.name().c_str(), request.prompt.size(), generated, finish_reason_name(*finish),
               ttft * 1000.0, decode_rate);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text for one prompt and report the speed");
  cmd->add_option("--model", args->model,
                  "Model folder (config.json, safetensors, tokenizer); with --load-format dummy a config.json file "
                  "or a folder holding one")
      ->required();
  cmd->add_option("--load-format", args->load_format,
                  "auto (read the checkpoint) or dummy (random GPTQ weights at the config's shapes)")
      ->envname("NIBBLE_LOAD_FORMAT")
      ->check(CLI::IsMember(kLoadFormats))
      ->capture_default_str();
  cmd->add_option("--prompt", args->prompt, "Prompt text")->required();
  cmd->add_flag("--chat", args->chat, "Wrap the prompt as a user message in the model's chat template");
  cmd->add_option("--max-tokens", args->max_tokens, "Tokens to generate at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Sampling seed (same seed, same text)");
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "0 = off")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_option("--device", args->backend.device, "auto, cuda or cpu")
      ->check(CLI::IsMember({"auto", "cuda", "cpu"}))
      ->capture_default_str();
  cmd->add_option("--threads", args->backend.threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--log-level", args->log_level, "trace, debug, info, warn, error")->capture_default_str();
  cmd->callback([args] { generate(*args); });
}

}  // namespace nibble::cli

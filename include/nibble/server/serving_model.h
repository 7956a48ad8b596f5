#pragma once
// Everything the HTTP server needs from a loaded model. The serve command (or
// a test) owns the pieces; the server only borrows them.
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "nibble/api/text_decoder.h"
#include "nibble/chat/chat_template.h"
#include "nibble/scheduler/engine_loop.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::server {

struct ServingModel {
  std::string architecture;   // e.g. "LlamaForCausalLM"
  std::string quantization;   // e.g. "gptq 4-bit, group 128"
  std::string root;           // the model folder
  int max_model_len = 0;
  int vocab_size = 0;
  const Tokenizer* tokenizer = nullptr;     // prompt encoding, /tokenize
  const api::TextCodec* codec = nullptr;    // output detokenization
  EngineLoop* engine = nullptr;
  // Renders OpenAI messages into the prompt text (the model's chat template);
  // throws nibble::Error on a template error.
  std::function<std::string(const ChatRenderInput&)> render_chat;
  nlohmann::json special_tokens = nlohmann::json::object();  // for chat templates
};

}  // namespace nibble::server

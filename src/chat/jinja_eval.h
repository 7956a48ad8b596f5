#pragma once
// Tree-walking evaluator: scopes, loop control, sandbox limits, calls.
#include <ctime>
#include <deque>
#include <string>
#include <unordered_map>

#include "jinja_ast.h"
#include "nibble/chat/jinja.h"

namespace nibble::jinja {

class Evaluator {
 public:
  Evaluator(std::shared_ptr<const Program> program, const RenderOptions& options, Value globals);

  std::string render();

  // Name resolution and assignment in the current frame.
  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value value);

  void render_body(const Body& body, std::string& out);
  Value call(const Value& callee, CallArgs& args);

  void at(const SourcePos& pos) { pos_ = pos; }
  const SourcePos& pos() const { return pos_; }

  // Sandbox accounting.
  void count_iteration();
  void check_output(const std::string& out) const;
  const RenderLimits& limits() const { return options_.limits; }
  std::tm now() const;

  enum class Control { None, Break, Continue };
  Control control = Control::None;

  // Runs `fn` in a fresh scope. A macro call hides the caller's scopes; a
  // loop or `with` block sees them.
  template <typename Fn>
  void with_scope(bool isolated, Fn&& fn) {
    ScopeGuard guard(*this, isolated);
    fn();
  }

 private:
  using Scope = std::unordered_map<std::string, Value>;
  struct ScopeGuard {
    ScopeGuard(Evaluator& e, bool isolated);
    ~ScopeGuard();
    Evaluator& ev;
    size_t saved_floor;
  };

  std::shared_ptr<const Program> program_;
  RenderOptions options_;
  Value globals_;
  std::deque<Scope> scopes_;  // scopes_[0]: template-level variables
  size_t floor_ = 1;          // lookups search scopes_[floor_..] then scopes_[0]
  int call_depth_ = 0;
  size_t iterations_ = 0;
  SourcePos pos_;
};

// Argument checks shared by filters and methods (jinja_methods.cpp).
std::string require_string(const Value& v, const std::string& what);
int64_t require_int(const Value& v, const std::string& what);

// Filters, tests and globals (jinja_builtins.cpp); attributes, items,
// iteration, `in` and Python methods (jinja_methods.cpp).
Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args);
Value get_attribute(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
// The items a for loop visits: list items, dict keys, string characters.
Array iterate(const Value& v);
bool contains(const Value& container, const Value& item);
Value make_globals(const nlohmann::ordered_json& variables);
[[noreturn]] void undefined_error(const Value& undefined);

}  // namespace nibble::jinja

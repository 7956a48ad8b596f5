#include "jinja_eval.h"

#include <cmath>
#include <limits>
#include <optional>

#include "jinja_parser.h"
#include "jinja_strings.h"
#include "nibble/core/error.h"

namespace nibble::jinja {

// ---------------------------------------------------------------- Evaluator

Evaluator::Evaluator(std::shared_ptr<const Program> program, const RenderOptions& options, Value globals)
    : program_(std::move(program)), options_(options), globals_(std::move(globals)) {
  scopes_.emplace_back();
}

Evaluator::ScopeGuard::ScopeGuard(Evaluator& e, bool isolated) : ev(e), saved_floor(e.floor_) {
  ev.scopes_.emplace_back();
  if (isolated) ev.floor_ = ev.scopes_.size() - 1;
}
Evaluator::ScopeGuard::~ScopeGuard() {
  ev.scopes_.pop_back();
  ev.floor_ = saved_floor;
}

std::string Evaluator::render() {
  std::string out;
  try {
    render_body(program_->body, out);
  } catch (const RenderError& e) {
    throw Error(located(pos_, e.what()));
  } catch (const std::bad_alloc&) {
    throw Error(located(pos_, "out of memory while rendering"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(located(pos_, std::string("internal error: ") + e.what()));
  }
  return out;
}

Value Evaluator::lookup(const std::string& name) const {
  for (size_t k = scopes_.size(); k-- > floor_;) {
    auto it = scopes_[k].find(name);
    if (it != scopes_[k].end()) return it->second;
  }
  auto it = scopes_[0].find(name);
  if (it != scopes_[0].end()) return it->second;
  if (const Value* g = globals_.object->find(name)) return *g;
  return Value::undefined("'" + name + "' is undefined");
}

void Evaluator::assign(const std::string& name, Value value) {
  scopes_.back()[name] = std::move(value);
}

void Evaluator::render_body(const Body& body, std::string& out) {
  for (const auto& stmt : body) {
    stmt->render(*this, out);
    if (control != Control::None) return;
  }
}

void Evaluator::count_iteration() {
  if (++iterations_ > options_.limits.max_loop_iterations)
    fail("sandbox limit: more than " + std::to_string(options_.limits.max_loop_iterations) + " loop iterations");
}

void Evaluator::check_output(const std::string& out) const {
  if (out.size() > options_.limits.max_output_bytes)
    fail("sandbox limit: output larger than " + std::to_string(options_.limits.max_output_bytes) + " bytes");
}

std::tm Evaluator::now() const {
  std::tm tm{};
  if (options_.now) {
    std::time_t t = std::chrono::system_clock::to_time_t(*options_.now);
    gmtime_r(&t, &tm);
  } else {
    std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  return tm;
}

Value Evaluator::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) undefined_error(callee);
  if (!callee.is_callable()) fail("'" + callee.type_name() + "' object is not callable");
  if (++call_depth_ > options_.limits.max_call_depth) {
    --call_depth_;
    fail("sandbox limit: call depth over " + std::to_string(options_.limits.max_call_depth));
  }
  struct Leave {
    int& depth;
    ~Leave() { --depth; }
  } leave{call_depth_};
  return callee.function->call(args, *this);
}

// ---------------------------------------------------------------- helpers

namespace {

CallArgs eval_args(Evaluator& ev, const Arguments& args) {
  CallArgs out;
  for (const auto& e : args.positional) out.positional.push_back(e->eval(ev));
  for (const auto& [name, e] : args.keyword) out.keyword.emplace_back(name, e->eval(ev));
  return out;
}

template <typename Op>
int64_t checked(Op op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op(x, y, &r)) fail("integer overflow");
  return r;
}
bool add_overflow(int64_t x, int64_t y, int64_t* r) { return __builtin_add_overflow(x, y, r); }
bool sub_overflow(int64_t x, int64_t y, int64_t* r) { return __builtin_sub_overflow(x, y, r); }
bool mul_overflow(int64_t x, int64_t y, int64_t* r) { return __builtin_mul_overflow(x, y, r); }

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) fail("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double py_fmod(double a, double b) {
  if (b == 0) fail("float modulo");
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value repeat(const Value& seq, int64_t n, const Evaluator& ev) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    if (seq.s.size() && static_cast<size_t>(n) > ev.limits().max_output_bytes / seq.s.size())
      fail("sandbox limit: string repetition too large");
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::string(std::move(out));
  }
  const auto& items = seq.array->items;
  if (items.size() && static_cast<size_t>(n) > ev.limits().max_loop_iterations / items.size())
    fail("sandbox limit: list repetition too large");
  Array out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), items.begin(), items.end());
  return seq.array->is_tuple ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

Value arithmetic(const std::string& op, const Value& a, const Value& b, const Evaluator& ev) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (a.is_number() && b.is_number()) {
    bool fl = a.kind == Kind::Float || b.kind == Kind::Float;
    if (op == "/") {
      if (b.as_double() == 0) fail("division by zero");
      return Value::number(a.as_double() / b.as_double());
    }
    if (fl) {
      double x = a.as_double(), y = b.as_double();
      if (op == "+") return Value::number(x + y);
      if (op == "-") return Value::number(x - y);
      if (op == "*") return Value::number(x * y);
      if (op == "//") {
        if (y == 0) fail("float floor division by zero");
        return Value::number(std::floor(x / y));
      }
      if (op == "%") return Value::number(py_fmod(x, y));
      if (op == "**") return Value::number(std::pow(x, y));
    }
    int64_t x = a.as_int(), y = b.as_int();
    if (op == "+") return Value::integer(checked(add_overflow, x, y));
    if (op == "-") return Value::integer(checked(sub_overflow, x, y));
    if (op == "*") return Value::integer(checked(mul_overflow, x, y));
    if (op == "//") return Value::integer(floor_div(x, y));
    if (op == "%") return Value::integer(py_mod(x, y));
    if (op == "**") {
      if (y < 0) return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
      int64_t result = 1;
      for (int64_t k = 0; k < y; ++k) {
        result = checked(mul_overflow, result, x);
        if (result == 0 || result == 1) break;
      }
      if (x == -1) result = (y % 2) ? -1 : 1;
      return Value::integer(result);
    }
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (a.is_array() && b.is_array() && a.array->is_tuple == b.array->is_tuple) {
      Array items = a.array->items;
      items.insert(items.end(), b.array->items.begin(), b.array->items.end());
      return a.array->is_tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    if (a.is_string()) fail("can only concatenate str (not \"" + b.type_name() + "\") to str");
    if (a.is_array()) fail("can only concatenate list (not \"" + b.type_name() + "\") to list");
  }
  if (op == "*") {
    if ((a.is_string() || a.is_array()) && b.is_int_like()) return repeat(a, b.as_int(), ev);
    if ((b.is_string() || b.is_array()) && a.is_int_like()) return repeat(b, a.as_int(), ev);
  }
  if (op == "%" && a.is_string()) {
    CallArgs args;
    if (b.is_array() && b.array->is_tuple) args.positional = b.array->items;
    else args.positional.push_back(b);
    return Value::string(py_percent_format(a.s, args));
  }
  unsupported(op, a, b);
}

}  // namespace

// ---------------------------------------------------------------- expressions

Value LiteralExpr::eval(Evaluator&) const { return value; }

Value NameExpr::eval(Evaluator& ev) const { return ev.lookup(name); }

Value ListExpr::eval(Evaluator& ev) const {
  Array values;
  values.reserve(items.size());
  for (const auto& e : items) values.push_back(e->eval(ev));
  return tuple ? Value::tuple(std::move(values)) : Value::list(std::move(values));
}

Value DictExpr::eval(Evaluator& ev) const {
  Value d = Value::dict();
  for (const auto& [k, v] : items) {
    Value key = k->eval(ev);
    Value value = v->eval(ev);
    ev.at(k->pos);
    if (!key.is_string()) {
      if (key.is_undefined() || key.is_array() || key.is_object())
        fail("unhashable or unsupported dict key of type '" + key.type_name() + "'");
      key = Value::string(to_str(key));
    }
    d.object->set(key.s, std::move(value));
  }
  return d;
}

Value GetAttrExpr::eval(Evaluator& ev) const {
  Value obj = object->eval(ev);
  ev.at(pos);
  return get_attribute(obj, name);
}

Value GetItemExpr::eval(Evaluator& ev) const {
  Value obj = object->eval(ev);
  Value k = key->eval(ev);
  ev.at(pos);
  return get_item(obj, k);
}

Value SliceExpr::eval(Evaluator& ev) const {
  Value obj = object->eval(ev);
  auto bound = [&](const ExprPtr& e, bool& present) -> int64_t {
    present = false;
    if (!e) return 0;
    Value v = e->eval(ev);
    if (v.is_none()) return 0;
    ev.at(pos);
    if (!v.is_int_like()) fail("slice indices must be integers or None");
    present = true;
    return v.as_int();
  };
  bool has_start, has_stop, has_step;
  int64_t start = bound(this->start, has_start);
  int64_t stop = bound(this->stop, has_stop);
  int64_t step = bound(this->step, has_step);
  ev.at(pos);
  if (!has_step) step = 1;
  if (step == 0) fail("slice step cannot be zero");
  if (obj.is_undefined()) undefined_error(obj);
  std::u32string chars;
  bool is_str = obj.is_string();
  if (!is_str && !obj.is_array()) fail("'" + obj.type_name() + "' object is not subscriptable");
  if (is_str) chars = utf8_decode(obj.s);
  int64_t n = is_str ? static_cast<int64_t>(chars.size()) : static_cast<int64_t>(obj.array->items.size());
  // Python's slice.indices().
  auto clamp = [&](int64_t v, bool present, int64_t dflt) -> int64_t {
    if (!present) return dflt;
    if (v < 0) {
      v += n;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= n) {
      v = step < 0 ? n - 1 : n;
    }
    return v;
  };
  int64_t lo = clamp(start, has_start, step < 0 ? n - 1 : 0);
  int64_t hi = clamp(stop, has_stop, step < 0 ? -1 : n);
  std::u32string out_chars;
  Array out_items;
  for (int64_t k = lo; step > 0 ? k < hi : k > hi; k += step) {
    if (is_str) out_chars += chars[static_cast<size_t>(k)];
    else out_items.push_back(obj.array->items[static_cast<size_t>(k)]);
  }
  if (is_str) return Value::string(utf8_encode(out_chars));
  return obj.array->is_tuple ? Value::tuple(std::move(out_items)) : Value::list(std::move(out_items));
}

Value CallExpr::eval(Evaluator& ev) const {
  Value fn = callee->eval(ev);
  CallArgs a = eval_args(ev, args);
  ev.at(pos);
  return ev.call(fn, a);
}

Value FilterExpr::apply(Evaluator& ev, Value input) const {
  CallArgs a = eval_args(ev, args);
  ev.at(pos);
  return apply_filter(ev, name, input, a);
}

Value FilterExpr::eval(Evaluator& ev) const { return apply(ev, object->eval(ev)); }

Value TestExpr::eval(Evaluator& ev) const {
  Value v = object->eval(ev);
  CallArgs a = eval_args(ev, args);
  ev.at(pos);
  bool r = apply_test(ev, name, v, a);
  return Value::boolean(negated ? !r : r);
}

Value UnaryExpr::eval(Evaluator& ev) const {
  Value v = operand->eval(ev);
  ev.at(pos);
  if (op == "not") return Value::boolean(!v.truthy());
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_number()) fail("bad operand type for unary " + op + ": '" + v.type_name() + "'");
  if (op == "+") return v.kind == Kind::Bool ? Value::integer(v.as_int()) : v;
  if (v.kind == Kind::Float) return Value::number(-v.f);
  if (v.as_int() == std::numeric_limits<int64_t>::min()) fail("integer overflow");
  return Value::integer(-v.as_int());
}

Value BinaryExpr::eval(Evaluator& ev) const {
  if (op == "and") {
    Value l = left->eval(ev);
    return l.truthy() ? right->eval(ev) : l;
  }
  if (op == "or") {
    Value l = left->eval(ev);
    return l.truthy() ? l : right->eval(ev);
  }
  Value l = left->eval(ev);
  Value r = right->eval(ev);
  ev.at(pos);
  if (op == "~") {
    std::string s = to_str(l) + to_str(r);
    ev.check_output(s);
    return Value::string(std::move(s));
  }
  Value result = arithmetic(op, l, r, ev);
  if (result.is_string()) ev.check_output(result.s);
  return result;
}

Value CompareExpr::eval(Evaluator& ev) const {
  Value l = first->eval(ev);
  for (const auto& [op, expr] : rest) {
    Value r = expr->eval(ev);
    ev.at(pos);
    bool ok;
    if (op == "==") ok = values_equal(l, r);
    else if (op == "!=") ok = !values_equal(l, r);
    else if (op == "in") ok = contains(r, l);
    else if (op == "notin") ok = !contains(r, l);
    else {
      if (l.is_undefined()) undefined_error(l);
      if (r.is_undefined()) undefined_error(r);
      int c = compare_values(l, r);
      ok = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
    }
    if (!ok) return Value::boolean(false);
    l = std::move(r);
  }
  return Value::boolean(true);
}

Value CondExpr::eval(Evaluator& ev) const {
  if (condition->eval(ev).truthy()) return then_value->eval(ev);
  if (else_value) return else_value->eval(ev);
  return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
}

// ---------------------------------------------------------------- statements

void DataStmt::render(Evaluator& ev, std::string& out) const {
  out += text;
  ev.at(pos);
  ev.check_output(out);
}

void OutputStmt::render(Evaluator& ev, std::string& out) const {
  Value v = expr->eval(ev);
  ev.at(pos);
  out += to_str(v);
  ev.check_output(out);
}

void IfStmt::render(Evaluator& ev, std::string& out) const {
  for (const auto& [cond, body] : branches) {
    if (cond->eval(ev).truthy()) {
      ev.render_body(body, out);
      return;
    }
  }
  ev.render_body(else_body, out);
}

namespace {

void bind_targets(Evaluator& ev, const std::vector<std::string>& names, bool unpack, const Value& item) {
  if (!unpack) {
    ev.assign(names[0], item);
    return;
  }
  Array parts = iterate(item);
  if (item.is_undefined() || item.is_none() || item.is_number())
    fail("cannot unpack non-iterable " + item.type_name() + " object");
  if (parts.size() != names.size())
    fail(parts.size() < names.size()
             ? "not enough values to unpack (expected " + std::to_string(names.size()) + ", got " + std::to_string(parts.size()) + ")"
             : "too many values to unpack (expected " + std::to_string(names.size()) + ")");
  for (size_t k = 0; k < names.size(); ++k) ev.assign(names[k], parts[k]);
}

}  // namespace

void ForStmt::render(Evaluator& ev, std::string& out) const {
  Value seq = iterable->eval(ev);
  ev.at(pos);
  if (seq.is_none() || seq.is_number() || seq.is_callable())
    fail("'" + seq.type_name() + "' object is not iterable");
  Array items = iterate(seq);
  ev.with_scope(false, [&] {
    if (condition) {
      Array kept;
      for (const auto& item : items) {
        ev.count_iteration();
        bind_targets(ev, targets, unpack, item);
        if (condition->eval(ev).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const size_t n = items.size();
    // loop.changed(...) compares with the arguments of its previous call.
    auto last_changed = std::make_shared<std::optional<Value>>();
    for (size_t k = 0; k < n; ++k) {
      ev.count_iteration();
      ev.at(pos);
      bind_targets(ev, targets, unpack, items[k]);
      Value loop = Value::dict();
      auto& e = *loop.object;
      int64_t len = static_cast<int64_t>(n), idx = static_cast<int64_t>(k);
      e.set("index", Value::integer(idx + 1));
      e.set("index0", Value::integer(idx));
      e.set("revindex", Value::integer(len - idx));
      e.set("revindex0", Value::integer(len - idx - 1));
      e.set("first", Value::boolean(k == 0));
      e.set("last", Value::boolean(k + 1 == n));
      e.set("length", Value::integer(len));
      e.set("depth", Value::integer(1));
      e.set("depth0", Value::integer(0));
      if (k > 0) e.set("previtem", items[k - 1]);
      if (k + 1 < n) e.set("nextitem", items[k + 1]);
      e.set("cycle", Value::callable("cycle", [idx](CallArgs& args, Evaluator&) {
              if (args.positional.empty()) fail("no items for cycling given");
              return args.positional[static_cast<size_t>(idx) % args.positional.size()];
            }));
      e.set("changed", Value::callable("changed", [last_changed](CallArgs& args, Evaluator&) {
              Value current = Value::list(args.positional);
              if (*last_changed && values_equal(**last_changed, current)) return Value::boolean(false);
              *last_changed = current;
              return Value::boolean(true);
            }));
      ev.assign("loop", loop);
      ev.render_body(body, out);
      if (ev.control == Evaluator::Control::Break) {
        ev.control = Evaluator::Control::None;
        break;
      }
      ev.control = Evaluator::Control::None;
    }
    if (n == 0) ev.render_body(else_body, out);
  });
}

namespace {

bool contains_object(const Value& v, const ObjectData* target) {
  if (v.is_object()) {
    if (v.object.get() == target) return true;
    for (const auto& [k, e] : v.object->entries)
      if (contains_object(e, target)) return true;
  } else if (v.is_array()) {
    for (const auto& e : v.array->items)
      if (contains_object(e, target)) return true;
  }
  return false;
}

}  // namespace

void SetStmt::render(Evaluator& ev, std::string& out) const {
  (void)out;
  Value v;
  if (value) {
    v = value->eval(ev);
  } else {
    std::string captured;
    ev.render_body(body, captured);
    v = Value::string(std::move(captured));
    for (const auto& f : filters) v = f->apply(ev, v);
  }
  ev.at(pos);
  if (!target.attribute.empty()) {
    Value ns = ev.lookup(target.names[0]);
    if (!ns.is_object() || !ns.object->is_namespace) fail("cannot assign attribute on non-namespace object");
    // A namespace stored inside itself would form a reference cycle.
    if (contains_object(v, ns.object.get())) fail("cannot store a namespace inside itself");
    ns.object->set(target.attribute, std::move(v));
    return;
  }
  bind_targets(ev, target.names, target.names.size() > 1, v);
}

namespace {

// Binds macro parameters and renders the body in an isolated scope.
Value invoke_macro(Evaluator& ev, const std::string& name, const std::vector<MacroParam>& params, const Body& body,
                   CallArgs& args, const Value* caller) {
  std::string out;
  ev.with_scope(true, [&] {
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& p = params[k];
      if (k < args.positional.size()) {
        ev.assign(p.name, args.positional[k]);
        continue;
      }
      bool found = false;
      for (const auto& [kw, v] : args.keyword)
        if (kw == p.name) {
          ev.assign(p.name, v);
          found = true;
        }
      if (!found)
        ev.assign(p.name, p.default_value ? p.default_value->eval(ev)
                                          : Value::undefined("parameter '" + p.name + "' was not provided"));
    }
    Array varargs;
    for (size_t k = params.size(); k < args.positional.size(); ++k) varargs.push_back(args.positional[k]);
    Value kwargs = Value::dict();
    for (const auto& [kw, v] : args.keyword) {
      bool known = false;
      for (const auto& p : params) known = known || p.name == kw;
      if (!known) {
        if (kw == "caller") {
          ev.assign("caller", v);
          continue;
        }
        kwargs.object->set(kw, v);
      }
    }
    ev.assign("varargs", Value::tuple(std::move(varargs)));
    ev.assign("kwargs", kwargs);
    if (caller) ev.assign("caller", *caller);
    ev.render_body(body, out);
    ev.control = Evaluator::Control::None;
  });
  (void)name;
  return Value::string(std::move(out));
}

}  // namespace

void MacroStmt::render(Evaluator& ev, std::string& out) const {
  (void)out;
  const MacroStmt* self = this;
  ev.assign(name, Value::callable(name, [self](CallArgs& args, Evaluator& e) {
              return invoke_macro(e, self->name, self->params, self->body, args, nullptr);
            }));
}

void CallBlockStmt::render(Evaluator& ev, std::string& out) const {
  const CallBlockStmt* self = this;
  Value caller = Value::callable("caller", [self](CallArgs& args, Evaluator& e) {
    return invoke_macro(e, "caller", self->caller_params, self->body, args, nullptr);
  });
  Value fn = call->callee->eval(ev);
  CallArgs args;
  for (const auto& e : call->args.positional) args.positional.push_back(e->eval(ev));
  for (const auto& [n, e] : call->args.keyword) args.keyword.emplace_back(n, e->eval(ev));
  args.keyword.emplace_back("caller", caller);
  ev.at(pos);
  if (!fn.is_callable()) fail("'" + fn.type_name() + "' object is not callable");
  // Macros pick `caller` out of the keywords; pass it through scope as well.
  Value result = ev.call(fn, args);
  out += to_str(result);
  ev.check_output(out);
}

void FilterBlockStmt::render(Evaluator& ev, std::string& out) const {
  std::string captured;
  ev.render_body(body, captured);
  Value v = Value::string(std::move(captured));
  for (const auto& f : filters) v = f->apply(ev, v);
  out += to_str(v);
  ev.check_output(out);
}

void WithStmt::render(Evaluator& ev, std::string& out) const {
  std::vector<Value> values;
  for (const auto& [name, e] : assignments) values.push_back(e->eval(ev));
  ev.with_scope(false, [&] {
    for (size_t k = 0; k < assignments.size(); ++k) ev.assign(assignments[k].first, values[k]);
    ev.render_body(body, out);
  });
}

void LoopControlStmt::render(Evaluator& ev, std::string& out) const {
  (void)out;
  ev.control = is_break ? Evaluator::Control::Break : Evaluator::Control::Continue;
}

// ---------------------------------------------------------------- Template

Template Template::parse(std::string_view source) {
  Template t;
  t.program_ = parse_template(source);
  return t;
}

std::string Template::render(const nlohmann::ordered_json& variables, const RenderOptions& options) const {
  if (!variables.is_object() && !variables.is_null()) throw Error("template variables must be a JSON object");
  Value globals;
  try {
    globals = make_globals(variables);
  } catch (const RenderError& e) {
    throw Error(std::string("chat template variables: ") + e.what());
  }
  Evaluator ev(program_, options, std::move(globals));
  return ev.render();
}

namespace {

bool is_content_access(const Expr* e) {
  if (auto* g = dynamic_cast<const GetAttrExpr*>(e)) return g->name == "content";
  if (auto* g = dynamic_cast<const GetItemExpr*>(e)) {
    auto* lit = dynamic_cast<const LiteralExpr*>(g->key.get());
    return lit && lit->value.is_string() && lit->value.s == "content";
  }
  if (auto* f = dynamic_cast<const FilterExpr*>(e)) return f->object && is_content_access(f->object.get());
  return false;
}

bool body_iterates_content(const Body& body) {
  for (const auto& s : body) {
    const Stmt* st = s.get();
    if (auto* f = dynamic_cast<const ForStmt*>(st)) {
      if (is_content_access(f->iterable.get())) return true;
      if (body_iterates_content(f->body) || body_iterates_content(f->else_body)) return true;
    } else if (auto* i = dynamic_cast<const IfStmt*>(st)) {
      for (const auto& [c, b] : i->branches)
        if (body_iterates_content(b)) return true;
      if (body_iterates_content(i->else_body)) return true;
    } else if (auto* m = dynamic_cast<const MacroStmt*>(st)) {
      if (body_iterates_content(m->body)) return true;
    } else if (auto* c = dynamic_cast<const CallBlockStmt*>(st)) {
      if (body_iterates_content(c->body)) return true;
    } else if (auto* w = dynamic_cast<const WithStmt*>(st)) {
      if (body_iterates_content(w->body)) return true;
    } else if (auto* fb = dynamic_cast<const FilterBlockStmt*>(st)) {
      if (body_iterates_content(fb->body)) return true;
    } else if (auto* set = dynamic_cast<const SetStmt*>(st)) {
      if (body_iterates_content(set->body)) return true;
    }
  }
  return false;
}

}  // namespace

bool Template::iterates_over_content() const { return body_iterates_content(program_->body); }

}  // namespace nibble::jinja

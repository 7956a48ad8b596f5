#pragma once
// The syntax tree of a parsed template. Expressions evaluate to Values and
// statements append to the output; both are implemented in jinja_eval.cpp.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja_error.h"
#include "jinja_value.h"

namespace nibble::jinja {

class Evaluator;

struct Expr {
  SourcePos pos;
  virtual ~Expr() = default;
  virtual Value eval(Evaluator& ev) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Arguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct LiteralExpr : Expr {
  Value value;
  Value eval(Evaluator& ev) const override;
};
struct NameExpr : Expr {
  std::string name;
  Value eval(Evaluator& ev) const override;
};
struct ListExpr : Expr {
  std::vector<ExprPtr> items;
  bool tuple = false;
  Value eval(Evaluator& ev) const override;
};
struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  Value eval(Evaluator& ev) const override;
};
struct GetAttrExpr : Expr {
  ExprPtr object;
  std::string name;
  Value eval(Evaluator& ev) const override;
};
struct GetItemExpr : Expr {
  ExprPtr object;
  ExprPtr key;
  Value eval(Evaluator& ev) const override;
};
struct SliceExpr : Expr {
  ExprPtr object, start, stop, step;  // bounds may be null
  Value eval(Evaluator& ev) const override;
};
struct CallExpr : Expr {
  ExprPtr callee;
  Arguments args;
  Value eval(Evaluator& ev) const override;
};
struct FilterExpr : Expr {
  ExprPtr object;  // null inside a {% filter %} block
  std::string name;
  Arguments args;
  Value eval(Evaluator& ev) const override;
  Value apply(Evaluator& ev, Value input) const;
};
struct TestExpr : Expr {
  ExprPtr object;
  std::string name;
  Arguments args;
  bool negated = false;
  Value eval(Evaluator& ev) const override;
};
struct UnaryExpr : Expr {
  std::string op;  // "-", "+", "not"
  ExprPtr operand;
  Value eval(Evaluator& ev) const override;
};
struct BinaryExpr : Expr {
  std::string op;  // + - * / // % ** ~ and or
  ExprPtr left, right;
  Value eval(Evaluator& ev) const override;
};
struct CompareExpr : Expr {
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> rest;  // == != < > <= >= in notin
  Value eval(Evaluator& ev) const override;
};
struct CondExpr : Expr {
  ExprPtr condition, then_value, else_value;  // else_value may be null
  Value eval(Evaluator& ev) const override;
};

struct Stmt {
  SourcePos pos;
  virtual ~Stmt() = default;
  virtual void render(Evaluator& ev, std::string& out) const = 0;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct DataStmt : Stmt {
  std::string text;
  void render(Evaluator& ev, std::string& out) const override;
};
struct OutputStmt : Stmt {
  ExprPtr expr;
  void render(Evaluator& ev, std::string& out) const override;
};
struct IfStmt : Stmt {
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body else_body;
  void render(Evaluator& ev, std::string& out) const override;
};
struct ForStmt : Stmt {
  std::vector<std::string> targets;
  bool unpack = false;  // `for a, b in ...`
  ExprPtr iterable;
  ExprPtr condition;  // `for x in y if cond`, may be null
  Body body, else_body;
  void render(Evaluator& ev, std::string& out) const override;
};
// `set` target: a name, `ns.attr`, or several names to unpack into.
struct SetTarget {
  std::vector<std::string> names;
  std::string attribute;  // non-empty for `set ns.attr = ...`
};
struct SetStmt : Stmt {
  SetTarget target;
  ExprPtr value;                              // `{% set x = value %}`
  Body body;                                  // `{% set x %}body{% endset %}`
  std::vector<std::unique_ptr<FilterExpr>> filters;  // `{% set x | filter %}`
  void render(Evaluator& ev, std::string& out) const override;
};
struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};
struct MacroStmt : Stmt {
  std::string name;
  std::vector<MacroParam> params;
  Body body;
  void render(Evaluator& ev, std::string& out) const override;
};
struct CallBlockStmt : Stmt {
  std::unique_ptr<CallExpr> call;
  std::vector<MacroParam> caller_params;
  Body body;
  void render(Evaluator& ev, std::string& out) const override;
};
struct FilterBlockStmt : Stmt {
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
  void render(Evaluator& ev, std::string& out) const override;
};
struct WithStmt : Stmt {
  std::vector<std::pair<std::string, ExprPtr>> assignments;
  Body body;
  void render(Evaluator& ev, std::string& out) const override;
};
struct LoopControlStmt : Stmt {
  bool is_break = false;
  void render(Evaluator& ev, std::string& out) const override;
};

struct Program {
  Body body;
};

}  // namespace nibble::jinja

#include "jinja_parser.h"

#include <charconv>
#include <cstdlib>

#include "jinja_lexer.h"
#include "nibble/core/error.h"

namespace nibble::jinja {
namespace {

constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::shared_ptr<const Program> run() {
    auto program = std::make_shared<Program>();
    program->body = parse_body({});
    if (peek().type != TokenType::End) error(peek().pos, "unexpected '" + describe(peek()) + "'");
    return program;
  }

 private:
  // Guards recursion so that deeply nested input errors instead of overflowing.
  struct Depth {
    explicit Depth(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting) parser.error(parser.peek().pos, "template nesting too deep");
    }
    ~Depth() { --parser.depth_; }
    Parser& parser;
  };

  const Token& peek(size_t ahead = 0) const {
    size_t k = std::min(index_ + ahead, tokens_.size() - 1);
    return tokens_[k];
  }
  const Token& next() {
    const Token& t = tokens_[index_];
    if (index_ + 1 < tokens_.size()) ++index_;
    return t;
  }
  [[noreturn]] void error(const SourcePos& pos, const std::string& message) const {
    throw Error(located(pos, message));
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::End: return "end of template";
      case TokenType::BlockBegin: return "{%";
      case TokenType::BlockEnd: return "%}";
      case TokenType::VariableBegin: return "{{";
      case TokenType::VariableEnd: return "}}";
      case TokenType::Data: return "text";
      default: return t.text;
    }
  }
  bool is_op(const std::string& op, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.type == TokenType::Operator && t.text == op;
  }
  bool is_name(const std::string& name, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.type == TokenType::Name && t.text == name;
  }
  void expect_op(const std::string& op) {
    if (!is_op(op)) error(peek().pos, "expected '" + op + "', got '" + describe(peek()) + "'");
    next();
  }
  std::string expect_name() {
    if (peek().type != TokenType::Name) error(peek().pos, "expected a name, got '" + describe(peek()) + "'");
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != TokenType::BlockEnd) error(peek().pos, "expected end of statement block, got '" + describe(peek()) + "'");
    next();
  }

  // Parses statements until a block tag whose keyword is in `terminators`
  // (left unconsumed, positioned on the keyword).
  Body parse_body(const std::vector<std::string>& terminators) {
    Depth depth(*this);
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::End) {
        if (!terminators.empty()) error(t.pos, "unexpected end of template, expected '" + terminators.front() + "'");
        return body;
      }
      if (t.type == TokenType::Data) {
        auto s = std::make_unique<DataStmt>();
        s->pos = t.pos;
        s->text = t.text;
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::VariableBegin) {
        auto s = std::make_unique<OutputStmt>();
        s->pos = t.pos;
        next();
        s->expr = parse_tuple_or_expression();
        if (peek().type != TokenType::VariableEnd) error(peek().pos, "expected '}}', got '" + describe(peek()) + "'");
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::BlockBegin) {
        const Token& keyword = peek(1);
        if (keyword.type != TokenType::Name) error(keyword.pos, "expected a statement name, got '" + describe(keyword) + "'");
        for (const auto& term : terminators)
          if (keyword.text == term) {
            next();  // BlockBegin; the caller consumes the keyword
            return body;
          }
        next();
        body.push_back(parse_statement());
      } else {
        error(t.pos, "unexpected '" + describe(t) + "'");
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& keyword = peek();
    const std::string& k = keyword.text;
    SourcePos pos = keyword.pos;
    StmtPtr stmt;
    if (k == "if") stmt = parse_if();
    else if (k == "for") stmt = parse_for();
    else if (k == "set") stmt = parse_set();
    else if (k == "macro") stmt = parse_macro();
    else if (k == "call") stmt = parse_call_block();
    else if (k == "filter") stmt = parse_filter_block();
    else if (k == "with") stmt = parse_with();
    else if (k == "generation") stmt = parse_generation();
    else if (k == "break" || k == "continue") {
      if (loop_depth_ == 0) error(pos, "'" + k + "' outside of a loop");
      next();
      auto s = std::make_unique<LoopControlStmt>();
      s->is_break = k == "break";
      expect_block_end();
      stmt = std::move(s);
    } else {
      error(pos, "unknown tag '" + k + "'");
    }
    stmt->pos = pos;
    return stmt;
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<IfStmt>();
    next();  // if
    ExprPtr cond = parse_tuple_or_expression();
    expect_block_end();
    while (true) {
      Body body = parse_body({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      std::string kw = next().text;
      if (kw == "elif") {
        cond = parse_tuple_or_expression();
        expect_block_end();
        continue;
      }
      if (kw == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"});
        next();
      }
      expect_block_end();
      return s;
    }
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<ForStmt>();
    next();  // for
    s->targets.push_back(expect_name());
    while (is_op(",")) {
      next();
      s->unpack = true;
      if (peek().type != TokenType::Name) break;
      s->targets.push_back(expect_name());
    }
    if (!is_name("in")) error(peek().pos, "expected 'in', got '" + describe(peek()) + "'");
    next();
    s->iterable = parse_tuple_or_expression(/*with_condexpr=*/false);
    if (is_name("if")) {
      next();
      s->condition = parse_expression();
    }
    if (is_name("recursive")) error(peek().pos, "recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    s->body = parse_body({"endfor", "else"});
    --loop_depth_;
    if (next().text == "else") {
      expect_block_end();
      int saved = loop_depth_;
      loop_depth_ = 0;
      s->else_body = parse_body({"endfor"});
      loop_depth_ = saved;
      next();
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set() {
    auto s = std::make_unique<SetStmt>();
    next();  // set
    s->target.names.push_back(expect_name());
    if (is_op(".")) {
      next();
      s->target.attribute = expect_name();
    } else {
      while (is_op(",")) {
        next();
        if (peek().type != TokenType::Name) break;
        s->target.names.push_back(expect_name());
      }
    }
    if (is_op("=")) {
      next();
      s->value = parse_tuple_or_expression();
      expect_block_end();
      return s;
    }
    if (s->target.names.size() != 1 || !s->target.attribute.empty())
      error(peek().pos, "expected '=' in set statement");
    while (is_op("|")) {
      next();
      s->filters.push_back(parse_filter_call(nullptr));
    }
    expect_block_end();
    s->body = parse_body({"endset"});
    next();
    expect_block_end();
    return s;
  }

  std::vector<MacroParam> parse_signature() {
    std::vector<MacroParam> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam p;
      p.name = expect_name();
      if (is_op("=")) {
        next();
        p.default_value = parse_expression();
      }
      params.push_back(std::move(p));
    }
    next();
    return params;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<MacroStmt>();
    next();  // macro
    s->name = expect_name();
    s->params = parse_signature();
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_body({"endmacro"});
    loop_depth_ = saved;
    next();
    if (peek().type == TokenType::Name && peek().text == s->name) next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<CallBlockStmt>();
    next();  // call
    if (is_op("(")) s->caller_params = parse_signature();
    ExprPtr expr = parse_expression();
    auto* call = dynamic_cast<CallExpr*>(expr.get());
    if (!call) error(peek().pos, "expected a call in a call block");
    expr.release();
    s->call.reset(call);
    expect_block_end();
    s->body = parse_body({"endcall"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<FilterBlockStmt>();
    next();  // filter
    s->filters.push_back(parse_filter_call(nullptr));
    while (is_op("|")) {
      next();
      s->filters.push_back(parse_filter_call(nullptr));
    }
    expect_block_end();
    s->body = parse_body({"endfilter"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<WithStmt>();
    next();  // with
    while (peek().type != TokenType::BlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      std::string name = expect_name();
      expect_op("=");
      s->assignments.emplace_back(name, parse_expression());
    }
    expect_block_end();
    s->body = parse_body({"endwith"});
    next();
    expect_block_end();
    return s;
  }

  // transformers' AssistantTracker extension: `{% generation %}` marks the
  // assistant's tokens and renders its body unchanged.
  StmtPtr parse_generation() {
    auto s = std::make_unique<WithStmt>();
    next();  // generation
    expect_block_end();
    s->body = parse_body({"endgeneration"});
    next();
    expect_block_end();
    return s;
  }

  // ---- expressions ----

  template <typename T>
  std::unique_ptr<T> make(const SourcePos& pos) {
    auto node = std::make_unique<T>();
    node->pos = pos;
    return node;
  }

  // An expression, or a bare tuple `a, b`.
  ExprPtr parse_tuple_or_expression(bool with_condexpr = true) {
    SourcePos pos = peek().pos;
    ExprPtr first = with_condexpr ? parse_expression() : parse_or();
    if (!is_op(",")) return first;
    auto tuple = make<ListExpr>(pos);
    tuple->tuple = true;
    tuple->items.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (!starts_expression()) break;
      tuple->items.push_back(with_condexpr ? parse_expression() : parse_or());
    }
    return tuple;
  }

  bool starts_expression() const {
    const Token& t = peek();
    if (t.type == TokenType::Name || t.type == TokenType::String || t.type == TokenType::Integer ||
        t.type == TokenType::Float)
      return true;
    return t.type == TokenType::Operator && (t.text == "(" || t.text == "[" || t.text == "{" || t.text == "-" || t.text == "+");
  }

  ExprPtr parse_expression() {
    Depth depth(*this);
    SourcePos pos = peek().pos;
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      next();
      auto cond = make<CondExpr>(pos);
      cond->then_value = std::move(expr);
      cond->condition = parse_or();
      if (is_name("else")) {
        next();
        cond->else_value = parse_expression();
      }
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr binary(const SourcePos& pos, std::string op, ExprPtr left, ExprPtr right) {
    auto b = make<BinaryExpr>(pos);
    b->op = std::move(op);
    b->left = std::move(left);
    b->right = std::move(right);
    return b;
  }

  ExprPtr parse_or() {
    SourcePos pos = peek().pos;
    ExprPtr left = parse_and();
    while (is_name("or")) {
      pos = next().pos;
      left = binary(pos, "or", std::move(left), parse_and());
    }
    return left;
  }
  ExprPtr parse_and() {
    SourcePos pos = peek().pos;
    ExprPtr left = parse_not();
    while (is_name("and")) {
      pos = next().pos;
      left = binary(pos, "and", std::move(left), parse_not());
    }
    return left;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      Depth depth(*this);
      auto u = make<UnaryExpr>(next().pos);
      u->op = "not";
      u->operand = parse_not();
      return u;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    SourcePos pos = peek().pos;
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> cmp;
    while (true) {
      std::string op;
      if (peek().type == TokenType::Operator &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make<CompareExpr>(pos);
        cmp->first = std::move(first);
      }
      cmp->rest.emplace_back(op, parse_math1());
    }
    if (cmp) return cmp;
    return first;
  }
  ExprPtr parse_math1() {
    SourcePos pos = peek().pos;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      pos = peek().pos;
      std::string op = next().text;
      left = binary(pos, op, std::move(left), parse_concat());
    }
    return left;
  }
  ExprPtr parse_concat() {
    SourcePos pos = peek().pos;
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      pos = next().pos;
      left = binary(pos, "~", std::move(left), parse_math2());
    }
    return left;
  }
  ExprPtr parse_math2() {
    SourcePos pos = peek().pos;
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      pos = peek().pos;
      std::string op = next().text;
      left = binary(pos, op, std::move(left), parse_pow());
    }
    return left;
  }
  ExprPtr parse_pow() {
    SourcePos pos = peek().pos;
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      pos = next().pos;
      left = binary(pos, "**", std::move(left), parse_unary(true));
    }
    return left;
  }
  ExprPtr parse_unary(bool with_filter) {
    Depth depth(*this);
    SourcePos pos = peek().pos;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto u = make<UnaryExpr>(pos);
      u->op = next().text;
      u->operand = parse_unary(false);
      node = std::move(u);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    SourcePos pos = t.pos;
    if (t.type == TokenType::Name) {
      std::string name = next().text;
      auto lit = make<LiteralExpr>(pos);
      if (name == "true" || name == "True") lit->value = Value::boolean(true);
      else if (name == "false" || name == "False") lit->value = Value::boolean(false);
      else if (name == "none" || name == "None") lit->value = Value::none();
      else {
        auto n = make<NameExpr>(pos);
        n->name = name;
        return n;
      }
      return lit;
    }
    if (t.type == TokenType::String) {
      std::string s;
      while (peek().type == TokenType::String) s += next().text;  // adjacent literals concatenate
      auto lit = make<LiteralExpr>(pos);
      lit->value = Value::string(std::move(s));
      return lit;
    }
    if (t.type == TokenType::Integer) {
      std::string text = next().text;
      auto lit = make<LiteralExpr>(pos);
      int64_t v = 0;
      auto res = std::from_chars(text.data(), text.data() + text.size(), v);
      if (res.ec != std::errc()) lit->value = Value::number(std::strtod(text.c_str(), nullptr));
      else lit->value = Value::integer(v);
      return lit;
    }
    if (t.type == TokenType::Float) {
      auto lit = make<LiteralExpr>(pos);
      lit->value = Value::number(std::strtod(next().text.c_str(), nullptr));
      return lit;
    }
    if (is_op("(")) {
      next();
      if (is_op(")")) {
        next();
        auto tuple = make<ListExpr>(pos);
        tuple->tuple = true;
        return tuple;
      }
      ExprPtr inner = parse_tuple_or_expression();
      expect_op(")");
      return inner;
    }
    if (is_op("[")) {
      next();
      auto list = make<ListExpr>(pos);
      while (!is_op("]")) {
        if (!list->items.empty()) expect_op(",");
        if (is_op("]")) break;
        list->items.push_back(parse_expression());
      }
      next();
      return list;
    }
    if (is_op("{")) {
      next();
      auto dict = make<DictExpr>(pos);
      while (!is_op("}")) {
        if (!dict->items.empty()) expect_op(",");
        if (is_op("}")) break;
        ExprPtr key = parse_expression();
        expect_op(":");
        dict->items.emplace_back(std::move(key), parse_expression());
      }
      next();
      return dict;
    }
    error(pos, "unexpected '" + describe(t) + "'");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      SourcePos pos = peek().pos;
      if (is_op(".")) {
        next();
        const Token& t = peek();
        if (t.type == TokenType::Name) {
          auto g = make<GetAttrExpr>(pos);
          g->object = std::move(node);
          g->name = next().text;
          node = std::move(g);
        } else if (t.type == TokenType::Integer) {
          auto g = make<GetItemExpr>(pos);
          g->object = std::move(node);
          auto lit = make<LiteralExpr>(t.pos);
          lit->value = Value::integer(std::strtoll(next().text.c_str(), nullptr, 10));
          g->key = std::move(lit);
          node = std::move(g);
        } else {
          error(t.pos, "expected a name after '.'");
        }
      } else if (is_op("[")) {
        next();
        node = parse_subscript(pos, std::move(node));
      } else if (is_op("(")) {
        auto c = make<CallExpr>(pos);
        c->callee = std::move(node);
        c->args = parse_call_args();
        node = std::move(c);
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(const SourcePos& pos, ExprPtr object) {
    ExprPtr start, stop, step;
    bool is_slice = false;
    if (!is_op(":")) start = parse_expression();
    if (is_op(":")) {
      is_slice = true;
      next();
      if (!is_op("]") && !is_op(":")) stop = parse_expression();
      if (is_op(":")) {
        next();
        if (!is_op("]")) step = parse_expression();
      }
    }
    expect_op("]");
    if (is_slice) {
      auto s = make<SliceExpr>(pos);
      s->object = std::move(object);
      s->start = std::move(start);
      s->stop = std::move(stop);
      s->step = std::move(step);
      return s;
    }
    auto g = make<GetItemExpr>(pos);
    g->object = std::move(object);
    g->key = std::move(start);
    return g;
  }

  Arguments parse_call_args() {
    Arguments args;
    expect_op("(");
    while (!is_op(")")) {
      if (!args.positional.empty() || !args.keyword.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error(peek().pos, "*args and **kwargs are not supported");
      if (peek().type == TokenType::Name && is_op("=", 1)) {
        std::string name = next().text;
        next();
        args.keyword.emplace_back(name, parse_expression());
      } else {
        if (!args.keyword.empty()) error(peek().pos, "positional argument follows keyword argument");
        args.positional.push_back(parse_expression());
      }
    }
    next();
    return args;
  }

  std::unique_ptr<FilterExpr> parse_filter_call(ExprPtr object) {
    SourcePos pos = peek().pos;
    auto f = make<FilterExpr>(pos);
    f->object = std::move(object);
    f->name = expect_name();
    while (is_op(".")) {  // dotted filter names
      next();
      f->name += "." + expect_name();
    }
    if (is_op("(")) f->args = parse_call_args();
    return f;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        next();
        node = parse_filter_call(std::move(node));
      } else if (is_name("is")) {
        SourcePos pos = next().pos;
        auto t = make<TestExpr>(pos);
        t->object = std::move(node);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name();
        if (is_op("(")) {
          t->args = parse_call_args();
        } else if (starts_test_argument()) {
          ExprPtr arg = parse_primary();
          t->args.positional.push_back(parse_postfix(std::move(arg)));
        }
        node = std::move(t);
      } else if (is_op("(")) {
        auto c = make<CallExpr>(peek().pos);
        c->callee = std::move(node);
        c->args = parse_call_args();
        node = std::move(c);
      } else {
        return node;
      }
    }
  }

  bool starts_test_argument() const {
    const Token& t = peek();
    if (t.type == TokenType::Name)
      return t.text != "else" && t.text != "or" && t.text != "and" && t.text != "if" && t.text != "in" &&
             t.text != "is" && t.text != "not";
    if (t.type == TokenType::String || t.type == TokenType::Integer || t.type == TokenType::Float) return true;
    return t.type == TokenType::Operator && (t.text == "[" || t.text == "{");
  }

  std::vector<Token> tokens_;
  size_t index_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

std::shared_ptr<const Program> parse_template(std::string_view source) {
  return Parser(tokenize(source)).run();
}

}  // namespace nibble::jinja

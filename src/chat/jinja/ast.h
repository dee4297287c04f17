// Syntax tree of a parsed template: expressions and statements, each remembering its source
// offset so that evaluation errors can name the template position.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja/value.h"

namespace mf::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum Kind {
    Literal,   // value
    Name,      // name
    Attr,      // a.name
    Item,      // a[b]
    Slice,     // a[b:c:d]  (missing parts are null)
    Call,      // a(args...)
    Filter,    // a | name(args...)
    Test,      // a is [not] name(args...)
    Unary,     // op a      ("not", "-", "+")
    Binary,    // a op b    (+ - * / // % ** ~ and or)
    Compare,   // a op b op c ...   (== != < > <= >= in "not in")
    Cond,      // a if b else c
    ListLit,   // [args...]
    DictLit,   // {args[0]: args[1], ...}
  } kind;
  size_t pos = 0;
  Value value;                       // Literal
  std::string name;                  // Name / Attr / Filter / Test / Unary / Binary op
  bool negated = false;              // Test
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> args;         // Call/Filter/Test/ListLit/DictLit args
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;      // Compare: ops[i] sits between operand i and i+1
  int height = 1;                    // 1 + the tallest child's height (bounded by the parser)
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Block } kind;
  size_t pos = 0;
  std::string text;                                 // Text
  ExprPtr expr;                                     // Output / Set value / For iterable
  std::vector<std::pair<ExprPtr, Body>> branches;   // If: (condition, body); else has null cond
  std::vector<std::string> targets;                 // For loop variables; Set/SetBlock/Macro name
  std::string attr;                                 // Set: ns.attr target
  ExprPtr filter;                                   // For ... if filter
  Body body, else_body;                             // For, SetBlock, Macro, Block
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro parameters with defaults
};

}  // namespace mf::jinja

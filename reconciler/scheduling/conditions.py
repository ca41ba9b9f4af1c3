"""`conditions:` of DAG operations and hooks, evaluated without `eval`.

Conditions are written as small boolean expressions (`{{ loss < 0.1 and kind == 'full' }}`)
over params and upstream outputs. They come from Git, so they are parsed with `ast` and only a
whitelist of node types is interpreted: literals, names, attribute and item access on plain data,
comparisons, boolean and arithmetic operators, conditional expressions and a few pure builtins.
No calls into objects, no attribute access on anything but mappings, no exponentiation, and
size limits on the results, so a condition can neither run code nor exhaust memory.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

_WRAPPED = re.compile(r"^\s*{{(.*)}}\s*$", re.DOTALL)
MAX_LENGTH = 2000
MAX_SIZE = 10_000  # longest string or list a condition may build

_CONSTANTS = {"true": True, "false": False, "none": None, "null": None, "True": True, "False": False, "None": None}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


class ConditionError(ValueError):
    """The condition does not parse, uses something not allowed, or fails to evaluate."""


def _bounded(value: Any) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SIZE:
        raise ConditionError(f"a value built by the condition is longer than {MAX_SIZE}")
    return value


class _Evaluator:
    def __init__(self, names: Mapping[str, Any]) -> None:
        self.names = names

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ConditionError(f"{type(node).__name__} is not allowed in a condition")
        return method(node)

    def _Expression(self, node: ast.Expression) -> Any:
        return self.eval(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (str, int, float, bool, type(None))):
            raise ConditionError(f"constant {node.value!r} is not allowed")
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.names:
            return self.names[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ConditionError(f"unknown name {node.id!r}")

    def _Attribute(self, node: ast.Attribute) -> Any:
        base = self.eval(node.value)
        if isinstance(base, Mapping) and node.attr in base:
            return base[node.attr]
        raise ConditionError(f"{node.attr!r} is not available")

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.eval(node.value)
        key = self.eval(node.slice)
        try:
            return base[key]
        except (KeyError, IndexError, TypeError) as e:
            raise ConditionError(f"cannot read [{key!r}]: {e}") from None

    def _List(self, node: ast.List) -> Any:
        return _bounded([self.eval(e) for e in node.elts])

    def _Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.eval(e) for e in node.elts)

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for value in node.values:
                result = self.eval(value)
                if not result:
                    return result
            return result
        result = False
        for value in node.values:
            result = self.eval(value)
            if result:
                return result
        return result

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return +operand
        raise ConditionError(f"operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Any:
        fn = _BINARY.get(type(node.op))
        if fn is None:
            raise ConditionError(f"operator {type(node.op).__name__} is not allowed")
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Mult) and any(isinstance(v, (str, list, tuple)) for v in (left, right)):
            count = right if isinstance(right, int) else left
            if isinstance(count, int) and count > MAX_SIZE:
                raise ConditionError("repetition is too large")
        return _bounded(fn(left, right))

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise ConditionError("only len, int, float, str, bool, abs, min, max and round may be called")
        return _bounded(_FUNCTIONS[node.func.id](*(self.eval(a) for a in node.args)))


def evaluate(expression: str, names: Mapping[str, Any]) -> bool:
    """The truth of `expression` (optionally wrapped in `{{ }}`) over `names`."""
    if len(expression) > MAX_LENGTH:
        raise ConditionError(f"a condition is limited to {MAX_LENGTH} characters")
    wrapped = _WRAPPED.match(expression)
    text = (wrapped.group(1) if wrapped else expression).strip()
    if not text:
        raise ConditionError("the condition is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ConditionError(f"the condition does not parse: {e.msg}") from None
    try:
        return bool(_Evaluator(names).eval(tree))
    except ConditionError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise ConditionError(f"the condition fails: {e}") from None


__all__ = ["ConditionError", "evaluate"]

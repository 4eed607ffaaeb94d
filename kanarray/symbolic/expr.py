"""Formulas as small expression trees, printed as text, LaTeX or NumPy code without sympy.

    e = add([mul([num(2.0), call("sin", var("x_1"))]), call("x^2", var("x_2")), num(1.5)])
    text(e)     -> '2*sin(x_1) + x_2**2 + 1.5'
    latex(e)    -> '2 \\sin\\left(x_{1}\\right) + x_{2}^{2} + 1.5'
    code(e)     -> NumPy code that computes exactly what the model computes

A node is a tuple: ("num", value), ("var", name), ("add", terms), ("mul", factors),
("call", library function name, argument) and, for display only, ("pow", base, exponent). The
constructors keep trees small as they are built: sums and products are flattened, their numbers
folded into one, zero terms and unit factors dropped, and a number times a sum distributed over
it, so that composing a network edge by edge (kanarray.symbolic.formula) gives the formula a
person would write, not its wiring. `text` and `latex` write each library function as the math
it is (x^2 a power, 1/x a division) with parentheses only where precedence needs them; `code`
writes its safe numeric form (the guards that keep a formula finite where the network is,
kanarray.funcs.forms), and `evaluate` computes with the library's own functions. `digits`
rounds numbers for display (a number that rounds to an integer prints as one).
"""
import re

import numpy as np

from ..funcs import library as slib

# library function name -> how it reads: a function of its argument's tree (display nodes)
DISPLAY = {
    "x": lambda z: z, "0": lambda z: num(0.0),
    "x^1.5": lambda z: power(z, 1.5), "sqrt": lambda z: ("call", "sqrt", z),
    "1/sqrt(x)": lambda z: power(("call", "sqrt", z), -1),
    "gaussian": lambda z: ("call", "exp", mul([num(-1.0), power(z, 2)])),
    "sgn": lambda z: ("call", "sign", z), "arcsin": lambda z: ("call", "asin", z),
    "arccos": lambda z: ("call", "acos", z), "arctan": lambda z: ("call", "atan", z),
    "arctanh": lambda z: ("call", "atanh", z),
    **{f"x^{n}": (lambda n: lambda z: power(z, n))(n) for n in range(2, 6)},
    "1/x": lambda z: power(z, -1),
    **{f"1/x^{n}": (lambda n: lambda z: power(z, -n))(n) for n in range(2, 6)},
}
LATEX_COMMANDS = {"sin": r"\sin", "cos": r"\cos", "tan": r"\tan", "tanh": r"\tanh", "exp": r"\exp",
                  "log": r"\log", "asin": r"\arcsin", "acos": r"\arccos", "atan": r"\arctan"}


def num(value):
    return ("num", float(value))


def var(name):
    return ("var", str(name))


def call(name, argument):
    return ("call", name, argument)


def add(terms):
    """The sum of terms: nested sums flattened, numbers folded into one, zeros dropped."""
    flat, constant = [], 0.0
    for term in terms:
        for t in (term[1] if term[0] == "add" else [term]):
            if t[0] == "num":
                constant += t[1]
            else:
                flat.append(t)
    if constant != 0 or not flat:
        flat.append(num(constant))
    return flat[0] if len(flat) == 1 else ("add", flat)


def mul(factors):
    """The product of factors: nested products flattened, numbers folded into one leading
    coefficient (0 makes 0), a number times a single sum distributed over it."""
    flat, coefficient = [], 1.0
    for factor in factors:
        for f in (factor[1] if factor[0] == "mul" else [factor]):
            if f[0] == "num":
                coefficient *= f[1]
            else:
                flat.append(f)
    if coefficient == 0 or not flat:
        return num(0.0 if flat else coefficient)
    if coefficient != 1 and len(flat) == 1 and flat[0][0] == "add":
        return add([mul([num(coefficient), t]) for t in flat[0][1]])
    if coefficient != 1:
        flat.insert(0, num(coefficient))
    return flat[0] if len(flat) == 1 else ("mul", flat)


def power(base, exponent):
    """base ** exponent (a number): powers of powers multiply, x**1 is x, x**0 is 1."""
    exponent = float(exponent)
    if exponent == 0:
        return num(1.0)
    if exponent == 1:
        return base
    if base[0] == "num":
        return num(base[1] ** exponent)
    if base[0] == "pow":
        return power(base[1], base[2] * exponent)
    return ("pow", base, exponent)


def affine(e, scale, shift):
    """scale * e + shift."""
    return add([mul([num(scale), e]), num(shift)])


def evaluate(e, values):
    """The value of e at inputs {name: NumPy array}, library functions by their own numeric
    form: what the model computes (formula checks without sympy)."""
    kind = e[0]
    if kind == "num":
        return e[1]
    if kind == "var":
        return np.asarray(values[e[1]], dtype=np.float64)
    if kind == "add":
        return sum(evaluate(t, values) for t in e[1])
    if kind == "mul":
        out = 1.0
        for f in e[1]:
            out = out * evaluate(f, values)
        return out
    if kind == "pow":
        return np.power(evaluate(e[1], values), e[2])
    if e[1] in slib.LIBRARY:
        return slib.LIBRARY[e[1]].f(np.asarray(evaluate(e[2], values), dtype=np.float64))
    return getattr(np, e[1])(evaluate(e[2], values))


def rounded(e, digits):
    """e with every number rounded to `digits` decimals (what a rounded formula computes)."""
    kind = e[0]
    if kind == "num":
        return num(round(e[1], digits))
    if kind == "var":
        return e
    if kind == "add":
        return add([rounded(t, digits) for t in e[1]])
    if kind == "mul":
        return mul([rounded(f, digits) for f in e[1]])
    if kind == "pow":
        return power(rounded(e[1], digits), e[2])
    return ("call", e[1], rounded(e[2], digits))


def display(e):
    """e with every library call written as the math it reads as (DISPLAY)."""
    kind = e[0]
    if kind in ("num", "var"):
        return e
    if kind == "add":
        return add([display(t) for t in e[1]])
    if kind == "mul":
        return mul([display(f) for f in e[1]])
    if kind == "pow":
        return power(display(e[1]), e[2])
    argument = display(e[2])
    return DISPLAY.get(e[1], lambda z: ("call", e[1], z))(argument)


# ---------------------------------------------------------------------- text and NumPy code
def text(e, digits=None):
    """Plain text in Python syntax (`**` for powers), minimal parentheses."""
    return _code(display(e if digits is None else rounded(e, digits)), digits, None)


def code(e, names=()):
    """NumPy code computing e exactly as the model does (library functions by their safe
    numeric forms, numbers in full precision) -> (expression, the NumPy names it uses)."""
    expression = _code(e, None, "safe")
    used = sorted(set(re.findall(r"\b([a-z][a-z0-9_]*)\(", expression)) - set(names))
    return expression, used


def _number(value, digits):
    if digits is not None:
        value = round(value, digits)
        if value != int(value) or abs(value) >= 1e15:
            return f"{value:.{digits}f}".rstrip("0")
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def _split_sign(e):
    """(True, |e|) when e prints with a leading minus: a negative number or coefficient."""
    if e[0] == "num" and e[1] < 0:
        return True, num(-e[1])
    if e[0] == "mul" and e[1][0][0] == "num" and e[1][0][1] < 0:
        return True, mul([num(-e[1][0][1]), *e[1][1:]])
    return False, e


def _code(e, digits, prefix):
    """e as Python source; prefix "safe": library calls by their safe numeric forms."""
    kind = e[0]
    if kind == "num":
        return _number(e[1], digits)
    if kind == "var":
        return e[1]
    if kind == "add":
        out = _code(e[1][0], digits, prefix)
        for term in e[1][1:]:
            negative, magnitude = _split_sign(term)
            out += (" - " if negative else " + ") + _code(magnitude, digits, prefix)
        return out
    if kind == "mul":
        negative, magnitude = _split_sign(e)
        if negative:
            return "-" + _factor(magnitude, digits, prefix, tight=False)
        above = [f for f in e[1] if not (f[0] == "pow" and f[2] < 0)]
        below = [power(f[1], -f[2]) for f in e[1] if f[0] == "pow" and f[2] < 0]
        out = "*".join(_factor(f, digits, prefix, tight=False) for f in above) or "1"
        return out + "".join("/" + _factor(f, digits, prefix, tight=True) for f in below)
    if kind == "pow":
        if e[2] < 0:
            return "1/" + _factor(power(e[1], -e[2]), digits, prefix, tight=True)
        base = _code(e[1], digits, prefix)
        if e[1][0] not in ("var", "call") and not (e[1][0] == "num" and e[1][1] >= 0):
            base = f"({base})"
        return f"{base}**{_number(e[2], None)}"
    argument = _code(e[2], digits, prefix)
    if prefix == "safe" and e[1] in slib.LIBRARY:  # the library's numeric form, guards and all
        return f"({slib.LIBRARY[e[1]].text(argument)})"
    return f"{e[1]}({argument})"


def _factor(e, digits, prefix, tight):
    """e as a factor of a product (tight: after a division sign, where a product needs
    parentheses too)."""
    s = _code(e, digits, prefix)
    wrap = e[0] == "add" or (tight and e[0] == "mul") or _split_sign(e)[0] and e[0] != "num"
    return f"({s})" if wrap else s


# ---------------------------------------------------------------------- LaTeX
def latex(e, digits=None):
    """LaTeX math (no surrounding $ signs)."""
    return _latex(display(e if digits is None else rounded(e, digits)), digits)


def _latex(e, digits):
    kind = e[0]
    if kind == "num":
        return _number(e[1], digits)
    if kind == "var":
        name, _, index = e[1].partition("_")
        return f"{name}_{{{index}}}" if index else name
    if kind == "add":
        out = _latex(e[1][0], digits)
        for term in e[1][1:]:
            negative, magnitude = _split_sign(term)
            out += (" - " if negative else " + ") + _latex(magnitude, digits)
        return out
    if kind == "mul":
        negative, magnitude = _split_sign(e)
        if negative:
            return "-" + _latex_factor(magnitude, digits)
        above = [f for f in e[1] if not (f[0] == "pow" and f[2] < 0)]
        below = [power(f[1], -f[2]) for f in e[1] if f[0] == "pow" and f[2] < 0]
        top = " ".join(_latex_factor(f, digits) for f in above) or "1"
        if not below:
            return top
        return f"\\frac{{{top}}}{{{' '.join(_latex_factor(f, digits) for f in below)}}}"
    if kind == "pow":
        base, exponent = e[1], e[2]
        if exponent < 0:
            return f"\\frac{{1}}{{{_latex(power(base, -exponent), digits)}}}"
        if exponent == 0.5:
            return f"\\sqrt{{{_latex(base, digits)}}}"
        body = _latex(base, digits)
        if base[0] not in ("var", "call") and not (base[0] == "num" and base[1] >= 0):
            body = f"\\left({body}\\right)"
        return f"{body}^{{{_number(exponent, None)}}}"
    name = e[1]
    argument = _latex(e[2], digits)
    if name == "abs":
        return f"\\left|{argument}\\right|"
    if name == "sqrt":
        return f"\\sqrt{{{argument}}}"
    command = LATEX_COMMANDS.get(name, f"\\operatorname{{{name}}}")
    return f"{command}\\left({argument}\\right)"


def _latex_factor(e, digits):
    s = _latex(e, digits)
    return f"\\left({s}\\right)" if e[0] == "add" else s

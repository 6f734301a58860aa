"""
exercises.py: an exercise is kept only when running it proves its docstring's examples (phi-1 section 2.2).

An exercise is a function whose docstring states the task and shows `>>>` examples, then its solution
(the paper's CodeExercises). A teacher's examples are claims; this module makes every kept one a fact:

  1. The teacher's own examples, when at least min_examples of them call the function and every one passes
     as a doctest in the sandbox (execution.run_programs), stay as they are: `examples_source: "teacher"`,
     its claims verified.
  2. Otherwise, with observe_calls (synth.py --examples executed, for weak teachers), the function is called
     on inputs: the teacher's own example calls, the literal calls it wrote around the function, then
     arguments made up from the signature (type hints, defaults, parameter names). The calls that return
     a short, distinct value replace the teacher's examples, with the values observed:
     `examples_source: "executed"`. Such examples show what the code does, not what the task asked for: a
     reader of the data can tell the two kinds apart.
  3. Either way the docstring as written to the row is rerun as a doctest in a fresh process, and a row
     whose examples do not all pass there is rejected. So no kept exercise has an uncalled body: a body
     that raises (`return undefined_name + 1/0`) has no call that returns, and is rejected.

    row = split_exercise(tree, lines, fn)       # synth.parse_exercise finds the function in a reply
    row = prove(row, ["f(2)"], ["apple", "moon"], observe_calls=True)   # ValueError("reason: detail") if unproven
"""

import ast
import doctest
import json
import re
import secrets

from execution import run_programs

TYPING_NAMES = {"Any", "Callable", "Deque", "DefaultDict", "Dict", "FrozenSet", "Generator", "Iterable",
                "Iterator", "List", "Mapping", "Optional", "Sequence", "Set", "Tuple", "Union"}
MODULES = {"bisect", "collections", "csv", "datetime", "decimal", "fractions", "functools", "heapq", "itertools",
           "json", "math", "operator", "random", "re", "statistics", "string", "time"}  # imported when used unimported
MAX_CALLS = 10      # calls tried per function: all of them run in one sandboxed process
MAX_EXAMPLES = 3    # observed examples written into a docstring
MAX_CHARS = 100     # longer calls or values would make unreadable doctests (and overflow the 1,000
                    # characters of stderr that run_programs hands back)
CALL_SECONDS = 1.0  # per call; an exercise's example should be instant


def split_exercise(tree, lines, fn):
    """A HumanEval-style row from function `fn` of the parsed code (tree, lines): `prompt` (imports,
    signature, docstring), `solution` (the body after the docstring), `text` = prompt + solution."""
    imports = [line for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
               for line in lines[n.lineno - 1:n.end_lineno]]
    # The only repair we make: imports that small models forget. `List[int]` with no typing import is the
    # commonest slip, then `math.sqrt` or `time.sleep` with no `import math`.
    imported = {a.asname or a.name for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    bound = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)} | {
        n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} - imported - bound
    modules = {n.value.id for n in ast.walk(fn) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    imports = [f"import {m}" for m in sorted(used & modules & MODULES)] + imports
    if used & TYPING_NAMES:
        imports.insert(0, f"from typing import {', '.join(sorted(used & TYPING_NAMES))}")
    first = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    head = "\n".join(imports) + "\n\n\n" if imports else ""
    prompt = head + "\n".join(lines[first - 1:fn.body[0].end_lineno]) + "\n"
    solution = "\n".join(lines[fn.body[0].end_lineno:fn.end_lineno]) + "\n"
    return {"text": prompt + solution, "prompt": prompt, "solution": solution, "entry_point": fn.name,
            "n_examples": len(example_calls(fn))}


def entry_function(text, name):
    return next(n for n in ast.parse(text).body if getattr(n, "name", None) == name)


def calls_function(source, name):
    try:
        return any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == name for n in ast.walk(ast.parse(source)))
    except (SyntaxError, ValueError):
        return False


def example_calls(fn):
    """The sources of the docstring's >>> examples that call fn."""
    examples = doctest.DocTestParser().get_examples(ast.get_docstring(fn) or "")
    return [ex.source.strip() for ex in examples if calls_function(ex.source, fn.name)]


def doctest_program(row):
    """A program that runs the docstring's >>> examples against the solution, failing if any fails."""
    return (row["text"] + "\n\nimport doctest as _doctest\n_out = []\n"
            "_runner = _doctest.DocTestRunner(optionflags=_doctest.ELLIPSIS | _doctest.NORMALIZE_WHITESPACE)\n"
            f"_test = _doctest.DocTestParser().get_doctest("
            f"{ast.get_docstring(entry_function(row['text'], row['entry_point']))!r}, "
            f"dict(globals()), {row['entry_point']!r}, None, 0)\n"
            "_runner.run(_test, out=_out.append)\n"
            "assert not _runner.failures, ''.join(_out)[-400:]\n")


# ----------------------------------------------------------------------------
# Inputs to call the function on.

def calls_of(tree, name, literal_only=True):
    """The calls of `name` in a parsed tree, as source, e.g. the teacher's `print(f([1, 2]))` gives "f([1, 2])".
    literal_only: only those whose arguments are literals (code around the function may use its variables)."""
    def literal(node):
        try:
            ast.literal_eval(node)
            return True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return not literal_only
    return [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name
            and all(literal(a) for a in n.args) and all(k.arg and literal(k.value) for k in n.keywords)]


# The kind of value a parameter takes, guessed from its name when it has no type hint or default.
NAME_KINDS = [(r"^(n|k|i|j|m|x|y|num|count|size|length|limit|index|number|times|steps|amount|age|year|target"
               r"|start|end|base|width|height|level|depth)$|_(count|num|size|index|number|id)$|^(num|n)_", "int"),
              (r"^(price|rate|ratio|weight|score|temperature|celsius|fahrenheit|radius|distance)$", "float"),
              (r"(words|names|strings|lines|tokens|sentences|letters|chars)$", "list[str]"),
              (r"^(d|dct|dict|mapping|counts|table|inventory|config|graph|scores_by_name)$|_(dict|map)$", "dict"),
              (r"^(s|text|string|word|name|sentence|line|message|char|c|prefix|suffix|pattern|key|title)$"
               r"|_(str|text|name|word)$", "str"),
              (r"(s|list|lst|arr|array|seq|sequence|data)$", "list")]


def guesses(kind, words):
    """Four arguments of one kind, different from each other, themed on the row's drawn words."""
    a, b = words[0], words[-1]
    return {"int": ["3", "0", "10", "-4"], "float": ["2.5", "0.0", "10.0", "-1.5"], "bool": ["True", "False"],
            "str": [repr(a), repr(f"{a} {b}"), "''", repr(b.upper())],
            "list[str]": [repr([a, b]), "[]", repr([b, a, a]), repr([a.upper()])],
            "list": ["[3, 1, 2]", "[]", "[5, -2, 5, 8]", "[7]"], "tuple": ["(1, 2)", "(3, 4)"],
            "set": ["{1, 2, 3}", "set()"], "dict": [repr({a: 3, b: 1}), "{}", repr({b: 0})],
            None: ["3", "[3, 1, 2]", repr(a), "0"]}[kind]


HINT_KINDS = [(r"(list|sequence|iterable|collection)\[str", "list[str]"),
              (r"(list|sequence|iterable|collection)", "list"), (r"(dict|mapping|defaultdict|counter)", "dict"),
              (r"tuple", "tuple"), (r"(set|frozenset)", "set"), (r"bool", "bool"), (r"float", "float"),
              (r"int", "int"), (r"str", "str")]


def kind_of(annotation, default, name):
    """'int', 'list[str]' ... from a type hint (ast), else a default value (ast), else the name; None: unknown."""
    if annotation is not None:
        hint = re.sub(r"typing\.|optional\[|\s", "", ast.unparse(annotation).lower())
        kind = next((kind for pattern, kind in HINT_KINDS if re.match(pattern, hint)), None)
        if kind:
            return kind
    if default is not None:
        try:
            kind = type(ast.literal_eval(default)).__name__
            return kind if kind in ("int", "float", "bool", "str", "list", "dict", "tuple", "set") else None
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    return next((kind for pattern, kind in NAME_KINDS if re.search(pattern, name.lower())), None)


def signature_calls(fn, words, n=4):
    """Up to n calls of fn with arguments made up from its signature: call k gives every parameter
    without a default its k-th guess, so the calls differ from each other."""
    params = fn.args.posonlyargs + fn.args.args
    defaults = [None] * (len(params) - len(fn.args.defaults)) + fn.args.defaults
    required = [(p, None) for p, d in zip(params, defaults) if d is None]
    required += [(p, d) for p, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is None]
    kinds = [guesses(kind_of(p.annotation, d, p.arg), words) for p, d in required]
    keyword = {p.arg for p in fn.args.kwonlyargs}
    calls = []
    for k in range(n if required else 1):
        args = [(f"{p.arg}=" if p.arg in keyword else "") + g[k % len(g)] for (p, _), g in zip(required, kinds)]
        calls.append(f"{fn.name}({', '.join(args)})")
    return calls


# ----------------------------------------------------------------------------
# Observing, rewriting the docstring, proving.

OBSERVE = r'''

import contextlib as _contextlib, io as _io, json as _json, signal as _signal, sys as _sys


def _observe(calls, want, max_chars, seconds, mark):
    """Call each source in turn; keep up to `want` that return a short value not seen before."""
    def timeout(*_):
        raise TimeoutError
    _signal.signal(_signal.SIGALRM, timeout)
    examples, outcomes = [], {}
    for call in calls:
        out = _io.StringIO()
        try:
            _signal.setitimer(_signal.ITIMER_REAL, seconds)
            with _contextlib.redirect_stdout(out):
                value = eval(call, globals())
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            shown = repr(value)
            if out.getvalue():  # a doctest would have to show the printout too
                what = "prints"
            elif value is None:
                what = "returns None"
            elif len(shown) > max_chars or "\n" in shown or '"""' in shown:
                what = "value too long"
            elif " at 0x" in shown:  # differs from run to run
                what = "shows a memory address"
            else:
                what = "repeats a value" if shown in [v for _, v in examples] else ""
        except BaseException as e:  # whatever the teacher's code raises, SystemExit included
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            what = f"raises {type(e).__name__}"
        if not what and len(examples) < want:
            examples.append((call, shown))
        outcomes[what or "returns a value"] = outcomes.get(what or "returns a value", 0) + 1
    print("\n" + mark + _json.dumps({"examples": examples, "outcomes": outcomes}), file=_sys.stderr)
'''


def observe(row, calls, timeout=10.0):
    """Run the exercise's function on each call in one sandboxed process. Returns ([(call, repr of its value)],
    {outcome: count}); a program that dies or hangs gives no examples."""
    mark = f"observed-{secrets.token_hex(8)}:"
    program = row["text"] + OBSERVE + f"\n_observe({calls!r}, {MAX_EXAMPLES}, {MAX_CHARS}, {CALL_SECONDS}, {mark!r})\n"
    result = run_programs([program], timeout=timeout, workers=1)[0]
    line = next((ln for ln in reversed(result["stderr"].splitlines()) if ln.startswith(mark)), None)
    if not result["passed"] or line is None:
        return [], {f"the program {result['result']}" if not result["passed"] else "no report": 1}
    seen = json.loads(line[len(mark):])
    return [tuple(e) for e in seen["examples"]], seen["outcomes"]


def with_examples(row, examples):
    """The row with its docstring's >>> examples replaced by `examples` [(call, repr of the value)]."""
    fn = entry_function(row["prompt"], row["entry_point"])
    doc, lines = fn.body[0], row["prompt"].splitlines()
    indent = " " * doc.col_offset
    parts = doctest.DocTestParser().parse(ast.get_docstring(fn))
    prose = "".join(p for p in parts if isinstance(p, str)).rstrip()
    prose = re.sub(r"\n\s*(for )?(examples?|usage|doctests?|tests?)( of use)?:?\s*$", "", prose, flags=re.I)
    body = prose.strip().splitlines() + [""] + [x for call, value in examples for x in (f">>> {call}", value)]
    text = "\n".join(indent + x if x else "" for x in body).lstrip()
    if '"""' in text:
        raise ValueError('docstring not rewritable: it holds """')
    literal = ("r" if "\\" in text else "") + f'"""{text}\n{indent}"""'
    if lines[doc.lineno - 1][:doc.col_offset].strip() or lines[doc.end_lineno - 1][doc.end_col_offset:].strip():
        raise ValueError("docstring not rewritable: it shares a line with code")
    prompt = "\n".join(lines[:doc.lineno - 1] + [indent + literal] + lines[doc.end_lineno:]) + "\n"
    return {**row, "prompt": prompt, "text": prompt + row["solution"], "n_examples": len(examples)}


def prove(row, calls, words, observe_calls=True, min_examples=1, timeout=10.0):
    """`row` with docstring examples that pass in the sandbox, and `examples_source` saying whose they are;
    ValueError("reason: detail") when there are none. `calls` are the teacher's literal calls of the function,
    `words` the row's drawn words (string arguments); see the module docstring."""
    fn = entry_function(row["text"], row["entry_point"])
    teacher = example_calls(fn)
    if len(teacher) >= min_examples:
        result = run_programs([doctest_program(row)], timeout=timeout, workers=1)[0]
        if result["passed"]:
            return {**row, "examples_source": "teacher"}
        problem = f"examples fail: {result['result']}; {result.get('stderr', '')[-300:]}"
    else:
        problem = f"too few examples: {len(teacher)} >>> examples call {fn.name}, {min_examples} needed"
    if not observe_calls:
        raise ValueError(problem)
    teacher = [c for source in teacher for c in calls_of(ast.parse(source), fn.name, literal_only=False)]
    tried = list(dict.fromkeys(c for c in teacher + calls + signature_calls(fn, words) if len(c) <= MAX_CHARS))
    examples, outcomes = observe(row, tried[:MAX_CALLS], timeout)
    if len(examples) < min_examples:
        raise ValueError(f"no example: {len(examples)} of {min(len(tried), MAX_CALLS)} calls return a distinct "
                         f"value, {min_examples} needed ({json.dumps(outcomes)})")
    row = with_examples(row, examples)
    result = run_programs([doctest_program(row)], timeout=timeout, workers=1)[0]
    if not result["passed"]:
        raise ValueError(f"observed examples fail on a rerun: {result['result']}; {result.get('stderr', '')[-300:]}")
    return {**row, "examples_source": "executed"}

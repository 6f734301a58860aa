"""
prompts.py: what synth.py asks its teacher (phi-1 section 2.2): random draws, and the prompts made from them.

The paper's key remark on synthetic data is that a teacher asked the same thing a million times writes the
same thing a million times, so it "injects randomness into the prompt". Every prompt here is assembled from
draws: a topic and subtopic from a built-in taxonomy, an audience, a style, a difficulty, random words to
weave in and a coding constraint (as TinyStories and Cosmopedia did), and for an exercise a function name.
Row i of seed s always gets the same draws. --seed-from replaces a textbook's topic and words with code
drawn from a file (Cosmopedia seeded with web extracts). The prompts are short: a 135M teacher loses the
thread of long instructions.

    from prompts import sample_params, make_messages, completion_prompt
    p = sample_params("exercises", seed=0, i=7)      # {"id": "exercises-0-7", "topic": ..., "function": ...}
    make_messages(p)       # the chat message
    completion_prompt(p)   # the same as code to continue, ending in `def {p["function"]}(`
"""

import ast
import itertools
import random

from prepare import iter_jsonl

# The pieces a prompt is drawn from.

TOPICS = {
    "Python basics": ["variables and assignment", "numbers and arithmetic", "strings and f-strings",
                      "booleans and comparisons", "if/elif/else", "while loops", "for loops and range",
                      "truthiness and None"],
    "Data structures": ["lists and slicing", "tuples and unpacking", "dictionaries", "sets",
                        "stacks and queues with deque", "heaps with heapq", "linked lists",
                        "dataclasses and namedtuples"],
    "Functions": ["default and keyword arguments", "*args and **kwargs", "closures", "decorators",
                  "recursion", "higher-order functions and lambda", "scope", "type hints"],
    "Iteration": ["list comprehensions", "generators and yield", "the iterator protocol", "itertools",
                  "enumerate and zip", "map, filter and reduce", "generator expressions", "lazy pipelines"],
    "Object-oriented programming": ["classes and instances", "inheritance", "special methods",
                                    "properties", "class and static methods", "abstract base classes",
                                    "composition", "__slots__"],
    "Strings and text": ["string methods", "regular expressions", "splitting and joining",
                         "text alignment and formatting", "unicode and encodings", "tokenizing text",
                         "palindromes and anagrams", "searching in text"],
    "Sorting and searching": ["binary search", "insertion sort", "merge sort", "quicksort",
                              "sorting with key functions", "two pointers", "sliding window",
                              "finding the k-th smallest element"],
    "Dynamic programming": ["memoization", "climbing stairs and Fibonacci", "knapsack",
                            "longest common subsequence", "edit distance", "coin change",
                            "backtracking", "divide and conquer"],
    "Graphs and trees": ["binary trees", "tree traversals", "binary search trees", "breadth-first search",
                         "depth-first search", "Dijkstra's shortest paths", "topological sort", "union-find"],
    "Mathematics": ["prime numbers", "greatest common divisor", "modular arithmetic", "combinatorics",
                    "matrices as nested lists", "number bases", "fractions", "mean, median and mode"],
    "Errors and exceptions": ["try and except", "raising exceptions", "custom exception classes",
                              "finally and cleanup", "assertions", "input validation", "context managers",
                              "error messages"],
    "Files and data formats": ["reading text files", "writing files", "pathlib", "JSON", "CSV",
                               "bytes and binary data", "walking directories", "configuration files"],
    "Standard library": ["collections.Counter", "collections.defaultdict", "datetime",
                         "functools.lru_cache and partial", "the math module", "the random module",
                         "the string module", "bisect"],
    "Testing and debugging": ["unit tests", "doctests", "edge cases", "debugging with print and pdb",
                              "test-driven development", "mocking", "invariants", "reading tracebacks"],
    "Performance": ["big-O complexity", "profiling", "choosing a data structure", "caching",
                    "avoiding quadratic loops", "lookup tables", "memory use", "streaming big data"],
    "Concurrency": ["threads", "the GIL", "multiprocessing", "asyncio basics", "queues between workers",
                    "locks and race conditions", "futures and executors", "timeouts and retries"],
    "Data processing": ["grouping and aggregating", "filtering records", "joining two datasets",
                        "parsing log lines", "cleaning messy data", "counting and histograms",
                        "transposing tables", "batching and pagination"],
    "Simulation and games": ["random walks", "dice and cards", "tic-tac-toe", "cellular automata",
                             "bank accounts", "inventory systems", "queues at a shop", "grid puzzles"],
    "Bits and encodings": ["binary representation", "bitwise operators", "bit masks", "checksums",
                           "run-length encoding", "base64", "Caesar ciphers", "hash functions"],
    "Software design": ["modules and packages", "naming and readability", "refactoring", "immutability",
                        "protocols and duck typing", "dependency injection", "state machines",
                        "command-line programs"],
}
AUDIENCES = ["complete beginners", "high-school students", "first-year computer science students",
             "self-taught programmers", "data scientists", "programmers coming from Java",
             "competitive programmers", "engineers preparing for interviews"]
STYLES = {  # a textbook's voice; an exercise's framing
    "textbooks": ["a formal textbook chapter", "a friendly tutorial built around an analogy",
                  "a step-by-step walkthrough", "a problem first, then the idea that solves it",
                  "a concise reference with examples", "a short story that teaches the idea",
                  "lecture notes ending with a practice question", "a comparison of two approaches"],
    "exercises": ["a real-world task", "a puzzle", "a data-cleaning task", "a game rule",
                  "a scientific calculation", "a text-processing utility", "a money calculation",
                  "an interview question"],
}
DIFFICULTIES = ["introductory", "easy", "medium", "hard"]
CONSTRAINTS = ["uses a list comprehension", "uses a dict comprehension", "uses a set",
               "handles an empty list", "handles negative numbers", "uses recursion", "uses a while loop",
               "makes a single pass over the data", "uses a generator", "raises ValueError on invalid input",
               "uses collections.Counter", "uses collections.defaultdict", "uses enumerate", "uses zip",
               "uses sorted with a key function", "uses the itertools module", "needs no imports",
               "returns a new object instead of changing its input", "uses early returns",
               "runs in O(n log n) time or better", "uses a dictionary for memoization",
               "ignores upper and lower case", "uses string slicing", "uses integer division and modulo"]
WORDS = """apple anchor badger balloon bakery bicycle blanket bridge butterfly cactus camera candle canyon
castle cherry cinema cloud comet compass cookie coral cottage crayon crystal desert diamond dolphin dragon
drum eagle engine feather festival firefly forest fountain garden glacier guitar hammer harbor helmet
honey island jacket jungle kettle kite ladder lantern lemon library lighthouse lion magnet maple market
meadow mirror moon mountain museum mushroom needle nest ocean orchard owl paint parrot pebble pepper
piano pirate planet pocket pumpkin puzzle quilt rabbit railway rainbow river robot rocket saddle sailor
satellite school shell shovel snail snow spider sponge squirrel stadium station storm sugar sunflower
telescope temple tiger tomato tower tractor treasure tunnel turtle umbrella valley violin volcano wagon
wallet waterfall whale whistle window wizard wolf yarn zebra""".split()

VERBS = ["count", "find", "sort", "group", "merge", "filter", "rank", "encode", "split", "match", "pair",
         "schedule", "simulate", "total", "clean", "compress"]
# The shape of an exercise, with placeholders rather than a real one: SmolLM2 handed a concrete example
# back verbatim in 12 of 40 answers, and a placeholder name in 14 of 20. So the name is drawn too
# (count_lantern, sort_comet ...: one more random seed for the task), and placeholders are caught.
EXERCISE_SHAPE = '''```python
def {name}(argument: type) -> type:
    """What the function does, in one or two sentences.
    >>> {name}(example_input)
    expected_output
    """
    solution code
```'''
PLACEHOLDERS = ("What the function does", "example_input", "expected_output", "solution code")


def sample_params(kind, seed, i):
    """The random draws behind row i. Seeding with the string (kind, seed, i) makes row i's prompt
    independent of every other row and of how many workers ran, so ids are stable across resumes."""
    rng = random.Random(f"{kind}:{seed}:{i}")
    topic = rng.choice(sorted(TOPICS))
    return {"id": f"{kind}-{seed}-{i}", "kind": kind, "topic": topic, "subtopic": rng.choice(TOPICS[topic]),
            "audience": rng.choice(AUDIENCES), "style": rng.choice(STYLES[kind]),
            "difficulty": rng.choice(DIFFICULTIES), "words": rng.sample(WORDS, 3 if kind == "textbooks" else 2),
            "constraint": rng.choice(CONSTRAINTS), "seed": seed, "index": i,
            **({"function": f"{rng.choice(VERBS)}_{rng.choice(WORDS)}"} if kind == "exercises" else {})}


EXTRACT_LINES = 30  # of a seed function or class: enough to show an idea, short enough for a small context


def load_seed_docs(path, limit=10000):
    """(id, text) of the first `limit` rows of a JSONL file with `text`, such as filter.py's kept.jsonl: the code
    that --seed-from draws textbook seeds from, as Cosmopedia seeds its prompts with web extracts."""
    docs = [(r.get("id", k), r["text"]) for k, r in enumerate(itertools.islice(iter_jsonl(path), limit))
            if isinstance(r.get("text"), str)]
    if not docs:
        raise SystemExit(f"--seed-from {path}: no rows with a `text`")
    return docs


def seeded(params, docs, tries=20):
    """Row `params` seeded with a top-level function or class (4 lines or more) of a drawn document, which
    takes the place of the taxonomy's topic and words. Documents without one are drawn again."""
    rng = random.Random(f"extract:{params['seed']}:{params['index']}")
    for _ in range(tries):
        doc_id, text = rng.choice(docs)
        try:
            nodes = [n for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.ClassDef)) and n.end_lineno - n.lineno >= 3]
        except (SyntaxError, ValueError):
            continue
        if nodes:
            n = rng.choice(nodes)
            code = "\n".join(text.splitlines()[n.lineno - 1:n.lineno - 1 + EXTRACT_LINES])
            return {**params, "topic": None, "subtopic": None, "words": [], "seed_code": f"{doc_id}:{n.name}",
                    "extract": code}
    raise ValueError(f"no function or class in {tries} documents drawn for {params['id']}")


def make_messages(p):
    """The chat message for one row's draws. Short and direct: a 135M teacher loses the thread of long
    instructions (with SmolLM2, a longer textbook prompt gave 0 usable answers in 12, this one 5 in 12)."""
    if p.get("extract"):
        user = (f"Here is some Python code:\n```python\n{p['extract']}\n```\nWrite a textbook section that "
                f"teaches the idea behind it to {p['audience']}, as {p['style']}, at {p['difficulty']} level. "
                f"Include a short example of your own in a ```python code block whose code {p['constraint']}, "
                f"and explain it.")
    elif p["kind"] == "textbooks":
        user = (f"Explain {p['subtopic']} ({p['topic']}) in Python to {p['audience']}, as {p['style']}, at "
                f"{p['difficulty']} level. Mention {', '.join(p['words'])}. Include a short example in a "
                f"```python code block whose code {p['constraint']}, and explain it.")
    else:
        user = (f"Write a Python exercise about {p['subtopic']} ({p['topic']}) for {p['audience']}, "
                f"{p['difficulty']} level, themed on {' and '.join(p['words'])}: {p['style']}. "
                f"The solution {p['constraint']}. Use only the standard library.\n"
                f"Answer with one ```python block in this shape, with type hints and two examples whose "
                f"results are exact:\n{EXERCISE_SHAPE.format(name=p['function'])}")
    return [{"role": "user", "content": user}]


def completion_prompt(p):
    """The same draws as code to continue (synth.py --completion): a comment states the task, and the drawn
    name opens the function, so a small code model writes the signature, docstring and body from there."""
    return (f"# A Python exercise about {p['subtopic']} ({p['topic']}) for {p['audience']}, {p['difficulty']} level, "
            f"themed on {' and '.join(p['words'])}: {p['style']}.\n# The solution {p['constraint']}. It has type "
            f"hints and a docstring with examples.\n\n\ndef {p['function']}(")


# Where a completion stops: where the function ends, at the next top-level block. The literal calls a teacher
# writes right under its function stay in (they are inputs to run it on); every token not generated is time saved.
# A chat answer needs no stop: a textbook's prose goes on after its code, and an exercise ends with the answer.
COMPLETION_STOPS = ["\n```", "\ndef ", "\nclass ", "\n\n\n\n"]

"""Every word the web application shows has its Russian: the messages in its code and templates,
extracted as `pybabel extract` extracts them, each translated in the Russian catalog with the same
placeholders. A new label without its translation fails here.

And every message the API can give a client (web/messages.py's templates are msgids, so each has its
Russian above): found in the source and held to a template; the templates read as in_language reads
them; the request models' refusals and the running app's, on a Russian page, translated."""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from pydantic import BaseModel, ValidationError

from api.errors import problem_text, problems_of
from web.i18n import Language
from web.messages import PART, TEMPLATES, in_language, template_of

WEB = Path(__file__).parents[2] / "web"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def test_every_message_of_the_web_application_is_translated_into_russian():
    catalog = read_po((WEB / "locale" / "ru" / "LC_MESSAGES" / "messages.po").open("rb"), locale="ru")
    extracted = {message for _, _, message, _, _ in extract_from_dir(str(WEB), METHODS, KEYWORDS)}
    assert len(extracted) > 200
    problems = []
    for message in extracted:
        entry = catalog.get(message)
        translations = entry.string if entry is not None and isinstance(entry.string, tuple) else \
            (entry.string,) if entry is not None else ()
        source = " ".join(message) if isinstance(message, tuple) else message
        if not translations or not all(translations):
            problems.append(f"untranslated: {source!r}")
        elif any(set(PLACEHOLDER.findall(t)) != set(PLACEHOLDER.findall(source)) for t in translations):
            problems.append(f"placeholders differ: {source!r}")
    assert problems == []


# ---- every message of the API has a template of web/messages.py ------------------------------------
#
# The walk reads the source of api/, workflows/, domain/ and web/ (``ast``) for the messages a client
# can be given: the message of every ``ApiError``; of every ``ApplicationError`` a validator refuses
# with (types ``not_permitted``, ``invalid``, ``conflict``: api.engine.act_refused answers them); of
# the request models' validators (``ValueError``, ``PydanticCustomError`` in domain/, as
# api.errors.problems_of words them); and every (field, message) problem of a 422 (the tuples given
# to ``invalid([...])`` and those of the functions that return problems). A message is followed to
# where its words are written: a message its function is given (``conflict(message)``), to each call
# of the function, with all its arguments as that call gives them (an act and its stage go
# together); a call, to what the function returns with the call's arguments (``only("decide", ...)``);
# ``self.check()``, to the method of the class's lineage; a name, to what it is assigned; a lookup in
# a dict, to each of its values; a condition that decides two parts, to the same branch for both.
# What the walk cannot know (``{reference}``, an attribute, pydantic's own words, a list of names) is
# any value. Each message so found must be read by a template: the template matches it (its unknown
# parts as values of the template's), or it is a wider form of the template (``the {…} has closed``
# of ``the case has closed``). A message added without its template (and so without its Russian)
# fails here, named where its words are written; a message the web application words itself must go
# through ``gettext`` (the catalog test above holds it).

ROOT = WEB.parent
SCANNED = ("api", "workflows", "domain", "web")
# the reference data's models, checked when the app starts (domain.reference.load): their
# ValueErrors stop the app, and never reach a client
NOT_A_CLIENTS = {"domain/reference.py"}
ANY = "\x00"  # a part of a message whose words the walk cannot know: any value
TRANSLATED = {"gettext", "ngettext", "_"}  # a message the web application words itself, in the catalog
# helpers that name things (a role in words) or list them (``a, b or c``) rather than word a message:
# any value, not each of the names or the forms of list they could give (``role_has_no_part`` names
# only roles without a part in the kind; ``only`` lists one state's authorities, or two states')
NAMES_A_THING = {"a_role", "role_name", "or_list", "and_list", "authorities_of"}
STRING_METHODS = {"join", "lower", "upper", "strip", "lstrip", "rstrip", "removeprefix", "removesuffix", "split",
                  "rsplit", "capitalize", "casefold", "title", "group", "get", "decode", "encode", "isoformat",
                  "strftime", "hexdigest", "model_dump_json"}
REFUSALS = {"NOT_PERMITTED", "INVALID", "CONFLICT"}  # workflows.rejection's types that reach a client
FORMAT_FIELD = re.compile(r"\{[^{}]*\}")
FIELD_FIRST = re.compile(r"^([A-Za-z_][\w.]*): (.+)$", re.S)  # as api.errors.FIELD_FIRST


def squeezed(text: str) -> str:
    return re.sub(f"{ANY}+", ANY, text)


@dataclass
class Module:
    path: str  # api/errors.py
    name: str  # api.errors
    tree: ast.Module
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    values: dict[str, ast.expr] = field(default_factory=dict)  # module-level NAME = value
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name → (module, name)


Function = ast.FunctionDef | ast.AsyncFunctionDef
# a function's parameters as one call gives them: (module, node, the caller's own parameters), or
# None where that call does not say (any value)
Env = dict[str, "tuple[Module, ast.expr, Env | None] | None"]
Choices = dict[str, bool]  # the branch taken of each condition of one expression (``len(needs) == 1``)


class Code:
    """The scanned modules, and what the walk needs of them: their functions, classes and calls."""

    def __init__(self, files: dict[str, str]) -> None:
        self.modules: dict[str, Module] = {}
        self.functions: dict[str, list[tuple[Module, Function]]] = {}
        self.classes: dict[str, list[tuple[Module, ast.ClassDef]]] = {}
        self.calls: dict[str, list[tuple[Module, ast.Call]]] = {}
        for path, source in files.items():
            name = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            module = Module(path, name, ast.parse(source, path))
            self.modules[name] = module
            for node in ast.walk(module.tree):
                for child in ast.iter_child_nodes(node):
                    module.parents[child] = node
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.functions.setdefault(node.name, []).append((module, node))
                elif isinstance(node, ast.ClassDef):
                    self.classes.setdefault(node.name, []).append((module, node))
                elif isinstance(node, ast.Call) and (callee := callee_name(node)):
                    self.calls.setdefault(callee, []).append((module, node))
                elif isinstance(node, ast.ImportFrom) and node.module:  # also under ``with``, or in a function
                    for alias in node.names:
                        module.imports[alias.asname or alias.name] = (node.module, alias.name)
            for statement in module.tree.body:
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                        and isinstance(statement.targets[0], ast.Name):
                    module.values[statement.targets[0].id] = statement.value
                elif isinstance(statement, ast.AnnAssign) and statement.value is not None \
                        and isinstance(statement.target, ast.Name):
                    module.values[statement.target.id] = statement.value
        self.following: set[tuple] = set()  # what is being followed now (a cycle is any value)

    # ---- where things are ---------------------------------------------------------------------

    def enclosing(self, module: Module, node: ast.AST, kind: type) -> ast.AST | None:
        while (node := module.parents.get(node)) is not None:
            if isinstance(node, kind):
                return node
        return None

    def function_of(self, module: Module, node: ast.AST) -> Function | None:
        return self.enclosing(module, node, ast.FunctionDef | ast.AsyncFunctionDef)  # type: ignore[return-value]

    def is_method(self, module: Module, fn: Function) -> bool:
        return isinstance(module.parents.get(fn), ast.ClassDef) and not any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)

    def module_named(self, module: Module, local: str) -> Module | None:
        """The scanned module a local name stands for (``from api import errors``)."""
        if local in module.imports:
            source, name = module.imports[local]
            return self.modules.get(f"{source}.{name}")
        return None

    def value_of(self, module: Module, name: str) -> tuple[Module, ast.expr] | None:
        """A module-level name's value, in its module or in the scanned module it is imported from."""
        if name in module.values:
            return module, module.values[name]
        if name in module.imports:
            source, original = module.imports[name]
            if (other := self.modules.get(source)) is not None and original in other.values:
                return other, other.values[original]
        return None

    def lineage(self, cls: ast.ClassDef, up: bool) -> list[tuple[Module, ast.ClassDef]]:
        """The scanned classes ``cls`` derives from (``up``, nearest first) or that derive from it."""
        out: list[tuple[Module, ast.ClassDef]] = []
        todo = [cls]
        while todo:
            current = todo.pop(0)
            if up:
                names = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in current.bases]
                found = [c for n in names for c in self.classes.get(n, ())]
            else:
                found = [c for cs in self.classes.values() for c in cs
                         if any(getattr(b, "id", getattr(b, "attr", None)) == current.name for b in c[1].bases)]
            for c in found:
                if all(c[1] is not o[1] for o in out):
                    out.append(c)
                    todo.append(c[1])
        return out

    def defs(self, module: Module, call: ast.Call) -> list[tuple[Module, Function]]:
        """The functions a call may run: a module's function by its name there (or as imported), a
        module alias's, ``self``'s method by the class's lineage, or any scanned method of its name."""
        f = call.func
        if isinstance(f, ast.Name):
            source, original = module.imports.get(f.id, (module.name, f.id))
            return [(m, fn) for m, fn in self.functions.get(original, ()) if m.name == source
                    and not isinstance(m.parents.get(fn), ast.ClassDef)]
        if not isinstance(f, ast.Attribute):
            return []
        if isinstance(f.value, ast.Name) and (other := self.module_named(module, f.value.id)) is not None:
            return [(m, fn) for m, fn in self.functions.get(f.attr, ()) if m is other]
        methods = [(m, fn) for m, fn in self.functions.get(f.attr, ()) if isinstance(m.parents.get(fn), ast.ClassDef)]
        cls = self.enclosing(module, call, ast.ClassDef)
        if isinstance(f.value, ast.Name) and f.value.id in ("self", "cls") and cls is not None:
            def own(c: ast.ClassDef) -> list[tuple[Module, Function]]:
                return [(m, fn) for m, fn in methods if m.parents.get(fn) is c]
            inherited = next((own(c) for c in [cls, *(c for _, c in self.lineage(cls, up=True))] if own(c)), [])
            overriding = [d for _, c in self.lineage(cls, up=False) for d in own(c)]
            if inherited or overriding:
                return inherited + overriding
        return methods

    def callers(self, module: Module, fn: Function) -> list[tuple[Module, ast.Call]]:
        """The calls that may run ``fn``: by its name, or by a name it is imported as."""
        names = {fn.name} | {local for m in self.modules.values() for local, (source, name) in m.imports.items()
                             if (source, name) == (module.name, fn.name)}
        return [(caller_module, call) for name in sorted(names) for caller_module, call in self.calls.get(name, [])
                if any(m is module and f is fn for m, f in self.defs(caller_module, call))]

    # ---- what a message may say ---------------------------------------------------------------

    def texts(self, module: Module, node: ast.expr | None, env: Env | None = None, depth: int = 0,
              choices: Choices | None = None) -> set[str]:
        """The words ``node`` may give, with ``ANY`` where they cannot be known; empty when it is no
        text at all (None). ``env``: the parameters of its function as one call gives them; without
        it, the words for each call of the function, in turn."""
        if node is None or depth > 60:
            return {ANY}
        d = depth + 1
        if env is None and (fn := self.function_of(module, node)) is not None and parameters_in(fn, node):
            return self.for_each_caller(module, fn, node, d)
        if choices is None and len(tests := shared_conditions(node)) in (1, 2, 3):
            out: set[str] = set()
            for branches in product((True, False), repeat=len(tests)):
                out |= self.texts(module, node, env, d, dict(zip(tests, branches)))
            return out
        if isinstance(node, ast.Constant):
            return {node.value} if isinstance(node.value, str) else set() if node.value is None else {ANY}
        if isinstance(node, ast.JoinedStr):
            out = {""}
            for part in node.values:
                if isinstance(part, ast.Constant):
                    values = {str(part.value)}
                elif part.format_spec is not None or part.conversion != -1:
                    values = {ANY}
                else:
                    values = self.texts(module, part.value, env, d, choices) or {ANY}
                out = capped({a + b for a in out for b in values})
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.texts(module, node.left, env, d, choices)
            right = self.texts(module, node.right, env, d, choices)
            return capped({a + b for a in left or {ANY} for b in right or {ANY}})
        if isinstance(node, ast.IfExp):
            taken = (choices or {}).get(ast.dump(node.test))
            return (self.texts(module, node.body, env, d, choices) if taken is not False else set()) | \
                (self.texts(module, node.orelse, env, d, choices) if taken is not True else set())
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.texts(module, v, env, d, choices) for v in node.values))
        if isinstance(node, ast.Await):
            return self.texts(module, node.value, env, d, choices)
        if isinstance(node, ast.Name):
            return self.name(module, node, env, d)
        if isinstance(node, ast.Call):
            return self.call(module, node, env, d)
        if isinstance(node, ast.Subscript):
            mapping = self.mapping(module, node.value)
            if mapping is not None:
                return set().union(*(self.texts(m, v, None, d) for m, v in mapping)) or {ANY}
        return {ANY}

    def for_each_caller(self, module: Module, fn: Function, node: ast.expr, depth: int) -> set[str]:
        """``node`` of ``fn`` for each call of ``fn``, its parameters as that call gives them (so
        that the parameters of one call go together: an act and its stage)."""
        key = ("callers", module.path, fn.lineno, node.lineno, node.col_offset)
        if key in self.following:
            return {ANY}
        self.following.add(key)
        try:
            callers = self.callers(module, fn)
            if not callers:  # a route, a handler: what it is given is any value
                return self.texts(module, node, {}, depth)
            out: set[str] = set()
            for caller_module, call in callers:
                out |= self.texts(module, node, bindings(fn, call, caller_module, self.is_method(module, fn), module),
                                  depth)
            return out
        finally:
            self.following.discard(key)

    def mapping(self, module: Module, node: ast.expr) -> list[tuple[Module, ast.expr]] | None:
        """The values of a dict that ``node`` names (a literal, or a module's), or None."""
        if isinstance(node, ast.Dict):
            return [(module, v) for v in node.values]
        if isinstance(node, ast.Name) and (found := self.value_of(module, node.id)) is not None \
                and isinstance(found[1], ast.Dict):
            return [(found[0], v) for v in found[1].values]
        return None

    def name(self, module: Module, node: ast.Name, env: Env | None, depth: int) -> set[str]:
        fn = self.function_of(module, node)
        if fn is not None:
            assigned, added, bound = local_bindings(fn, node.id)
            if assigned or added:
                out = set().union(*(self.texts(module, v, env, depth) for v in assigned)) if assigned else {ANY}
                for more in added:
                    out |= {a + b for a in out for b in self.texts(module, more, env, depth)}
                return capped(out | ({ANY} if bound else set()))
            if bound:
                return {ANY}
            if node.id in parameters(fn):
                given = (env or {}).get(node.id)
                return {ANY} if given is None else self.texts(given[0], given[1], given[2], depth) - {""}
        found = self.value_of(module, node.id)
        return {ANY} if found is None or isinstance(found[1], ast.Dict) else self.texts(found[0], found[1], None, depth)

    def call(self, module: Module, call: ast.Call, env: Env | None, depth: int) -> set[str]:
        """What a call gives: a string method's result, or what the function returns, its parameters
        as this call gives them."""
        f = call.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if name is None or name in TRANSLATED or name in NAMES_A_THING:
            return {ANY}
        if isinstance(f, ast.Attribute):
            if name == "format":
                return {FORMAT_FIELD.sub(ANY, t) for t in self.texts(module, f.value, env, depth)}
            if name == "get" and (mapping := self.mapping(module, f.value)) is not None:
                values = set().union(*(self.texts(m, v, None, depth) for m, v in mapping))
                return values | (self.texts(module, call.args[1], env, depth) if len(call.args) > 1 else set())
            if name == "replace" and len(call.args) == 2 and all(
                    isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args):
                old, new = (a.value for a in call.args)
                return {t.replace(old, new) for t in self.texts(module, f.value, env, depth)}
            if name in STRING_METHODS:
                return {ANY}
        out: set[str] = set()
        defs = self.defs(module, call)
        for def_module, fn in defs:
            key = ("call", def_module.path, fn.lineno)
            if key in self.following:
                out.add(ANY)
                continue
            self.following.add(key)
            try:
                inner = bindings(fn, call, module, self.is_method(def_module, fn), def_module, env)
                for node in returns(fn):
                    out |= self.texts(def_module, node.value, inner, depth)
            finally:
                self.following.discard(key)
        return out if defs else {ANY}

    # ---- the messages ---------------------------------------------------------------------------

    def messages(self) -> list[tuple[str, str]]:
        """(where, message) for every message a client may be given, ``ANY`` for what may vary;
        where: the call that gives its words (``conflict("...")``), not where it is raised."""
        found: list[tuple[str, str]] = []
        for module in self.modules.values():
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Call):
                    messages = self.refusals(module, node)
                elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and self.returns_problems(module, node):
                    messages = [(node.elts[1], problem_of(node.elts[0]))]
                else:
                    continue
                for message, wording in messages:
                    for where, env in self.sites(module, message):
                        found += [(where, squeezed(wording(t))) for t in self.texts(module, message, env)]
        return found

    def sites(self, module: Module, node: ast.expr) -> list[tuple[str, Env | None]]:
        """Where the words of ``node`` are given, with the parameters of its function as each place
        gives them: ``node``'s own place, or, for a message its function is given (``message`` of
        ``conflict``), each call of the function, and so on up while a call passes on a parameter of
        its own as it is (``deny`` → ``forbidden``)."""
        fn = self.function_of(module, node)
        here = f"{module.path}:{node.lineno}"
        if fn is None:
            return [(here, None)]
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & (set(parameters(fn)) - {"self", "cls"})
        if not used or any(local_bindings(fn, name)[0] for name in used):
            return [(here, None)]
        return self.calls_giving(module, fn, used, 0) or [(here, {})]

    def calls_giving(self, module: Module, fn: Function, used: set[str], depth: int) -> list[tuple[str, Env]]:
        out: list[tuple[str, Env]] = []
        key = ("sites", module.path, fn.lineno)
        if key in self.following or depth > 8:
            return out
        self.following.add(key)
        try:
            for caller_module, call in self.callers(module, fn):
                inner = bindings(fn, call, caller_module, self.is_method(module, fn), module)
                outer = self.function_of(caller_module, call)
                passed = {given[1].id for name, given in inner.items() if name in used and given is not None
                          and isinstance(given[1], ast.Name) and outer is not None
                          and given[1].id in parameters(outer)}
                further = self.calls_giving(caller_module, outer, passed, depth + 1) if passed else []
                if further:
                    out += [(where, bindings(fn, call, caller_module, self.is_method(module, fn), module, env))
                            for where, env in further]
                else:
                    out.append((f"{caller_module.path}:{call.lineno}", inner))
        finally:
            self.following.discard(key)
        return out

    def refusals(self, module: Module, call: ast.Call) -> list[tuple[ast.expr, Callable[[str], str]]]:
        """The message of a call that refuses (or none), and how the client is given its words."""
        name = callee_name(call)
        if name == "ApiError":
            message = keyword(call, "message") or (call.args[2] if len(call.args) > 2 else None)
            return [] if message is None or translated(message) else [(message, as_said)]
        if name == "ApplicationError":
            kind = keyword(call, "type")
            if not (isinstance(kind, ast.Name) and kind.id in REFUSALS):
                return []  # moving, already_opened: the client is never told (treatyflow.cases retries)
            return [(keyword(call, "message") or call.args[0], as_said)]
        if name == "ValueError" and module.path.startswith("domain/") and module.path not in NOT_A_CLIENTS:
            return [(call.args[0], field_first)]
        if name == "PydanticCustomError":
            return [(call.args[1], lambda t: f"{ANY} {t}")]
        if name == "FileRefused":  # a list of applicants refused whole (domain.applicants): the import page says it
            return [(call.args[0], as_said)]
        if name == "invalid" and call.args and isinstance(call.args[0], ast.List):
            return [(e.elts[1], problem_of(e.elts[0])) for e in call.args[0].elts
                    if isinstance(e, ast.Tuple) and len(e.elts) == 2]
        return []

    def returns_problems(self, module: Module, node: ast.Tuple) -> bool:
        """A (field, message) tuple of a function that returns problems: of type ``Problem``
        (domain.intake), or named for them (``handover_problem``, ``problems_of``)."""
        fn = self.function_of(module, node)
        if fn is None:
            return False
        return "problem" in fn.name or (fn.returns is not None and "Problem" in ast.unparse(fn.returns))


def as_said(text: str) -> str:
    return text


def problem_of(where: ast.expr) -> Callable[[str], str]:
    """As api.errors.problem_text shows a problem: the message, after ``field: `` unless it begins
    with the field (a field the walk cannot know may come before it, or not)."""
    if isinstance(where, ast.Constant) and where.value == "(body)":
        return as_said
    if not (isinstance(where, ast.Constant) and isinstance(where.value, str)):
        return lambda t: t if t.startswith(ANY) else ANY + t
    f = where.value
    return lambda t: t if t.startswith((f + " ", f + ",", f + ":")) else f"{f}: {t}"


def callee_name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def translated(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Call) and callee_name(node) in TRANSLATED


def capped(texts: set[str]) -> set[str]:
    texts = {squeezed(t) for t in texts}
    return texts if len(texts) <= 400 else {ANY}


def parameters(fn: Function) -> list[str]:
    return [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]


def local_bindings(fn: Function, name: str) -> tuple[list[ast.expr], list[ast.expr], bool]:
    """What ``fn`` assigns ``name`` (``name = ...``), adds to it (``name += ...``), and whether it
    binds it otherwise (a loop, an unpacking, ``with ... as``): then it is any value."""
    assigned: list[ast.expr] = []
    added: list[ast.expr] = []
    bound = False
    for n in ast.walk(fn):
        if isinstance(n, ast.Assign):
            for target in n.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    assigned.append(n.value)
                elif isinstance(target, ast.Tuple) and any(isinstance(e, ast.Name) and e.id == name
                                                           for e in target.elts):
                    bound = True
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == name \
                and n.value is not None:
            assigned.append(n.value)
        elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name) and n.target.id == name:
            added.append(n.value)
        elif isinstance(n, ast.NamedExpr) and n.target.id == name:
            assigned.append(n.value)
        elif isinstance(n, ast.For | ast.comprehension | ast.withitem):
            target = getattr(n, "target", None) or getattr(n, "optional_vars", None)
            bound = bound or any(isinstance(t, ast.Name) and t.id == name for t in ast.walk(target or ast.Pass()))
        elif isinstance(n, ast.ExceptHandler) and n.name == name:
            bound = True
    return assigned, added, bound


def parameters_in(fn: Function, node: ast.expr) -> bool:
    """Whether ``node`` reads a parameter of ``fn`` (but ``self``), directly or through the names
    ``fn`` assigns from them."""
    params = set(parameters(fn)) - {"self", "cls"}
    seen: set[str] = set()
    todo = [node]
    while todo:
        for n in ast.walk(todo.pop()):
            if isinstance(n, ast.Name) and n.id not in seen:
                seen.add(n.id)
                assigned, added, _ = local_bindings(fn, n.id)
                if assigned or added:
                    todo.extend(assigned + added)
                elif n.id in params:
                    return True
    return False


def shared_conditions(node: ast.expr) -> list[str]:
    """The conditions that decide two parts of ``node`` or more (``'measure' if len(needs) == 1``
    and ``'needs' if len(needs) == 1``): one branch for all of them."""
    tests = [ast.dump(n.test) for n in ast.walk(node) if isinstance(n, ast.IfExp)]
    return sorted({t for t in tests if tests.count(t) > 1})


def returns(fn: Function) -> list[ast.Return]:
    out, todo = [], list(fn.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Return) and node.value is not None:
            out.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))
    return out


def bound_argument(fn: Function, param: str, call: ast.Call, method: bool):
    """What ``call`` passes for ``param`` of ``fn``: the node, None (not passed), or Ellipsis (unknowable)."""
    if (given := keyword(call, param)) is not None:
        return given
    positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    if param not in positional:
        return None
    shift = 1 if method and isinstance(call.func, ast.Attribute) else 0
    index = positional.index(param) - shift
    if any(isinstance(a, ast.Starred) for a in call.args[:index + 1]) or any(k.arg is None for k in call.keywords):
        return Ellipsis
    return call.args[index] if 0 <= index < len(call.args) else None


def bindings(fn: Function, call: ast.Call, module: Module, method: bool, def_module: Module,
             env: Env | None = None) -> Env:
    """The parameters of ``fn`` as ``call`` (in ``module``, whose own parameters are ``env``) gives them."""
    positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    defaults = dict(zip(positional[len(positional) - len(fn.args.defaults):], fn.args.defaults))
    defaults |= {a.arg: d for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None}
    inner: Env = {}
    for param in (*positional, *(a.arg for a in fn.args.kwonlyargs)):
        arg = bound_argument(fn, param, call, method)
        if arg is Ellipsis:
            inner[param] = None
        elif arg is not None:
            inner[param] = (module, arg, env)
        elif param in defaults:
            inner[param] = (def_module, defaults[param], {})
        else:
            inner[param] = None
    return inner


def field_first(message: str) -> str:
    """A request model's error as api.errors.problems_of words it: a message naming its field
    first (``years: ...``) gets the field's path; one that begins with the field's name again
    (``grounds: grounds are ...``) keeps only that; the path before it is any."""
    if named := FIELD_FIRST.match(message):
        short, rest = named.groups()
        return ANY + rest if rest.startswith(short + " ") else f"{ANY}{short}: {rest}"
    if message.startswith(ANY + ": "):
        return ANY + message[3:]
    return f"{ANY} {message}"


TOKEN = "\x01"  # a part of one side, as the other side reads it


@lru_cache(maxsize=None)
def as_regex(text: str, part: str, empty: bool) -> re.Pattern[str]:
    wild = ".*" if empty else ".+"
    return re.compile("".join(wild if i % 2 else re.escape(p) for i, p in enumerate(re.split(f"({part})", text))),
                      re.S)


def covered(message: str, templates: list[str]) -> bool:
    """Whether a template reads ``message``: the template matches it, its unknown parts taken as
    values of the template's; or ``message`` is a wider form of the template (``the {…} has
    closed: ...`` of ``the case has closed: ...``), the template's parts taken as its unknown ones."""
    as_message = message.replace(ANY, TOKEN)
    for template in templates:
        if as_regex(template, ANY, False).fullmatch(as_message) \
                or as_regex(message, ANY, True).fullmatch(template.replace(ANY, TOKEN)):
            return True
    return False


def shown(message: str) -> str:
    return message.replace(ANY, "{…}")


def source_files() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))}


def uncovered(code: Code) -> list[str]:
    templates = [PART.sub(ANY, t) for t in TEMPLATES]
    return sorted({f"{where}: {shown(m)!r}" for where, m in code.messages() if not covered(m, templates)})


def test_every_message_of_the_api_has_a_template_of_the_web_application():
    code = Code(source_files())
    found = {m for _, m in code.messages()}
    assert len(found) > 200  # a walk that finds nothing would pass anything
    # the walk follows a message to its words: a role's act through two functions and a parameter
    # (api.acts.act → May.refusal → workflows.rejection.only); a validator's stage check, with its
    # act, from its callers; the operators' credential, by what each caller checks
    for words in (f"only {ANY} may record the declaration", f"only {ANY} may decide",
                  f"only {ANY} may report the result of measure {ANY}",
                  f"the {ANY} is in stage {ANY}: a declaration can be recorded only in stage awaiting_declaration",
                  f"measure {ANY} is in stage {ANY}: its result can be reported only in stage executing",
                  "the codec endpoints take the operators' credential, not an authority's key",
                  f"dual_criminality (satisfied or not_satisfied) is required to accept: measure {ANY} needs a "
                  "review of dual criminality",
                  f"{ANY} may have at most {ANY} {ANY}", f"{ANY} must be at most {ANY}",
                  f"{ANY}years: an indeterminate sentence has no term: send years, months and days as 0",
                  "signed_on may not lie in the future", "the request or the measure has closed: no more acts are "
                  "possible on it"):
        assert words in found, shown(words)
    # and never pairs what only different calls give (a measure's stage check with a case's act)
    assert f"measure {ANY} is in stage {ANY}: a declaration can be recorded only in stage awaiting_declaration" \
        not in found
    assert uncovered(code) == []


def test_a_new_message_without_its_template_fails():
    """The walk on a message that no template knows, however it is written."""
    code = Code({**source_files(), "api/frobnicate.py": (
        "from api.errors import ApiError, conflict\n"
        "from workflows.rejection import only\n"
        "def refuse(reference: str, what: str) -> None:\n"
        "    raise conflict(f'{reference} is frobnicated: try again')\n"
        "def route(request):\n"
        "    raise ApiError(403, 'forbidden', only(\"frobnicate the case\", ('KZ', [])))\n"
        "def act(request):\n"
        "    refuse(request.reference, 'x')\n")})
    assert [u for u in uncovered(code) if u.startswith("api/frobnicate.py")] == [
        "api/frobnicate.py:4: '{…} is frobnicated: try again'", "api/frobnicate.py:6: 'only {…} may frobnicate the case'"]


# ---- the templates, as in_language reads them ------------------------------------------------------

RU = Language("ru")


def sample(template: str) -> str:
    names = list(dict.fromkeys(PART.findall(template)))
    return template % {name: f"v{i}" for i, name in enumerate(names)}


def test_each_template_is_the_first_to_match_its_own_message():
    """No template takes another's message (a wider part reading more than its own)."""
    taken = [(template, found[0]) for template in TEMPLATES
             if (found := template_of(sample(template))) is None or found[0] != template]
    assert taken == []
    assert len(set(TEMPLATES)) == len(TEMPLATES)


@pytest.mark.parametrize(("message", "russian"), [
    ("only the central authority of KZ (kz-gpo) or its prison service (kz-penal) may record the declaration",
     "только центральный орган KZ (kz-gpo) или орган уголовно-исполнительной системы KZ (kz-penal) вправе "
     "зарегистрировать заявление осуждённого"),
    ("only the central authority of UZ (uz-gpo) may decide for UZ",
     "только центральный орган UZ (uz-gpo) вправе принять решение от имени UZ"),
    ("only the central authority of KZ (kz-gpo) may decide for UZ", None),  # two states: no such message
    ("reference must begin with KZ- (the code of the state that opens the case), such as KZ-2026-0001",
     "reference: номер должен начинаться с KZ- (кода государства, открывающего дело), например KZ-2026-0001"),
    ("grounds may cite only not_national, state_declined or no_dual_criminality in this case, not foo or bar",
     "grounds: по этому делу могут быть указаны только основания not_national, state_declined или "
     "no_dual_criminality, но не foo и bar"),
    ("grounds may cite only political_offence under this treaty, not foo",
     "grounds: по этому договору может быть указано только основание political_offence, но не foo"),
    ("declaration.voluntary and informed_of_consequences must be true: a declaration counts only when the person "
     "made it voluntarily and informed of its consequences",
     "declaration.voluntary и informed_of_consequences: значения должны быть true: заявление имеет силу, только если "
     "осуждённый сделал его добровольно и будучи осведомлённым о его правовых последствиях"),
    ("grounds, questions and postpone_until must be empty when the decision is accept",
     "grounds, questions и postpone_until: поля не заполняются при решении accept"),
    ("no such measure: the measures of this request are m1, m2 and m3",
     "мера не найдена: по этому запросу запрошены меры m1, m2 и m3"),
    ("judgment.offences may have at most 50 offences", "judgment.offences: можно указать не более 50 преступлений"),
    ("evidence may have at most 200 evidence items", "evidence: можно указать не более 200 доказательств"),
    # a 422 of two problems: each translated; a message with "; " of its own stays whole
    ("person.full_name may not be empty; sentence.years may not be negative",
     "person.full_name: значение не может быть пустым; sentence.years: значение не может быть отрицательным"),
    ("the handover is still being arranged; try again shortly; note is required to postpone: give the reason",
     "передача ещё организуется; повторите попытку чуть позже; note: для отсрочки укажите её причину"),
    ("person.full_name may not be empty; something the API never said",
     "person.full_name: значение не может быть пустым; something the API never said"),
    ("initiated_by must be one of sentenced_person, sentencing_state; reference must begin with KZ- (the code of "
     "the state that opens the case), such as KZ-2026-0001",
     "initiated_by: значение должно быть одним из следующих: sentenced_person, sentencing_state; reference: номер "
     "должен начинаться с KZ- (кода государства, открывающего дело), например KZ-2026-0001"),
])
def test_messages_are_read_as_their_template_says(message, russian):
    assert in_language(message, RU) == (russian or message)
    assert in_language(message, Language("en")) == message


# ---- the request models' own refusals, as the API words them, each in Russian ----------------------

def refusals_of(model: type[BaseModel], body: object) -> list[str]:
    """The problems the API answers ``body`` with (api.body.parse: strict JSON), as it words them."""
    try:
        model.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        return [problem_text(f, m) for f, m in problems_of(exc)]
    raise AssertionError(f"{model.__name__} took {body}")


def test_every_refusal_of_the_request_models_is_in_russian():
    from domain.assistance import AssistanceRequest, MeasureResult, Review
    from domain.transfer import Declaration, Decision, TransferRequest
    from treatyflow.samples import assistance_body, transfer_body

    t, a = transfer_body(), assistance_body()
    evidence = {"item_id": "e1", "description": "Ledger", "sha256": "a" * 64, "collected_on": "2026-11-02"}
    cases: list[tuple[type[BaseModel], object]] = [
        (TransferRequest, []),
        (TransferRequest, {**t, "extra": 1, "sentencing_state": "kz", "initiated_by": "nobody",
                           "received_on": "1899-12-31",
                           "person": {**t["person"], "full_name": "x" * 301, "citizenships": []},
                           "financial_obligations": [{"amount": "12,5", "currency": "kzt", "settled": "no"}]}),
        (TransferRequest, {**t, "judgment": {**t["judgment"], "date": "2026-13-01", "final": "yes",
                                             "offences": [t["judgment"]["offences"][0]] * 51},
                           "sentence": {**t["sentence"], "years": 101, "months": "5", "days": -1}}),
        (TransferRequest, {**t, "person": "x", "pending_proceedings": "none"}),
        (TransferRequest, {k: v for k, v in t.items() if k != "person"}),
        (TransferRequest, {**t, "sentence": {**t["sentence"], "indeterminate": True}}),
        (TransferRequest, {**t, "sentence": {**t["sentence"], "years": 0}}),
        (TransferRequest, {**t, "administering_state": "KZ"}),
        (TransferRequest, {**t, "previous_reference": t["reference"]}),
        (TransferRequest, {**t, "received_on": "2024-01-01"}),
        (TransferRequest, {**t, "declaration": {**t["declaration"], "voluntary": False,
                                                "informed_of_consequences": False}}),
        (Declaration, {**t["declaration"], "informed_of_consequences": False}),
        (Decision, {"state": "KZ", "decision": "refuse"}),
        (Decision, {"state": "KZ", "decision": "consent", "grounds": ["state_declined"]}),
        (Decision, {"state": "KZ", "decision": "refuse", "grounds": ["state_declined", "state_declined"]}),
        (Decision, {"state": "KZ", "decision": "refuse", "grounds": ["a", "a", "b", "b"]}),
        (Decision, {"state": "KZ", "decision": "refuse", "grounds": ["a"], "enforcement": "continued"}),
        (Decision, {"state": "KZ", "decision": "consent", "enforcement": "converted"}),
        (Decision, {"state": "KZ", "decision": "consent", "enforcement": "continued",
                    "converted_sentence": {"years": 1}}),
        (Decision, {"state": "KZ", "decision": "consent", "enforcement": "converted", "converted_sentence": {}}),
        (AssistanceRequest, {**a, "requested_state": "FR"}),
        (AssistanceRequest, {**a, "measures": [a["measures"][0], a["measures"][0]]}),
        (AssistanceRequest, {**a, "measures": [a["measures"][0]] * 3 + [a["measures"][1]] * 2}),
        (AssistanceRequest, {**a, "respond_by": "2026-10-01"}),
        (AssistanceRequest, {**a, "measures": [{**a["measures"][0], "id": "not an id!"}]}),
        (AssistanceRequest, {**a, "measures": [{**a["measures"][0], "id": f"m{i}"} for i in range(51)]}),
        (Review, {"decision": "refuse"}),
        (Review, {"decision": "refuse", "grounds": ["political_offence"], "questions": "Why?"}),
        (Review, {"decision": "accept", "grounds": ["political_offence"], "questions": "Why?",
                  "postpone_until": "2027-01-01"}),
        (Review, {"decision": "request_information"}),
        (Review, {"decision": "postpone"}),
        (Review, {"decision": "postpone", "note": "Hearing pending"}),
        (Review, {"decision": "postpone", "postpone_until": "2027-01-01"}),
        (MeasureResult, {"outcome": "executed"}),
        (MeasureResult, {"outcome": "executed", "evidence": [evidence, evidence]}),
        (MeasureResult, {"outcome": "executed", "evidence": [evidence] * 3 + [{**evidence, "item_id": "e2"}] * 2}),
        (MeasureResult, {"outcome": "executed", "evidence": [{**evidence, "item_id": "e 1", "sha256": "xyz"}]}),
        (MeasureResult, {"outcome": "executed", "evidence": [{**evidence, "item_id": f"e{i}"} for i in range(201)]}),
    ]
    said = [m for model, body in cases for m in refusals_of(model, body)]
    assert len(said) > 50
    for bound in ("judgment.offences may have at most 50 offences", "measures may have at most 50 measures",
                  "evidence may have at most 200 evidence items", "sentence.years may be at most 100 years"):
        assert bound in said
    assert [m for m in said if in_language(m, RU) == m] == []


# ---- real refusals of the running app, on a Russian page ---------------------------------------------

def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def errors_of(html: str) -> list[str]:
    return [m.strip() for m in re.findall(r'class="error"[^>]*>([^<]+)<', html)]


def alert_of(html: str) -> str:
    return re.search(r'<p role="alert">([^<]+)</p>', html).group(1)


async def russian_session(client: httpx.AsyncClient, key: str) -> str:
    """Signed in with an API key; the CSRF token of the session."""
    page = await client.get("/sign-in")
    answer = await client.post("/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": key, "next": "/inbox"})
    assert answer.status_code == 303, answer.text[:300]
    return csrf_of((await client.get("/inbox")).text)


@pytest.mark.asyncio(loop_scope="session")
async def test_the_apis_refusals_come_back_translated_on_a_russian_page(api_url):
    from treatyflow.samples import transfer_body

    body = transfer_body()
    ref = f"KZ-RU-{uuid.uuid4().hex[:8]}"
    form = {"reference": ref, "administering_state": "UZ", "initiated_by": "sentenced_person",
            "person.full_name": body["person"]["full_name"], "person.date_of_birth": body["person"]["date_of_birth"],
            "person.citizenships": "UZ", "judgment.court": body["judgment"]["court"],
            "judgment.date": body["judgment"]["date"], "judgment.final": "on", "row": "0",
            "offence.0.article": "188", "offence.0.iccs": "0502", "offence.0.description": "Theft",
            "sentence.start_date": body["sentence"]["start_date"], "sentence.years": "5",
            "declaration.signed_on": body["declaration"]["signed_on"], "declaration.voluntary": "on",
            "declaration.informed_of_consequences": "on", "action": "open"}
    ru = {"Accept-Language": "ru"}
    async with httpx.AsyncClient(base_url=api_url, headers=ru) as kz, \
            httpx.AsyncClient(base_url=api_url, headers=ru) as penal:
        token = await russian_session(kz, "demo-kz-gpo")
        # a 422 of the intake: the reference of another state
        foreign = await kz.post("/transfers/new", data={**form, "csrf_token": token, "reference": "UZ-2026-1"})
        assert foreign.status_code == 422
        assert "reference: номер должен начинаться с KZ- (кода государства, открывающего дело), например " \
               "KZ-2026-0001" in errors_of(foreign.text)
        # a 422 of a request model's rule: an indeterminate sentence with a term
        indeterminate = await kz.post("/transfers/new", data={**form, "csrf_token": token,
                                                               "sentence.indeterminate": "on"})
        assert indeterminate.status_code == 422
        assert "sentence.years: бессрочное наказание не имеет срока: укажите years, months и days равными 0" \
            in errors_of(indeterminate.text)
        opened = await kz.post("/transfers/new", data={**form, "csrf_token": token})
        assert opened.status_code == 303, errors_of(opened.text)
        # a 409 of the workflow's validator: the declaration came with the request
        late = await kz.post(f"/transfers/{ref}/declaration", data={"csrf_token": token, "voluntary": "on",
                                                                    "informed_of_consequences": "on",
                                                                    "signed_on": body["declaration"]["signed_on"]})
        assert late.status_code == 409
        assert errors_of(late.text) == ["дело находится на стадии awaiting_consents: заявление может быть "
                                        "зарегистрировано только на стадии awaiting_declaration"]
        # a 403 of the API: a prison service may not decide
        penal_token = await russian_session(penal, "demo-kz-penal")
        refused = await penal.post(f"/transfers/{ref}/decisions", data={"csrf_token": penal_token,
                                                                         "decision": "consent"})
        assert refused.status_code == 403
        assert alert_of(refused.text) == ("только центральный орган KZ (kz-gpo) или центральный орган UZ (uz-gpo) "
                                          "вправе принять решение")
        # a 403 of the web application: a form that did not come from its page
        forged = await kz.post(f"/transfers/{ref}/decisions", data={"csrf_token": "forged", "decision": "consent"})
        assert forged.status_code == 403
        assert alert_of(forged.text) == ("Срок действия формы истёк, или она отправлена не с этого сайта. Откройте "
                                         "страницу заново и отправьте форму с неё.")


@pytest.mark.asyncio(loop_scope="session")
async def test_the_apis_own_answers_have_their_russian(api_url):
    """What the API answers a client, each known to a template: keys, paths, methods, bodies, roles."""
    async with httpx.AsyncClient(base_url=api_url) as api:
        key = {"Authorization": "Bearer demo-kz-gpo"}
        answers = [
            await api.get("/v1/transfers"),  # 401
            await api.get("/v1/nowhere", headers=key),  # 404 of a path
            await api.delete("/v1/transfers", headers=key),  # 405
            await api.get("/v1/transfers/KZ-none-such", headers=key),  # 404 of a case
            await api.get("/v1/transfers?page_size=0&state=kz", headers=key),  # 422 of the query
            # 403s of roles: each role without a part in a kind, and a list for central authorities only
            await api.get("/v1/transfers", headers={"Authorization": "Bearer demo-kz-court"}),
            await api.get("/v1/transfers", headers={"Authorization": "Bearer demo-kz-police"}),
            await api.get("/v1/assistance-requests/FR-1", headers={"Authorization": "Bearer demo-kz-penal"}),
            await api.get("/v1/assistance-requests", headers={"Authorization": "Bearer demo-kz-police"}),
            await api.post("/v1/transfers", headers=key, content=b"reference=KZ-1"),  # 415
            await api.post("/v1/transfers", headers={**key, "Content-Type": "application/json"}, content=b"{"),
            await api.post("/v1/transfers", headers={**key, "Content-Type": "application/json"}, content=b"[]"),
            await api.get("/metrics", headers=key),  # dev mode: open; the codec is not
            await api.post("/codec/decode", headers=key, content=b"{}"),
        ]
    messages = [a.json()["error"]["message"] for a in answers if a.status_code >= 400]
    assert len(messages) == 13
    assert [m for m in messages if in_language(m, RU) == m] == []
    assert in_language(messages[0], RU) == ("требуется действительный ключ API в заголовке Authorization: Bearer <key> "
                                            "(в режиме разработки ключ органа — demo-<authority id>, например "
                                            "demo-kz-gpo)")

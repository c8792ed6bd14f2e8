"""Static checker for the Julia code under julia/ (no Julia needed).

The Julia side can only run where Julia is installed, so mistakes that Julia would
report at load or run time (syntax errors, imports of names that do not exist, a
misspelled function, type or variable) are caught here instead: sources are parsed
with tree-sitter-julia and every name used -- in call, macro, type and value position,
qualified (`Flux.gradient`) or not -- is resolved against the package's own
definitions, the local bindings of the enclosing top-level definition, and the name
lists of the pinned package versions in tests/data/julia-api/ (see the README there).
A package's extensions (ext/, loaded once the package and the extension's trigger weak
dependencies are) are checked as modules of their own, which see the package as one more import.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
import tree_sitter_julia
from tree_sitter import Language, Node, Parser

DATA = Path(__file__).resolve().parents[1] / "data" / "julia-api"
PARSER = Parser(Language(tree_sitter_julia.language()))

# Which name list describes each module in each environment (file names in DATA).
# Every package module can also use the stdlibs below; anything else must be in its [deps].
JULIA = {"flux": "1.10", "knet": "1.9"}
STDLIBS = ("LinearAlgebra", "Statistics", "Random", "Test", "Printf")
VERSIONS = {
    "flux": {"Flux": "Flux-0.16.11", "Optimisers": "Optimisers-0.4.8", "NNlib": "NNlib-0.9.36",
             "MLUtils": "MLUtils-0.4.10", "OneHotArrays": "OneHotArrays-0.2.10", "Zygote": "Zygote-0.7.12",
             "MLDataDevices": "MLDataDevices-1.17.10", "CUDA": "CUDA-5.11.3", "cuDNN": "cuDNN-1.4.6",
             "NPZ": "NPZ-0.4.3", "PythonCall": "PythonCall-0.9.28", "PrecompileTools": "PrecompileTools-1.2.1"},
    "knet": {"Knet": "Knet-1.4.10", "AutoGrad": "AutoGrad-1.2.5", "CUDA": "CUDA-3.13.1",
             "NPZ": "NPZ-0.4.3", "PythonCall": "PythonCall-0.9.28", "PrecompileTools": "PrecompileTools-1.2.1"},
}
for _env, _v in JULIA.items():
    VERSIONS[_env].update({s: f"{s}-{_v}" for s in (*STDLIBS, "Base", "Core")}, TOML="TOML-stdlib")
PACKAGE_ENV = {"BridgeFlux": "flux", "BridgeKnet": "knet"}  # julia/<folder> -> environment
# Where a package's [compat] admits more than one major version of a dependency, its code that uses
# the dependency (an extension) is also checked in an environment with the other major's lists:
# environment -> {variant environment: the lists it replaces}. BridgeFlux admits CUDA.jl 5 and 6
# (cuDNN.jl 1 and 6); CUDA.jl 6's lists are built by tests/julia/name_lists.py.
VARIANTS = {"flux": {"flux+cuda6": {"CUDA": "CUDA-6.3.0", "cuDNN": "cuDNN-6.3.0"}}}
for _env, _variants in VARIANTS.items():
    for _variant, _lists in _variants.items():
        VERSIONS[_variant] = VERSIONS[_env] | _lists
# Macros whose arguments are not Julia names (PythonCall's @py holds Python code).
OPAQUE_MACROS = {"@py"}
# PrecompileTools' workload blocks run only while the package is being precompiled, so what they
# bind does not exist when the package runs: their names are local to the block, not the module's.
WORKLOAD_MACROS = {"@setup_workload", "@compile_workload"}


@dataclass(frozen=True)
class Names:
    """What a module offers: `usable` after `using M`, `defined` as `M.name`."""
    usable: frozenset[str]
    defined: frozenset[str]


@functools.cache
def load_names(key: str) -> Names:
    def read(kind):
        p = DATA / f"{key}.{kind}.txt"
        return frozenset(p.read_text(encoding="utf-8").split("\n")) - {""} if p.exists() else frozenset()
    exports = read("exports")
    # Core has no defined list; its exports are all we know of it.
    return Names(exports - read("public"), read("defined") or exports)


@dataclass(frozen=True)
class Problem:
    kind: str  # "syntax", "import", "qualified" or "unqualified"
    line: int
    col: int
    name: str
    message: str

    def __str__(self):
        return f"{self.line}:{self.col}: {self.name}: {self.message}"


def parse(source: str | bytes):
    return PARSER.parse(source.encode() if isinstance(source, str) else source)


def text(n: Node) -> str:
    return n.text.decode()


def named(n: Node) -> list[Node]:
    return [c for c in n.children if c.is_named]


def walk(n: Node):
    yield n
    for c in n.children:
        yield from walk(c)


def problem(kind: str, n: Node, name: str, message: str) -> Problem:
    return Problem(kind, n.start_point[0] + 1, n.start_point[1] + 1, name, message)


def syntax_errors(tree) -> list[Problem]:
    # tree-sitter's recovery may wrap a whole definition in one ERROR node, so its extent is reported too
    return [problem("syntax", n, n.type, f"missing {n.type!r}") if n.is_missing else
            problem("syntax", n, text(n).split("\n")[0][:40], f"ERROR up to {n.end_point[0] + 1}:{n.end_point[1] + 1}")
            for n in walk(tree.root_node) if n.is_error or n.is_missing]


# ---------------------------------------------------------------- definitions

def macro_name(call: Node) -> str:
    """`@m`, `Mod.@m` -> "@m"; `@.` is Base's `@__dot__`."""
    mac = next(c for c in call.children if c.type == "macro_identifier")
    return "@__dot__" if not named(mac) or named(mac)[0].type != "identifier" else "@" + text(named(mac)[0])


def top_statements(n: Node):
    """Top-level statements; a `module` body, `begin`/`if` blocks and macro arguments
    (`@kwdef`, `@static if`, `@inline f(x) = ...`) also run at top level."""
    for c in named(n):
        if c.type == "macrocall_expression" and macro_name(c) in WORKLOAD_MACROS:
            yield c
        elif c.type in ("module_definition", "compound_statement", "if_statement", "elseif_clause",
                        "else_clause", "macrocall_expression", "macro_argument_list"):
            if c.type == "module_definition":
                yield c
            yield from top_statements(c)
        else:
            yield c


def strip_head(n: Node) -> Node:
    """`f(x)::T where {T}` -> `f(x)`: the part of a definition head that names it."""
    while n.type in ("where_expression", "typed_expression", "signature") and named(n):
        n = named(n)[0]
    return n


def defined_name(stmt: Node) -> list[str]:
    """Names a top-level statement adds to its module."""
    t = stmt.type
    if t == "module_definition":
        return [text(stmt.child_by_field_name("name"))]
    if t in ("const_statement", "global_statement"):
        return [x for c in named(stmt) for x in (defined_name(c) if c.type == "assignment" else [text(c)])]
    if t in ("struct_definition", "abstract_definition", "primitive_definition"):
        head = named(next(c for c in stmt.children if c.type == "type_head"))[0]
        head = named(head)[0] if head.type == "binary_expression" else head  # Foo <: Super
        return [text(named(head)[0] if head.type == "parametrized_type_expression" else head)]
    if t in ("function_definition", "macro_definition", "assignment"):
        head = strip_head(named(stmt)[0])
        if head.type == "call_expression":
            head = named(head)[0]
        elif head.type == "parametrized_type_expression":  # const V{T} = Vector{T}
            head = named(head)[0]
        prefix = "@" if t == "macro_definition" else ""
        if head.type == "identifier":
            return [prefix + text(head)]
        if head.type == "open_tuple" and t == "assignment":
            return [text(c) for c in named(head) if c.type == "identifier"]
    return []


# ------------------------------------------------------------- local bindings

def bind_pattern(n: Node, out: set[str]):
    """Names bound by an assignment target or parameter: `x`, `x::T`, `x=1`, `xs...`, `(a, b)`."""
    if n.type == "identifier":
        out.add(text(n))
    elif n.type in ("typed_expression", "named_argument", "splat_expression") and named(n):
        bind_pattern(named(n)[0], out)
    elif n.type in ("tuple_expression", "open_tuple", "argument_list", "parenthesized_expression"):
        for c in named(n):
            bind_pattern(c, out)


def bind_type_params(n: Node, out: set[str]):
    """`where {T<:Real, S}` / `Foo{T}`: the type parameters T, S."""
    for c in named(n) if n.type == "curly_expression" else [n]:
        if c.type == "binary_expression":  # T <: Real
            c = named(c)[0]
        if c.type == "identifier":
            out.add(text(c))


def local_bindings(stmt: Node) -> set[str]:
    """Every name bound anywhere inside one top-level statement.  Deliberately an
    over-approximation (scopes are ignored): a misspelled call still shows up,
    because a misspelling is rarely also bound somewhere in the same definition."""
    out: set[str] = set()
    for n in walk(stmt):
        t = n.type
        if t in ("function_definition", "macro_definition", "assignment", "compound_assignment_expression"):
            head = strip_head(named(n)[0]) if named(n) else n
            if head.type == "call_expression":  # a method: its name (closures) and parameters
                bind_pattern(named(head)[0], out)
                for arg in head.children[1:]:
                    bind_pattern(arg, out)
            elif head.type == "parametrized_type_expression" and t == "assignment":
                bind_type_params(named(head)[1], out)
            elif t != "function_definition":
                bind_pattern(head, out)
        elif t in ("for_binding", "let_binding", "arrow_function_expression") and named(n):
            bind_pattern(named(n)[0], out)
        elif t == "do_clause":
            for c in n.children:
                if c.type == "argument_list":
                    bind_pattern(c, out)
        elif t == "catch_clause" and named(n) and named(n)[0].type == "identifier":
            if named(n)[0].start_point[0] == n.start_point[0]:  # `catch e`, not a statement below
                out.add(text(named(n)[0]))
        elif t in ("local_statement", "global_statement"):
            for c in named(n):
                bind_pattern(c, out)
        elif t == "where_expression":
            bind_type_params(named(n)[-1], out)
        elif t in ("struct_definition", "abstract_definition"):
            out.add("new")  # inner constructors call new / new{T}
            for c in named(n):
                if c.type in ("identifier", "typed_expression"):  # fields
                    bind_pattern(c, out)
            for head in walk(next(c for c in n.children if c.type == "type_head")):
                if head.type == "parametrized_type_expression":
                    bind_type_params(named(head)[1], out)
                    break
    return out


# ----------------------------------------------------------------- the scope

@dataclass
class Scope:
    """What one Julia module (a package's src, or its tests) can see."""
    env: str
    available: dict[str, Names]  # modules this module may import
    modules: dict[str, Names] = field(default_factory=dict)  # module names visible here
    names: set[str] = field(default_factory=set)  # names usable unqualified
    opaque: list[str] = field(default_factory=list)  # `using`'d modules without a name list
    weak: frozenset[str] = frozenset()  # the package's weak dependencies that this module may not load


@dataclass
class Import:
    stmt: Node  # the using/import statement
    using: bool
    path: list[str]  # ["Flux"], ["Flux", "Optimisers"]; [".Sub"] for the package's own modules
    names: list[tuple[str, str]]  # explicitly imported: (name, bound as)
    alias: str | None  # import X as Y


def imports(tree):
    """One Import per clause of every `using`/`import` statement."""
    for stmt in walk(tree.root_node):
        if stmt.type not in ("using_statement", "import_statement"):
            continue
        for clause in named(stmt):
            names, alias = [], None
            if clause.type == "selected_import":  # X: a, b as c, @m
                clause, *picked = named(clause)
                names = [(text(named(c)[0]), text(named(c)[-1])) if c.type == "import_alias" else (text(c), text(c))
                         for c in picked]
            if clause.type == "import_alias":  # import X as Y
                clause, alias = named(clause)[0], text(named(clause)[-1])
            path = [text(c) for c in named(clause)] if clause.type == "scoped_identifier" else [text(clause)]
            if clause.type == "import_path":
                path = ["." + text(clause).lstrip(".")]
            if stmt.type == "import_statement" and len(path) > 1 and not names:  # import X.a binds a
                names, path = [(path[-1], path[-1])], path[:-1]
            yield Import(stmt, stmt.type == "using_statement", path, names, alias)


def build_scope(env: str, deps, trees, own: dict[str, Names] | None = None,
                importable: dict[str, Names] | None = None, weak=()) -> Scope:
    """Scope of a module made of `trees` (all its files) with the given [deps];
    `own` adds modules of this project that are in scope without an import (the package
    itself, in its own module), `importable` ones that must be imported first (the package,
    in its extensions); `weak` are weak dependencies it may not load."""
    versions = VERSIONS[env]
    lists = lambda m: load_names(versions[m]) if m in versions else None  # noqa: E731
    available = {m: lists(m) for m in {*deps, *STDLIBS, "TOML", "Base", "Core"}} | (importable or {}) | (own or {})
    scope = Scope(env, available, {"Base": lists("Base"), "Core": lists("Core")} | (own or {}),
                  weak=frozenset(weak) - available.keys())
    scope.names |= lists("Base").usable | {"eval", "include"}  # every module has its own eval and include
    for tree in trees:
        for stmt in top_statements(tree.root_node):
            scope.names.update(defined_name(stmt))
        for imp in imports(tree):
            for name, bound in imp.names:
                scope.names.add(bound)
                if lists(name):
                    scope.modules[bound] = lists(name)
            if imp.names:
                continue
            # `using Flux.Optimisers` needs Optimisers' list; relative paths are the package's own modules
            mod = available.get(imp.path[0]) if len(imp.path) == 1 else lists(imp.path[-1])
            bound = imp.alias or imp.path[-1].lstrip(".")
            scope.names.add(bound)
            if mod is not None:
                scope.modules[bound] = mod
                if imp.using:  # its exports, including re-exported modules (Flux -> Optimisers)
                    scope.names |= mod.usable
                    scope.modules.update((m, lists(m)) for m in mod.usable & versions.keys())
            elif imp.using and not imp.path[0].startswith("."):
                scope.opaque.append(bound)
    return scope


# ------------------------------------------------------------------ checking

def check(tree, scope: Scope) -> list[Problem]:
    """Import, qualified-name and unqualified-name problems of one file."""
    out = []
    for imp in imports(tree):
        head = imp.path[0]
        if head.startswith("."):
            continue
        if head in scope.weak:
            out.append(problem("import", imp.stmt, head, "is a weak dependency of this package: only an extension "
                               "that it triggers ([extensions] in Project.toml) may load it"))
        elif head not in scope.available:
            out.append(problem("import", imp.stmt, head, "is neither a dependency of this package nor a stdlib"))
        elif scope.available[head] is not None:
            mod, inner = scope.available[head], VERSIONS[scope.env].get(imp.path[-1])
            # `import A.B: c` looks c up in B when B has a list of its own
            target = mod if len(imp.path) == 1 else load_names(inner) if inner else None
            missing = [(n, head) for n in imp.path[1:] if n not in mod.defined]
            missing += [(n, imp.path[-1]) for n, _ in imp.names if target and n not in target.defined]
            out += [problem("import", imp.stmt, n, f"is not defined in {m}") for n, m in missing]
    for stmt in statements(tree.root_node):
        if stmt.type not in ("using_statement", "import_statement", "export_statement"):
            out += check_statement(stmt, scope, local_bindings(stmt))
    return out


def statements(n: Node):
    """Whole top-level statements (module bodies unpacked): the unit whose bindings
    count as local, so a `@testset begin ... end` or `if` block is one statement."""
    for c in named(n):
        if c.type == "module_definition":
            yield from statements(c)
        elif c.type != "identifier" or n.type != "module_definition":
            yield c


def module_of(n: Node, scope: Scope, local: set[str]) -> Names | None:
    """The module that `n` (`Flux`, `Flux.Optimisers`) denotes, if it has a name list."""
    if n.type == "identifier":
        return None if text(n) in local else scope.modules.get(text(n))
    if n.type == "field_expression" and module_of(named(n)[0], scope, local):
        name = text(named(n)[-1])
        return load_names(VERSIONS[scope.env][name]) if name in VERSIONS[scope.env] else None
    return None


# Identifiers in these roles are not references to a binding: keyword and named-tuple
# keys (`f(x; dims=1)`, `(a=1,)`), the field of `a.b`, names inside import/export lists.
NOT_REFERENCES = {"named_argument": 0, "named_field": 0, "field_expression": 1, "macro_identifier": 0,
                  "module_definition": 0, "scoped_identifier": 0, "import_path": 0, "selected_import": 0,
                  "import_alias": 0, "export_statement": 0, "prefixed_string_literal": 0}


def check_statement(stmt: Node, scope: Scope, local: set[str]) -> list[Problem]:
    """Every name a statement refers to: calls, macros, types, and values alike."""
    out = []

    def ref(n: Node, name: str):
        if name not in local and name not in scope.names and name not in scope.modules:
            hint = f" (unless exported by {', '.join(scope.opaque)}, which has no name list)" if scope.opaque else ""
            out.append(problem("unqualified", n, name, "is not defined, imported or bound here" + hint))

    def qualified(value: Node, name_node: Node, name: str):
        mod, head = module_of(value, scope, local), text(value)
        if mod is not None and name not in mod.defined:
            out.append(problem("qualified", name_node, f"{head}.{name}", f"{name} is not defined in {head}"))
        elif value.type == "identifier" and scope.available.get(head) is not None and \
                head not in local and head not in scope.names and head not in scope.modules:
            out.append(problem("qualified", value, f"{head}.{name}", f"module {head} is not imported here"))
        elif value.type == "identifier":
            ref(value, head)

    def visit(n: Node):
        t, kids = n.type, named(n)
        if t in ("quote_expression", "quote_statement"):  # code as data: only $-interpolations are evaluated
            for c in walk(n):
                if c.type == "interpolation_expression":
                    visit(c)
            return
        if t == "identifier":
            role, first = NOT_REFERENCES.get(n.parent.type), n.prev_named_sibling is None
            if (role is None or role == int(first)) and text(n) not in ("begin", "end"):
                ref(n, text(n))
        elif t == "macrocall_expression":
            mac, name = next(c for c in n.children if c.type == "macro_identifier"), macro_name(n)
            if kids[0].type == "macro_identifier":
                ref(mac, name)
            else:
                qualified(kids[0], mac, name)
            if name in OPAQUE_MACROS:
                return
            kids = kids[kids.index(mac) + 1:]  # the module part was checked by `qualified`
        elif t == "field_expression":
            op = [c for c in walk(kids[-1]) if c.type in ("identifier", "operator")]  # `Base.:+`
            if op and kids[-1].type in ("identifier", "quote_expression"):
                qualified(kids[0], kids[-1], text(op[0]))
            kids = [] if kids[0].type == "identifier" else kids[:1]
        for c in kids if t in ("macrocall_expression", "field_expression") else n.children:
            visit(c)

    visit(stmt)
    return out


# ----------------------------------------------------------- Julia packages

@functools.cache
def parse_file(path: Path):
    return parse(path.read_bytes())


def project(root: Path) -> dict:
    return tomllib.loads((root / "Project.toml").read_text(encoding="utf-8"))


def module_files(root: Path, test: bool) -> list[Path]:
    """The files of a package's module (its src/, the copy of julia/common/ in src/common/ included),
    or of its test module."""
    return sorted((root / ("test" if test else "src")).rglob("*.jl"))


def exported(trees) -> set[str]:
    return {text(c) for t in trees for n in walk(t.root_node) if n.type == "export_statement" for c in named(n)}


@functools.cache
def own_names(root: Path) -> dict[str, Names]:
    """Package `root` as a module seen from outside: its exports, and every top-level name of its src."""
    proj = project(root)
    src = [parse_file(p) for p in module_files(root, False)]
    inner = build_scope(PACKAGE_ENV[root.name], set(proj.get("deps", {})), src)
    name = proj["name"]
    return {name: Names(frozenset(exported(src) | {name}), frozenset(inner.names | inner.modules.keys() | {name}))}


@functools.cache
def package_scope(root: Path, test: bool = False) -> Scope:
    """The scope of package `root`'s module (or of its tests, which see the package
    itself as a module with its exports)."""
    proj = project(root)
    env, deps, weak = PACKAGE_ENV[root.name], set(proj.get("deps", {})), set(proj.get("weakdeps", {}))
    if not test:
        return build_scope(env, deps, [parse_file(p) for p in module_files(root, False)], own_names(root), weak=weak)
    test_deps = set(proj.get("extras", {})) & set(proj.get("targets", {}).get("test", []))
    if (root / "test" / "Project.toml").exists():
        test_deps |= set(project(root / "test").get("deps", {}))
    return build_scope(env, deps | test_deps, [parse_file(p) for p in module_files(root, True)], own_names(root),
                       weak=weak)


def extensions(root: Path) -> dict[str, list[str]]:
    """Project.toml [extensions]: extension module -> the weak dependencies that trigger it."""
    return {ext: [deps] if isinstance(deps, str) else list(deps)
            for ext, deps in project(root).get("extensions", {}).items()}


def literal_path(arg) -> list[str]:
    """An include's argument `"a/b.jl"` or `joinpath("a", "b.jl")` as path parts; [] for anything computed
    (`"$dir/x.jl"`)."""
    if arg.type == "string_literal" and all(c.type == "content" for c in named(arg)):
        return [text(arg)[1:-1]]
    if arg.type == "call_expression" and text(named(arg)[0]) == "joinpath":
        parts = [literal_path(a) for a in named(named(arg)[1])]
        return [p for part in parts for p in part] if all(parts) else []
    return []


def includes(path: Path) -> list[Path]:
    """The files `path` includes by a literal `include("file.jl")`, relative to its folder."""
    out = []
    for n in walk(parse_file(path).root_node):
        if n.type == "call_expression" and text(named(n)[0]) == "include" and len(named(n)) > 1:
            args = named(named(n)[1])
            if len(args) == 1 and (parts := literal_path(args[0])):
                out.append(path.parent.joinpath(*parts).resolve())
    return out


def extension_entry(root: Path, ext: str) -> Path | None:
    """Where Julia loads extension `ext` from: ext/<ext>/<ext>.jl if that exists, else ext/<ext>.jl."""
    folder = root.resolve() / "ext"
    return next((p for p in (folder / ext / f"{ext}.jl", folder / f"{ext}.jl") if p.is_file()), None)


def extension_files(root: Path, ext: str) -> list[Path]:
    """The files of extension `ext`: its entry file, the files that includes, and the rest of ext/<ext>/."""
    entry = [e] if (e := extension_entry(root, ext)) else []
    files = entry + sorted(p for p in (root.resolve() / "ext" / ext).rglob("*.jl") if p not in entry)
    for p in files:  # grows as includes are found
        files += [q for q in dict.fromkeys(includes(p)) if q.is_file() and q not in files]
    return files


def extensions_of(root: Path, path: Path) -> list[str]:
    """The extensions of package `root` whose module includes the file `path`."""
    return [ext for ext in extensions(root) if path.resolve() in extension_files(root, ext)]


@functools.cache
def extension_scope(root: Path, ext: str, env: str | None = None) -> Scope:
    """The scope of extension `ext` of package `root`: Julia loads it once the package and all
    the extension's triggers are loaded, so it may import the package (and see its top-level
    names), the package's [deps] and those triggers -- not the package's other weak dependencies.
    `env`: one of the package environment's VARIANTS instead of the environment itself."""
    proj = project(root)
    env, deps, weak = env or PACKAGE_ENV[root.name], set(proj.get("deps", {})), set(proj.get("weakdeps", {}))
    trees = [parse_file(p) for p in extension_files(root, ext)]
    return build_scope(env, deps | set(extensions(root)[ext]), trees, importable=own_names(root), weak=weak)

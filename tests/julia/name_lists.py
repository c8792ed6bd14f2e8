"""Name lists of CUDA.jl 6 (the `CUDA` and `cuDNN` modules) for the static checker, from a checkout.

CUDA.jl 6 split the package: `CUDA` is a shim that `@reexport`s `CUDACore` and `CUDATools` and
forwards their *public* names, so `CUDA.attribute` works only if CUDACore exports it or marks it
public (src/CUDA.jl at v6.3.0). What the shim forwards depends on the Julia version: on 1.11 the
names `names(mod)` returns (exported and `public`, which includes `@enum_without_prefix
visibility=:public` aliases, GPUToolbox src/enum.jl); on 1.10 the names recorded by the
`@public` macro (`PUBLIC_NAMES`) and every CEnum alias. This module keeps what both give:

- `CUDA-<v>.exports.txt`: the shim's own exports, CUDACore's and CUDATools' exports, and the
  bindings `Base.@deprecate_binding ... true` exports;
- `CUDA-<v>.defined.txt`: those, plus the `@public` names and `visibility=:public`/`:export` enum
  aliases of CUDACore and CUDATools, plus the shim's own top-level names and the names it imports
  -- less any name that CUDACore/CUDATools and a library the shim loads with `using` (cuBLAS, ...)
  both export, which Julia leaves ambiguous in `CUDA`;
- `cuDNN-<v>.exports.txt` / `.defined.txt`: the cuDNN module's exports, and its top-level names
  (definitions, `@cenum` types and their values, imported names).

Top-level means the module's own statements through literal `include`s, not those of modules nested
in it. Run with a checkout of the CUDA.jl tag (`git archive v6.3.0 | tar -x -C DIR`):

    python -m tests.julia.name_lists DIR 6.3.0

It writes the four files into tests/data/julia-api/ (the README there says where each list came from).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.julia import julia_static as js

# Statement lists whose items run at top level.
BLOCKS = ("compound_statement", "if_statement", "elseif_clause", "else_clause", "macro_argument_list")
# Macros read as statements by `scan`; any other macro's arguments (`@static if`, `@inline f() = ...`)
# are statements of the module.
READ = {"@public", "@enum_without_prefix", "@cenum", "@reexport", "@deprecate_binding"}
ENUM_WITHOUT_PREFIX = re.compile(r"@enum_without_prefix\s+(?:visibility\s*=\s*:(\w+)\s+)?([\w.]+)\s+(\w+)")


@dataclass
class Module:
    """What one module's top-level statements say about its names."""
    exports: set[str] = field(default_factory=set)
    public: set[str] = field(default_factory=set)
    defined: set[str] = field(default_factory=set)
    reexported: list[str] = field(default_factory=list)  # @reexport using X
    used: list[str] = field(default_factory=list)  # using X (whole modules)
    enums: dict[str, list[str]] = field(default_factory=dict)  # @cenum type -> its values
    aliases: dict[str, str] = field(default_factory=dict)  # const A = B
    without_prefix: list[tuple[str, str, str]] = field(default_factory=list)  # (visibility, enum, prefix)

    def enum_aliases(self, visibilities) -> set[str]:
        """The constants `@enum_without_prefix` defines with one of these visibilities."""
        out = set()
        for visibility, enum, prefix in self.without_prefix:
            if visibility in visibilities:
                values = self.enums.get(self.aliases.get(enum, enum), [])
                out |= {v[len(prefix):] for v in values if v.startswith(prefix)}
        return out


# Julia 1.11's `public` is a keyword to tree-sitter-julia 0.23.1, which then cannot parse CUDA.jl's
# own `macro public(...)` or `Expr(:public, ...)` and loses the rest of the file in one ERROR node:
# those two spellings are renamed before parsing (no name of the lists comes from them).
# The same for `const` fields of mutable structs (Julia 1.8), which it does not know: the field
# lines lose their `const`.
KEYWORD_CLASHES = [(re.compile(rb"\bmacro public\("), b"macro public_("), (re.compile(rb"Expr\(:public\b"), b"Expr(:public_"),
                   (re.compile(rb"(?m)^([ \t]+)const (\w+(?:::[^=\n]*)?)$"), rb"\1\2")]


PARSED: dict = {}  # path -> tree, every file read


def parse_file(path: Path):
    if path not in PARSED:
        source = path.read_bytes()
        for pattern, replacement in KEYWORD_CLASHES:
            source = pattern.sub(replacement, source)
        PARSED[path] = js.parse(source)
    return PARSED[path]


def statements(path: Path, entry: bool = True):
    """(file, statement) for the top-level statements of the module defined in file `path` (or of
    the module that includes it, `entry=False`), through literal includes, in order; nested modules'
    bodies are not this module's."""
    for stmt in js.named(parse_file(path).root_node):
        if entry and stmt.type == "module_definition":
            for c in js.named(stmt)[1:]:  # after its name
                yield from _expand(path, c)
        else:
            yield from _expand(path, stmt)


def _expand(path: Path, stmt):
    yield path, stmt
    if stmt.type == "call_expression" and js.text(js.named(stmt)[0]) == "include":
        args = js.named(js.named(stmt)[1]) if len(js.named(stmt)) > 1 else []
        if len(args) == 1 and (parts := js.literal_path(args[0])):
            yield from statements(path.parent.joinpath(*parts).resolve(), entry=False)
    elif stmt.type in BLOCKS or (stmt.type == "macrocall_expression" and js.macro_name(stmt) not in READ):
        for c in js.named(stmt):
            yield from _expand(path, c)


def scan(entry: Path) -> Module:
    m = Module()
    for _, stmt in statements(entry):
        t = stmt.type
        if t == "export_statement":
            m.exports |= {js.text(c) for c in js.named(stmt)}
        elif t == "macrocall_expression":
            name, args = js.macro_name(stmt), js.named(stmt)[-1]
            if name == "@public":
                items = js.named(args)[0]
                items = js.named(items) if items.type == "open_tuple" else [items]
                m.public |= {js.text(c) for c in items}
            elif name == "@enum_without_prefix":
                hit = ENUM_WITHOUT_PREFIX.match(js.text(stmt))
                m.without_prefix.append((hit.group(1) or "", hit.group(2).split(".")[-1], hit.group(3)))
            elif name == "@cenum":
                head, body = js.named(args)[0], js.named(args)[-1]
                enum = js.text(js.named(head)[0] if head.type == "typed_expression" else head)
                values = [js.named(c)[0] if c.type == "assignment" else c for c in js.named(body)]
                m.enums[enum] = [js.text(v) for v in values if v.type == "identifier"]
                m.defined |= {enum, *m.enums[enum]}
            elif name == "@reexport":
                m.reexported += [js.text(js.named(u)[0]) for u in js.named(args) if u.type == "using_statement"]
            elif name == "@deprecate_binding":
                old, *rest = js.named(args)
                m.defined.add(js.text(old))
                if len(rest) < 2 or js.text(rest[1]) == "true":  # export defaults to true
                    m.exports.add(js.text(old))
        elif t in ("using_statement", "import_statement"):
            for imp in js.imports(js.parse(js.text(stmt))):
                m.defined |= {bound for _, bound in imp.names} or {imp.alias or imp.path[-1].lstrip(".")}
                if imp.using and not imp.names and not imp.path[0].startswith("."):
                    m.used.append(imp.path[-1])
        else:
            names = js.defined_name(stmt)
            m.defined |= set(names)
            if t == "const_statement" and len(names) == 1:
                value = js.named(js.named(stmt)[0])[-1]
                if value.type == "identifier":
                    m.aliases[names[0]] = js.text(value)
    return m


def cuda_lists(root: Path) -> tuple[set[str], set[str]]:
    """(exports, defined) of CUDA.jl 6's `CUDA` module in the checkout at `root`."""
    shim = scan(root / "src" / "CUDA.jl")
    parts = {"CUDACore": root / "CUDACore" / "src" / "CUDACore.jl",
             "CUDATools": root / "CUDATools" / "src" / "CUDATools.jl"}
    if set(shim.reexported) != set(parts):
        raise SystemExit(f"src/CUDA.jl re-exports {shim.reexported}, not {sorted(parts)}: the forwarding "
                         "rules this tool encodes may no longer hold; read src/CUDA.jl again")
    scanned = {name: scan(path) for name, path in parts.items()}
    exports = shim.exports.union(*(p.exports | p.enum_aliases({"export"}) for p in scanned.values()))
    public = set().union(*(p.public | p.enum_aliases({"public"}) for p in scanned.values()))
    libraries = {"cuBLAS": "lib/cublas/src/cuBLAS.jl", "cuSPARSE": "lib/cusparse/src/cuSPARSE.jl",
                 "cuSOLVER": "lib/cusolver/src/cuSOLVER.jl", "cuFFT": "lib/cufft/src/cuFFT.jl",
                 "cuRAND": "lib/curand/src/cuRAND.jl"}
    ambiguous = set()
    for lib in set(shim.used) & libraries.keys():
        ambiguous |= scan(root / libraries[lib]).exports & (exports - shim.exports) - {lib}
    exports = (exports - ambiguous) | {"CUDA"}  # a module's own name, as the other lists have it
    return exports, exports | public | shim.defined - ambiguous


def cudnn_lists(root: Path) -> tuple[set[str], set[str]]:
    m = scan(root / "lib" / "cudnn" / "src" / "cuDNN.jl")
    return m.exports | {"cuDNN"}, m.exports | m.defined | {"cuDNN"}


def write(key: str, exports: set[str], defined: set[str]) -> None:
    for kind, names in (("exports", exports), ("defined", defined)):
        (js.DATA / f"{key}.{kind}.txt").write_text("".join(f"{n}\n" for n in sorted(names)), encoding="utf-8")
    print(f"{key}: {len(exports)} exports, {len(defined)} defined")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.julia.name_lists CUDA.jl-CHECKOUT VERSION", file=sys.stderr)
        return 2
    root, version = Path(argv[0]), argv[1]
    write(f"CUDA-{version}", *cuda_lists(root))
    write(f"cuDNN-{version}", *cudnn_lists(root))
    unparsed = {path: len(js.syntax_errors(tree)) for path, tree in PARSED.items() if js.syntax_errors(tree)}
    for path, count in sorted(unparsed.items()):
        print(f"note: {path.relative_to(root.resolve())}: {count} parse errors; names defined inside them are "
              "missing from the lists")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

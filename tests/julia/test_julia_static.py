"""Static checks of the Julia packages under julia/ (there is no Julia on the test machines).

The checker is tests/julia/julia_static.py; the name lists it resolves against are in
tests/data/julia-api/.  The first half of this file tests the checker itself on small
snippets (so that it demonstrably reports the mistakes it is meant to catch), the second
half runs it on every Julia file of the project.
"""
import re
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("tree_sitter_julia", reason="tree-sitter-julia is not installed (pip install 'bridge[test]'): "
                                                "the Julia sources cannot be parsed")

from . import julia_static as js  # noqa: E402
from .julia_static import tomllib  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
JULIA = ROOT / "julia"
PACKAGES = {"BridgeFlux": JULIA / "BridgeFlux", "BridgeKnet": JULIA / "BridgeKnet"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PYTHONCALL = "0.9.28"
NO_FILES = "no .jl files under julia/ (julia/ is missing or empty)"


# ------------------------------------------------------------ the checker itself

def problems(source, env="flux", deps=("Flux", "Optimisers", "NPZ"), kind=None):
    tree = js.parse(source)
    assert js.syntax_errors(tree) == []
    found = js.check(tree, js.build_scope(env, deps, [tree]))
    return [p.name for p in found if kind is None or p.kind == kind]


def test_checker_reports_syntax_errors_with_their_position():
    errors = js.syntax_errors(js.parse("x = 1\ny = )\n"))
    assert [(e.line, e.col, e.kind) for e in errors] == [(2, 3, "syntax")]
    errors = js.syntax_errors(js.parse("a = 1\nb = f(2,\nc = 3\n"))
    assert [(e.line, e.name) for e in errors] == [(3, ")")]  # a MISSING node
    assert js.syntax_errors(js.parse("function f(x)\n    x +\nend\n")) != []
    assert js.syntax_errors(js.parse("f(x) = (x, 1)\n")) == []


def test_checker_reports_misspelled_qualified_names():
    assert problems("using Flux\ng(model, x) = Flux.withgradeint(m -> m(x), model)\n") == ["Flux.withgradeint"]
    assert problems("using Flux\ng(model, x) = Flux.withgradient(m -> m(x), model)\n") == []
    assert problems("import Optimisers\nstruct R <: Optimisers.AbstractRul end\n") == ["Optimisers.AbstractRul"]
    # methods added to another module's function must name an existing function
    assert problems("import Optimisers\nOptimisers.init(o::R, x) = nothing\nstruct R end\n") == []
    assert problems("import Optimisers\nfunction Optimisers.aply!(o::R, s, x, dx) end\nstruct R end\n") == [
        "Optimisers.aply!"]
    assert problems("Base.show(io::IO, x::Int) = 1\nBase.:(==)(a::Int, b::Int) = 1\nBase.@kwdef struct A end\n") == []
    assert problems("Base.shoe(io::IO, x::Int) = 1\n") == ["Base.shoe"]
    assert problems("using Flux\nFlux.@layr M\nstruct M end\n") == ["Flux.@layr"]
    # Flux re-exports Optimisers, so `Optimisers.x` is checked against Optimisers' list
    assert problems("using Flux\nOptimisers.Adamm(0.1)\nFlux.Optimisers.Adamm(0.1)\n") == [
        "Optimisers.Adamm", "Flux.Optimisers.Adamm"]
    # a module that is a dependency but was not imported is not in scope
    assert problems("using Flux\nx = NPZ.npzread(\"a.npz\")\n") == ["NPZ.npzread"]
    assert problems("f(p) = TOML.parsefile(p)\n") == ["TOML.parsefile"]
    assert problems("import TOML\nf(p) = TOML.parsefile(p)\ng(p) = TOML.parsfile(p)\n") == ["TOML.parsfile"]


def test_checker_reports_misspelled_unqualified_names():
    assert problems("using Flux\ng(model, x) = withgradeint(m -> m(x), model)\n") == ["withgradeint"]
    assert problems("using Flux\ng(model, x) = withgradient(m -> m(x), model)\n") == []
    assert problems('s = @sprintf("%d", 1)\n') == ["@sprintf"]
    assert problems('using Printf\ns = @sprintf("%d", 1)\n') == []
    assert problems("f(x) = sofmax.(x)\n") == ["sofmax"]
    assert problems("using Flux\nf(x) = softmax.(x)\n") == []
    assert problems("f(x::AbstractVectr) = x\n") == ["AbstractVectr"]
    assert problems("struct A{T<:Rael} end\n") == ["Rael"]
    assert problems("f(x) where {T<:Rael} = x\n") == ["Rael"]
    assert problems("x = Vectr{Float32}(undef, 3)\n") == ["Vectr"]
    assert problems("f(x) = x isa Flot32\n") == ["Flot32"]
    # names passed as values are checked too, and so are variables used but never bound
    assert problems("using Flux\nm = Dense(1 => 2, rleu)\n") == ["rleu"]
    assert problems("function f(model, x)\n    y = model(x)\n    return y .+ z\nend\n") == ["z"]
    assert problems('f(n) = "$(n) and $(m)"\n') == ["m"]
    # `public` names are not brought in by `using` on Julia 1.10 (Flux marks onehotbatch public only)
    assert problems("using Flux\nf(x) = onehotbatch(x, 1:3)\n") == ["onehotbatch"]
    assert problems("using Flux\nf(x) = Flux.onehotbatch(x, 1:3)\n") == []
    # `using X: a` brings in `a` only (not the name X, nor X's other exports)
    assert problems("using Flux: Dense\nm = Dense(1 => 2)\nc = Chain(m)\n") == ["Chain"]
    assert problems("using Flux: Dense\nm = Flux.Dense(1 => 2)\n") == ["Flux.Dense"]


def test_checker_resolves_definitions_bindings_and_imports():
    source = '''
using Flux, Optimisers
using NPZ: npzread
import Base: show
const SCALE = 2f0
abstract type AbstractModel end
struct Model{T<:Real} <: AbstractModel
    w::Matrix{T}
    Model(w::Matrix{T}) where {T} = new{T}(w)
end
@kwdef struct Config
    lr::Float64 = 0.1
    steps::Int = lr > 0 ? 10 : 0
end
macro twice(ex) esc(:($ex; $ex)) end
scale(x) = SCALE .* x
function (m::Model)(x::AbstractMatrix{<:Real}; training::Bool=false)
    return m.w * x
end
function train!(m::M, data, cfg::Config; device=identity, kw...) where {M<:AbstractModel}
    loss(x, y) = Flux.mse(m(x), y)
    opt = Optimisers.setup(Adam(cfg.lr), m)
    for (i, (x, y)) in enumerate(data)
        g = gradient(mm -> loss(x, y), m)
        @twice println(i)
        r = [scale(v) for v in x if v > 0]
        sum(w -> w^2, x)
        map(x) do q
            q(1)
        end
        let k = i
            k(2)
        end
        try
            error("x")
        catch err
            rethrow(err)
        end
    end
    nt = (a = 1, b = 2)
    nt.a + nt.b
    device(m; kw...)
    cb = x -> x[end]
    cb(npzread("w.npz"))
    @. y = x + 1
    s = r"a+"
    MIME"text/plain"
    q = :(undefined_function(1))
    @assert isnothing(nothing)
    z = Vector{Float32}(undef, 3)
    @views z[1:2]
    Threads.@threads for j in 1:2 end
    return opt
end
Base.show(io::IO, m::Model) = print(io, "Model")
'''
    assert problems(source) == []
    # the same code with mistakes: each one is reported, once
    for right, wrong, name in [
            ("gradient(mm", "gradeint(mm", "gradeint"), ("Optimisers.setup", "Optimisers.setpu", "Optimisers.setpu"),
            ("@twice println", "@twise println", "@twise"), ('npzread("w', 'npzreed("w', "npzreed"),
            ("{<:Real}", "{<:Reall}", "Reall"), ("cb(npz", "cbb(npz", "cbb"),
            ("@assert", "@asert", "@asert"), ("isnothing(nothing)", "isnothing(nothin)", "nothin"),
            ("Flux.mse", "Flux.mde", "Flux.mde"), ("nt.a + nt.b", "nt.a + tn.b", "tn")]:
        assert source.count(right) == 1, right
        assert problems(source.replace(right, wrong)) == [name]


def test_checker_resolves_submodules():
    source = "module Sub\nexport g\ng() = 1\nend\nusing .Sub\nimport .Sub: g\nh() = g() + Sub.g()\n"
    assert problems(source) == []


def test_checker_sees_a_package_as_one_module_with_common_and_its_tests(tmp_path):
    root = tmp_path / "BridgeFlux"
    (root / "src" / "common").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "Project.toml").write_text('name = "BridgeFlux"\n[deps]\nFlux = "587475ba-b771-5e3f-ad9e-33799f191a9c"\n'
                                       'NPZ = "15e1cf62-19b3-5cfa-8e77-841668bca605"\n[extras]\n'
                                       'Test = "8dfed614-e22c-5e08-85e1-65c5234f0b40"\n[targets]\ntest = ["Test"]\n')
    (root / "src" / "BridgeFlux.jl").write_text(
        'module BridgeFlux\nusing Flux, NPZ\nexport run\ninclude("common/plan.jl")\n'
        'include("model.jl")\nend\n')
    (root / "src" / "model.jl").write_text("run(p) = Chain(Dense(2 => 1))(load(p))\n")
    (root / "src" / "common" / "plan.jl").write_text('load(p) = npzread(joinpath(p, "x.npy"))\n')
    (root / "test" / "runtests.jl").write_text(
        "using BridgeFlux, Test\n@testset \"run\" begin\n    @test run(\"p\") isa Any\n"
        "    @test BridgeFlux.load(\"p\") isa Any\n    @test load(\"p\") isa Any\n"
        "    @test BridgeFlux.lod(\"p\") isa Any\nend\n")
    for rel, test in [("src/model.jl", False), ("src/common/plan.jl", False), ("test/runtests.jl", True)]:
        tree = js.parse_file(root / rel)
        found = [p.name for p in js.check(tree, js.package_scope(root, test))]
        # the tests see the package's exports (run) but not its other names (load) unqualified
        assert found == (["load", "BridgeFlux.lod"] if test else []), rel


def test_checker_reports_imports_that_do_not_exist():
    assert problems("using Flux: withgradeint\n", kind="import") == ["withgradeint"]
    assert problems("using Flux: withgradient, @layer\n", kind="import") == []
    assert problems("import Optimisers.Adamm\n", kind="import") == ["Adamm"]
    assert problems("import Flux.Optimisers: Adam, Adamm\n", kind="import") == ["Adamm"]
    # a dependency without a name list can be imported; names it may export are reported with a hint
    assert problems("import JSON\nf(s) = JSON.parse(s)\n", deps=["JSON"]) == []
    found = js.check(tree := js.parse("using JSON\nf(s) = parse_json(s)\n"), js.build_scope("flux", ["JSON"], [tree]))
    assert [p.name for p in found] == ["parse_json"] and "JSON, which has no name list" in found[0].message
    assert problems("using Knet\n", kind="import") == ["Knet"]  # not a dependency
    assert problems("using Knet\n", env="knet", deps=["Knet"], kind="import") == []
    assert problems("using Printf, LinearAlgebra, TOML, Test, Random, Statistics\n", kind="import") == []
    assert problems("using Knet: param, param0, adam\n", env="knet", deps=["Knet"], kind="import") == []
    # CUDA 3.13.1 (Julia 1.9, Knet) and CUDA 5.11.3 (Julia 1.10, Flux) differ
    assert problems("import CUDA: has_cuda\n", env="knet", deps=["CUDA"]) == []
    assert problems("using CUDA: functional\n", deps=["CUDA"]) == []


def test_checker_environments_differ_by_julia_version():
    # a name that Base exports in Julia 1.10 but not in 1.9 resolves for BridgeFlux only
    only_110 = sorted(js.load_names("Base-1.10").usable - js.load_names("Base-1.9").usable)
    assert only_110, "Base 1.10 exports nothing that 1.9 does not?"
    name = next(n for n in only_110 if re.fullmatch(r"[a-z_]+", n))
    assert problems(f"{name}(1)\n", env="flux") == []
    assert problems(f"{name}(1)\n", env="knet", deps=[]) == [name]


def test_checker_checks_precompile_workloads_as_code_with_local_names():
    source = """using Flux
using PrecompileTools: @setup_workload, @compile_workload
@setup_workload begin
    model = Chain(Dense(2 => 1))
    x = rand(Float32, 2, 3)
    @compile_workload begin
        y = model(x)
        Flux.mse(y, 0f0)
    end
end
"""
    deps = ("Flux", "PrecompileTools")
    assert problems(source, deps=deps) == []
    # the blocks are ordinary code: every name in them is checked, the setup's bindings reach the workload
    for right, wrong, name in [("model(x)", "modle(x)", "modle"), ("Flux.mse", "Flux.mde", "Flux.mde"),
                               ("Dense(2", "Dens(2", "Dens"), ("y, 0f0", "z, 0f0", "z")]:
        assert source.count(right) == 1, right
        assert problems(source.replace(right, wrong), deps=deps) == [name]
    # they run only while precompiling, so what they bind is no module name the package can use later
    assert problems(source + "predict() = model(x)\n", deps=deps) == ["model", "x"]
    assert problems(source.replace(", @compile_workload", ""), deps=deps) == ["@compile_workload"]
    assert problems(source, deps=("Flux",), kind="import") == ["PrecompileTools"]
    assert problems("using PrecompileTools: @compile_workloads\n", deps=deps, kind="import") == ["@compile_workloads"]
    assert problems("import PrecompileTools\nPrecompileTools.@compile_workload begin sum(1:2) end\n",
                    env="knet", deps=["PrecompileTools"]) == []


FLUX, CUDA, CUDNN, NPZ = ("587475ba-b771-5e3f-ad9e-33799f191a9c", "052768ef-5323-5732-b1bb-66c8b64840ba",
                          "02a925ec-e4fe-4b08-9a7e-0d78e3d38ccd", "15e1cf62-19b3-5cfa-8e77-841668bca605")
EXT_PROJECT = (f'name = "BridgeFlux"\n[deps]\nFlux = "{FLUX}"\n[weakdeps]\nCUDA = "{CUDA}"\ncuDNN = "{CUDNN}"\n'
               f'NPZ = "{NPZ}"\n[extensions]\nBridgeFluxCUDAExt = ["CUDA", "cuDNN"]\nBridgeFluxNPZExt = "NPZ"\n')
EXT_SRC = ("module BridgeFlux\nusing Flux\nexport sync_device, to_device\nsync_device(d) = nothing\n"
           'device_name(d) = "cpu"\nto_device(x) = x\nend\n')
CUDA_EXT = """module BridgeFluxCUDAExt
using BridgeFlux, CUDA, cuDNN
using BridgeFlux: Flux
import BridgeFlux: sync_device
sync_device(::Flux.MLDataDevices.CUDADevice) = CUDA.synchronize()
BridgeFlux.device_name(::Flux.MLDataDevices.CUDADevice) = CUDA.name(CUDA.device())
report(x) = (sync_device(nothing), to_device(x), CUDA.functional())
end
"""


def extension_package(tmp_path, files, project=EXT_PROJECT, src=EXT_SRC):
    root = tmp_path / "BridgeFlux"
    for rel, source in {"Project.toml": project, "src/BridgeFlux.jl": src, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(source)
    return root


def ext_problems(tmp_path, source, ext="BridgeFluxCUDAExt", kind=None):
    root = extension_package(tmp_path, {f"ext/{ext}.jl": source})
    found = js.check(js.parse_file(root / "ext" / f"{ext}.jl"), js.extension_scope(root, ext))
    return [p.name for p in found if kind is None or p.kind == kind]


def test_checker_resolves_an_extension_against_its_package(tmp_path):
    assert ext_problems(tmp_path / "ok", CUDA_EXT) == []
    # qualified names of the package must exist there; only its exports are usable unqualified
    for n, (right, wrong, name) in enumerate([
            ("BridgeFlux.device_name(::", "BridgeFlux.device_nam(::", "BridgeFlux.device_nam"),
            ("to_device(x)", "device_name(x)", "device_name"),
            ("CUDA.synchronize", "CUDA.synchronise", "CUDA.synchronise"),
            ("MLDataDevices.CUDADevice) = CUDA.sync", "MLDataDevices.CUDADevise) = CUDA.sync",
             "Flux.MLDataDevices.CUDADevise")]):
        assert CUDA_EXT.count(right) == 1, right
        assert ext_problems(tmp_path / str(n), CUDA_EXT.replace(right, wrong)) == [name]
    # an extension is a module of its own: the package is in scope only once it is imported
    assert ext_problems(tmp_path / "unimported", CUDA_EXT.replace("using BridgeFlux, ", "using ")) == [
        "BridgeFlux.device_name", "to_device"]


def test_checker_reports_extension_imports_the_package_does_not_define(tmp_path):
    wrong = CUDA_EXT.replace("import BridgeFlux: sync_device", "import BridgeFlux: sync_devices")
    assert ext_problems(tmp_path / "import", wrong, kind="import") == ["sync_devices"]
    wrong = CUDA_EXT.replace("using BridgeFlux: Flux", "using BridgeFlux: Flx")
    assert ext_problems(tmp_path / "using", wrong, kind="import") == ["Flx"]


def test_checker_reports_weak_dependencies_that_do_not_trigger_the_extension(tmp_path):
    npz_ext = "module BridgeFluxNPZExt\nusing BridgeFlux, NPZ\nload(p) = to_device(npzread(p))\nend\n"
    assert ext_problems(tmp_path / "npz", npz_ext, ext="BridgeFluxNPZExt") == []
    assert ext_problems(tmp_path / "npz-cuda", npz_ext.replace("NPZ\n", "NPZ, CUDA\n"), ext="BridgeFluxNPZExt",
                        kind="import") == ["CUDA"]
    cuda_npz = CUDA_EXT.replace("cuDNN\n", "cuDNN, NPZ\n")
    root = extension_package(tmp_path / "cuda-npz", {"ext/BridgeFluxCUDAExt.jl": cuda_npz})
    found = js.check(js.parse_file(root / "ext/BridgeFluxCUDAExt.jl"), js.extension_scope(root, "BridgeFluxCUDAExt"))
    assert [p.name for p in found] == ["NPZ"] and "weak dependency" in found[0].message


def test_checker_reports_a_package_loading_its_weak_dependencies(tmp_path):
    root = extension_package(tmp_path, {}, src=EXT_SRC.replace("using Flux\n", "using Flux, CUDA\n"))
    found = js.check(js.parse_file(root / "src/BridgeFlux.jl"), js.package_scope(root))
    assert [(p.kind, p.name) for p in found] == [("import", "CUDA")] and "weak dependency" in found[0].message
    root = extension_package(tmp_path / "deps", {}, project=EXT_PROJECT.replace("[weakdeps]\nCUDA", "CUDA"),
                             src=EXT_SRC.replace("using Flux\n", "using Flux, CUDA\n"))
    assert js.check(js.parse_file(root / "src/BridgeFlux.jl"), js.package_scope(root)) == []


def test_ext_files_are_checked_in_the_scope_of_the_extensions_that_load_them(tmp_path):
    cuda_ext = CUDA_EXT.replace("end\n", 'include("kernels.jl")\ninclude("../shared.jl")\nend\n')
    root = extension_package(tmp_path, {
        # the entry file in ext/<Ext>/ wins over ext/<Ext>.jl, which is then loaded by no extension
        "ext/BridgeFluxCUDAExt/BridgeFluxCUDAExt.jl": cuda_ext, "ext/BridgeFluxCUDAExt.jl": CUDA_EXT,
        "ext/BridgeFluxCUDAExt/kernels.jl": "launch(x) = CUDA.@sync report(x)\n",
        "ext/BridgeFluxNPZExt.jl": 'module BridgeFluxNPZExt\nusing BridgeFlux, NPZ\ninclude("shared.jl")\nend\n',
        "ext/shared.jl": "shared(x) = to_device(x)\n"})
    packages = {"BridgeFlux": root}
    pkg = "julia/BridgeFlux/"
    # and each extension in every variant environment of its package's (CUDA.jl 5 and 6 for BridgeFlux)
    assert packages_of(pkg + "ext/BridgeFluxCUDAExt/kernels.jl", packages) == [
        "BridgeFlux/BridgeFluxCUDAExt", "BridgeFlux/BridgeFluxCUDAExt@flux+cuda6"]
    assert packages_of(pkg + "ext/shared.jl", packages) == [
        "BridgeFlux/BridgeFluxCUDAExt", "BridgeFlux/BridgeFluxCUDAExt@flux+cuda6",
        "BridgeFlux/BridgeFluxNPZExt", "BridgeFlux/BridgeFluxNPZExt@flux+cuda6"]
    assert packages_of(pkg + "src/BridgeFlux.jl", packages) == ["BridgeFlux"]
    for rel in ["ext/BridgeFluxCUDAExt/kernels.jl", "ext/BridgeFluxCUDAExt/BridgeFluxCUDAExt.jl", "ext/shared.jl"]:
        for package in packages_of(pkg + rel, packages):
            assert js.check(js.parse_file(root / rel), scope_for(pkg + rel, package, packages)) == [], (rel, package)
    # in the src scope the same file would not resolve: the extension's scope is what makes it pass
    assert js.check(js.parse_file(root / "ext/BridgeFluxCUDAExt/kernels.jl"), js.package_scope(root)) != []
    assert packages_of(pkg + "ext/BridgeFluxCUDAExt.jl", packages) == ["BridgeFlux"]
    with pytest.raises(pytest.fail.Exception, match="no extension"):
        scope_for(pkg + "ext/BridgeFluxCUDAExt.jl", "BridgeFlux", packages)


def test_extensions_are_checked_against_each_admitted_major_of_their_triggers(tmp_path):
    """The same extension resolves in CUDA.jl 5 and is reported in CUDA.jl 6 where it uses what 6 no
    longer has (`CUDA.Mem`); CUDA.jl 6 forwards CUDACore's public and enum-alias names, which pass."""
    root = extension_package(tmp_path, {"ext/BridgeFluxCUDAExt.jl": CUDA_EXT.replace(
        "end\n", "peak() = CUDA.attribute(UInt64, CUDA.memory_pool(CUDA.device()), CUDA.MEMPOOL_ATTR_USED_MEM_HIGH)\n"
                 "old() = CUDA.Mem.alloc(CUDA.Mem.Device, 1)\nalgos() = cuDNN.cudnnConvolutionFwdAlgoPerfCache\nend\n")})
    tree = js.parse_file(root / "ext/BridgeFluxCUDAExt.jl")
    in_5 = js.check(tree, js.extension_scope(root, "BridgeFluxCUDAExt"))
    in_6 = js.check(tree, js.extension_scope(root, "BridgeFluxCUDAExt", "flux+cuda6"))
    assert in_5 == []
    assert [(p.kind, p.name) for p in in_6] == [("qualified", "CUDA.Mem"), ("qualified", "CUDA.Mem")]


# -------------------------------------------------------------- the Julia files

def julia_files():
    return sorted(p.relative_to(ROOT).as_posix() for p in JULIA.rglob("*.jl")) if JULIA.is_dir() else []


def packages_of(rel, packages=PACKAGES):
    """The module(s) a file belongs to: julia/<Package>/** -> that package (its src or its tests);
    julia/common/** is copied into both packages' modules (src/common/), so it must resolve in both;
    julia/<Package>/ext/** -> "<Package>/<Extension>" for every extension of the package that
    loads it, and "<Package>/<Extension>@<variant>" for each of the package environment's
    VARIANTS (the bare package when none does, which scope_for reports)."""
    parts = rel.split("/")
    if parts[1] == "common":
        return list(packages)
    if parts[1] not in packages or len(parts) <= 3:
        return []
    root = packages[parts[1]]
    if parts[2] == "ext" and (root / "Project.toml").exists():
        try:
            variants = ["", *(f"@{v}" for v in js.VARIANTS.get(js.PACKAGE_ENV.get(parts[1], ""), {}))]
            return [f"{parts[1]}/{ext}{variant}" for ext in js.extensions_of(root, root.joinpath(*parts[2:]))
                    for variant in variants] or [parts[1]]
        except (tomllib.TOMLDecodeError, OSError):  # reported by scope_for, not at collection
            return [parts[1]]
    return [parts[1]]


def files_or_skip():
    files = julia_files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_FILES))]
    return files


def file_package_pairs():
    pairs = [(f, p) for f in julia_files() for p in packages_of(f) or [None]]
    if not pairs:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=NO_FILES))]
    return pairs


def scope_for(rel, package, packages=PACKAGES):
    if package is None:
        pytest.fail(f"{rel} belongs to no Julia package (julia/BridgeFlux/, julia/BridgeKnet/ or julia/common/); "
                    "the name checks do not know which environment to resolve it in")
    package, _, ext = package.partition("/")
    ext, _, variant = ext.partition("@")
    root = packages[package]
    if not (root / "Project.toml").exists():
        pytest.skip(f"julia/{package}/Project.toml does not exist yet")
    where = rel.split("/")[2]
    if where == "ext":
        if not ext:
            pytest.fail(f"{rel} is loaded by no extension in julia/{package}/Project.toml [extensions]: Julia "
                        "loads ext/<Extension>/<Extension>.jl, else ext/<Extension>.jl, and what that includes")
        return js.extension_scope(root, ext, variant or None)
    return js.package_scope(root, test=where == "test")


def found(rel, package, kind):
    problems = js.check(js.parse_file(ROOT / rel), scope_for(rel, package))
    return [f"{rel}:{p}" for p in problems if p.kind == kind]


@pytest.mark.parametrize("rel", files_or_skip())
def test_julia_file_parses(rel):
    errors = js.syntax_errors(js.parse_file(ROOT / rel))
    assert not errors, f"{rel}:{errors[0]} (first of {len(errors)} syntax errors)"


def test_every_julia_file_is_checked():
    if not JULIA.is_dir():
        pytest.skip("julia/ does not exist")
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "julia/*.jl"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"git cannot list the files: {e}")
    assert set(julia_files()) == {f for f in listed if (ROOT / f).exists()}
    # ext/ files are checked in the scope of the extensions that load them; a declared extension
    # without its entry file would never be checked (and fails when Julia loads it)
    for package, root in PACKAGES.items():
        if (root / "Project.toml").exists():
            missing = [ext for ext in js.extensions(root) if js.extension_entry(root, ext) is None]
            assert not missing, (f"julia/{package}/Project.toml [extensions] {missing}: no ext/<Extension>.jl or "
                                 "ext/<Extension>/<Extension>.jl")
    stray = [f for f in julia_files() if f.split("/")[2:3] == ["ext"] and not any("/" in p for p in packages_of(f))]
    assert not stray, f"loaded by no extension in their package's Project.toml [extensions]: {stray}"


@pytest.mark.parametrize("rel,package", file_package_pairs())
def test_julia_imports_exist(rel, package):
    assert found(rel, package, "import") == []


@pytest.mark.parametrize("rel,package", file_package_pairs())
def test_julia_qualified_names_exist(rel, package):
    assert found(rel, package, "qualified") == []


@pytest.mark.parametrize("rel,package", file_package_pairs())
def test_julia_unqualified_names_resolve(rel, package):
    assert found(rel, package, "unqualified") == []


# ---------------------------------------------------------------- Project.toml

def version_tuple(s: str) -> tuple[int, ...]:
    nums = [int(x) for x in s.split(".")]
    return tuple(nums + [0] * (3 - len(nums)))


def compat_admits(spec: str, version: str) -> bool:
    """Whether a Pkg [compat] entry admits `version`: a comma-separated union of caret
    (the default), tilde, `=`, `<`, `>=` and hyphen specifiers, as Pkg's "Compatibility" docs define them."""
    v = version_tuple(version)
    for part in spec.split(","):
        if " - " in part:  # hyphen: [low, high], a high with fewer parts bumping its last one (0.2 - 0.5: < 0.6.0)
            low, high = (p.strip() for p in part.split(" - "))
            given = [int(x) for x in high.split(".")]
            top = version_tuple(high) if len(given) == 3 else tuple(given[:-1] + [given[-1] + 1] + [0] * (3 - len(given)))
            if version_tuple(low) <= v and (v <= top if len(given) == 3 else v < top):
                return True
            continue
        m = re.fullmatch(r"\s*(\^|~|=|<|>=|≥)?\s*(\d+(?:\.\d+){0,2})\s*", part)
        if not m:
            raise ValueError(f"unsupported [compat] specifier {part.strip()!r}")
        op, given, lo = m.group(1), [int(x) for x in m.group(2).split(".")], version_tuple(m.group(2))
        if op in ("=", "<", ">=", "≥"):
            ok = {"=": v == lo, "<": v < lo}.get(op, v >= lo)
        else:
            if op == "~":  # ~1 -> [1, 2); ~1.2(.3) -> [1.2(.3), 1.3); ~0.0.3 -> [0.0.3, 0.0.4)
                i = 0 if len(given) == 1 else 2 if given[:2] == [0, 0] and len(given) == 3 else 1
            else:  # caret: the left-most non-zero component given may not change
                i = next((i for i, x in enumerate(given) if x), len(given) - 1)
            ok = lo <= v < lo[:i] + (lo[i] + 1,) + (0,) * (2 - i)
        if ok:
            return True
    return False


def test_compat_semantics():
    assert compat_admits("1.10", "1.10.8") and compat_admits("1.10", "1.11.0")
    assert not compat_admits("1.10", "1.9.4")
    assert compat_admits("~1.9", "1.9.4") and not compat_admits("~1.9", "1.10.0")
    assert compat_admits("=0.9.28", "0.9.28") and not compat_admits("=0.9.28", "0.9.29")
    assert compat_admits("0.16.11", "0.16.12") and not compat_admits("0.16.11", "0.17.0")
    assert compat_admits("0.0.3", "0.0.3") and not compat_admits("0.0.3", "0.0.4")
    assert compat_admits("1.6, 0.7", "0.7.1") and compat_admits("1.6, 0.7", "1.9.0")
    assert compat_admits("< 0.0.1, 1", "0.0.0") and compat_admits("< 0.0.1, 1", "1.9.0")
    assert compat_admits("1.10.3 - 1.11", "1.10.3") and compat_admits("1.10.3 - 1.11", "1.11.9")
    assert not compat_admits("1.10.3 - 1.11", "1.10.2") and not compat_admits("1.10.3 - 1.11", "1.12.0")
    assert compat_admits("1.2.3 - 4.5.6", "4.5.6") and not compat_admits("1.2.3 - 4.5.6", "4.5.7")
    assert compat_admits(">= 1.9", "2.1.0") and not compat_admits(">= 1.9", "1.8.5")
    assert compat_admits("=1.9", "1.9.0") and not compat_admits("=1.9", "1.9.4")
    assert compat_admits("1.9 - 1.10", "1.10.9") and not compat_admits("1.9 - 1.10", "1.11.0")
    with pytest.raises(ValueError):
        compat_admits("1.9 - ", "1.9.0")
    with pytest.raises(ValueError):
        compat_admits("^^1.9", "1.9.0")


def project_or_skip(package):
    path = PACKAGES[package] / "Project.toml"
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} does not exist yet")
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("package", PACKAGES)
def test_project_deps_all_have_compat(package):
    proj = project_or_skip(package)
    assert proj.get("name") == package
    missing = sorted(({*proj.get("deps", {}), "julia"}) - set(proj.get("compat", {})))
    assert not missing, f"{package}/Project.toml: [compat] has no entry for {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_project_uuids_are_uuids(package):
    proj = project_or_skip(package)
    entries = {"uuid": proj.get("uuid", ""), **proj.get("deps", {}), **proj.get("extras", {})}
    bad = {k: v for k, v in entries.items() if not (isinstance(v, str) and len(v) == 36 and UUID.fullmatch(v))}
    assert not bad, f"{package}/Project.toml: not 36-character UUIDs: {bad}"


def test_setup_environment_pins_pythoncall_to_juliacall():
    """juliacall runs `using PythonCall` in the project it activates and needs exactly its own version:
    the environment `bridge.julia setup` writes pins it; the packages themselves do not need Python."""
    from bridge.julia import boundary, setup

    for engine in boundary.PACKAGES:
        for cuda in (False, True):
            proj = tomllib.loads(setup.environment_project(engine, cuda))
            assert proj["compat"]["PythonCall"] == f"={PYTHONCALL}"
            assert proj["deps"]["PythonCall"] == "6099a3de-0909-46bc-b1f4-468b9a2dfc0d"
            assert all(UUID.fullmatch(u) for u in proj["deps"].values())
    for package in PACKAGES:
        assert "PythonCall" not in project_or_skip(package).get("deps", {}), package


def test_bridgeflux_loads_no_cuda_on_the_cpu_path():
    """CUDA and cuDNN are weak dependencies of BridgeFlux, behind its extension: a CPU run never loads them."""
    from bridge.julia import setup

    proj = project_or_skip("BridgeFlux")
    assert not {"CUDA", "cuDNN"} & set(proj.get("deps", {})), proj["deps"]
    assert set(proj.get("weakdeps", {})) == {"CUDA", "cuDNN"}
    assert proj.get("extensions") == {"BridgeFluxCUDAExt": ["CUDA", "cuDNN"]}
    assert {"CUDA", "cuDNN"} <= set(proj.get("compat", {}))
    assert "CUDA" not in tomllib.loads(setup.environment_project("flux", cuda=False))["deps"]
    assert {"CUDA", "cuDNN"} <= set(tomllib.loads(setup.environment_project("flux", cuda=True))["deps"])


@pytest.mark.parametrize("package, engine", [("BridgeFlux", "flux"), ("BridgeKnet", "knet")])
def test_each_package_admits_the_julia_versions_the_set_up_accepts_and_no_others(package, engine):
    """One stated range: Pkg.test must not run a package where bridge.julia's set-up refuses its Julia."""
    from bridge.julia.record import JULIA_RANGE

    spec = project_or_skip(package).get("compat", {}).get("julia", "")
    (low, high) = JULIA_RANGE[engine]
    below = (low[0], low[1], low[2] - 1) if low[2] else (low[0], low[1] - 1, 99)
    last = (high[0], high[1] - 1, 99)
    assert compat_admits(spec, ".".join(map(str, low))) and compat_admits(spec, ".".join(map(str, last))), spec
    assert not compat_admits(spec, ".".join(map(str, below))) and not compat_admits(spec, ".".join(map(str, high))), spec


def test_bridgeknet_julia_compat_is_julia_1_9_only():
    spec = project_or_skip("BridgeKnet").get("compat", {}).get("julia", "")
    assert spec and compat_admits(spec, "1.9.4"), f"BridgeKnet's julia compat {spec!r} does not admit Julia 1.9"
    others = [v for v in ("1.6.7", "1.8.5", "1.10.0", "1.11.0", "1.12.0", "2.0.0") if compat_admits(spec, v)]
    assert not others, (f"BridgeKnet's julia compat {spec!r} admits {others}, but Knet 1.4.10 resolves only on "
                        "Julia 1.9 (a bare \"1.9\" means ^1.9, i.e. up to 2.0; write \"~1.9\")")


def test_juliacall_pin_matches_pythoncall():
    from bridge.julia.boundary import JULIACALL_VERSION

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get(
        "optional-dependencies", {})
    assert "julia" in extras, ("pyproject.toml has no `julia` extra in [project.optional-dependencies]: "
                               f"it must pin juliacall=={PYTHONCALL}")
    pins = [r.replace(" ", "") for r in extras["julia"] if re.match(r"juliacall\b", r)]
    # juliacall and PythonCall are released together; each juliacall needs exactly its own PythonCall.
    # 0.9.28 crashes on Python 3.14 (PythonCall's FAQ), so the extra stops before it.
    assert pins == [f"juliacall=={PYTHONCALL};python_version<'3.14'"], pins
    assert JULIACALL_VERSION == PYTHONCALL


@pytest.mark.parametrize("package", PACKAGES)
def test_compat_admits_exactly_the_versions_the_name_lists_check(package):
    """For each package dependency with name lists (stdlibs aside): every version the code is checked
    against is admitted by [compat], and every comma-separated part of the entry admits one of them,
    so a major that is admitted but never checked (`CUDA = "5, 6"` without CUDA.jl 6's lists) fails."""
    env = js.PACKAGE_ENV[package]
    envs = [env, *js.VARIANTS.get(env, {})]
    for dep, spec in project_or_skip(package).get("compat", {}).items():
        if dep in (*js.STDLIBS, "TOML", "julia"):
            continue
        checked = sorted({js.VERSIONS[e][dep].removeprefix(f"{dep}-") for e in envs if dep in js.VERSIONS[e]})
        assert checked, f"{package}: {dep} has a [compat] entry but no name list in tests/julia/julia_static.py"
        unadmitted = [v for v in checked if not compat_admits(spec, v)]
        assert not unadmitted, f"{package}: {dep} = {spec!r} does not admit {unadmitted}, whose names are checked"
        unchecked = [part.strip() for part in spec.split(",") if not any(compat_admits(part, v) for v in checked)]
        assert not unchecked, (f"{package}: {dep} = {spec!r}: {unchecked} admits none of the checked versions "
                               f"{checked}; add name lists for it (tests/julia/name_lists.py) or narrow [compat]")


def test_name_lists_exist_for_every_module_in_the_version_table():
    missing = sorted({key for versions in js.VERSIONS.values() for key in versions.values()
                      if not (js.DATA / f"{key}.exports.txt").exists()})
    assert not missing, f"tests/data/julia-api/ has no exports list for {missing}"


def test_root_project_names_the_packages_by_their_uuids():
    path = ROOT / "Project.toml"
    if not path.exists():
        pytest.skip("Project.toml (the Julia project for REPL use) does not exist yet")
    deps = tomllib.loads(path.read_text(encoding="utf-8")).get("deps", {})
    assert all(isinstance(u, str) and UUID.fullmatch(u) for u in deps.values()), deps
    for package in set(deps) & set(PACKAGES):
        assert deps[package] == project_or_skip(package)["uuid"], f"Project.toml: {package}'s uuid differs"


def test_the_reported_package_versions_name_each_package_by_its_own_uuid():
    """package_versions() finds each package by (name, UUID): a wrong UUID would leave its version out of
    every report without an error. Checked against the UUIDs the Project.toml files hold (Flux's own for
    NNlib and Zygote, read in Flux.jl v0.16.x's Project.toml)."""
    source = (ROOT / "julia" / "common" / "engine.jl").read_text()
    reported = {name: uuid for _, name, uuid in re.findall(r'\("(\w+)", "(\w+)", "([0-9a-f-]{36})"\)', source)}
    known = {"NNlib": "872c559c-99b0-510c-b3b7-b6c96a88d5cd", "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f"}
    for package in ("BridgeFlux", "BridgeKnet"):
        project = tomllib.loads((PACKAGES[package] / "Project.toml").read_text())
        known.update(project.get("deps", {}), **project.get("weakdeps", {}))
    assert len(reported) == 8 and {name: known.get(name) for name in reported} == reported


def test_each_package_holds_the_current_copy_of_julia_common():
    """julia/common/ is edited once; each package includes its own verbatim copy (src/common/)."""
    from tests.julia import common_copies

    assert len(common_copies.pairs()) == 2 * len(list((JULIA / "common").glob("*.jl"))) >= 6
    stale = [p.relative_to(ROOT).as_posix() for p in common_copies.stale()]
    assert not stale, f"{stale} differ from julia/common/; run: {common_copies.COMMAND}"


@pytest.mark.parametrize("package", ["BridgeFlux", "BridgeKnet"])
def test_no_include_of_a_package_leaves_its_folder(package):
    """Pkg.add(url=..., subdir="julia/<package>") installs only that folder: every literal include of the
    package's source, extensions and tests must resolve inside it."""
    root = PACKAGES[package].resolve()
    outside = []
    for path in sorted(root.rglob("*.jl")):
        for target in js.includes(path):
            if not target.resolve().is_relative_to(root) or not target.is_file():
                outside.append(f"{path.relative_to(ROOT)} includes {target}")
    assert not outside, outside


@pytest.mark.parametrize("package", PACKAGES)
def test_every_julia_function_the_python_side_calls_is_defined_in_the_package(package):
    """python/common/julia_session.py reaches the package's functions by name through juliacall
    (`module.prepare(...)`, `s.module.final_report(...)`): each must be a top-level name of the package."""
    source = (ROOT / "python" / "common" / "julia_session.py").read_text(encoding="utf-8")
    called = set(re.findall(r"\bmodule\.(\w+)\b", source))
    assert {"prepare", "train_epoch", "predict", "memory_report", "final_report"} <= called, called
    project_or_skip(package)
    (names,) = js.own_names(PACKAGES[package]).values()
    assert not called - names.defined, f"{package} defines no {sorted(called - names.defined)}"

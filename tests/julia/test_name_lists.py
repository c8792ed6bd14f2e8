"""tests/julia/name_lists.py builds CUDA.jl 6's name lists from a checkout by CUDA.jl 6's forwarding rules;
here on a small tree laid out as CUDA.jl 6.3.0 is, with each construct the real sources use."""
import pytest

pytest.importorskip("tree_sitter_julia", reason="tree-sitter-julia is not installed (pip install 'bridge[test]'): "
                                                "the Julia sources cannot be parsed")

from . import name_lists  # noqa: E402

FILES = {
    "src/CUDA.jl": """module CUDA
using Reexport
@reexport using CUDACore
@reexport using CUDATools
using cuBLAS
export cuBLAS
using cuRAND: rand
Base.@deprecate_binding CUBLAS cuBLAS true
Base.@deprecate_binding has_old cuBLAS.has_old false
shim_helper() = 1
end
""",
    "CUDACore/src/CUDACore.jl": """module CUDACore
include("utils/public.jl")
include(joinpath("..", "lib", "cudadrv", "devices.jl"))
module Inner
export inner_only
end
internal_helper() = 2
end
""",
    # CUDA.jl's own `public` macro and `Expr(:public, ...)`, which tree-sitter-julia 0.23 cannot parse
    "CUDACore/src/utils/public.jl": """const PUBLIC_NAMES = Symbol[]
macro public(symbols_expr)
    if VERSION >= v"1.11.0-DEV.469"
        esc(Expr(:public, symbols_expr))
    end
end
export @public
""",
    "CUDACore/lib/cudadrv/devices.jl": """export device, name, attribute, shared
@public total_memory, math_mode
@cenum CUmemPool_attribute_enum::UInt32 begin
    CU_MEMPOOL_ATTR_REUSE = 1
    CU_MEMPOOL_ATTR_USED_MEM_HIGH = 8
end
const CUmemPool_attribute = CUmemPool_attribute_enum
@enum_without_prefix visibility=:public CUmemPool_attribute CU_
@cenum CUother::UInt32 begin
    CU_OTHER_A = 1
end
@enum_without_prefix CUother CU_
mutable struct CuContext
    const handle::Ptr{Cvoid}
    valid::Bool
end
export CuContext
""",
    # a `public` macro that tree-sitter-julia 0.23 would turn into one ERROR node with the rest of the module
    "CUDATools/src/CUDATools.jl": """module CUDATools
using CUDACore
const PUBLIC_NAMES = Symbol[]
macro public(ex)
    names = ex isa Symbol ? [ex] :
            ex.head == :tuple ? Symbol[first_arg(a) for a in ex.args] :
            [first_arg(ex)]
    append!(PUBLIC_NAMES, names)
end
export @device_code_llvm
@public @profile
end
""",
    "lib/cublas/src/cuBLAS.jl": "module cuBLAS\nexport shared, gemm!\nend\n",
    "lib/cudnn/src/cuDNN.jl": """module cuDNN
using CUDACore
export CUDNNError
include("legacy/convolution.jl")
end
""",
    "lib/cudnn/src/legacy/convolution.jl": """const cudnnConvolutionFwdAlgoPerfCache = Dict{Tuple,Int}()
version() = v"9.0"
@cenum cudnnDeterminism_t::UInt32 begin
    CUDNN_NON_DETERMINISTIC = 0
    CUDNN_DETERMINISTIC = 1
end
""",
}


@pytest.fixture()
def checkout(tmp_path):
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_cuda_forwards_exports_public_names_and_public_enum_aliases_only(checkout):
    exports, defined = name_lists.cuda_lists(checkout)
    # exports of both parts (through a joinpath include, past a `macro public` and a `const` field), the
    # shim's own, and the deprecated binding it exports; a nested module's exports are not CUDACore's
    assert {"device", "name", "attribute", "CuContext", "@public", "@device_code_llvm", "cuBLAS", "CUBLAS",
            "CUDA"} <= exports
    assert "inner_only" not in exports | defined
    # public names and visibility=:public enum aliases resolve as CUDA.x; CUDACore's other names do not
    assert {"total_memory", "math_mode", "@profile", "MEMPOOL_ATTR_USED_MEM_HIGH", "MEMPOOL_ATTR_REUSE"} <= defined
    assert not {"internal_helper", "OTHER_A", "CU_MEMPOOL_ATTR_USED_MEM_HIGH", "Inner"} & defined
    # the shim's own names and what it imports
    assert {"shim_helper", "rand", "has_old", "cuBLAS"} <= defined and "has_old" not in exports
    # exported by CUDACore and by cuBLAS, which the shim loads with `using`: ambiguous in CUDA, so neither
    assert "shared" not in exports | defined
    assert exports <= defined


def test_cudnn_lists_its_top_level_names_and_enum_values(checkout):
    exports, defined = name_lists.cudnn_lists(checkout)
    assert exports == {"CUDNNError", "cuDNN"}
    assert {"cudnnConvolutionFwdAlgoPerfCache", "version", "cudnnDeterminism_t", "CUDNN_DETERMINISTIC",
            "CUDACore"} <= defined


def test_a_shim_that_reexports_something_else_stops_the_tool(checkout):
    (checkout / "src/CUDA.jl").write_text("module CUDA\nusing Reexport\n@reexport using CUDACore\nend\n")
    with pytest.raises(SystemExit, match="re-exports"):
        name_lists.cuda_lists(checkout)


def test_the_renamings_leave_nothing_tree_sitter_cannot_parse(checkout):
    from . import julia_static as js

    for rel in FILES:
        assert js.syntax_errors(name_lists.parse_file(checkout / rel)) == [], rel
    assert js.syntax_errors(js.parse((checkout / "CUDATools/src/CUDATools.jl").read_bytes())) != []


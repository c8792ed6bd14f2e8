# Pkg.test("BridgeFlux"): parity with the NumPy reference on the golden plans (no Python needed),
# plus the zero-copy helpers, the first Keras-Adam step and NNlib's max-pool gradient rule.
using BridgeFlux, Test, NPZ, TOML
using Flux, Optimisers  # dependencies of BridgeFlux, hence loadable in its test environment

const GOLDEN = joinpath(@__DIR__, "..", "..", "golden")
# golden.toml (python -m tests.julia.golden): the cases, and the tolerance every engine's parity uses
# (bridge/results/parity.py), by optimizer.
const CASES = TOML.parsefile(joinpath(GOLDEN, "golden.toml"))

@testset "BridgeFlux" begin
    @testset "golden $name" for name in sort(collect(keys(CASES["cases"])))
        case = CASES["cases"][name]
        plan = BridgeFlux.with_meta(BridgeFlux.load_plan(joinpath(GOLDEN, case["plan"])),
                                    filter(kv -> kv.first != "plan", case))
        r = BridgeFlux.replay(plan)
        expected = npzread(joinpath(GOLDEN, "expected", "$name.npy"))
        @test length(r.losses) == length(expected)
        worst = maximum(abs.(r.losses .- expected) ./ abs.(expected))
        @info "golden $name: max relative step-loss difference $worst (first epoch $(r.epoch_seconds[1]) s)"
        @test worst <= CASES["tolerance"][case["optimizer"]]
        @test all(t -> t >= 0, r.epoch_seconds)
        @test 0 <= r.test_accuracy <= 1
    end

    # A plan stores the training split once and one permutation per epoch; epoch_data gathers the
    # epoch, and must give exactly the bytes Python's gather gave every other engine.
    @testset "epoch_data gathers plan $name as Python does" for name in sort(unique([c["plan"] for c in values(CASES["cases"])]))
        plan = BridgeFlux.load_plan(joinpath(GOLDEN, name))
        for e in 0:plan.meta["epochs"]-1
            x, y = BridgeFlux.epoch_data(plan, e)
            python(what) = npzread(joinpath(GOLDEN, "expected", "$name.$(what)_train.e$(lpad(e, 4, '0')).npy"))
            @test x == BridgeFlux.julia_layout(python("x"))
            @test y == python("y")
        end
    end

    # The golden losses follow NNlib's rule (golden.toml maxpool_gradient): if Flux ever routes the
    # max-pool gradient exactly, this fails first and says why the golden CNN cases moved.
    @testset "MaxPool's CPU gradient goes to the first element ≈ the maximum (NNlib)" begin
        @test CASES["maxpool_gradient"] == "nnlib"
        x = reshape(Float32[1.0, 1.0001, 0.0, 0.0], 2, 2, 1, 1)  # W×H×C×N: scan order is x[1,1], x[2,1], ...
        g = Flux.gradient(a -> sum(MaxPool((2, 2))(a)), x)[1]
        @test g == reshape(Float32[1, 0, 0, 0], 2, 2, 1, 1)  # exact routing would give x[2,1] = 1.0001
    end

    @testset "batch_view shares memory" begin
        a = reshape(Float32.(1:30), 2, 3, 5)
        y = Int32[0, 1, 2, 1, 0]
        ranges = BridgeFlux.batch_ranges(5, 2)
        @test ranges == [1:2, 3:4, 5:5]  # partial last batch kept
        GC.@preserve a y begin
            v = BridgeFlux.batch_view(a, ranges[3])
            @test size(v) == (2, 3, 1)
            @test pointer(v) == pointer(a) + 4 * 6 * sizeof(Float32)
            @test v == a[:, :, 5:5]
            v[1] = -1.0f0
            @test a[1, 1, 5] == -1.0f0
            yb = BridgeFlux.batch_view(y, ranges[2])
            @test yb == Int32[2, 1]
            @test pointer(yb) == pointer(y, 3)
        end
    end

    @testset "wrap_inputs / wrap_labels round trip" begin
        a = reshape(Float32.(1:12), 4, 3)
        labels = Int32[3, 1, 2]
        GC.@preserve a labels begin
            w = BridgeFlux.wrap_inputs(UInt(pointer(a)), size(a)...)
            @test size(w) == size(a) && w == a
            @test BridgeFlux.data_pointer(w) == BridgeFlux.data_pointer(a)
            w[2, 3] = 7.0f0
            @test a[2, 3] == 7.0f0
            l = BridgeFlux.wrap_labels(UInt(pointer(labels)), length(labels))
            @test l == labels
            @test BridgeFlux.data_pointer(l) == BridgeFlux.data_pointer(labels)
        end
    end

    @testset "KerasAdam first step" begin
        rule = BridgeFlux.KerasAdam(0.01, 0.9, 0.999, 1e-7)
        x = Float32[1.0, -2.0, 0.5]
        g = Float32[0.1, -0.2, 0.3]
        # Hand computation in Float64 from the Keras formula at t = 1, with every constant
        # rounded to Float32 the way Keras/numpy_nn round them (beta before the power, 1 - beta
        # in Float64 then rounded).
        f(c) = Float64(Float32(c))
        alpha = f(0.01) * sqrt(1 - f(0.999)) / (1 - f(0.9))
        m = f(1 - 0.9) .* g
        v = f(1 - 0.999) .* Float64.(g) .^ 2
        expected = m .* alpha ./ (sqrt.(v) .+ f(1e-7))
        state, step = Optimisers.apply!(rule, Optimisers.init(rule, x), x, g)
        @test state[3] == 1
        @test all(isapprox.(state[1], m; rtol=1e-6))
        @test all(isapprox.(state[2], v; rtol=1e-6))
        # A few Float32 roundings; Optimisers.Adam's form would be ~3e-5 off here.
        @test all(isapprox.(step, expected; rtol=2e-6))
        # Through Optimisers.update!, the parameter moves by exactly that step.
        x0 = copy(x)
        tree = Optimisers.setup(rule, x)
        Optimisers.update!(tree, x, g)
        @test x == x0 .- step
    end

    @testset "a CPU session never loads CUDA" begin
        s = BridgeFlux.prepare(BridgeFlux.tiny_plan("cnn", "adam")[1:2]...)
        report = BridgeFlux.engine_report(s)
        @test report["device"] == "cpu" && report["optimizer"] == "adam"
        # the versions the environment resolved, NNlib's (the max-pool rule's) among them
        @test report["flux_version"] == report["framework_version"] == string(pkgversion(Flux))
        @test report["optimisers_version"] == string(pkgversion(Optimisers))
        @test haskey(report, "nnlib_version") && haskey(report, "zygote_version")
        @test !haskey(report, "cuda_jl_version") && !haskey(report, "knet_version")
        memory = BridgeFlux.memory_report(s)
        @test memory["julia_maxrss_bytes"] >= memory["julia_gc_live_bytes"] > 0
        @test !haskey(memory, "device_memory_peak_bytes")
        @test Base.get_extension(BridgeFlux, :BridgeFluxCUDAExt) === nothing
        @test !any(m -> nameof(m) == :CUDA, values(Base.loaded_modules))
        @test_throws ErrorException BridgeFlux.prepare(BridgeFlux.tiny_plan("mlp", "sgd")[1:2]...; device="cuda")
        @test_throws ArgumentError BridgeFlux.prepare(BridgeFlux.tiny_plan("mlp", "sgd")[1:2]...; device="tpu")
    end
end

# Pkg.test("BridgeKnet"): parity with the NumPy reference on the golden plans (no Python needed),
# plus labels, cross-correlation, the Keras optimizers and NNlib's max-pool gradient rule.
using BridgeKnet, Test, NPZ, TOML
using Knet: Param, @diff, grad, pool

const GOLDEN = joinpath(@__DIR__, "..", "..", "golden")
# golden.toml (python -m tests.julia.golden): the cases, and the tolerance every engine's parity uses
# (bridge/results/parity.py), by optimizer.
const CASES = TOML.parsefile(joinpath(GOLDEN, "golden.toml"))

@testset "BridgeKnet" begin
    @testset "golden $name: per-step losses match the NumPy reference" for name in sort(collect(keys(CASES["cases"])))
        case = CASES["cases"][name]
        plan = BridgeKnet.with_meta(BridgeKnet.load_plan(joinpath(GOLDEN, case["plan"])),
                                    filter(kv -> kv.first != "plan", case))
        r = BridgeKnet.replay(plan)
        expected = npzread(joinpath(GOLDEN, "expected", "$name.npy"))
        @test length(r.losses) == length(expected)
        if length(r.losses) == length(expected)
            worst = maximum(abs.(r.losses .- expected) ./ abs.(expected))
            @info "golden $name: max relative step-loss difference $worst (first epoch $(r.epoch_seconds[1]) s)"
            @test worst <= CASES["tolerance"][case["optimizer"]]
        end
        @test 0 <= r.test_accuracy <= 1
    end

    # A plan stores the training split once and one permutation per epoch; epoch_data gathers the
    # epoch, and must give exactly the bytes Python's gather gave every other engine.
    @testset "epoch_data gathers plan $name as Python does" for name in sort(unique([c["plan"] for c in values(CASES["cases"])]))
        plan = BridgeKnet.load_plan(joinpath(GOLDEN, name))
        for e in 0:plan.meta["epochs"]-1
            x, y = BridgeKnet.epoch_data(plan, e)
            python(what) = npzread(joinpath(GOLDEN, "expected", "$name.$(what)_train.e$(lpad(e, 4, '0')).npy"))
            @test x == BridgeKnet.julia_layout(python("x"))
            @test y == python("y")
        end
    end

    # The golden losses follow NNlib's rule (golden.toml maxpool_gradient): if Knet's pool ever routes
    # the gradient exactly, this fails first and says why the golden CNN cases moved.
    @testset "pool's CPU gradient goes to the first element ≈ the maximum (NNlib)" begin
        @test CASES["maxpool_gradient"] == "nnlib"
        x = Param(reshape(Float32[1.0, 1.0001, 0.0, 0.0], 2, 2, 1, 1))  # scan order: x[1,1], x[2,1], ...
        J = @diff sum(pool(x))
        @test grad(J, x) == reshape(Float32[1, 0, 0, 0], 2, 2, 1, 1)  # exact routing: x[2,1] = 1.0001
    end

    @testset "labels: Keras 0-based become Knet 1-based, out-of-range ones are an error" begin
        @test BridgeKnet.knet_labels(Int32[0, 2, 1], 3) == [1, 3, 2]
        @test_throws ArgumentError BridgeKnet.knet_labels(Int32[3], 3)
        @test_throws ArgumentError BridgeKnet.knet_labels(Int32[-1], 3)
    end

    @testset "conv is cross-correlation like Keras Conv2D, not a flipped-kernel convolution" begin
        x = reshape(Float32.(1:9), 3, 3, 1, 1)
        w = reshape(Float32[1, 0, 0, 0], 2, 2, 1, 1)  # weight on the first element of each window only
        @test BridgeKnet.crosscor(w, x) == x[1:2, 1:2, :, :]  # a true convolution gives x[2:3, 2:3]
    end

    # Expected values: python/common/numpy_nn.py's Adam and SGD on the same float32 arrays. Knet's own Adam
    # (ε on the corrected moment) gives 0.9900099f0 for the first entry after one step.
    @testset "Keras Adam: two float32 steps equal the NumPy reference's" begin
        w, g = Float32[1, -2], Float32[1f-4, -0.5]
        o = BridgeKnet.KerasAdam(w; learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
        BridgeKnet.apply!(o, w, g)
        @test all(isapprox.(w, Float32[0.9903066, -1.9900001]; rtol=4eps(Float32)))
        BridgeKnet.apply!(o, w, g)
        @test o.t == 2
        @test all(isapprox.(w, Float32[0.9805255, -1.9800003]; rtol=4eps(Float32)))
    end

    @testset "Keras SGD: one step equals the NumPy reference's" begin
        w = Float32[1, -2]
        BridgeKnet.apply!(BridgeKnet.KerasSGD(0.1), w, Float32[1f-4, -0.5])
        @test all(isapprox.(w, Float32[0.99999, -1.95]; rtol=4eps(Float32)))
    end

    @testset "bad device and optimizer names are errors naming the accepted values" begin
        meta, weights = BridgeKnet.tiny_plan("mlp", "sgd")
        @test_throws ArgumentError BridgeKnet.prepare(meta, weights; device="tpu")
        @test_throws ArgumentError BridgeKnet.prepare(merge(meta, Dict("optimizer" => "rmsprop")), weights)
        report = BridgeKnet.engine_report(BridgeKnet.prepare(meta, weights))
        @test report["device"] == "cpu" && report["optimizer"] == "sgd"
        # the versions the environment resolved: NNlib's (the max-pool rule's), AutoGrad's, CUDA.jl's
        @test report["knet_version"] == report["framework_version"] == "1.4.10"
        @test haskey(report, "nnlib_version") && haskey(report, "autograd_version")
        @test haskey(report, "cuda_jl_version") && !haskey(report, "flux_version")
        memory = BridgeKnet.memory_report(BridgeKnet.prepare(meta, weights))
        @test memory["julia_maxrss_bytes"] >= memory["julia_gc_live_bytes"] > 0
        @test !haskey(memory, "device_memory_peak_bytes")
    end
end

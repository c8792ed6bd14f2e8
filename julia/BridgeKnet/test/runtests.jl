using BridgeKnet, Test, NPZ

# Golden cases (python -m bridge.golden): a saved plan + the float64 NumPy reference's per-step losses.
const GOLDEN = joinpath(@__DIR__, "..", "..", "golden")
# Relative per-step loss difference allowed, as for every engine (bridge/golden.py TOLERANCE).
tolerance(case) = endswith(basename(case), "-sgd") ? 1e-5 : 1e-4

@testset "BridgeKnet" begin
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

    # Expected values: python/numpy_nn.py's Adam and SGD on the same float32 arrays. Knet's own Adam
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

    @test isdir(GOLDEN)
    for case in filter(isdir, readdir(GOLDEN; join=true))
        @testset "golden $(basename(case)): per-step losses match the NumPy reference" begin
            r = BridgeKnet.replay(case)
            expected = npzread(joinpath(case, "expected_losses.npy"))
            @test length(r.losses) == length(expected)
            if length(r.losses) == length(expected)
                @test maximum(abs.(r.losses .- expected) ./ abs.(expected)) <= tolerance(case)
            end
            @test 0 <= r.test_accuracy <= 1
        end
    end
end

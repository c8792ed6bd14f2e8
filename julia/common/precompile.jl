# julia/common/precompile.jl: shared by BridgeFlux and BridgeKnet, edited here. Each package holds
# a verbatim copy in its src/common/ (written by `python -m tests.julia.common_copies`, checked by
# the static tests), so that each package is whole in its own folder.
# Time to first epoch: train both models with both optimizers on a tiny in-memory plan while the
# package precompiles, so that the compiled training loop, the automatic differentiation it runs and the
# optimizers are cached with the package, and `using` + the first epoch are short. CPU only.
# What it covers: BridgeFlux's Chain type is fixed by its layers' kinds and number, not their sizes, so
# the tiny MLP (two Dense) covers every MLP with one hidden layer (the Iris default, any --hidden N) and
# the tiny CNN (two CrossCor + MaxPool, flatten, two Dense) every CNN with two convolutions and one hidden
# dense layer (the CNN default, any sizes); other depths, the Fashion-MNIST default MLP (256,128) among
# them, compile inside their first epoch. BridgeKnet's Model is one type for every model. timed_pass
# measures what each epoch compiled, and every report carries it (compile_s).
# Included inside BridgeFlux and BridgeKnet, last, with `using PrecompileTools` there.

@setup_workload begin
    @compile_workload begin
        for model in ("mlp", "cnn"), optimizer in ("sgd", "adam")
            meta, weights, x, y = tiny_plan(model, optimizer)
            s = prepare(meta, weights)
            train_epoch(s, x, y)
            predict(s, x)
            engine_report(s)
            memory_report(s)
        end
    end
end

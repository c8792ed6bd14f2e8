# Time to first epoch: train both models with both optimizers on a tiny in-memory plan while the
# package precompiles, so that the compiled training loop, the automatic differentiation it runs and the
# optimizers are cached with the package, and `using` + the first epoch are short. CPU only.
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

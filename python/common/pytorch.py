"""What the engines that run on PyTorch (torch, keras-torch) share: full float32 matmuls and convolutions, and
the device memory they report."""
from __future__ import annotations


def full_float32(torch) -> dict:
    """Turn TF32 off for matmuls and cuDNN convolutions (parity; on the CPU the flags do nothing, and are set
    anyway so every report says the same); ``reduced_precision`` and ``precision`` for the engine's report."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    matmul, cudnn = bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)
    precision = torch.get_float32_matmul_precision()
    return {"reduced_precision": matmul or cudnn or precision != "highest",
            "precision": f"allow_tf32 matmul={matmul} cudnn={cudnn}, float32_matmul_precision={precision}"}


def device_memory(torch) -> dict:
    """On a GPU, PyTorch's peak of memory its caching allocator handed out since the worker started
    (``torch.cuda.max_memory_allocated``) and the device's memory (``EngineReport``'s
    ``device_memory_peak_bytes``, ``device_memory_total_bytes``); nothing on the CPU. Not reserved memory:
    the allocator's cache is the framework's choice, the allocated peak what the model needed."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    device = torch.cuda.current_device()
    return {"device_memory_peak_bytes": int(torch.cuda.max_memory_allocated(device)),
            "device_memory_total_bytes": int(torch.cuda.get_device_properties(device).total_memory)}

"""What the engines that run on PyTorch (torch, keras-torch) share: full float32 matmuls and convolutions."""
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

"""The DeepSeek-VL model (hybrid SigLIP + SAM encoder, adaptor, LLaMA decoder), its processor and checkpoints.

Modules are imported directly (`model.vlm`, `model.processor`, ...) so importing the package stays cheap.
"""

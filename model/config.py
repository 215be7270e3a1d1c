"""Typed configuration of the DeepSeek-VL model: one dataclass per part and named presets.

`VLMConfig.from_name("tiny" | "1.3b" | "7b")` gives the spec's dimensions (spec §1); derived sizes
(token grids, head dims) are properties so they are computed in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class SigLIPConfig:
    """Low-res branch: timm-style ViT, no class token, final LayerNorm."""

    image_size: int = 384
    patch_size: int = 16
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    mean: tuple[float, float, float] = SIGLIP_MEAN
    std: tuple[float, float, float] = SIGLIP_STD

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def n_tokens(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class SAMConfig:
    """High-res branch: SAM-B ViTDet + neck + bilinear resize + two stride-2 convs."""

    image_size: int = 1024
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    out_chans: int = 256
    interp_size: int = 96  # the neck output is resized to this grid before the downsample convs
    downsample_channels: tuple[int, ...] = (512, 1024)
    norm_eps: float = 1e-6
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def out_grid(self) -> int:
        g = self.interp_size
        for _ in self.downsample_channels:
            g = (g + 1) // 2  # 3x3 stride-2 pad-1 conv
        return g

    @property
    def n_tokens(self) -> int:
        return self.out_grid * self.out_grid

    @property
    def out_dim(self) -> int:
        return self.downsample_channels[-1] if self.downsample_channels else self.out_chans


@dataclass(frozen=True)
class AdaptorConfig:
    """Vision-language adaptor: "hybrid" (7B: split up-projections, GELU, Linear) or "mlp" (1.3B)."""

    kind: str = "hybrid"
    high_dim: int = 1024  # SAM branch features (hybrid only)
    low_dim: int = 1024  # SigLIP features
    n_embed: int = 4096  # output = LLM width


@dataclass(frozen=True)
class LLMConfig:
    """LLaMA-style decoder (DeepSeek LLM): pre-norm RMSNorm, RoPE, SwiGLU, MHA, untied head."""

    n_layer: int = 30
    n_embd: int = 4096
    n_head: int = 32
    intermediate: int = 11008
    vocab_size: int = 102400
    max_seq_len: int = 4096
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@dataclass(frozen=True)
class VLMConfig:
    name: str
    vision: SigLIPConfig | None
    sam: SAMConfig | None
    aligner: AdaptorConfig
    llm: LLMConfig
    image_size: int  # side of the padded square fed to the model (the high-res side when hybrid)
    image_tokens: int = 576
    pad_color: tuple[int, int, int] = (122, 116, 104)
    min_image_side: int = 14  # the public processor never resizes a side below this

    @property
    def adaptor(self) -> AdaptorConfig:
        return self.aligner

    @property
    def hybrid(self) -> bool:
        return self.sam is not None

    def __post_init__(self) -> None:
        if self.vision is None:
            raise ValueError("every preset needs the SigLIP branch")
        if self.vision.n_tokens != self.image_tokens:
            raise ValueError(f"SigLIP gives {self.vision.n_tokens} tokens, config says {self.image_tokens}")
        if self.sam is not None and self.sam.n_tokens != self.image_tokens:
            raise ValueError(f"SAM gives {self.sam.n_tokens} tokens, config says {self.image_tokens}")
        if self.aligner.n_embed != self.llm.n_embd:
            raise ValueError("adaptor output width must equal the LLM width")
        if self.aligner.low_dim != self.vision.width:
            raise ValueError("adaptor low_dim must equal the SigLIP width")
        if (self.aligner.kind == "hybrid") != (self.sam is not None):
            raise ValueError("the hybrid adaptor goes with the SAM branch, the mlp adaptor without it")
        if self.sam is not None and self.aligner.high_dim != self.sam.out_dim:
            raise ValueError("adaptor high_dim must equal the SAM output channels")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> VLMConfig:
        """A preset; keyword overrides apply to the LLM config (e.g. vocab_size=4096)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        cfg = PRESETS[name]()
        if overrides:
            llm = dataclasses.replace(cfg.llm, **overrides)
            aligner = dataclasses.replace(cfg.aligner, n_embed=llm.n_embd)  # follows the LLM width
            cfg = dataclasses.replace(cfg, llm=llm, aligner=aligner)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VLMConfig:
        def tup(sub: dict[str, Any] | None, kind: type) -> Any:
            if sub is None:
                return None
            kw = {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}
            return kind(**kw)

        return cls(
            name=d["name"],
            vision=tup(d.get("vision"), SigLIPConfig),
            sam=tup(d.get("sam"), SAMConfig),
            aligner=tup(d["aligner"], AdaptorConfig),
            llm=tup(d["llm"], LLMConfig),
            image_size=d["image_size"],
            image_tokens=d["image_tokens"],
            pad_color=tuple(d["pad_color"]),
            min_image_side=d.get("min_image_side", 14),
        )


def _tiny() -> VLMConfig:
    # Same code paths as 7b (hybrid, windowed + global SAM blocks with window padding, the hd branch),
    # but 16 image tokens and small widths so a forward+backward takes milliseconds on a CPU.
    sam = SAMConfig(
        image_size=128,
        patch_size=16,
        width=48,
        layers=4,
        heads=2,
        window_size=3,
        global_attn_indexes=(1, 3),
        out_chans=32,
        interp_size=16,
        downsample_channels=(48, 64),
    )
    vision = SigLIPConfig(image_size=64, patch_size=16, width=64, layers=2, heads=2)
    llm = LLMConfig(n_layer=2, n_embd=128, n_head=4, intermediate=344, vocab_size=512, max_seq_len=512)
    return VLMConfig(
        name="tiny",
        vision=vision,
        sam=sam,
        aligner=AdaptorConfig("hybrid", high_dim=64, low_dim=64, n_embed=128),
        llm=llm,
        image_size=128,
        image_tokens=16,
        pad_color=(122, 116, 104),
    )


def _b1_3() -> VLMConfig:
    llm = LLMConfig(n_layer=24, n_embd=2048, n_head=16, intermediate=5632)
    return VLMConfig(
        name="1.3b",
        vision=SigLIPConfig(),
        sam=None,
        aligner=AdaptorConfig("mlp", high_dim=0, low_dim=1024, n_embed=2048),
        llm=llm,
        image_size=384,
        image_tokens=576,
        pad_color=(127, 127, 127),
    )


def _b7() -> VLMConfig:
    return VLMConfig(
        name="7b",
        vision=SigLIPConfig(),
        sam=SAMConfig(),
        aligner=AdaptorConfig("hybrid", high_dim=1024, low_dim=1024, n_embed=4096),
        llm=LLMConfig(),
        image_size=1024,
        image_tokens=576,
        pad_color=(122, 116, 104),
    )


PRESETS = {"tiny": _tiny, "1.3b": _b1_3, "7b": _b7}

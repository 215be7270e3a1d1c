"""The DeepSeek-VL model: hybrid vision encoder -> adaptor -> LLaMA decoder (spec §1).

Adaptor outputs are written into the image-token positions of the input embeddings; `set_trainable`
implements the three training stages and `generate` decodes with the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.adaptor import build_adaptor
from model.config import VLMConfig
from model.generation import SamplingConfig, next_token
from model.llm import KVCache, LLaMA
from model.sam import SAMViTDet
from model.siglip import SigLIPViT

STAGE_PARTS = {1: ("adaptor",), 2: ("llm", "adaptor"), 3: ("llm", "adaptor", "siglip")}


@dataclass
class VLMOutput:
    loss: torch.Tensor | None  # mean over supervised tokens
    logits: torch.Tensor  # (B, T, vocab)
    n_tokens: int = 0  # supervised tokens behind `loss`, for token-weighted accumulation


def _init_weights(m: nn.Module) -> None:
    # LLaMA/timm-style init; zero-initialised parameters (rel-pos, hd alpha) are left as built.
    # Nothing to draw on the meta device (counting, or a skeleton that a checkpoint will fill).
    if any(p.is_meta for p in m.parameters(recurse=False)):
        return
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)


class MultiModalityCausalLM(nn.Module):
    def __init__(self, config: VLMConfig) -> None:
        super().__init__()
        self.config = config
        assert config.vision is not None
        self.vision = SigLIPViT(config.vision)
        self.sam = SAMViTDet(config.sam) if config.sam is not None else None
        self.adaptor = build_adaptor(config.aligner)
        self.llm = LLaMA(config.llm)
        self.apply(_init_weights)

    # ---- parts, stages, checkpointing -------------------------------------------------------------
    def part_parameters(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Parameters per part; the SAM stride-2 convs count as adaptor (as the paper counts them)."""
        parts: dict[str, list[tuple[str, nn.Parameter]]] = {"siglip": [], "sam": [], "adaptor": [], "llm": []}
        for name, p in self.named_parameters():
            top = name.split(".", 1)[0]
            if top == "vision":
                parts["siglip"].append((name, p))
            elif top == "sam":
                parts["adaptor" if name.startswith("sam.downsamples.") else "sam"].append((name, p))
            else:
                parts[top].append((name, p))
        return parts

    def set_trainable(self, stage: int) -> dict[str, int]:
        """Stage 1: adaptor; 2: LLM + adaptor; 3: LLM + adaptor + SigLIP (SAM frozen). Returns counts."""
        if stage not in STAGE_PARTS:
            raise ValueError(f"unknown stage {stage}; known: {sorted(STAGE_PARTS)}")
        counts = {}
        for part, params in self.part_parameters().items():
            on = part in STAGE_PARTS[stage]
            for _, p in params:
                p.requires_grad_(on)
            counts[part] = sum(p.numel() for _, p in params) if on else 0
        return counts

    def init_buffers(self, device: torch.device | str | None = None) -> None:
        """Recreate the non-persistent constants (after building on the meta device)."""
        for m in (self.vision, self.sam, self.llm):
            if m is not None:
                m.init_buffers(device)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        for m in (self.vision, self.sam, self.llm):
            if m is not None:
                m.grad_checkpointing = enabled

    # ---- forward ------------------------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) padded images in [0, 1] -> (N, image_tokens, llm width)."""
        low_size = self.config.vision.image_size  # type: ignore[union-attr]
        high = self.sam(images) if self.sam is not None else None  # (N, 576, 1024)
        low_images = images
        if images.shape[-1] != low_size:
            # the public tower takes its 384 view with torchvision Resize(antialias=True): bilinear
            low_images = F.interpolate(
                images.float(),
                size=(low_size, low_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            ).to(images.dtype)
        low = self.vision(low_images)  # (N, 576, 1024)
        return self.adaptor(high, low)  # (N, 576, d)

    def prepare_inputs_embeds(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        images_seq_mask: torch.Tensor | None = None,
        images_emb_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """input_ids (B, T); pixel_values (B, N, 3, S, S); images_seq_mask (B, T);
        images_emb_mask (B, N, n_tokens) -> inputs_embeds (B, T, d)."""
        embeds = self.llm.tok_embeddings(input_ids.clamp(min=0))  # (B, T, d)
        if pixel_values is None or images_seq_mask is None or not bool(images_seq_mask.any()):
            return embeds
        if images_emb_mask is None:
            raise ValueError("images_emb_mask is required with pixel_values")
        valid = images_emb_mask.any(-1)  # (B, N): padding images are never encoded
        # a bf16 model is fed bf16 pixels; under autocast the weights stay fp32 and this is a no-op
        pixels = pixel_values[valid].to(self.vision.patch_embed.proj.weight.dtype)
        img = self.encode_images(pixels)  # (M, n_tokens, d)
        feats = img[images_emb_mask[valid]]  # (sum of image tokens, d), in (b, n, t) order
        n_seq = int(images_seq_mask.sum())
        if feats.shape[0] != n_seq:
            raise ValueError(f"{n_seq} image positions in the text but {feats.shape[0]} image embeddings")
        return embeds.masked_scatter(images_seq_mask[..., None], feats.to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        images_seq_mask: torch.Tensor | None = None,
        images_emb_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> VLMOutput:
        embeds = self.prepare_inputs_embeds(input_ids, pixel_values, images_seq_mask, images_emb_mask)
        mask = None if attention_mask is None or bool(attention_mask.all()) else attention_mask
        logits = self.llm(inputs_embeds=embeds, attention_mask=mask)  # (B, T, V)
        loss, n_tokens = None, 0
        if labels is not None:
            target = labels[:, 1:].reshape(-1)
            n_tokens = int((target != -100).sum())
            if n_tokens:
                loss = F.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]).float(), target, ignore_index=-100
                )
            else:  # nothing supervised in this batch: a zero that keeps the graph
                loss = logits.sum() * 0.0
        return VLMOutput(loss=loss, logits=logits, n_tokens=n_tokens)

    # ---- generation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        images_seq_mask: torch.Tensor | None = None,
        images_emb_mask: torch.Tensor | None = None,
        sampling: SamplingConfig | None = None,
        eos_id: int | None = None,
        pad_id: int = 0,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        **sampling_kw: object,
    ) -> torch.Tensor:
        """Left-padded prompts (B, T) -> new tokens (B, n <= max_new_tokens), pad_id after EOS."""
        cfg = sampling or SamplingConfig(**sampling_kw)  # type: ignore[arg-type]
        B, T = input_ids.shape
        dev = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.long, device=dev)
        attention_mask = attention_mask.long()
        embeds = self.prepare_inputs_embeds(input_ids, pixel_values, images_seq_mask, images_emb_mask)
        counts = torch.zeros(B, self.config.llm.vocab_size, dtype=torch.long, device=dev)
        seen = counts.scatter_add_(1, input_ids.clamp(min=0), attention_mask) > 0  # (B, V), padding excluded
        cache = KVCache(self.config.llm.n_layer, T + cfg.max_new_tokens) if use_cache else None
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        out: list[torch.Tensor] = []
        step_in = embeds
        for _ in range(cfg.max_new_tokens):
            if use_cache:
                logits = self.llm(
                    inputs_embeds=step_in, attention_mask=attention_mask, kv_cache=cache, last_only=True
                )
            else:
                logits = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, last_only=True)
            tok = next_token(logits[:, -1], seen, cfg, generator)  # (B,)
            tok = torch.where(done, torch.full_like(tok, pad_id), tok)
            out.append(tok)
            seen[torch.arange(B, device=dev), tok] = True
            if eos_id is not None:
                done = done | (tok == eos_id)
                if bool(done.all()):
                    break
            step_in = self.llm.tok_embeddings(tok[:, None])  # (B, 1, d)
            if not use_cache:  # recompute everything: the reference the cache is tested against
                embeds = torch.cat([embeds, step_in], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones(B, 1, dtype=torch.long, device=dev)], 1)
        return torch.stack(out, 1) if out else input_ids.new_zeros(B, 0)


DeepSeekVL = MultiModalityCausalLM


def param_counts(model: MultiModalityCausalLM) -> dict[str, int]:
    """Parameter counts per part; works on the meta device (nothing allocated)."""
    parts = {k: sum(p.numel() for _, p in v) for k, v in model.part_parameters().items()}
    convs = sum(p.numel() for n, p in model.part_parameters()["adaptor"] if n.startswith("sam."))
    return {
        "siglip": parts["siglip"],
        "sam": parts["sam"],
        "vision": parts["siglip"] + parts["sam"],
        "adaptor_mlp": parts["adaptor"] - convs,
        "adaptor_convs": convs,
        "adaptor": parts["adaptor"],
        "llm": parts["llm"],
        "total": sum(parts.values()),
    }

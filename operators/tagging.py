"""`taxonomy.tag`: tags instruction samples with taxonomy leaf ids (rules + the trained fastText tagger).

Each tag records its confidence and source (`rule:task`, `rule:keyword`, `fasttext`, or the source's own).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from operators.base import Operator, OperatorConfig, Resources, register
from operators.sample import Rejection, Sample


class TagConfig(OperatorConfig):
    taxonomy: str = Field("", description="taxonomy YAML; empty = the bundled deepseek_vl.yaml")
    model: str = Field("", description="fastText model from `dsvl-data taxonomy train-tagger`; empty = rules only")
    k: int = Field(2, ge=1, le=10, description="most fastText labels per sample")
    threshold: float = Field(0.3, ge=0.0, le=1.0, description="least fastText probability kept")
    max_tags: int = Field(3, ge=1, description="most tags kept per sample, best first")
    categories: list[str] = Field(default_factory=list, description="only tag these mixture categories (empty: all)")
    stages: list[int] = Field([3], description="only tag samples feeding one of these stages (empty: all); "
                              "the taxonomy describes SFT use cases")


@register("taxonomy.tag")
class TaxonomyTagger(Operator):
    Config = TagConfig
    resources = Resources(actor=True, batch_size=256)  # the fastText model is loaded once per actor
    version = "1"

    def setup(self) -> None:
        from taxonomy.schema import DEFAULT_PATH, load
        from taxonomy.tagger import Tagger

        cfg = self.config
        self.tagger = Tagger(load(cfg.taxonomy or DEFAULT_PATH), cfg.model or None, k=cfg.k,
                             threshold=cfg.threshold)

    def process(self, sample: Sample) -> Iterable[Sample | Rejection]:
        from taxonomy.tagger import sample_text

        cfg = self.config
        if (cfg.categories and sample.category not in cfg.categories) or (
                cfg.stages and not set(sample.stage) & set(cfg.stages)):
            return [sample]
        text = sample_text(sample.messages, sample.text)
        turns = [m.get("content", "") for m in sample.messages or [] if m.get("role") == "user"] or None
        tags = self.tagger.tag(text, sample.task, sample.taxonomy, turns=turns)
        sample.taxonomy = tags[: self.config.max_tags]
        return [sample]

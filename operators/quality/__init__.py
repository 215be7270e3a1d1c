"""Quality operators: fastText language id (`quality.langid`) and fastText quality scoring
(`quality.fasttext`), plus the trainer behind `dsvl-data quality train`.
"""

from operators.quality.classifier import QualityScorer, train_quality_classifier
from operators.quality.langid import LanguageIdentifier
from operators.quality.text import normalise_text, sample_text

__all__ = ["LanguageIdentifier", "QualityScorer", "normalise_text", "sample_text", "train_quality_classifier"]

"""Workers that analyse a topic or articles about it: `TopicResearcher` (`topic_researcher`:
research questions, keywords, sub-topics, candidate sources) and `ContentClassifier`
(`classifier`: relevance and sentiment per article).

Besides the worker framework (`aifactory.workers.base`, `.model_calls`), this package uses
`aifactory.workers.text` and the topic check of `aifactory.workers.structure.build`.
"""

from __future__ import annotations

from .classifier import ContentClassifier
from .topic_researcher import TopicResearcher

__all__ = ["ContentClassifier", "TopicResearcher"]

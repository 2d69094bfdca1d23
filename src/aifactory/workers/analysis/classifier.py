"""`ContentClassifier`: relevance to a topic and sentiment per article (action `classify`).

Output:

```
{"topic", "min_relevance", "method",
 "articles": [{...the article's own fields, "relevance", "sentiment", "sentiment_label"}],
 "counts": {"total", "kept", "dropped", "positive", "neutral", "negative"}}
```

Articles are sorted by relevance, highest first; equal relevances keep their input order.
Those under `min_relevance` (default 0.01: what does not name the topic's subject at all)
are dropped as off-topic (0.0 keeps all and only scores them); the label counts are over
the kept articles.

Instruction-like text (`aifactory.workers.text.instructions`: "Ignore previous instructions
and ...") is data that tries to steer its reader. Before any scoring, such sentences are
taken out of each article's `summary` and `content` and the article gets
`"flags": ["instruction_like"]` (and `"removed_sentences"`, how many); an article whose title
instructs is dropped. A model never sees those sentences, and a report never quotes them.
`counts` adds `flagged` (articles with text removed) and `off_topic` (below `min_relevance`).

`relevance` is in [0, 1], `sentiment` in [-1, 1], both with four decimals;
`sentiment_label` is derived from `sentiment` the same way on both paths
(`aifactory.workers.text.sentiment.label`).

Without a language model (`non-llm:keyword-lexicon`):

- relevance: 0 unless the article is about the topic's subject
  (`aifactory.workers.text.subjects`): its title or text names a topic word that is not a
  framing word (market, analysis, report, trends, ... the words a request uses to say what
  kind of work it wants), or a term related to one (*model*, *LLM*, *machine learning* name
  *AI*). A farmers' market article shares "market" with "Market analysis for AI tools" but
  names neither AI nor tools, so it scores 0; an article on "open-weight models" does not.
  Otherwise the overlap: the topic's words (`aifactory.workers.text.term_match.terms`) the
  article names (directly or by a related term), a word in the title counting 2 and in the
  summary or content 1, summed and divided by 3 x the number of topic words; the optional
  input `keywords` (e.g. the topic researcher's) adds up to 0.1 for the share of them the
  article mentions, capped at 1. Keywords never make an article on-topic by themselves:
  without a model they hold the description's ordinary words ("expect", "growing"), which a
  farmers' market article shares as readily as an AI one;
- sentiment: the lexicon score of title, summary and content
  (`aifactory.workers.text.sentiment`, with negation).

With one (`llm:<model>`), articles go to the model in batches of `batch_size` as data, each
with an id; the reply must score every id of its batch exactly once (relevance 0-1,
sentiment -1..1), or the stage fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from ..._exceptions import BadInputError, StageFailedError
from ...llm.base import LLM
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from ..model_calls import LLMTally, ask_json, llm_method
from ..structure.build import check_topic
from ..text.instructions import instruction_like, without_instructions
from ..text.sentiment import label, sentiment_score
from ..text.subjects import names_term, subject_terms
from ..text.term_match import terms

__all__ = ["METHOD", "ClassificationJob", "ContentClassifier", "keyword_relevance"]

METHOD = "non-llm:keyword-lexicon"
MAX_ARTICLES = 1_000
MAX_BATCH = 50
_MAX_FIELD = 100_000
_PROMPT_TEXT = 4_000
_TEXT_FIELDS = ("title", "summary", "content", "url")
_INSTRUCTIONS = (
    "You classify news articles for a research report on `data.topic`. For every article in "
    "`data.articles`, give its `id`, its relevance to the topic from 0 (unrelated) to 1 "
    "(squarely about it), and its sentiment from -1 (very negative) through 0 (neutral) to 1 "
    "(very positive). Score every article exactly once."
)


def _article(value: object, index: int) -> dict[str, Any]:
    where = f"articles[{index}]"
    if not isinstance(value, Mapping):
        raise BadInputError(f"{where} must be an object", details={"field": where})
    for field in _TEXT_FIELDS:
        text = value.get(field)
        if text is not None and (not isinstance(text, str) or len(text) > _MAX_FIELD):
            raise BadInputError(
                f"{where}.{field} must be text of at most {_MAX_FIELD} characters",
                details={"field": f"{where}.{field}"},
            )
    return dict(value)


def _body(article: Mapping[str, Any]) -> str:
    return " ".join(str(article.get(field) or "") for field in ("summary", "content"))


def keyword_relevance(
    topic_terms: Sequence[str], title: str, body: str, keywords: Sequence[str] = ()
) -> float:
    """The non-LLM relevance of an article to the topic words `topic_terms` and the extra
    `keywords` (both in `terms` form; see the module docstring), four decimals.
    """
    wanted = list(dict.fromkeys(topic_terms))
    if not wanted:
        return 0.0
    title_terms, body_terms = terms(title), terms(body)
    in_title = {t for t in wanted if names_term(t, title_terms)}
    in_body = {t for t in wanted if names_term(t, body_terms)}
    if not any(t in in_title or t in in_body for t in subject_terms(wanted)):
        return 0.0
    points = sum(2 * (t in in_title) + (t in in_body) for t in wanted)
    found = set(title_terms) | set(body_terms)
    extra = [k for k in dict.fromkeys(keywords) if k not in wanted]
    bonus = 0.1 * sum(k in found for k in extra) / len(extra) if extra else 0
    return round(min(1.0, points / (3 * len(wanted)) + bonus), 4)


def _cleaned(article: dict[str, Any]) -> dict[str, Any] | None:
    """The article without instruction-like sentences (flagged), or `None` if its title
    instructs."""
    if instruction_like(str(article.get("title") or "")):
        return None
    removed = 0
    for field in ("summary", "content"):
        text = article.get(field)
        if isinstance(text, str) and text:
            kept, dropped = without_instructions(text)
            article[field] = kept
            removed += len(dropped)
    if removed:
        article["flags"] = [*article.get("flags", []), "instruction_like"]
        article["removed_sentences"] = removed
    return article


@attrs.frozen
class ClassificationJob:
    """A checked classification job."""

    topic: str
    articles: tuple[dict[str, Any], ...]
    min_relevance: float
    batch_size: int
    keywords: tuple[str, ...] = ()
    dropped_instructions: int = 0

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> ClassificationJob:
        """Check `inputs` (`topic`, `articles`: objects whose `title`, `summary`, `content`
        and `url` are text when present, optional `keywords`: up to 100 texts) and `params`
        (`min_relevance` 0-1, `batch_size` 1-50), and take instruction-like text out of the
        articles (module docstring). Raises `BadInputError` naming the offending field.
        """
        articles = inputs.get("articles")
        if not isinstance(articles, list):
            raise BadInputError("articles must be a list", details={"field": "articles"})
        if len(articles) > MAX_ARTICLES:
            raise BadInputError(f"more than {MAX_ARTICLES} articles", details={"field": "articles"})
        least = params.get("min_relevance")
        if isinstance(least, bool) or not isinstance(least, int | float) or not 0 <= least <= 1:
            raise BadInputError(
                "min_relevance must be a number from 0 to 1", details={"field": "min_relevance"}
            )
        batch = params.get("batch_size")
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
            raise BadInputError(
                f"batch_size must be an integer from 1 to {MAX_BATCH}",
                details={"field": "batch_size"},
            )
        keywords = inputs.get("keywords") or []
        if (
            not isinstance(keywords, list)
            or len(keywords) > 100
            or not all(isinstance(k, str) and len(k) <= 200 for k in keywords)
        ):
            raise BadInputError(
                "keywords must be a list of at most 100 texts", details={"field": "keywords"}
            )
        checked = [_cleaned(_article(a, i)) for i, a in enumerate(articles)]
        return cls(
            topic=check_topic(inputs.get("topic")),
            articles=tuple(a for a in checked if a is not None),
            min_relevance=float(least),
            batch_size=batch,
            keywords=tuple(dict.fromkeys(t for k in keywords for t in terms(k))),
            dropped_instructions=sum(a is None for a in checked),
        )

    def lexicon_scores(self) -> list[tuple[float, float]]:
        """(relevance, sentiment) of each article by the non-LLM method.

        Raises `BadInputError` if the topic has no content words to match.
        """
        topic_terms = terms(self.topic)
        if not topic_terms:
            raise BadInputError(
                "the topic has no content words to match articles against",
                details={"field": "topic"},
            )
        scores = []
        for article in self.articles:
            title, body = str(article.get("title") or ""), _body(article)
            relevance = keyword_relevance(topic_terms, title, body, self.keywords)
            scores.append((relevance, sentiment_score(f"{title}. {body}")))
        return scores

    def result(self, scores: Sequence[tuple[float, float]], method: str) -> dict[str, Any]:
        """The output for `scores` (one per article, in input order)."""
        scored = [
            {**article, "relevance": rel, "sentiment": sent, "sentiment_label": label(sent)}
            for article, (rel, sent) in zip(self.articles, scores, strict=True)
        ]
        ranked = sorted(scored, key=lambda a: -float(a["relevance"]))  # stable on ties
        kept = [a for a in ranked if a["relevance"] >= self.min_relevance]
        labels = [a["sentiment_label"] for a in kept]
        counts = {
            "total": len(scored) + self.dropped_instructions,
            "kept": len(kept),
            "dropped": len(scored) - len(kept) + self.dropped_instructions,
            "off_topic": len(scored) - len(kept),
            "flagged": sum("instruction_like" in a.get("flags", ()) for a in kept)
            + self.dropped_instructions,
            **{name: labels.count(name) for name in ("positive", "neutral", "negative")},
        }
        return {
            "topic": self.topic,
            "min_relevance": self.min_relevance,
            "articles": kept,
            "counts": counts,
            "method": method,
        }


def _batch_schema(ids: list[str]) -> dict[str, Any]:
    score = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "relevance", "sentiment"],
        "properties": {
            "id": {"type": "string", "enum": ids},
            "relevance": {"type": "number", "minimum": 0, "maximum": 1},
            "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
        },
    }
    n = len(ids)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["scores"],
        "properties": {"scores": {"type": "array", "minItems": n, "maxItems": n, "items": score}},
    }


async def _model_scores(
    job: ClassificationJob, llm: LLM, tally: LLMTally, ctx: WorkerContext
) -> list[tuple[float, float]]:
    scores: list[tuple[float, float]] = []
    total = len(job.articles)
    for start in range(0, total, job.batch_size):
        batch = job.articles[start : start + job.batch_size]
        ids = [f"a{start + i + 1}" for i in range(len(batch))]
        data = {
            "topic": job.topic,
            "articles": [
                {
                    "id": id_,
                    "title": str(article.get("title") or "")[:_PROMPT_TEXT],
                    "text": _body(article)[:_PROMPT_TEXT],
                }
                for id_, article in zip(ids, batch, strict=True)
            ],
        }
        reply = await ask_json(
            llm,
            instructions=_INSTRUCTIONS,
            data=data,
            schema=_batch_schema(ids),
            schema_name="article_scores",
            tally=tally,
        )
        by_id = {item["id"]: item for item in reply["scores"]}
        if sorted(by_id) != sorted(ids):
            raise StageFailedError(
                "the model's scores do not match the batch's article ids one to one",
                details={"expected": len(ids), "distinct": len(by_id)},
            )
        scores.extend(
            (round(float(by_id[i]["relevance"]), 4), round(float(by_id[i]["sentiment"]), 4))
            for i in ids
        )
        await ctx.progress(30 + 50 * len(scores) / total, f"scored {len(scores)} of {total}")
    return scores


class ContentClassifier(ModelWorker[ClassificationJob]):
    """Scores articles for relevance and sentiment (action `classify`); see module docstring.

    Reports progress at 10, 30, 80 and 100 % (and per batch with a model).
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="content_classifier",
        description="Relevance to a topic and sentiment for each article.",
        actions=("classify",),
        slots=8,
        memory_mb=64,
    )
    defaults: ClassVar[Mapping[str, Any]] = {"min_relevance": 0.01, "batch_size": 20}

    job_type = ClassificationJob

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        """Refuse an unknown action or unusable inputs/params. Raises `BadInputError`."""
        job = self.checked_job(action, inputs, params)
        if self.llm is None and not terms(job.topic):
            job.lexicon_scores()  # raises: nothing to match against

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """Tokens for the batched model calls (none without a model). Raises `BadInputError`."""
        job = self.job(inputs, params)
        if self.llm is None:
            return ResourceEstimate(
                duration_ms=10 + len(job.articles) // 10, memory_mb=self.info.memory_mb
            )
        chars = sum(min(len(_body(a)), _PROMPT_TEXT) + 100 for a in job.articles)
        batches = -(-len(job.articles) // job.batch_size)
        return ResourceEstimate(
            prompt_tokens=200 * batches + chars // 4,
            completion_tokens=25 * len(job.articles),
            duration_ms=3_000 * batches,
            memory_mb=self.info.memory_mb,
        )

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Classify the articles. Raises `BadInputError` for unusable input and
        `StageFailedError` when the model fails or answers outside its schema.
        """
        await ctx.progress(10, "checking input")
        job = self.checked_job(action, inputs, params)
        tally = LLMTally()
        await ctx.progress(30, f"scoring {len(job.articles)} articles")
        if self.llm is None:
            scores, method = job.lexicon_scores(), METHOD
            notes: tuple[str, ...] = ("no LLM configured: keyword overlap and a lexicon",)
        else:
            scores = await _model_scores(job, self.llm, tally, ctx)
            method, notes = llm_method(self.llm), ()
        output = job.result(scores, method)
        await ctx.progress(80, f"kept {output['counts']['kept']} of {len(job.articles)}")
        summary = StageSummary(method=method, usage=tally.usage, cost=tally.cost, notes=notes)
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)

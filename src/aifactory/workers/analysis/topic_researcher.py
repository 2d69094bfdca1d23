"""`TopicResearcher`: research questions, keywords, sub-topics and sources for a topic.

Output (action `research`):

```
{"topic", "depth", "research_questions": [str], "keywords": [str], "subtopics": [str],
 "candidate_sources": [{"title", "kind", "query"}], "method"}
```

`depth` sets how much is asked for (questions / keywords / sub-topics / sources): overview
4/6/3/3, standard 6/10/5/5, detailed 9/15/8/8. `kind` is one of `SOURCE_KINDS`.

Without a language model the method is `non-llm:keyword-templates`:

- keywords: the topic's own content words in order, then the salient phrases of the
  description (`aifactory.workers.text.phrases`, topic words excluded), without repeats;
- sub-topics: the description's salient phrases, then fixed angles on the topic (current
  state, key players, trends, risks, regulation, applications, history, outlook);
- research questions: what / why / how / who / trends / risks questions phrased from the
  topic, then, for detailed research, one question per sub-topic;
- candidate sources: one per kind (news, analysis, academic, blog, official, community),
  then news searches per sub-topic, each with a search query.

With one, the model answers in a schema (`llm:<model>`); its lists are checked (1..n items,
texts of 1-300 characters, keywords of 1-80, kinds from the enum) and cut of repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..._exceptions import BadInputError
from ...llm.base import LLM
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from ..model_calls import LLMTally, ask_json, llm_method, reply_text
from ..structure.build import check_topic
from ..text.keywords import fold, is_content_word, tokenize
from ..text.phrases import salient_phrases

__all__ = ["DEPTHS", "METHOD", "SOURCE_KINDS", "ResearchJob", "TopicResearcher", "research_plan"]

METHOD = "non-llm:keyword-templates"
SOURCE_KINDS = ("news", "analysis", "academic", "blog", "official", "community")
DEPTHS: Mapping[str, tuple[int, int, int, int]] = {
    # questions, keywords, subtopics, sources
    "overview": (4, 6, 3, 3),
    "standard": (6, 10, 5, 5),
    "detailed": (9, 15, 8, 8),
}
MAX_DESCRIPTION = 20_000
_MAX_TEXT = 300
_MAX_KEYWORD = 80
_QUESTIONS = (
    "What is the scope of {topic}, and which terms define it?",
    "What makes {topic} important now, and to whom?",
    "How are people applying {topic} in practice?",
    "Who are the main players in {topic}?",
    "What are the current trends in {topic}?",
    "What are the main risks and open problems in {topic}?",
)
_ANGLES = (
    "current state of {topic}",
    "key players in {topic}",
    "trends in {topic}",
    "risks of {topic}",
    "regulation of {topic}",
    "applications of {topic}",
    "history of {topic}",
    "outlook for {topic}",
)
_SOURCES = (
    ("news", "News coverage of {topic}", "{topic} news"),
    ("analysis", "Industry analysis of {topic}", "{topic} industry analysis"),
    ("academic", "Research papers on {topic}", "{topic} research"),
    ("blog", "Expert blogs and feeds on {topic}", "{topic} blog"),
    ("official", "Official and regulatory sources on {topic}", "{topic} regulation"),
    ("community", "Community discussion of {topic}", "{topic} forum"),
)
_INSTRUCTIONS = (
    "You plan research on `data.topic` (with `data.description` as context). Give at most "
    "`data.counts.research_questions` research questions, `data.counts.keywords` search "
    "keywords (short phrases), `data.counts.subtopics` sub-topics and "
    "`data.counts.candidate_sources` kinds of sources to consult, each with a title, a kind "
    "and a web search query. Be specific to the topic."
)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for item in items:
        key = fold(item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


@attrs.frozen
class ResearchJob:
    """A checked research job."""

    topic: str
    description: str
    depth: str

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> ResearchJob:
        """Check `inputs` (`topic`, optional `description`) and `params` (`depth`).

        Raises `BadInputError` naming the offending field.
        """
        description = inputs.get("description")
        if description is None:
            description = ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise BadInputError(
                f"description must be text of at most {MAX_DESCRIPTION} characters",
                details={"field": "description"},
            )
        depth = params.get("depth")
        if depth not in DEPTHS:
            raise BadInputError(
                f"depth must be one of {', '.join(DEPTHS)}",
                details={"field": "depth", "choices": list(DEPTHS)},
            )
        return cls(check_topic(inputs.get("topic")), " ".join(description.split()), str(depth))

    @property
    def counts(self) -> dict[str, int]:
        """How many questions, keywords, sub-topics and sources this depth asks for."""
        names = ("research_questions", "keywords", "subtopics", "candidate_sources")
        return dict(zip(names, DEPTHS[self.depth], strict=True))


def research_plan(job: ResearchJob) -> dict[str, Any]:
    """The non-LLM research plan for `job` (pure and deterministic; see module docstring)."""
    counts = job.counts
    topic_words = [w for w in tokenize(job.topic) if is_content_word(fold(w))]
    phrases = salient_phrases(job.description, 24, exclude=tokenize(job.topic))
    keywords = _unique([*topic_words, *phrases])[: counts["keywords"]]
    angles = [angle.format(topic=job.topic) for angle in _ANGLES]
    subtopics = _unique([*phrases, *angles])[: counts["subtopics"]]
    questions = [q.format(topic=job.topic) for q in _QUESTIONS]
    questions += [f"What role does {s} play in {job.topic}?" for s in subtopics if s not in angles]
    sources = [
        {
            "title": title.format(topic=job.topic),
            "kind": kind,
            "query": query.format(topic=job.topic),
        }
        for kind, title, query in _SOURCES
    ]
    sources += [
        {"title": f"News on {s}", "kind": "news", "query": f"{job.topic} {s} news"}
        for s in subtopics
    ]
    return {
        "research_questions": questions[: counts["research_questions"]],
        "keywords": keywords,
        "subtopics": subtopics,
        "candidate_sources": sources[: counts["candidate_sources"]],
    }


def _schema(counts: Mapping[str, int]) -> dict[str, Any]:
    def strings(n: int) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": n, "items": {"type": "string"}}

    source = {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "kind", "query"],
        "properties": {
            "title": {"type": "string"},
            "kind": {"type": "string", "enum": list(SOURCE_KINDS)},
            "query": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(counts),
        "properties": {
            "research_questions": strings(counts["research_questions"]),
            "keywords": strings(counts["keywords"]),
            "subtopics": strings(counts["subtopics"]),
            "candidate_sources": {
                "type": "array",
                "minItems": 1,
                "maxItems": counts["candidate_sources"],
                "items": source,
            },
        },
    }


async def _model_plan(job: ResearchJob, llm: LLM, tally: LLMTally) -> dict[str, Any]:
    data = {"topic": job.topic, "description": job.description, "counts": job.counts}
    reply = await ask_json(
        llm,
        instructions=_INSTRUCTIONS,
        data=data,
        schema=_schema(job.counts),
        schema_name="research_plan",
        tally=tally,
    )

    def texts(name: str, limit: int) -> list[str]:
        return _unique([reply_text(v, f"/{name}/{i}", limit) for i, v in enumerate(reply[name])])

    sources = []
    seen: set[str] = set()
    for i, item in enumerate(reply["candidate_sources"]):
        query = reply_text(item["query"], f"/candidate_sources/{i}/query", _MAX_TEXT)
        if fold(query) in seen:
            continue
        seen.add(fold(query))
        title = reply_text(item["title"], f"/candidate_sources/{i}/title", _MAX_TEXT)
        sources.append({"title": title, "kind": item["kind"], "query": query})
    return {
        "research_questions": texts("research_questions", _MAX_TEXT),
        "keywords": texts("keywords", _MAX_KEYWORD),
        "subtopics": texts("subtopics", _MAX_TEXT),
        "candidate_sources": sources,
    }


class TopicResearcher(ModelWorker[ResearchJob]):
    """Plans research on a topic (action `research`); see the module docstring."""

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="topic_researcher",
        description="Research questions, keywords, sub-topics and candidate sources for a topic.",
        actions=("research",),
        slots=8,
        memory_mb=64,
    )
    defaults: ClassVar[Mapping[str, Any]] = {"depth": "standard"}

    job_type = ResearchJob

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """Tokens for one model call (none without a model). Raises `BadInputError`."""
        job = self.job(inputs, params)
        if self.llm is None:
            return ResourceEstimate(duration_ms=10, memory_mb=self.info.memory_mb)
        return ResourceEstimate(
            prompt_tokens=250 + len(job.description) // 4,
            completion_tokens=30 * sum(job.counts.values()),
            duration_ms=5_000,
            memory_mb=self.info.memory_mb,
        )

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Plan the research. Raises `BadInputError` for unusable input and
        `StageFailedError` when the model fails or answers outside its schema.
        """
        await ctx.progress(10, "checking input")
        job = self.checked_job(action, inputs, params)
        tally = LLMTally()
        if self.llm is None:
            await ctx.progress(30, "ranking keywords and phrasing questions")
            plan, method = research_plan(job), METHOD
            notes: tuple[str, ...] = ("no LLM configured: keyword ranking and templates",)
        else:
            await ctx.progress(30, "asking the model")
            plan, method, notes = await _model_plan(job, self.llm, tally), llm_method(self.llm), ()
        await ctx.progress(80, f"{len(plan['research_questions'])} questions")
        output = {"topic": job.topic, "depth": job.depth, **plan, "method": method}
        summary = StageSummary(method=method, usage=tally.usage, cost=tally.cost, notes=notes)
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)

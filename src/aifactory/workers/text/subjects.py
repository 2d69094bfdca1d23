"""What a topic is about, and whether a text names it: subject words and related terms.

A request's topic mixes the kind of work wanted with what the work is about. In "Market
analysis for AI tools", *market* and *analysis* are framing words (`FRAMING_WORDS`: they say
what kind of report is wanted) and *ai* and *tool* are its subject (`subject_terms`). A text
is about the subject when it names a subject word, or a term related to one
(`RELATED_TERMS`): an article on "open-weight models" or "LLM pricing" is about AI without
writing "AI", while a farmers' market article shares only the framing word "market".

All words here are in the `aifactory.workers.text.term_match.terms` form (case-folded, simple
singular). `RELATED_TERMS` is a fixed table, shown in full in the code: for a few broad
subjects (those of the shipped feed catalogue's categories and common request topics), the
narrower words and phrases that name them. It is one step and one way: *model* names *ai*,
but a topic about fashion models does not take in AI news. It errs on the side of keeping
text, so a related word with other senses (*model* in "business model") still counts; the
classifier's score then stays low, since only the subject word is matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["FRAMING_WORDS", "RELATED_TERMS", "names_term", "subject_terms"]

#: Words that say what kind of work a request wants rather than what it is about: they never
#: make a text about the topic on their own.
FRAMING_WORDS = frozenset(
    {
        "analysis",
        "analyse",
        "analyze",
        "market",
        "report",
        "overview",
        "research",
        "study",
        "trend",
        "intelligence",
        "landscape",
        "review",
        "insight",
        "outlook",
        "competitive",
        "monitoring",
        "new",  # `terms` makes "news" "new"; as in "New AI tools", it frames too
        "update",
        "brief",
        "summary",
    }
)

_AI = (
    "artificial intelligence",
    "machine learning",
    "deep learning",
    "neural network",
    "model",
    "llm",
    "gpt",
    "chatgpt",
    "chatbot",
    "generative",
    "nlp",
    "computer vision",
    "reinforcement learning",
)

#: Subject word → the words and phrases that name it (each phrase a run of words in `terms`
#: form, matched as consecutive words).
RELATED_TERMS: Mapping[str, tuple[str, ...]] = {
    "ai": _AI,
    "artificial": _AI,
    "software": ("programming", "developer", "open source", "app", "code", "compiler"),
    "security": (
        "cybersecurity",
        "malware",
        "ransomware",
        "phishing",
        "vulnerability",
        "breach",
        "encryption",
        "hacker",
    ),
    "climate": ("emission", "carbon", "greenhouse", "warming", "renewable", "decarbonisation"),
    "health": ("medicine", "medical", "disease", "patient", "hospital", "vaccine", "clinical"),
    "education": ("school", "student", "teacher", "teaching", "university", "curriculum"),
    "finance": ("bank", "banking", "stock", "investor", "investment", "interest rate", "bond"),
    "business": ("company", "startup", "firm", "revenue", "profit", "merger", "acquisition"),
}


def subject_terms(topic_terms: Iterable[str]) -> list[str]:
    """The topic's words that are not framing words, in order without repeats; all of them if
    every word frames (a topic such as "Market research" is then about those words)."""
    wanted = list(dict.fromkeys(topic_terms))
    return [t for t in wanted if t not in FRAMING_WORDS] or wanted


def _has_phrase(words: Sequence[str], phrase: Sequence[str]) -> bool:
    n = len(phrase)
    return any(list(words[i : i + n]) == list(phrase) for i in range(len(words) - n + 1))


def names_term(term: str, words: Sequence[str]) -> bool:
    """Whether `words` (a text's `terms`, in reading order) name `term`: contain it, or one of
    its `RELATED_TERMS` as consecutive words."""
    if term in words:
        return True
    return any(_has_phrase(words, phrase.split()) for phrase in RELATED_TERMS.get(term, ()))

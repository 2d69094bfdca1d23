"""Salient phrases: the non-LLM way to find the sub-topics a text names.

The content granulator turns supplied material into sub-topic titles with `salient_phrases`.
A single frequent word ("bakers", "home") is a poor sub-topic; the phrases an author lists or
repeats are better. The method, in full (pure and deterministic):

1. **Enumerations**, in reading order. Sentences (`aifactory.workers.text.summarize`) are cut into
   segments at `; : ( ) [ ] { }` and dashes, and segments into parts at commas. The last part
   holding `and` or `or` closes a list: the words before the conjunction are one item, the
   words after it the last item. Earlier parts are items while they look like one: at most
   four words, first and last a content word, inner stopwords only joiners (`of`, `for`,
   `in`, `on`, `to`, `with`), leading articles dropped. The part before the first such item
   opens the list: its trailing run of content words is the first item ("master starters"
   → "starters"). The first and last items keep at most as many words as the longest inner
   item (the opener's verb or the closer's trailing words fall away). A list needs at least
   three items. "Home bakers need to master starters, hydration, shaping, scoring and
   baking." gives starters, hydration, shaping, scoring, baking.
2. **Repeated multi-word phrases**: runs of two or three content words inside one clause that
   occur at least twice, most frequent first, then longer first, then earliest first. A
   phrase inside a longer one that occurs as often is left out.
3. **Frequent single words** (`aifactory.workers.text.keywords.rank_keywords`) — only words used
   at least twice when steps 1 and 2 found anything, since the text has then shown its
   subjects as phrases and a word used once is noise — skipping words that are already part
   of a chosen phrase (compared in the simple singular form of
   `aifactory.workers.text.term_match`, so "starter" is covered by "sourdough starters").

Candidates whose content words are all in `exclude` (the topic's and the target audience's
words) are dropped, as are repeats (compared case-folded). Each word is shown in its
preferred spelling over the whole text (so a sentence-initial capital does not stick).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from .keywords import fold, is_content_word, preferred_spelling, rank_keywords, tokenize
from .summarize import split_sentences
from .term_match import singular

__all__ = ["enumerations", "repeated_phrases", "salient_phrases"]

_SEGMENT_BREAK = re.compile(r"[;:()\[\]{}\u2013\u2014]|\s-\s")
_CLAUSE_BREAK = re.compile(r"[,;:.!?()\[\]{}\"\u201c\u201d\u2013\u2014]|\s-\s")
_ARTICLES = frozenset({"the", "a", "an"})
_JOINERS = frozenset({"of", "for", "in", "on", "to", "with"})
_CONJUNCTIONS = frozenset({"and", "or"})
_MAX_ITEM_WORDS = 4
_MIN_ITEMS = 3
_MAX_NGRAM = 3

Phrase = tuple[str, ...]  # the tokens as written


def _is_word(token: str) -> bool:
    return is_content_word(fold(token))


def _item(tokens: Sequence[str]) -> Phrase | None:
    """`tokens` as an inner list item, or None if they do not look like one."""
    words = list(tokens)
    while words and fold(words[0]) in _ARTICLES:
        words.pop(0)
    if not 1 <= len(words) <= _MAX_ITEM_WORDS or not (_is_word(words[0]) and _is_word(words[-1])):
        return None
    if any(not _is_word(w) and fold(w) not in _JOINERS for w in words):
        return None
    return tuple(words)


def _tail(tokens: Sequence[str], size: int) -> Phrase:
    run: list[str] = []
    for token in reversed(tokens):
        if not _is_word(token):
            break
        run.insert(0, token)
    return tuple(run[-size:]) if size else ()


def _head(tokens: Sequence[str], size: int) -> Phrase:
    words = list(tokens)
    while words and fold(words[0]) in _ARTICLES:
        words.pop(0)
    run: list[str] = []
    for token in words:
        if not _is_word(token):
            break
        run.append(token)
    return tuple(run[:size])


def _list_in(segment: str) -> list[Phrase]:
    parts = [tokenize(part) for part in segment.split(",")]
    closing = next(
        (
            i
            for i in range(len(parts) - 1, 0, -1)
            if any(fold(t) in _CONJUNCTIONS for t in parts[i])
        ),
        None,
    )
    if closing is None:
        return []
    tokens = parts[closing]
    conj = next(i for i, t in enumerate(tokens) if fold(t) in _CONJUNCTIONS)
    inner: list[Phrase] = []
    if conj:
        before = _item(tokens[:conj])
        if before is None:
            return []
        inner.append(before)
    opener = 0
    for index in range(closing - 1, 0, -1):
        item = _item(parts[index])
        if item is None:
            opener = index
            break
        inner.insert(0, item)
    if not inner:
        return []
    size = max(len(item) for item in inner)
    items = [_tail(parts[opener], size), *inner, _head(tokens[conj + 1 :], size)]
    found = [item for item in items if item]
    return found if len(found) >= _MIN_ITEMS else []


def enumerations(text: str) -> list[Phrase]:
    """The items of the lists `text` enumerates, in reading order (step 1 above)."""
    found: list[Phrase] = []
    for sentence in split_sentences(text):
        for segment in _SEGMENT_BREAK.split(sentence):
            found.extend(_list_in(segment))
    return found


def repeated_phrases(text: str) -> list[Phrase]:
    """Runs of two or three content words met at least twice, best first (step 2 above)."""
    counts: Counter[tuple[str, ...]] = Counter()
    first: dict[tuple[str, ...], tuple[int, Phrase]] = {}
    position = 0
    for clause in _CLAUSE_BREAK.split(text):
        run: list[str] = []
        for token in [*tokenize(clause), ""]:
            if token and _is_word(token):
                run.append(token)
                continue
            for n in range(2, _MAX_NGRAM + 1):
                for start in range(len(run) - n + 1):
                    words = tuple(run[start : start + n])
                    key = tuple(fold(w) for w in words)
                    counts[key] += 1
                    first.setdefault(key, (position, words))
                    position += 1
            run = []
    repeated = [key for key, count in counts.items() if count >= 2]
    kept = [
        key
        for key in repeated
        if not any(
            len(other) > len(key) and counts[other] == counts[key] and _contains(other, key)
            for other in repeated
        )
    ]
    kept.sort(key=lambda key: (-counts[key], -len(key), first[key][0]))
    return [first[key][1] for key in kept]


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def salient_phrases(text: str, limit: int, *, exclude: Iterable[str] = ()) -> list[str]:
    """The `limit` most salient phrases of `text`, best first (see the module docstring).

    Words in `exclude` are compared case-folded. Raises `ValueError` if `limit` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be zero or more, not {limit}")
    excluded = {fold(word) for word in exclude}
    spellings: dict[str, Counter[str]] = {}
    for token in tokenize(text):
        spellings.setdefault(fold(token), Counter())[token] += 1
    chosen: list[tuple[str, ...]] = []
    covered: set[str] = set()
    for phrase in [*enumerations(text), *repeated_phrases(text)]:
        key = tuple(fold(w) for w in phrase)
        content = {w for w in key if is_content_word(w)}
        if key in chosen or content <= excluded:
            continue
        chosen.append(key)
        covered.update(singular(w) for w in content)
    # Once the text has shown its subjects as phrases, a word it uses once is noise.
    least = 2 if chosen else 1
    counts = Counter(fold(token) for token in tokenize(text))
    budget = limit + len(chosen) + len(covered)
    for word in rank_keywords(text, budget, exclude=excluded):
        key = (fold(word),)
        if counts[key[0]] >= least and singular(key[0]) not in covered and key not in chosen:
            chosen.append(key)
    return [" ".join(preferred_spelling(spellings[w]) for w in key) for key in chosen[:limit]]

"""Shared text methods without a model: the words, phrases, sentences and sentiment of a text.

`keywords` (tokens, content words, keyword ranking), `term_match` (a topic's terms and
singular forms), `summarize` (sentences and the extractive summary), `phrases` (salient
phrases), `sentiment` (the lexicon score and its label), and `escape` (untrusted text made
safe to show as plain text, inline Markdown or a link). Pure functions over strings, used by
the feed, structure, report and analysis workers and by `aifactory.kam`'s recommendation.
This package imports nothing from the rest of `aifactory.workers` (nor any third-party
package); import its modules directly.
"""

"""Reports: the `ReportBuilder` worker and the report's content and renderings.

`job` reads and checks the worker's inputs into a `ReportContent` (`content`, the values every
format shows); `llm_summary` is the model method for the summary and key points;
`markdown_render` and `html_render` render the content safely for untrusted text. Besides
the worker framework (`aifactory.workers.base`, `.model_calls`), this package uses only
`aifactory.workers.text`.
"""

from __future__ import annotations

from .builder import ReportBuilder

__all__ = ["ReportBuilder"]

"""The per-type structure templates the content granulator fills (data, no logic).

Each structure type has a template of four levels. A level names its element type(s), how
titles and descriptions are phrased, and the default subjects of its elements:

| type | level 1 | level 2 | level 3 | level 4 |
|---|---|---|---|---|
| course | modules* | lessons | objective / activity / assessment | steps |
| quiz | sections* | questions | options A-D and the answer | explanations of the answer |
| novel | three acts | chapters* | scenes | beats |
| workflow | phases* | steps | tasks | checks |
| knowledge_map | the core concept | concepts* | sub-concepts | relations |
| learning_path | milestones* | skills | resources / exercise | activities |
| research_report | six sections (1) | findings* | evidence | details |

(1) executive summary, background, findings, methodology, recommendations, sources; only
"findings" has children.

Levels marked * take their subjects from supplied material first (see
`aifactory.workers.structure.build`). Every variable level has at least as many default subjects as
the widest granularity needs, so siblings never repeat a title.
"""

from __future__ import annotations

import attrs

__all__ = ["TEMPLATES", "LevelTemplate", "StructureTemplate"]


@attrs.frozen
class LevelTemplate:
    """One level of a template.

    Patterns may use `{topic}`, `{audience}`, `{n}` (the element's order), `{parent}` (the
    parent's subject) and, in titles and descriptions, `{subject}`; descriptions also `{title}`.
    `types` cycle over the elements; `fixed` levels have exactly one element per subject, and
    only the subjects at indexes in `expand` (all when empty) get children.
    """

    types: tuple[str, ...]
    subjects: tuple[str, ...]
    description: str
    title: str = "{subject}"
    fixed: bool = False
    expand: tuple[int, ...] = ()
    from_keywords: bool = False


@attrs.frozen
class StructureTemplate:
    """A structure type's label (for the tree's title) and its four levels, top first."""

    label: str
    levels: tuple[LevelTemplate, LevelTemplate, LevelTemplate, LevelTemplate]


TEMPLATES: dict[str, StructureTemplate] = {
    "course": StructureTemplate(
        "Course",
        (
            LevelTemplate(
                ("module",),
                (
                    "foundations of {topic}",
                    "core concepts of {topic}",
                    "methods and tools for {topic}",
                    "applying {topic}",
                    "case studies in {topic}",
                    "advanced {topic}",
                    "open questions in {topic}",
                ),
                "Module {n} of the course on {topic} for {audience} learners: {subject}.",
                from_keywords=True,
            ),
            LevelTemplate(
                ("lesson",),
                (
                    "introduction to {parent}",
                    "key ideas of {parent}",
                    "worked examples of {parent}",
                    "practising {parent}",
                ),
                "Lesson {n} on {parent}, paced for {audience} learners.",
            ),
            LevelTemplate(
                ("objective", "activity", "assessment"),
                (
                    "what learners will be able to do",
                    "hands-on activity",
                    "check for understanding",
                ),
                "{title} for the lesson on {parent}.",
            ),
            LevelTemplate(
                ("step",), ("prepare", "complete and reflect"), "Step {n} of the {parent}."
            ),
        ),
    ),
    "quiz": StructureTemplate(
        "Quiz",
        (
            LevelTemplate(
                ("section",),
                (
                    "core ideas of {topic}",
                    "key terms in {topic}",
                    "applying {topic}",
                    "analysing {topic}",
                    "common mistakes in {topic}",
                    "advanced {topic}",
                    "reviewing {topic}",
                ),
                "Section {n}: questions on {subject} for {audience} learners.",
                title="Questions on {subject}",
                from_keywords=True,
            ),
            LevelTemplate(
                ("question",),
                (
                    "what is meant by {parent}?",
                    "which statement about {parent} is correct?",
                    "how would you apply {parent}?",
                    "why does {parent} matter in {topic}?",
                ),
                "Multiple-choice question {n} on {parent}.",
            ),
            LevelTemplate(
                ("option", "option", "option", "option", "answer"),
                ("option A", "option B", "option C", "option D", "correct answer"),
                "Placeholder for {subject} to the question: {parent}",
                fixed=True,
                expand=(4,),
            ),
            LevelTemplate(
                ("explanation",),
                (
                    "why this answer is correct",
                    "why the other options are wrong",
                    "a common misconception",
                ),
                "Explanation for {audience} learners: {subject}.",
            ),
        ),
    ),
    "novel": StructureTemplate(
        "Novel",
        (
            LevelTemplate(
                ("act",),
                ("act I: setup", "act II: confrontation", "act III: resolution"),
                "{title} of a three-act novel about {topic}, written for {audience} readers.",
                fixed=True,
            ),
            LevelTemplate(
                ("chapter",),
                (
                    "opening moves",
                    "complications",
                    "rising stakes",
                    "a turning point",
                    "an unexpected ally",
                    "a hard choice",
                    "the aftermath",
                ),
                "Chapter {n} of {parent}: {subject}.",
                from_keywords=True,
            ),
            LevelTemplate(
                ("scene",),
                (
                    "establishing the setting",
                    "a first encounter",
                    "the conflict sharpens",
                    "the consequences",
                ),
                "Scene {n} of the chapter on {parent}.",
            ),
            LevelTemplate(
                ("beat",),
                ("action beat", "emotional beat", "revelation beat"),
                "{title} in the scene: {parent}.",
            ),
        ),
    ),
    "workflow": StructureTemplate(
        "Workflow",
        (
            LevelTemplate(
                ("phase",),
                (
                    "plan {topic}",
                    "prepare resources for {topic}",
                    "execute {topic}",
                    "monitor {topic}",
                    "review {topic}",
                    "improve {topic}",
                    "hand over {topic}",
                ),
                "Phase {n} of the {topic} workflow, for {audience} teams: {subject}.",
                from_keywords=True,
            ),
            LevelTemplate(
                ("step",),
                ("define inputs", "carry out the work", "verify the result", "record the outcome"),
                "Step {n} of the phase {parent}: {subject}.",
            ),
            LevelTemplate(
                ("task",),
                ("assign an owner", "complete the task", "confirm completion"),
                "Task {n} of the step {parent}.",
            ),
            LevelTemplate(
                ("check",), ("acceptance check", "sign-off"), "{title} for the task {parent}."
            ),
        ),
    ),
    "knowledge_map": StructureTemplate(
        "Knowledge map",
        (
            LevelTemplate(
                ("core_concept",),
                ("{topic}",),
                "The core concept of this map, explained for {audience} readers.",
                fixed=True,
            ),
            LevelTemplate(
                ("concept",),
                (
                    "definition of {topic}",
                    "principles of {topic}",
                    "methods in {topic}",
                    "applications of {topic}",
                    "history of {topic}",
                    "tools for {topic}",
                    "debates in {topic}",
                ),
                "Concept {n} around {topic}: {subject}.",
                from_keywords=True,
            ),
            LevelTemplate(
                ("sub_concept",),
                (
                    "components of {parent}",
                    "examples of {parent}",
                    "limits of {parent}",
                    "measures of {parent}",
                ),
                "A narrower idea within {parent}.",
            ),
            LevelTemplate(
                ("relation",),
                ("relation to {topic}", "related ideas", "prerequisites"),
                "How {parent} connects to the rest of the map.",
            ),
        ),
    ),
    "learning_path": StructureTemplate(
        "Learning path",
        (
            LevelTemplate(
                ("milestone",),
                (
                    "{topic} fundamentals",
                    "core {topic} skills",
                    "applied {topic}",
                    "intermediate {topic}",
                    "advanced {topic}",
                    "{topic} in real projects",
                    "{topic} mastery",
                ),
                "Milestone {n} for {audience} learners: {subject}.",
                from_keywords=True,
            ),
            LevelTemplate(
                ("skill",),
                ("understand {parent}", "practise {parent}", "apply {parent}", "evaluate {parent}"),
                "Skill {n} on the way to {parent}.",
            ),
            LevelTemplate(
                ("resource", "resource", "exercise"),
                ("introductory reading", "guided tutorial", "practice exercise"),
                "{title} to {parent}.",
            ),
            LevelTemplate(
                ("activity",),
                ("note key takeaways", "apply it to a small project"),
                "{title} after the {parent}.",
            ),
        ),
    ),
    "research_report": StructureTemplate(
        "Research report",
        (
            LevelTemplate(
                ("section",),
                (
                    "executive summary",
                    "background",
                    "findings",
                    "methodology",
                    "recommendations",
                    "sources",
                ),
                "{title} of the research report on {topic} for {audience} readers.",
                fixed=True,
                expand=(2,),
            ),
            LevelTemplate(
                ("finding",),
                (
                    "current state of {topic}",
                    "key trends in {topic}",
                    "major players in {topic}",
                    "risks and challenges in {topic}",
                    "opportunities in {topic}",
                    "regulation of {topic}",
                    "outlook for {topic}",
                ),
                "Finding {n}: {subject}.",
                from_keywords=True,
            ),
            LevelTemplate(
                ("evidence",),
                ("supporting evidence", "data points", "expert views", "counter-evidence"),
                "{title} on {parent}.",
            ),
            LevelTemplate(
                ("detail",),
                ("source to cite", "open question", "caveat"),
                "{title} about {parent}.",
            ),
        ),
    ),
}

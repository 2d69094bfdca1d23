"""The Python in README.md and docs/*.md runs as a reader runs it, so the docs cannot drift
from the API; and every `aifactory ...` command line they show parses.

Each page's ```python blocks run in order in one fresh interpreter (a subprocess whose working
folder and `AIFACTORY_HOME` are a temporary folder), sharing one namespace as one script would:
a later block uses what an earlier one defined. A traceback names the Markdown file and line.

Not every block can run as written, and none is skipped silently:

- a block right after `<!-- docs-test: skip (REASON) -->` is not run; `PAGES` counts them;
- a `>>>` block shows a value's repr: the expression is evaluated at that point of the page
  and its repr checked loosely against the one shown (`_check_repr`);
- a page's `prelude` defines what the page says comes from elsewhere (a password, a user id),
  and its `epilogue` checks what the page claims or closes what the reader would close;
- a page with `server=True` runs against `aifactory serve factory` on a free loopback port,
  with the home made by `aifactory init`; `DOCS_URL` in its blocks is replaced by that URL;
- every `FactoryConfig` a page's blocks leave behind is used as a reader would use it: a
  factory is opened on it and closed (its `configs`), unless the page says why not
  (`unopened`); a config the table names neither way fails the page.

`test_every_python_block_is_run_or_marked` fails when a page gains a block this table does not
account for.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aifactory.cli import _parser
from tests.servers import cli_server

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SKIP_MARKER = re.compile(r"^<!-- docs-test: skip \((?P<reason>[^)]+)\) -->$")
DOCS_URL = "http://127.0.0.1:8000"
ADMIN = "admin@example.com"
TIMEOUT_S = 60


@dataclass(frozen=True)
class Page:
    """How one page runs, and how many of its Python blocks run, are skipped, or show a repr."""

    run: int
    skipped: int = 0
    reprs: int = 0
    prelude: str = ""
    epilogue: str = ""
    expect: tuple[str, ...] = ()  # patterns (re.MULTILINE) its standard output must match
    server: bool = False
    secrets: tuple[str, ...] = ()  # environment variables set to generated values
    configs: tuple[str, ...] = ()  # its `FactoryConfig` variables, each opened as a factory
    unopened: tuple[str, ...] = ()  # its `FactoryConfig` variables that cannot be opened here


PAGES: dict[str, Page] = {
    "README.md": Page(
        run=2,
        skipped=1,
        expect=(
            r"^stage\.succeeded outline$",
            r"^stage\.succeeded report$",
            r"^execution\.completed None$",
            r"^completed 1\.0$",  # the async block's wait
        ),
    ),
    "docs/getting-started.md": Page(
        run=4,
        reprs=1,
        # "Close every factory you open": the page leaves its in-memory factory to the reader.
        epilogue="factory.close()",
        configs=("config",),
        expect=(
            r"^\d+ stage\.succeeded outline \{.*'method': 'non-llm:structure-template'",
            r"^\d+ execution\.completed None \{'error': None\}$",
            r"^completed \d+\.\d+ 1\.0$",
        ),
    ),
    "docs/concepts.md": Page(
        run=1,
        # The claim below the block: stage payloads under 64 KiB stay inline, also on S3.
        epilogue=(
            "storage = config.storage_config()\n"
            "assert storage.root == 's3://factory-blobs/prod', storage.root\n"
            "assert storage.placement_for('stages').inline_max_bytes == 64 * 1024\n"
        ),
        configs=("config",),  # "building the config contacts nothing": nor does opening it
    ),
    "docs/notifications.md": Page(
        run=4,
        # The webhook's receiver is not contacted until an event happens: opening is quiet.
        configs=("config", "paging"),
    ),
    "docs/ai.md": Page(
        run=1,
        secrets=("OPENAI_API_KEY",),
        # "The key is never printed (repr, errors, logs)."
        epilogue="assert os.environ['OPENAI_API_KEY'] not in repr(config)",
        configs=("config",),
    ),
    "docs/accounts.md": Page(
        run=4,
        # What the page prints: the changed client, its empty month's usage, and a reset
        # whose password is hidden.
        expect=(
            r"^Acme premium 120$",
            r"^\d{4}-\d{2} 0 0 0$",
            r"^PasswordReset\(user=User\(.*password='<hidden>', sessions_revoked=0\)$",
        ),
    ),
    "docs/templates.md": Page(
        run=1,
        # What the page prints: the new template's name, version and author's kind.
        expect=(r"^welding_guide 1 user$",),
    ),
    "docs/observability.md": Page(
        run=1,
        prelude="from aifactory import FactoryConfig",
        epilogue=(
            "from aifactory._tracing import open_tracer\n"
            "assert open_tracer(config.tracing).enabled\n"
        ),
        configs=("config",),
    ),
    "docs/scaling.md": Page(
        run=1,
        skipped=2,
        expect=(r"^postgresql://factory@db\.internal/aifactory$",),
        unopened=("config",),  # its PostgreSQL server, db.internal, is not here
    ),
    "docs/remote.md": Page(
        run=1,
        server=True,
        secrets=("DOCS_ADMIN_PASSWORD",),
        # The page's `password` is the admin's (made by `aifactory init`), `ana_id` a client
        # user's id: both exist before the page starts.
        prelude=(
            "import os\n"
            "import aifactory\n"
            "password = os.environ['DOCS_ADMIN_PASSWORD']\n"
            f"with aifactory.connect({DOCS_URL!r}) as setup:\n"
            f"    staff = setup.login({ADMIN!r}, password, login_type='admin')\n"
            "    acme = staff.clients.create(name='Acme', tier='standard', monthly_budget_usd=50)\n"
            "    ana_id = staff.users.create(email='ana@acme.example', role='client',\n"
            "        password=aifactory.auth.generate_password(), client_id=acme.id).id\n"
        ),
        epilogue="print('api key of', reports.user.email)",
        expect=(r"^api key of ana@acme\.example$",),
    ),
}

# Runs a page's blocks (JSON, argv[1]) as one script; tracebacks name the Markdown line. Then
# names the `FactoryConfig`s left in the namespace, and opens a factory on each of those named
# in argv[2] (JSON), as a reader would next: its home and state must then exist.
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for block in json.load(open(sys.argv[1])):
    if block["kind"] == "repr":
        value = eval(block["code"], namespace)
        print("@@repr@@" + json.dumps([block["line"], repr(value)]))
    else:
        source = "\\n" * (block["line"] - 1) + block["code"]
        exec(compile(source, block["path"], "exec"), namespace)
from aifactory import Factory as _Factory, FactoryConfig as _FactoryConfig
found = sorted(k for k, v in namespace.items() if isinstance(v, _FactoryConfig))
print("@@configs@@" + json.dumps(found))
for name in json.loads(sys.argv[2]):
    config = namespace[name]
    with _Factory.embedded(config=config):
        pass
    if config.home is not None and config.state_url is None:
        assert (config.home / "state.sqlite3").is_file(), config.home
    print("@@opened@@" + name)
"""


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int  # of the block's first line of code
    code: str
    skip_reason: str | None


def _python_blocks(doc: Path) -> list[Block]:
    """The page's ```python blocks in order. Raises `AssertionError` for a skip marker that
    does not stand right before one, or a fence left open."""
    path = doc.relative_to(ROOT).as_posix()
    lines = doc.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!-- docs-test"):
            marker = SKIP_MARKER.match(line)
            assert marker, f"{path}:{i + 1}: write `<!-- docs-test: skip (REASON) -->`"
            assert lines[i + 1 : i + 2] == ["```python"], f"{path}:{i + 1}: marks no python block"
        if line.startswith("```") and line != "```":
            language = line[3:].strip()
            end = lines.index("```", i + 1) if "```" in lines[i + 1 :] else -1
            assert end > i, f"{path}:{i + 1}: fence never closed"
            if language == "python":
                marker = SKIP_MARKER.match(lines[i - 1]) if i else None
                blocks.append(
                    Block(
                        path=path,
                        line=i + 2,
                        code="\n".join(lines[i + 1 : end]) + "\n",
                        skip_reason=marker["reason"] if marker else None,
                    )
                )
            i = end
        i += 1
    return blocks


def _is_repr(block: Block) -> bool:
    return block.code.startswith(">>> ")


def _repr_example(block: Block) -> tuple[str, str]:
    """A `>>> EXPR` block: the expression and the output it shows, on one line."""
    first, _, shown = block.code.partition("\n")
    return first.removeprefix(">>> ").strip(), " ".join(shown.split())


def _top_level(text: str) -> tuple[str, dict[str, str]]:
    """`Name(a=1, b=X(c=2))` as `("Name", {"a": "1", "b": "X(c=2)"})`."""
    name, _, rest = text.partition("(")
    fields: dict[str, str] = {}
    depth, quote, start = 0, "", 0
    for i, char in enumerate(rest):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if not quote and (depth == -1 or (depth == 0 and char == ",")):
            key, _, value = rest[start:i].partition("=")
            fields[key.strip()] = value.strip()
            start = i + 1
            if depth == -1:  # the closing parenthesis
                break
    return name, fields


# Fields whose value depends on the moment and the machine: only their presence is checked.
VOLATILE = {"created_at", "updated_at", "started_at", "finished_at", "usage", "cost"}


def _check_repr(shown: str, actual: str) -> None:
    """Loosely: same type, the same top-level fields in the same order, the same value for every
    field shown in full (no `…`, `...`, and not volatile), and about the length shown."""
    shown_name, shown_fields = _top_level(shown)
    actual_name, actual_fields = _top_level(actual)
    assert actual_name == shown_name, actual
    assert list(actual_fields) == list(shown_fields), actual
    for key, value in shown_fields.items():
        if key not in VOLATILE and "…" not in value and "..." not in value:
            assert actual_fields[key] == value, f"{key}: shown {value}, is {actual_fields[key]}"
    assert len(shown) / 2 < len(actual) < len(shown) * 2, actual


def _environment(home: Path, generated: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIFACTORY_", "OPENAI_", "AWS_")) and k != "PYTHONSTARTUP"
    }
    return {**env, "AIFACTORY_HOME": str(home), **generated}


@contextlib.contextmanager
def _served_factory(home: Path, admin_password: str, env: dict[str, str]) -> Iterator[str]:
    """`aifactory init` and `aifactory serve factory` on a free loopback port; yields its URL."""
    cli = [sys.executable, "-m", "aifactory.cli"]
    init = [*cli, "init", "--home", str(home), "--admin-email", ADMIN, "--admin-password", "-"]
    subprocess.run(init, input=admin_password, text=True, env=env, check=True, timeout=TIMEOUT_S)
    with cli_server("serve", "factory", "--home", str(home), env=env, timeout_s=TIMEOUT_S) as url:
        yield url


def _script(path: str, page: Page, blocks: list[Block], url: str) -> list[dict[str, object]]:
    """What `RUNNER` runs for a page: prelude, blocks (a `>>>` block as its expression) and
    epilogue, with `DOCS_URL` pointing at `url`."""

    def part(where: str, line: int, kind: str, code: str) -> dict[str, object]:
        return {"path": where, "line": line, "kind": kind, "code": code.replace(DOCS_URL, url)}

    return [
        part(f"{path} (prelude in tests/test_docs.py)", 1, "code", page.prelude),
        *(
            part(b.path, b.line, "repr", _repr_example(b)[0])
            if _is_repr(b)
            else part(b.path, b.line, "code", b.code)
            for b in blocks
        ),
        part(f"{path} (epilogue in tests/test_docs.py)", 1, "code", page.epilogue),
    ]


def test_every_python_block_is_run_or_marked() -> None:
    for doc in DOC_FILES:
        path = doc.relative_to(ROOT).as_posix()
        blocks = _python_blocks(doc)
        if not blocks:
            assert path not in PAGES, f"{path} has no python block left"
            continue
        assert path in PAGES, f"{path} has python blocks: add it to PAGES or mark them"
        skipped = [b for b in blocks if b.skip_reason]
        reprs = [b for b in blocks if not b.skip_reason and _is_repr(b)]
        run = len(blocks) - len(skipped) - len(reprs)
        page = PAGES[path]
        assert (run, len(skipped), len(reprs)) == (page.run, page.skipped, page.reprs), path


@pytest.mark.parametrize("path", sorted(PAGES))
def test_page_runs_as_written(path: str, tmp_path: Path) -> None:
    page = PAGES[path]
    generated = {name: secrets.token_urlsafe(16) for name in page.secrets}
    env = _environment(tmp_path / ".aifactory", generated)
    blocks = [b for b in _python_blocks(ROOT / path) if not b.skip_reason]
    with contextlib.ExitStack() as stack:
        if page.server:
            home = tmp_path / "served"
            url = stack.enter_context(_served_factory(home, generated["DOCS_ADMIN_PASSWORD"], env))
            assert all(DOCS_URL in b.code for b in blocks), f"{path}: every block uses {DOCS_URL}"
        else:
            url = DOCS_URL
        script = _script(path, page, blocks, url)
        blocks_file = tmp_path / "blocks.json"
        blocks_file.write_text(json.dumps(script))
        result = subprocess.run(
            [sys.executable, "-c", RUNNER, str(blocks_file), json.dumps(page.configs)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    assert result.returncode == 0, result.stderr
    [found] = [json.loads(x[11:]) for x in result.stdout.splitlines() if x[:11] == "@@configs@@"]
    assert found == sorted(page.configs + page.unopened), f"{path}: list them in configs"
    opened = [x[10:] for x in result.stdout.splitlines() if x.startswith("@@opened@@")]
    assert opened == list(page.configs)
    for pattern in page.expect:
        assert re.search(pattern, result.stdout, re.MULTILINE), (pattern, result.stdout)
    shown = {b.line: _repr_example(b)[1] for b in blocks if _is_repr(b)}
    actual: dict[int, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("@@repr@@"):
            at, value = json.loads(line.removeprefix("@@repr@@"))
            actual[at] = value
    assert actual.keys() == shown.keys()
    for at, value in actual.items():
        _check_repr(shown[at], value)


# Placeholders of the usage lines (`--home H`, `[NAME...]`) and the values they stand for.
PLACEHOLDERS = {
    "H": "./home",
    "P": "8001",
    "S": "30",
    "F": "deployment.json",
    "FILE": "file.json",
    "T": "Market analysis",
    "URL": "https://storage.example",
    "NAME...": "content_granulator",
}


def _command_lines(doc: Path) -> Iterator[tuple[int, str]]:
    """`aifactory ...` command lines of the page's bash blocks (usage lines continued on the
    next indented line joined), with their line numbers."""
    in_bash, joined, start = False, "", 0
    for number, line in enumerate(doc.read_text().splitlines(), start=1):
        if line.startswith("```"):
            in_bash = line == "```bash"
            continue
        if not in_bash:
            continue
        if joined and line.startswith(" ") and line.strip().startswith("["):
            joined += " " + line.split("#")[0]
            continue
        if joined:
            yield start, joined
        joined, start = "", number
        for command in re.split(r"&&|;", line.split(" #")[0]):
            words = command.split()
            if words and Path(words[0]).name == "aifactory":  # also .venv/bin/aifactory
                joined = command
    if joined:
        yield start, joined


def _invocations(command: str) -> list[list[str]]:
    """The argument lists a usage line stands for: brackets dropped, placeholders filled, and
    for `a|b|c` one list per alternative."""
    words = shlex.split(command.replace("[", " ").replace("]", " "))
    words = words[1 : words.index(">")] if ">" in words else words[1:]
    filled = [PLACEHOLDERS.get(w, w) for w in words]
    unknown = [w for w in filled if re.fullmatch(r"[A-Z][A-Z.]*", w)]
    assert not unknown, f"placeholders {unknown}: add them to PLACEHOLDERS"
    choices = [w.split("|") if "|" in w else [w] for w in filled]
    width = max(len(c) for c in choices)
    return [[c[i % len(c)] for c in choices] for i in range(width)]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda d: d.name)
def test_command_lines_parse(doc: Path) -> None:
    checked = 0
    for line, command in _command_lines(doc):
        for argv in _invocations(command):
            stderr = io.StringIO()
            try:
                with contextlib.redirect_stderr(stderr):
                    _parser().parse_args(argv)
            except SystemExit:
                pytest.fail(f"{doc.name}:{line}: aifactory {shlex.join(argv)}\n{stderr.getvalue()}")
            checked += 1
    if doc.name in ("README.md", "cli.md", "remote.md"):
        assert checked, f"{doc.name} shows no aifactory command any more"


def _nav() -> list[tuple[str, str]]:
    """mkdocs.yml's nav as (title, page) pairs, in order (read without a YAML parser: the
    docs extra is not part of the test install)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:\n") :]
    return re.findall(r"^  - (.+?): (\S+\.md)$", nav, re.MULTILINE)


def test_the_home_page_lists_every_page_of_the_site() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    pages = [(title, page) for title, page in _nav() if page != "index.md"]
    assert len(pages) >= 10, pages
    listed = re.findall(r"^- \[(.+?)\]\((\S+?\.md)\): (\S.*)$", index, re.MULTILINE)
    assert [(title, page) for title, page, _ in listed] == pages
    for page in sorted({page for _, page in pages}):
        assert (ROOT / "docs" / page).is_file(), page


def _template_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "templates.md").read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {m[1]: part for part in parts if (m := re.match(r"`(\w+)`\n", part))}


def test_the_templates_page_says_what_the_catalogue_holds() -> None:
    from aifactory.kam.catalogue import TemplateCatalogue
    from aifactory.workers import builtin_workers

    sections = _template_sections()
    templates = TemplateCatalogue.builtin().list()
    assert sorted(sections) == sorted(t.name for t in templates)
    runnable = {w.name for w in builtin_workers()}
    for template in templates:
        section = sections[template.name]
        tiers = re.search(r"^Tiers: (.+?)\.", section, re.MULTILINE)
        assert tiers, template.name
        named = set(tiers[1].split(", "))
        assert named == {"all"} or named == {t.value for t in template.tiers}, template.name
        if named == {"all"}:
            assert len(template.tiers) == 4, template.name
        stages = section[section.index("Stages:") : section.index("\n\n", section.index("Stages:"))]
        assert re.findall(r"`(\w+)` \(", stages) == [s.id for s in template.stages]
        rows = dict(re.findall(r"^\| `(\w+)` \|[^|]*\| ([^|]*) \|", section, re.MULTILINE))
        assert sorted(rows) == sorted(p.name for p in template.parameters), template.name
        for spec in template.parameters:
            if spec.default is not None:
                assert str(spec.default) in rows[spec.name], (template.name, spec.name)
        # A template whose every worker is built in runs: the page must not say otherwise.
        if {s.worker for s in template.stages} <= runnable:
            assert "refused" not in section, template.name
            assert "not part of this release" not in section, template.name

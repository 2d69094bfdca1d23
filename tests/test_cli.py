"""The `aifactory` command, run as a user runs it: a real subprocess; and the config its flags
and environment make, built in process."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

import aifactory
from aifactory import BadInputError, FactoryConfig, StorageConfig, StorageError
from aifactory.auth.signing import generate_worker_key
from aifactory.cli import _config, _parser, _reach_storage
from aifactory.server.deploy import worker_service
from aifactory.workers import WorkerHost, builtin_workers
from aifactory.workers.feeds.fetch_policy import UnsafeURLError
from tests.servers import cli_server
from tests.workers.conftest import ArtifactShelf
from tests.workers.feeds.conftest import FeedServer

OWN_VARIABLES = ("AIFACTORY_HOME", "AIFACTORY_STORAGE", "AIFACTORY_STORAGE_ENDPOINT")


def _run(
    *args: str,
    stdin: str | None = None,
    home: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "aifactory.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=120,
        cwd=home,
    )


def test_demo_writes_a_non_empty_report(tmp_path: Path) -> None:
    result = _run("demo", "--home", str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.is_file()
    assert report.read_text().startswith("# ")
    assert "✓ stage outline" in result.stderr
    assert "✓ stage report" in result.stderr
    # A second run on the same home renews its own account and makes its own client.
    again = _run("demo", "--home", str(tmp_path / "home"))
    assert again.returncode == 0, again.stderr
    assert "password renewed" in again.stderr
    assert "• client Acme-" in again.stderr
    assert Path(again.stdout.strip().splitlines()[-1]).read_text().startswith("# ")


def test_the_demo_reports_from_the_sample_feeds_without_filler(tmp_path: Path) -> None:
    from aifactory.workers.feeds.samples import SAMPLE_FEEDS
    from aifactory.workers.structure import prose_templates, templates

    result = _run("demo", "--home", str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    assert "✓ stage fetch" in result.stderr
    assert f"{len(SAMPLE_FEEDS)} sample feeds" in result.stderr
    report = Path(result.stdout.strip().splitlines()[-1]).read_text()
    links = re.findall(r"\]\(<(https://[^>]+)>\)", report)
    assert len(links) >= 8
    assert all(".example/" in link for link in links)
    sections = re.split(r"^## ", report, flags=re.MULTILINE)[1:]
    assert [s.splitlines()[0] for s in sections] == ["Executive summary", "Overview", "Sources"]
    assert all(s.split("\n", 1)[1].strip() for s in sections)
    # Nothing from the structure templates' phrasing, nothing off-topic, nothing planted.
    for filler in ("Finding 1:", "Supporting evidence on", "course on Course on", "analysi,"):
        assert filler not in report
    assert not any(
        phrase in report
        for module in (templates, prose_templates)
        for phrase in re.findall(r'"([A-Z][a-z]+ [a-z]+ (?:of|on|for) )', module.__doc__ or "")
    )
    assert "farmers' market" not in report
    assert "Ignore all previous instructions" not in report
    assert "recommended" in result.stderr
    assert "analysi," not in result.stderr


def test_demo_with_a_model_uses_it_for_the_recommendation_and_the_stages(tmp_path: Path) -> None:
    from decimal import Decimal

    from aifactory.llm import PriceTable, TokenUsage
    from tests.openai_server import OpenAIServer
    from tests.schema_model import answer

    with OpenAIServer(default=answer) as model:
        env = {
            "AIFACTORY_LLM_BASE_URL": model.base_url,
            "AIFACTORY_LLM_API_KEY": os.urandom(16).hex(),
            "AIFACTORY_LLM_MODEL": "gpt-4o-mini",
            "COLUMNS": "500",  # rich wraps what it prints to a pipe at 80 columns
        }
        result = _run("demo", "--llm", "--home", str(tmp_path / "home"), extra_env=env)
        billed = list(model.billed)
    assert result.returncode == 0, result.stderr
    assert "model gpt-4o-mini" in result.stderr
    assert re.search(r"✓ stage \w+ +llm:gpt-4o-mini", result.stderr), result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]).read_text().strip()
    # The execution's cost is what the server billed for its stages (the recommendation's
    # call, the first billed, is charged to the client but is not the execution's).
    [cost] = re.findall(r"• cost ([0-9.E-]+) USD", result.stderr)
    prices = PriceTable()
    stages = sum((prices.cost("gpt-4o-mini", TokenUsage(p, c)) for p, c in billed[1:]), Decimal(0))
    assert len(billed) >= 2
    assert Decimal(cost) >= stages > 0


def test_demo_with_a_model_but_none_configured_says_what_is_missing(tmp_path: Path) -> None:
    env = {"AIFACTORY_LLM_BASE_URL": "", "AIFACTORY_LLM_API_KEY": "", "OPENAI_API_KEY": ""}
    result = _run("demo", "--llm", "--home", str(tmp_path / "home"), extra_env=env)
    assert result.returncode == 2
    assert "--llm needs AIFACTORY_LLM_BASE_URL or an API key" in result.stderr


def test_demo_defaults_to_a_fresh_temporary_home(tmp_path: Path) -> None:
    result = _run("demo", "--template", "educational_course_basic", home=tmp_path)
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.read_text().startswith("# ")
    assert not (tmp_path / ".aifactory").exists()


def test_init_prints_a_generated_password_once(tmp_path: Path) -> None:
    first = _run("init", "--home", str(tmp_path), "--admin-email", "root@factory.example")
    assert first.returncode == 0, first.stderr
    password = first.stderr.split("store it now):")[1].split()[0]
    assert len(password) >= 20
    second = _run("init", "--home", str(tmp_path), "--admin-email", "other@factory.example")
    assert second.returncode == 1
    assert "admin already exists" in second.stderr
    assert password not in second.stderr

    import aifactory

    with aifactory.embedded(tmp_path) as factory:
        factory.login("root@factory.example", password, login_type="admin")


@pytest.mark.parametrize("how", ["argument", "stdin"])
def test_init_takes_a_given_password_and_never_echoes_it(tmp_path: Path, how: str) -> None:
    secret = "given-admin-password"
    args = ["init", "--home", str(tmp_path), "--admin-email", "root@factory.example"]
    if how == "argument":
        result = _run(*args, "--admin-password", secret)
    else:
        result = _run(*args, "--admin-password", "-", stdin=secret + "\n")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    short = _run(
        "init",
        "--home",
        str(tmp_path / "x"),
        "--admin-email",
        "a@b.example",
        "--admin-password",
        "short",
    )
    assert short.returncode == 1
    assert "12 to 1024 characters" in short.stderr


def _serve_config(*flags: str, environ: Mapping[str, str] | None = None) -> FactoryConfig:
    """The config `aifactory serve worker content_granulator --home srv FLAGS` runs with."""
    args = _parser().parse_args(["serve", "worker", "content_granulator", "--home", "srv", *flags])
    return _config(args, with_llm=args.llm, environ=environ or {})


def test_serve_takes_s3_storage_and_its_endpoint_from_flags() -> None:
    pytest.importorskip("s3fs")
    endpoint = "http://127.0.0.1:9000"
    config = _serve_config("--storage", "s3://factory-blobs/prod/", "--storage-endpoint", endpoint)
    # The placements a home gets: stage payloads stay inline as on a local root.
    local = FactoryConfig(home=Path("srv")).storage_config()
    assert config.home == Path("srv")
    assert config.storage == StorageConfig(
        "s3://factory-blobs/prod",
        storage_options={"s3": {"endpoint_url": endpoint}},
        placements=local.placements,
    )
    assert config.storage_config().placement_for("stages").inline_max_bytes == 64 * 1024
    assert config.storage_config().kv_url("stages") == "s3://factory-blobs/prod/kv/stages"


def test_serve_storage_defaults_to_the_environment_and_flags_win() -> None:
    pytest.importorskip("s3fs")
    environ = {
        "AIFACTORY_STORAGE": "s3://from-env/p",
        "AIFACTORY_STORAGE_ENDPOINT": "https://account.r2.example",
    }
    from_env = _serve_config(environ=environ)
    assert from_env.storage is not None
    assert from_env.storage.root == "s3://from-env/p"
    assert from_env.storage.storage_options == {
        "s3": {"endpoint_url": "https://account.r2.example"}
    }
    flagged = _serve_config("--storage", "s3://from-flag", environ=environ)
    assert flagged.storage is not None
    assert flagged.storage.root == "s3://from-flag"
    assert flagged.storage.storage_options["s3"]["endpoint_url"] == "https://account.r2.example"
    # No AWS endpoint at all: s3fs's default (AWS itself), chosen by the AWS environment.
    plain = _serve_config("--storage", "s3://bucket/p")
    assert plain.storage is not None
    assert plain.storage.storage_options == {}


def test_serve_storage_defaults_to_the_home_or_a_folder(tmp_path: Path) -> None:
    unset = _serve_config(environ={"AIFACTORY_STORAGE": "", "AIFACTORY_STORAGE_ENDPOINT": ""})
    assert unset.storage is None
    assert unset.storage_config().root == str(Path("srv/blobs").absolute())
    folder = _serve_config("--storage", str(tmp_path / "shared"))
    assert folder.storage is not None
    assert folder.storage.root == str(tmp_path / "shared")
    assert folder.storage.placements == unset.storage_config().placements
    assert _serve_config("--storage", f"file://{tmp_path}/x").storage == StorageConfig.local(
        tmp_path / "x", placements=unset.storage_config().placements
    )


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        (["--storage", "nosuch://bucket/p"], {}, "unsupported storage protocol 'nosuch://'"),
        (["--storage", "ftp://files.example/p"], {}, "unsupported storage protocol 'ftp://'"),
        (["--storage", "s3://"], {}, "names no bucket"),
        (["--storage", "s3:///prefix"], {}, "names no bucket"),
        (["--storage", "s3:/bucket/p"], {}, "write s3://bucket/p, or ./s3:/bucket/p"),
        (["--storage", "s3:bucket"], {}, "looks like a mistyped URL"),
        (["--storage", "s3://key:secret@bucket/p"], {}, "without credentials"),
        (["--storage", "s3://bucket/p?versionId=1"], {}, "without credentials, query"),
        (["--storage", ""], {}, "storage URL is empty"),
        (["--storage-endpoint", "http://127.0.0.1:9000"], {}, "needs an s3:// storage URL"),
        ([], {"AIFACTORY_STORAGE_ENDPOINT": "http://127.0.0.1:9000"}, "needs an s3://"),
        (["--storage", "s3://b/p", "--storage-endpoint", "127.0.0.1:9000"], {}, "http(s) URL"),
        (["--storage", "s3://b/p", "--storage-endpoint", "ftp://h"], {}, "http(s) URL"),
        (
            ["--storage", "s3://b/p", "--storage-endpoint", "http://user:pw@127.0.0.1:9"],
            {},
            "no credentials",
        ),
        (["--storage", "/srv/blobs", "--storage-endpoint", "http://h"], {}, "only to s3://"),
        (["--storage", "memory://x", "--storage-endpoint", "http://h"], {}, "only to s3://"),
    ],
)
def test_serve_refuses_unusable_storage(
    flags: list[str], environ: dict[str, str], message: str
) -> None:
    pytest.importorskip("s3fs")
    with pytest.raises(BadInputError) as caught:
        _serve_config(*flags, environ=environ)
    assert message in caught.value.message
    assert "secret" not in caught.value.message


def test_storage_reachability_is_checked_before_serving(
    s3_endpoint: str, s3_options: dict[str, dict[str, Any]], s3_bucket: Callable[[], str]
) -> None:
    bucket = s3_bucket()
    found = _reach_storage(
        _serve_config("--storage", f"s3://{bucket}/p", "--storage-endpoint", s3_endpoint)
    )
    assert found == f"s3://{bucket}/p at {s3_endpoint}"
    missing = _serve_config("--storage", "s3://no-such-bucket/p", "--storage-endpoint", s3_endpoint)
    with pytest.raises(StorageError, match=r"no bucket 'no-such-bucket' at http://127\.0\.0\.1:"):
        _reach_storage(missing)
    # Nothing listens on port 9 of the loopback: refused at once, reported on one line.
    dead = _serve_config(
        "--storage", f"s3://{bucket}/p", "--storage-endpoint", "http://127.0.0.1:9"
    )
    with pytest.raises(StorageError) as caught:
        _reach_storage(dead)
    assert caught.value.message.startswith(
        f"cannot reach storage s3://{bucket}/p at http://127.0.0.1:9"
    )
    assert "\n" not in caught.value.message


def _aws_test_env(tmp_path: Path) -> dict[str, str]:
    # Dummy credentials, no profile, no metadata service: nothing leaves the loopback.
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }


def test_serve_reports_storage_errors_on_one_line_without_a_traceback(tmp_path: Path) -> None:
    trust = tmp_path / "trusted.keys"
    trust.write_text(_run("keys", "new", "orchestrator").stdout)
    serve = [
        "serve",
        "worker",
        "content_granulator",
        "--home",
        str(tmp_path),
        "--trust",
        str(trust),
    ]
    bad = _run(*serve, extra_env={"AIFACTORY_STORAGE": "nosuch://bucket/p"})
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "error: unsupported storage protocol 'nosuch://': "
        "use a local folder, file://, memory:// or s3://bucket/prefix"
    )
    dead = _run(
        *serve,
        "--storage",
        "s3://bucket/p",
        "--storage-endpoint",
        "http://127.0.0.1:9",
        extra_env=_aws_test_env(tmp_path),
    )
    assert dead.returncode == 1, dead.stderr
    assert dead.stderr.startswith("error: cannot reach storage s3://bucket/p at http://127.0.0.1:9")
    assert "Traceback" not in dead.stderr
    assert "listening" not in dead.stderr


def test_a_missing_s3fs_is_named_with_the_extra_to_install(tmp_path: Path) -> None:
    # s3fs made unimportable in a fresh interpreter, as where the extra is not installed.
    code = (
        "import sys; sys.modules['s3fs'] = None\n"
        "from aifactory.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "serve", "factory", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k not in OWN_VARIABLES},
            "AIFACTORY_STORAGE": "s3://bucket/p",
        },
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: storage on s3:// needs its fsspec implementation: pip install 'aifactory[s3]'"
    )


# -- a newcomer's first steps --------------------------------------------------------------------


def _serving(*args: str) -> AbstractContextManager[str]:
    """`aifactory ARGS` served on a free loopback port, outside this test run's settings."""
    return cli_server(*args, env={k: v for k, v in os.environ.items() if k not in OWN_VARIABLES})


def test_a_newcomer_inits_a_home_runs_the_demo_on_it_and_serves_it(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    init = _run("init", "--home", home, "--admin-email", "a@example.com")
    assert init.returncode == 0, init.stderr
    password = init.stderr.split("store it now):")[1].split()[0]
    demo = _run("demo", "--home", home)
    assert demo.returncode == 0, demo.stderr
    assert "invalid username or password" not in demo.stderr
    assert Path(demo.stdout.strip().splitlines()[-1]).read_text().startswith("# ")
    with _serving("serve", "factory", "--home", home) as url:
        reply = httpx.get(f"{url}/health", timeout=5)
        assert reply.status_code == 200
        # The admin `init` made is untouched by the demo and logs in to the served factory.
        with aifactory.connect(url) as factory:
            admin = factory.login("a@example.com", password, login_type="admin")
            assert [c.name for c in admin.clients.list()] == ["Acme"]


def test_the_demo_leaves_the_first_admin_to_init(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert _run("demo", "--home", home).returncode == 0
    init = _run("init", "--home", home, "--admin-email", "a@example.com")
    assert init.returncode == 0, init.stderr
    taken = _run("init", "--home", str(tmp_path / "h2"), "--admin-email", "demo@factory.example")
    assert taken.returncode == 0  # another home: the demo's address is free there


def _one_line_refusal(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("role", ["factory", "kam", "orchestrator"])
def test_serve_refuses_a_home_without_a_factory(tmp_path: Path, role: str) -> None:
    missing = tmp_path / "nonexistent"
    line = _one_line_refusal(_run("serve", role, "--home", str(missing)), 2)
    assert line == (
        f"error: no factory at {missing}: run "
        f"`aifactory init --home {missing} --admin-email EMAIL` first"
    )
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no factory at" in _one_line_refusal(_run("serve", role, "--home", str(empty)), 2)
    assert list(empty.iterdir()) == []


def test_serve_refuses_a_factory_without_an_admin(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    assert _run("demo", "--home", str(home)).returncode == 0  # state, but no admin
    line = _one_line_refusal(_run("serve", "factory", "--home", str(home)), 2)
    assert line == (
        f"error: the factory at {home} has no admin yet: run "
        f"`aifactory init --home {home} --admin-email EMAIL` first"
    )


def test_unsupported_storage_stops_a_command_before_it_starts(tmp_path: Path) -> None:
    for command in (["demo"], ["serve", "factory"], ["init", "--admin-email", "a@example.com"]):
        home = tmp_path / command[0]
        result = _run(
            *command, "--home", str(home), extra_env={"AIFACTORY_STORAGE": "ftp://files.example/p"}
        )
        line = _one_line_refusal(result, 1)
        assert line == (
            "error: unsupported storage protocol 'ftp://': "
            "use a local folder, file://, memory:// or s3://bucket/prefix"
        )
        assert not home.exists()
    flagged = _run("demo", "--home", str(tmp_path / "d"), "--storage", "sftp://h/p")
    assert "unsupported storage protocol 'sftp://'" in _one_line_refusal(flagged, 1)


def test_help_says_what_each_command_does_not_how_it_is_built() -> None:
    top = _run("--help")
    assert top.returncode == 0
    for command in ("init", "demo", "serve", "migrate", "keys", "version"):
        assert re.search(rf"^    {command} +\S", top.stdout, re.MULTILINE), command
    assert "aifactory init --home ./factory --admin-email admin@example.com" in top.stdout
    for internal in ("FactoryConfig", "everything below them", "os.environ", "`"):
        assert internal not in top.stdout, internal
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        assert len(sub.description or "") > 20, name
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"aifactory {name} {action.dest} has no help"
        shown = _run(name, "--help")
        assert shown.returncode == 0
        assert sub.description.splitlines()[0] in shown.stdout
    serve = _run("serve", "--help").stdout
    assert "worker NAME" in serve
    assert "'all'" in serve


# -- feeds on this machine -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feeds() -> Iterator[FeedServer]:
    server = FeedServer()
    server.start()
    yield server
    server.stop()


def _feed_worker(config: FactoryConfig) -> WorkerHost:
    """The feed fetcher of a worker service built from `config`, as `aifactory serve` builds
    it."""
    app = worker_service(config, ["feed_fetcher"], [generate_worker_key("orchestrator")])
    [host] = app.state.hosts
    assert isinstance(host, WorkerHost)
    return host


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("flags", "environ"),
    [(["--allow-loopback-feeds"], {}), ([], {"AIFACTORY_ALLOW_LOOPBACK_FEEDS": "1"})],
    ids=["flag", "environment"],
)
async def test_loopback_feeds_are_fetched_only_when_allowed(
    feeds: FeedServer, flags: list[str], environ: dict[str, str], tmp_path: Path
) -> None:
    url = feeds.url("/feeds/rss2.xml")
    for command in ("serve", "demo"):
        argv = ["serve", "worker", "feed_fetcher"] if command == "serve" else ["demo"]
        args = _parser().parse_args([*argv, "--home", str(tmp_path), *flags])
        allowed = _config(args, environ=environ)
        feeds.reset()
        out = await _feed_worker(allowed).worker.process(
            "fetch", {"sources": [url]}, {}, ArtifactShelf().context()
        )
        assert out.output["sources_fetched"] == 1
        assert out.output["articles"][0]["title"].startswith("Open models")
        assert feeds.hits["/feeds/rss2.xml"] == 1
    # Without the flag or the variable: refused before any connection.
    args = _parser().parse_args(["serve", "worker", "feed_fetcher", "--home", str(tmp_path)])
    refused = _config(args, environ={})
    feeds.reset()
    with pytest.raises(UnsafeURLError, match="no source is safe to fetch") as caught:
        await _feed_worker(refused).worker.process(
            "fetch", {"sources": [url]}, {}, ArtifactShelf().context()
        )
    [error] = caught.value.details["errors"]
    assert error["code"] == "unsafe_url"
    assert feeds.hits["/feeds/rss2.xml"] == 0


def test_the_loopback_switch_is_announced(tmp_path: Path) -> None:
    result = _run("demo", "--home", str(tmp_path / "h"), "--allow-loopback-feeds")
    assert result.returncode == 0, result.stderr
    assert "warning: feed workers may fetch from this machine's loopback addresses" in (
        result.stderr
    )
    assert "warning" not in _run("demo", "--home", str(tmp_path / "other")).stderr


# -- every worker in one service -------------------------------------------------------------------


def test_serve_worker_all_serves_every_built_in_worker(tmp_path: Path) -> None:
    trust = tmp_path / "trusted.keys"
    trust.write_text(generate_worker_key("orchestrator").to_text() + "\n")
    served = ["serve", "worker", "all", "--home", str(tmp_path), "--trust", str(trust)]
    with _serving(*served) as url:
        health = httpx.get(f"{url}/health", timeout=5).json()
    assert health["healthy"] is True
    names = [w["worker"] for w in health["workers"]]
    assert names == [w.name for w in builtin_workers()]
    assert len(names) == 8
    mixed = _run(
        "serve", "worker", "all", "validator", "--home", str(tmp_path), "--trust", str(trust)
    )
    assert "'all' serves every worker" in _one_line_refusal(mixed, 1)
    stray = _run("serve", "factory", "all", "--home", str(tmp_path))
    assert "worker names are for `serve worker`" in _one_line_refusal(stray, 2)


def test_demo_serve_serves_the_factory_and_prints_how_to_log_in_once(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES}
    with (
        (tmp_path / "stderr.txt").open("w+") as said,
        cli_server("demo", "--home", home, "--serve", env=env, timeout_s=120, stderr=said) as url,
    ):
        said.seek(0)
        text = said.read()
        staff = re.search(r"(\S+@\S+) with password (\S+) \(shown once\)", text)
        assert staff, text
        assert f"Serving the factory at {url}/" in text
        with httpx.Client(base_url=url, timeout=10) as browser:
            page = browser.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf
            login = {"csrf_token": csrf[1], "username": staff[1], "login_type": "admin"}
            wrong = browser.post("/login", data={**login, "password": "not-the-password"})
            reply = browser.post("/login", data={**login, "password": staff[2]})
            queue = browser.get("/admin")
    assert wrong.status_code == 401
    assert reply.status_code == 303
    assert reply.headers["location"] == "/admin"
    assert "Market analysis for AI tools" in queue.text  # the demo's request
    assert text.count(staff[2]) == 1  # printed once


def test_stats_shows_the_factory_wide_metrics_of_a_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run("demo", "--home", str(home)).returncode == 0
    wide = {"COLUMNS": "300"}
    by_template = _run("stats", "--home", str(home), extra_env=wide)
    assert by_template.returncode == 0, by_template.stderr
    rows = {
        line.split("│")[1].strip(): line
        for line in by_template.stdout.splitlines()
        if line.startswith("│")
    }
    # The demo's one execution, completed, in its template's line and in the total.
    assert len(rows) == 2
    for line in rows.values():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert cells[1:4] == ["1", "1 / 0 / 0 / 0", "100%"], cells
    by_worker = _run("stats", "--home", str(home), "--by", "worker", extra_env=wide)
    assert by_worker.returncode == 0, by_worker.stderr
    assert "content_granulator" in by_worker.stdout
    none = _run(
        "stats",
        "--home",
        str(home),
        "--since",
        "2000-01-01",
        "--until",
        "2000-01-02",
        extra_env=wide,
    )
    assert none.returncode == 0
    [total] = [line for line in none.stdout.splitlines() if line.startswith("│ total")]
    assert [cell.strip() for cell in total.split("│")][2:4] == ["0", "0 / 0 / 0 / 0"]
    refused = _run("stats", "--home", str(tmp_path / "nowhere"))
    assert refused.returncode == 2
    assert "no factory at" in refused.stderr

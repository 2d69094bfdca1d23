"""The `aifactory` command: `init`, `admin`, `demo`, `serve`, `migrate`, `keys` and `version`.

This and `FactoryConfig.from_environment` are the only places that read the environment
(`AIFACTORY_HOME`, `AIFACTORY_STATE`, `AIFACTORY_STORAGE`, `AIFACTORY_STORAGE_ENDPOINT`,
`AIFACTORY_ALLOW_LOOPBACK_FEEDS`, `AIFACTORY_CA_BUNDLE`, `AIFACTORY_LOG_FORMAT`,
`AIFACTORY_METRICS_TOKEN`, `AIFACTORY_TRACING`, the language model's variables);
everything below them receives a `FactoryConfig`. The help users read is `_DESCRIPTION`,
`_EPILOG` and each command's own, not this docstring.

Exit statuses: 0 done, 1 an `AIFactoryError` (one line, `error: ...`), 2 a usage error (also
one line; argparse's own usage errors exit 2 too).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import attrs
import fsspec.core  # type: ignore[import-untyped]
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from ._exceptions import AIFactoryError, StorageError
from ._logs import LOG_FORMATS, logging_config
from ._sync import Factory
from .auth import generate_password
from .config import (
    MASTER_KEY_FILE,
    FactoryConfig,
    create_key_file,
    create_storage_keys,
    read_key_file,
)
from .kam.accounts import AccountService
from .kam.administration import AdministrationService
from .kam.audit import AuditLog
from .kam.metrics import MetricsService
from .models import MetricsLine, PasswordReset
from .state import Store, open_store
from .storage import BlobStore, StorageKey
from .storage._roots import redact
from .workers.feeds.samples import SAMPLE_FEEDS, sample_catalogue, sample_feeds, sample_policy

__all__ = ["main"]

#: The demo's own account manager, made through the data folder (see `_demo_account`).
DEMO_ACCOUNT = "demo@factory.example"


T = TypeVar("T")


def _read_password(value: str | None) -> str | None:
    """`-` reads the password from standard input, so it stays out of the process list."""
    if value == "-":
        return sys.stdin.readline().rstrip("\n")
    return value


def _config(
    args: argparse.Namespace,
    home: str | Path | None = None,
    *,
    with_llm: bool = False,
    environ: Mapping[str, str] | None = None,
) -> FactoryConfig:
    """The config a command runs with: its flags over the environment (`environ`, default
    `os.environ`). Raises `BadInputError` or `StorageError` for unusable storage flags."""
    return FactoryConfig.from_environment(
        home if home is not None else args.home,
        with_llm=with_llm,
        storage=getattr(args, "storage", None),
        storage_endpoint=getattr(args, "storage_endpoint", None),
        state=getattr(args, "state", None),
        allow_loopback_feeds=getattr(args, "allow_loopback_feeds", None),
        ca_bundle=getattr(args, "ca_bundle", None),
        environ=environ,
    )


def _refuse(console: Console, message: str) -> int:
    """A usage error on one line (scripts grep it; rich would wrap it), exit status 2."""
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return 2


def _warn_loopback(config: FactoryConfig, console: Console) -> None:
    if config.fetch_policy is not None and config.fetch_policy.allow_loopback:
        console.print(
            "[yellow]warning:[/] feed workers may fetch from this machine's loopback "
            "addresses (--allow-loopback-feeds): for local testing only",
            soft_wrap=True,
        )


def _state_label(config: FactoryConfig) -> str:
    """Where the state lives, for the operator (without a password)."""
    return redact(config.database)


def _reach_storage(config: FactoryConfig) -> str:
    """Where the blobs live, for the operator. An S3 store is asked once for its bucket, so a
    wrong endpoint, bucket or credentials stop the command at start, not at the first stage.

    Raises `StorageError` saying what is wrong, on one line.
    """
    storage = config.storage_config()
    shown = redact(storage.root)
    protocol = fsspec.core.split_protocol(storage.root)[0]
    if protocol not in ("s3", "s3a"):
        return shown
    given = storage.storage_options.get(protocol, {})
    endpoint = str(given.get("endpoint_url") or "the AWS endpoint")
    bucket = storage.root.split("://", 1)[1].split("/", 1)[0]
    # Its own client, failing within seconds: botocore would retry a dead endpoint for long.
    options = {
        **given,
        "skip_instance_cache": True,
        "use_listings_cache": False,
        "config_kwargs": {
            **given.get("config_kwargs", {}),
            "retries": {"max_attempts": 2},
            "connect_timeout": 10,
        },
    }
    try:
        fs, _ = fsspec.core.url_to_fs(storage.root, **options)
        fs.info(bucket)
    except FileNotFoundError as exc:
        raise StorageError(f"no bucket {bucket!r} at {endpoint}: create it first") from exc
    except PermissionError as exc:
        raise StorageError(
            f"access to bucket {bucket!r} at {endpoint} denied: check the AWS credentials "
            "in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        ) from exc
    except Exception as exc:  # botocore's errors are not OSErrors; any failure means the same
        reason = " ".join(str(exc).split()) or type(exc).__name__
        hint = (
            " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            if "credentials" in reason.lower()
            else ""
        )
        raise StorageError(f"cannot reach storage {shown} at {endpoint}: {reason}{hint}") from exc
    return f"{shown} at {endpoint}"


def _no_state(config: FactoryConfig) -> bool:
    """Whether `config` names a home without a state database (and no `--state`)."""
    return config.state_url is None and (
        config.home is None or not (config.home / "state.sqlite3").is_file()
    )


def _on_state(config: FactoryConfig, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the factory's state alone, then close it: not the whole factory, whose
    opening would resume executions. Opening migrates the schema, or refuses a newer one."""

    async def run() -> T:
        store = open_store(config.database)
        try:
            return await work(store)
        finally:
            await store.aclose()

    return anyio.run(run)


def _missing_factory(config: FactoryConfig) -> str | None:
    """Why `config` names no initialised factory (no state, or no admin in it), or `None`.

    A server would otherwise create an empty home that nobody can log in to. Raises
    `StorageError` when the state cannot be opened.
    """
    if config.state_url is None:
        init = f"aifactory init --home {config.home} --admin-email EMAIL"
        state = config.home / "state.sqlite3" if config.home is not None else None
        if state is None or not state.exists():  # something else there: opening says what
            return f"no factory at {config.home}: run `{init}` first"
        where = f"at {config.home}"
    else:
        init = "aifactory init --state URL --admin-email EMAIL"
        where = f"in {_state_label(config)}"

    if _on_state(config, lambda store: store.count_admins()) == 0:
        return f"the factory {where} has no admin yet: run `{init}` first"
    return None


def _demo_account(config: FactoryConfig) -> tuple[str, bool]:
    """The demo's own account manager and a new password for it (never shown), made through
    the data folder: a home made by `aifactory init` works without its admin's password, and
    a fresh demo home is left without an admin, for `aifactory init` to add one. Returns the
    password and whether the account is new. Raises `StorageError`, `ConflictError`."""

    async def issue(store: Store) -> tuple[str, bool]:
        accounts = AccountService(
            store, AuditLog(store, config.clock), config.clock, config.ids, config.password_hasher
        )
        return await accounts.issue_local_account_manager(DEMO_ACCOUNT, "aifactory demo")

    return _on_state(config, issue)


def _init(args: argparse.Namespace, console: Console) -> int:
    config = _config(args)
    with Factory.embedded(config=config) as factory:
        password = factory.bootstrap_admin(args.admin_email, _read_password(args.admin_password))
    console.print(f"Initialised factory in [bold]{config.home}[/]")
    if config.home is not None:
        keys = create_storage_keys(config.home)
        if keys is not None:
            console.print(f"Blobs are encrypted at rest with the key in {keys} (keep a copy)")
    console.print(f"Admin: [bold]{args.admin_email}[/]")
    if args.admin_password is None:
        console.print(f"Generated admin password (shown once, store it now): [bold]{password}[/]")
    return 0


def _templates(args: argparse.Namespace, console: Console) -> int:
    """`aifactory templates check|export|import` (see its help)."""
    from .kam.catalogue import TemplateCatalogue
    from .kam.template_checks import template_problems
    from .kam.template_files import read_template_file, templates_to_text
    from .kam.templates import TemplateService, known_workers

    if args.templates_command == "check":
        workers, failed = known_workers(), 0
        for path in args.files:
            for template in read_template_file(path):
                problems = template_problems(template, workers)
                failed += bool(problems)
                mark = "[red]problems[/]" if problems else "[green]ok[/]"
                line = f"{escape(str(path))}: {escape(template.name)}: {mark}"
                console.print(line, soft_wrap=True)
                for problem in problems:
                    line = f"  {escape(problem['path'])}: {escape(problem['message'])}"
                    console.print(line, soft_wrap=True)
        return 1 if failed else 0
    config = _config(args)
    missing = _missing_factory(config)
    if missing:
        return _refuse(console, missing)
    loaded = [t for path in getattr(args, "files", []) for t in read_template_file(path)]

    async def run(store: Store) -> str:
        service = TemplateService(
            store,
            AuditLog(store, config.clock),
            config.clock,
            TemplateCatalogue.builtin(),
            known_workers(config.workers),
        )
        if args.templates_command == "import":
            saved = await service.import_templates(loaded)
            return "\n".join(f"{v.name}: version {v.version}" for v in saved)
        chosen = [await service.get(name) for name in args.names] or await service.list()
        return templates_to_text(chosen, args.format)

    text = _on_state(config, run)
    if args.templates_command == "export" and args.out is not None:
        args.out.write_text(text, "utf-8")
        console.print(f"wrote the templates to {escape(str(args.out))}", soft_wrap=True)
    elif args.templates_command == "export":
        sys.stdout.write(text)
    else:
        console.print(escape(text), soft_wrap=True)
    return 0


def _reset_password(args: argparse.Namespace, console: Console) -> int:
    """A new generated password for a user, made through the data folder (whoever can write
    the state can change it anyway): the way back in for an admin whose password is lost."""
    config = _config(args)
    if _no_state(config):
        return _refuse(console, f"no factory at {config.home}: give the --home it was made in")

    async def reset(store: Store) -> PasswordReset:
        service = AdministrationService(
            store, AuditLog(store, config.clock), config.clock, config.password_hasher
        )
        return await service.reset_password_locally(args.email)

    done = _on_state(config, reset)
    console.print(
        f"New password for [bold]{escape(done.user.email)}[/] (shown once, store it now): "
        f"[bold]{done.password}[/]",
        soft_wrap=True,
    )
    console.print(f"{done.sessions_revoked} session(s) of the user revoked")
    if not done.user.active:
        console.print(
            "[yellow]note:[/] the user is deactivated: an admin reactivates it "
            "(users.reactivate) before it can log in",
            soft_wrap=True,
        )
    return 0


def _stats(args: argparse.Namespace, console: Console) -> int:
    """The factory-wide metrics as a table, read from the data folder (or --state)."""
    config = _config(args)
    if _no_state(config):
        return _refuse(console, f"no factory at {config.home}: give the --home it was made in")

    report = _on_state(
        config,
        lambda store: MetricsService(store, config.clock).report(args.since, args.until, args.by),
    )
    table = Table(
        title=f"executions created {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC, by {report.by}"
    )
    columns: dict[str, Callable[[MetricsLine], str]] = {
        "executions": lambda m: str(m.executions),
        "ok / partial / failed / cancelled": lambda m: (
            f"{m.completed} / {m.partial} / {m.failed} / {m.cancelled}"
        ),
        "success": lambda m: _ratio(m.success_rate),
        "latency p50 / p95 / p99": lambda m: " / ".join(
            _secs(v) for v in (m.latency_p50_s, m.latency_p95_s, m.latency_p99_s)
        ),
        "stages (retries)": lambda m: f"{m.stage_runs} ({m.retries})",
        "stage p50 / p95": lambda m: f"{_secs(m.stage_p50_s)} / {_secs(m.stage_p95_s)}",
        "queue p95": lambda m: _secs(m.queue_p95_s),
        "model calls": lambda m: str(m.model_calls),
        "tokens": lambda m: str(m.tokens),
        "cost USD": lambda m: f"{m.cost_usd:.4f}",
        "stored": lambda m: f"{m.bytes_stored} B",
        "CPU": lambda m: f"{m.cpu_s:.3f} s",
        "peak RSS": lambda m: f"{m.peak_rss_kb // 1024} MiB",
    }
    table.add_column(report.by)
    for name in columns:
        table.add_column(name, justify="right")
    for line in (*report.groups, report.total):
        table.add_row(escape(line.name), *(show(line) for show in columns.values()))
    Console().print(table)
    return 0


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _demo(args: argparse.Namespace, console: Console) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="aifactory-demo-"))
    config = _config(args, home, with_llm=args.llm)
    if args.llm and config.llm is None:
        return _refuse(
            console, "--llm needs AIFACTORY_LLM_BASE_URL or an API key in the environment"
        )
    if args.admin_password is not None:
        console.print("note: --admin-password is no longer needed: the demo uses its own account")
    blobs = _reach_storage(config)
    model = f", model {config.llm.model}" if config.llm else ", no language model"
    console.print(f"[bold]aifactory demo[/] — embedded factory in {home}{model}, blobs in {blobs}")
    _warn_loopback(config, console)
    if config.state_url is None:
        config.make_home()
    password, created = _demo_account(config)
    console.print(
        f"• account manager {DEMO_ACCOUNT} "
        f"({'made' if created else 'password renewed'} through the data folder, not shown)"
    )
    # A home the demo ran on before already has its client and user: give this run its own.
    suffix = "" if created else f"-{generate_password()[:6].lower()}"
    # The feeds are the samples shipped with aifactory, read through the feed workers'
    # own fetcher and parser under a policy that allows exactly their folder: no network.
    with sample_feeds() as samples:
        config = attrs.evolve(
            config, fetch_policy=sample_policy(samples), feed_catalogue=sample_catalogue(samples)
        )
        console.print(f"• feeds: {len(SAMPLE_FEEDS)} sample feeds shipped with aifactory")
        status = _demo_run(args, console, config, password, suffix, home)
    if status is None:
        return 1
    if args.serve:
        return _serve_demo(args, config, console, password, status)
    return 0


def _demo_run(
    args: argparse.Namespace,
    console: Console,
    config: FactoryConfig,
    password: str,
    suffix: str,
    home: Path,
) -> tuple[str, str] | None:
    """The demo's client, request and execution; its client user's email and password, or
    `None` when the execution did not complete."""
    with Factory.embedded(config=config) as factory:
        staff = factory.login(DEMO_ACCOUNT, password, login_type="admin")
        client = staff.clients.create(name=f"Acme{suffix}", tier="standard", monthly_budget_usd=50)
        user_password = generate_password()
        email = f"ana{suffix}@acme.example"
        staff.users.create(email=email, password=user_password, role="client", client_id=client.id)
        console.print(
            f"• client [bold]{client.name}[/] ({client.tier.value}, 50 USD/month), user {email}"
        )
        ana = factory.login(email, user_password)
        request = ana.requests.create(
            title=args.topic,
            description=(
                "Need a structured overview of the market: segments, leading vendors, "
                "pricing models and adoption trends, with recommendations."
            ),
            urgency="high",
            category="research",
        )
        console.print(f"• request [bold]{request.title}[/] ({request.id})")
        template = args.template
        ranked = staff.templates.recommend(request.id)
        best = ranked[0] if ranked else None
        if best is not None:
            console.print(
                f"• recommended [bold]{best.template}[/] ({best.confidence:.0%}): "
                f"{'; '.join(best.reasons)}"
            )
        # Granularity is a parameter of the templates that outline a topic, not of the others.
        outlined = template in ("quick_research", "educational_course_basic")
        parameters = {"granularity": 3} if outlined else {}
        staff.requests.assign_template(request.id, template, parameters=parameters)
        execution = staff.requests.execute(request.id)
        console.print(f"• executing template [bold]{template}[/] as {execution.id}")
        for event in staff.executions.events(execution.id):
            if event.kind == "stage.succeeded":
                console.print(
                    f"  [green]✓[/] stage {event.stage_id:<10} {event.data.get('method', '')}"
                    f"  ({event.data.get('progress', 0):.0%})"
                )
            elif event.kind in ("stage.failed", "stage.retrying"):
                console.print(f"  [red]✗[/] stage {event.stage_id}: {event.data.get('error')}")
        final = staff.executions.get(execution.id)
        if final.status.value != "completed":
            console.print(f"[red]execution {final.status.value}: {final.error}[/]")
            return None
        deliverables = ana.deliverables.list(request.id)
        markdown = [d for d in deliverables if d.filename.endswith(".md")] or deliverables
        report = ana.deliverables.download(markdown[0].id)
        out = Path(args.out) if args.out else home / "demo-report.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(report)
        unread = ana.notifications.list(unread_only=True)
        console.print(
            f"• cost {final.cost.total_usd} USD · {len(unread)} notification(s) for {email}"
        )
        console.print(f"Report ({len(report)} bytes) written to [bold]{out}[/]")
        others = ", ".join(d.filename for d in deliverables if d is not markdown[0])
        if others:
            console.print(f"  also delivered: {others} (download them from the factory)")
        print(out)
    return email, user_password


def _serve_demo(
    args: argparse.Namespace,
    config: FactoryConfig,
    console: Console,
    password: str,
    client: tuple[str, str],
) -> int:
    """`demo --serve`: the factory the demo ran in, served with its pages until interrupted.
    The demo's account manager's password is new at each run (made through the data folder,
    never fixed) and is printed here, once, with the demo client user's."""
    import uvicorn

    from .server.deploy import factory_service

    url = f"http://{args.host}:{args.port}/"
    console.print(f"Serving the factory at [bold]{url}[/] (Ctrl-C stops it)", soft_wrap=True)
    console.print(
        f"Log in as staff (factory staff, admin login): [bold]{DEMO_ACCOUNT}[/] with password "
        f"[bold]{password}[/] (shown once)",
        soft_wrap=True,
    )
    console.print(
        f"or as the client: [bold]{client[0]}[/] with password [bold]{client[1]}[/]",
        soft_wrap=True,
    )
    uvicorn.run(factory_service(config, None), host=args.host, port=args.port, log_level="warning")
    return 0


def _serve(args: argparse.Namespace, console: Console) -> int:
    import uvicorn

    from .server.deploy import Deployment, factory_service, load_keys, worker_service
    from .server.tls import StrictTransportSecurity, tls_files

    tls = tls_files(args.tls_cert, args.tls_key)
    config = _config(args, with_llm=args.llm)
    if args.workers and args.role != "worker":
        return _refuse(console, f"worker names are for `serve worker`, not `serve {args.role}`")
    if args.lease_seconds is not None:
        if not 0 < args.lease_seconds <= 3600:
            return _refuse(console, "--lease-seconds is between 0 and 3600")
        config = attrs.evolve(config, lease_s=args.lease_seconds)
    if args.role in ("factory", "kam", "orchestrator"):
        missing = _missing_factory(config)
        if missing is not None:
            return _refuse(console, missing)
    blobs = _reach_storage(config)
    _warn_loopback(config, console)
    if args.role in ("kam", "orchestrator"):
        from .server.deploy import kam_service, orchestrator_service

        if not args.deployment:
            return _refuse(console, f"serve {args.role} needs --deployment FILE")
        build = kam_service if args.role == "kam" else orchestrator_service
        app = build(config, Deployment.load(args.deployment))
        console.print(f"{args.role} service for {config.home}")
    elif args.role == "factory":
        deployment = Deployment.load(args.deployment) if args.deployment else None
        app = factory_service(config, deployment)
        remote = ", ".join(w.worker for w in deployment.workers) if deployment else "none"
        console.print(f"factory API for {config.home} (remote workers: {remote})")
    else:
        if not args.trust:
            return _refuse(console, "a worker service needs --trust FILE (aifactory keys new ID)")
        app = worker_service(config, args.workers, load_keys(args.trust))
        served = ", ".join(host.name for host in app.state.hosts)
        console.print(f"worker service for {served}")
    console.print(f"state in {_state_label(config)}")
    console.print(f"blobs in {blobs}")
    console.print(f"listening on {'https' if tls else 'http'}://{args.host}:{args.port}")
    # Worker services answer only the orchestrator: no Server/Date headers on every reply.
    lean = args.role == "worker"
    log_format = args.log_format or os.environ.get("AIFACTORY_LOG_FORMAT") or "text"
    if log_format not in LOG_FORMATS:
        return _refuse(console, f"AIFACTORY_LOG_FORMAT is one of {', '.join(LOG_FORMATS)}")
    # JSON lines for every logger, uvicorn's too; text keeps uvicorn's own configuration.
    logs: dict[str, Any] = (
        {"log_config": logging_config("json", args.log_level)} if log_format == "json" else {}
    )
    uvicorn.run(
        StrictTransportSecurity(app),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        server_header=not lean,
        date_header=not lean,
        **logs,
        **tls,
    )
    return 0


def _migrate(args: argparse.Namespace, console: Console) -> int:
    config = _config(args)
    if config.state_url is None:
        config.make_home()

    version = _on_state(config, lambda store: store.schema_version())
    console.print(f"state in {_state_label(config)}: schema version {version}, up to date")
    return 0


def _keys(args: argparse.Namespace, console: Console) -> int:
    """`aifactory keys new|new-master|rotate-master` (see its help)."""
    if args.action == "new-master":
        return _new_master(args, console)
    if args.action == "rotate-master":
        return _rotate_master(args, console)
    from .auth.signing import generate_worker_key

    if args.id is None:
        return _refuse(console, "'keys new' needs the service's id, e.g. orchestrator")
    print(generate_worker_key(args.id).to_text())
    return 0


def _new_master(args: argparse.Namespace, console: Console) -> int:
    """A new master key, shown once: on standard output (`--file -`) or in a new 0600 file."""
    key = StorageKey.generate(args.id or f"m-{secrets.token_hex(4)}")
    if args.file == "-":
        print(key.to_text())
        return 0
    if args.file is not None:
        path = Path(args.file)
    else:
        config = _config(args)
        if config.home is None:
            return _refuse(console, "give --file FILE (or '-') for the new master key")
        config.make_home()
        path = config.home / MASTER_KEY_FILE
    comment = (
        "aifactory master key, id:secret: it wraps the data keys that encrypt blobs at rest.\n"
        "Keep a copy apart from the blobs: without it they cannot be read."
    )
    if not create_key_file(path, key, comment):
        return _refuse(console, f"{path} exists already: give another --file")
    console.print(f"Master key [bold]{key.key_id}[/] written to {path} (keep a copy)")
    return 0


def _rotate_master(args: argparse.Namespace, console: Console) -> int:
    """Re-wrap every data key by the master key in `--to FILE`; blobs stay as they are."""
    if args.to is None:
        return _refuse(console, "'keys rotate-master' needs --to FILE, the new master key")
    new = read_key_file(Path(args.to))
    if len(new) != 1:
        return _refuse(console, f"{args.to} must hold exactly one key")
    config = _config(args)
    storage = config.storage_config()
    if not storage.master_keys:
        raise StorageError(
            "no master key is configured to open the data keys: give the current one in "
            "AIFACTORY_MASTER_KEY, AIFACTORY_MASTER_KEY_FILE or HOME/master.key"
        )
    count = BlobStore(storage).rotate_master(new[0])
    console.print(
        f"{count} data key(s) re-wrapped by master key [bold]{new[0].key_id}[/]; now "
        f"configure {args.to} as the master key (the old one opens nothing re-wrapped)",
        soft_wrap=True,
    )
    return 0


def _storage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="where blobs live, shared by all services: a folder, file://, memory:// or "
        "s3://bucket/prefix (default $AIFACTORY_STORAGE, else HOME/blobs); S3 credentials "
        "come from the AWS environment (AWS_ACCESS_KEY_ID, ...)",
    )
    parser.add_argument(
        "--storage-endpoint",
        metavar="URL",
        help="the S3 API of an S3-compatible store such as R2 or MinIO "
        "(default $AIFACTORY_STORAGE_ENDPOINT)",
    )


def _state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="URL",
        help="keep the state in PostgreSQL (postgresql://user@host/db; pip install "
        "'aifactory[postgres]'), shared by every service and replica (default "
        "$AIFACTORY_STATE, else HOME/state.sqlite3)",
    )


def _home_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--home", metavar="H", help=f"the data folder (default: {default})")


def _feed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm",
        action="store_true",
        help="use the language model configured by AIFACTORY_LLM_MODEL, "
        "AIFACTORY_LLM_BASE_URL and AIFACTORY_LLM_API_KEY / OPENAI_API_KEY",
    )
    parser.add_argument(
        "--allow-loopback-feeds",
        action="store_true",
        default=None,  # not given: $AIFACTORY_ALLOW_LOOPBACK_FEEDS decides
        help="let the feed workers fetch from 127.0.0.1 and other loopback addresses "
        "(default $AIFACTORY_ALLOW_LOOPBACK_FEEDS=1, else no). Only for testing with a "
        "local feed server: it lets request data reach services on this machine",
    )


_HOME = "$AIFACTORY_HOME, else ./.aifactory"

_DESCRIPTION = """\
aifactory turns client requests into deliverables: a pipeline template's stages run on
workers, with every stage checkpointed, retried, costed and audited. Create a data folder
(a "home") with its first admin, try the whole flow with the demo, then serve the factory's
API over HTTP, in one process or as separate services."""

_EPILOG = """\
first steps:
  aifactory init --home ./factory --admin-email admin@example.com
  aifactory demo --home ./factory
  aifactory serve factory --home ./factory --port 8000

'aifactory COMMAND --help' describes a command and its options. The environment gives the
defaults: AIFACTORY_HOME, AIFACTORY_STATE, AIFACTORY_STORAGE, AIFACTORY_STORAGE_ENDPOINT,
AIFACTORY_ALLOW_LOOPBACK_FEEDS, and with --llm AIFACTORY_LLM_MODEL, AIFACTORY_LLM_BASE_URL,
AIFACTORY_LLM_API_KEY (or OPENAI_API_KEY). 'serve' also reads AIFACTORY_METRICS_TOKEN,
AIFACTORY_TRACING (otlp or global, with the 'otel' extra) and AIFACTORY_LOG_FORMAT."""


def _command(
    sub: Any, name: str, summary: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aifactory",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    init = _command(
        sub,
        "init",
        "create a data folder and its first admin",
        "Create the data folder (state and blobs) and its first admin, and print the admin's\n"
        "generated password once. Refused once the factory has an admin.",
        "example:\n  aifactory init --home ./factory --admin-email admin@example.com",
    )
    _home_argument(init, _HOME)
    init.add_argument(
        "--admin-email", required=True, metavar="EMAIL", help="the first admin's email (required)"
    )
    init.add_argument(
        "--admin-password",
        metavar="P",
        help="the admin's password, at least 12 characters ('-' reads it from standard input, "
        "keeping it out of the process list); generated and shown once if omitted",
    )
    _state_argument(init)
    admin = _command(
        sub,
        "admin",
        "administer accounts on this machine",
        "Administer accounts through the data folder itself, where no one can log in to do\n"
        "it over the API:\n"
        "  reset-password EMAIL  give the user a generated password, printed once, and end\n"
        "                        its sessions (audited as done by 'system' from the cli)",
        "example:\n  aifactory admin reset-password --home ./factory admin@example.com",
    )
    admin_sub = admin.add_subparsers(
        dest="admin_command",
        required=True,
        metavar="ACTION",
        title="actions",
        help="reset-password: a new password for a user",
    )
    reset = admin_sub.add_parser(
        "reset-password",
        help="give a user a new generated password (e.g. a lost admin password)",
        description="Give the user a new generated password, print it once, and revoke the\n"
        "user's sessions (its API keys stay). Works on the data folder directly: no server\n"
        "need run, and no one need be logged in.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reset.add_argument("email", metavar="EMAIL", help="the user's email")
    _home_argument(reset, _HOME)
    _state_argument(reset)
    templates = _command(
        sub,
        "templates",
        "check, export and import pipeline templates as files",
        "Pipeline templates as JSON or YAML files, to keep in git:\n"
        "  check FILE...   run every check a template passes before it is saved; list each\n"
        "                  problem with its path (exit 1 if any)\n"
        "  export          write the templates in use (or those NAMEd) to --out or stdout\n"
        "  import FILE...  save each template: new ones as version 1, changed ones as a new\n"
        "                  version (audited as 'system' from the cli); none if one fails",
        "examples:\n"
        "  aifactory templates check my_template.yaml\n"
        "  aifactory templates export --home ./factory --format yaml --out templates.yaml\n"
        "  aifactory templates import --home ./factory templates.yaml",
    )
    templates_sub = templates.add_subparsers(
        dest="templates_command",
        required=True,
        metavar="ACTION",
        title="actions",
        help="check, export or import template files",
    )
    check = templates_sub.add_parser("check", help="check template files")
    check.add_argument("files", nargs="+", metavar="FILE", type=Path)
    export = templates_sub.add_parser("export", help="write templates to a file")
    export.add_argument("names", nargs="*", metavar="NAME", help="only these templates")
    export.add_argument("--out", type=Path, metavar="FILE", help="the file (default: stdout)")
    export.add_argument("--format", choices=["json", "yaml"], default="json")
    _home_argument(export, _HOME)
    _state_argument(export)
    load = templates_sub.add_parser("import", help="save the templates of files")
    load.add_argument("files", nargs="+", metavar="FILE", type=Path)
    _home_argument(load, _HOME)
    _state_argument(load)
    demo = _command(
        sub,
        "demo",
        "run one request from login to a report",
        "Run the whole flow in this process: a client organisation and user, a request, a\n"
        "template, its execution stage by stage, the deliverable and a notification. Writes\n"
        "the report to HOME/demo-report.md (or --out) and prints its path. The demo acts as\n"
        f"its own account manager ({DEMO_ACCOUNT}), made through the data folder, so it\n"
        "runs on a fresh folder and on one made by 'aifactory init' alike.",
        "example:\n  aifactory demo --template educational_course_basic --out course.md",
    )
    _home_argument(demo, "a fresh temporary folder")
    demo.add_argument("--admin-password", help=argparse.SUPPRESS)  # no longer needed
    demo.add_argument(
        "--out", metavar="FILE", help="where to write the report (default HOME/demo-report.md)"
    )
    demo.add_argument(
        "--topic",
        metavar="T",
        default="Market analysis for AI tools",
        help="the request's title (default: %(default)s)",
    )
    demo.add_argument(
        "--template",
        default="comprehensive_report_pipeline",
        choices=[
            "comprehensive_report_pipeline",
            "parallel_news_scan",
            "quick_research",
            "educational_course_basic",
            "long_form_content",
        ],
        help="the pipeline template to run (default: %(default)s)",
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then serve the factory with its web pages, and print how to log in",
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="with --serve: the address (default: %(default)s)"
    )
    demo.add_argument(
        "--port", type=int, default=8000, help="with --serve: the port (default: %(default)s)"
    )
    _feed_arguments(demo)
    _storage_arguments(demo)
    _state_argument(demo)
    serve = _command(
        sub,
        "serve",
        "serve the factory API, its parts or workers over HTTP",
        "Serve over HTTP until stopped (Ctrl-C):\n"
        "  factory       the whole API, workers in process (or remote ones: --deployment)\n"
        "  kam           the account side alone (needs --deployment)\n"
        "  orchestrator  the orchestrator alone (needs --deployment)\n"
        "  worker NAME…  built-in workers, or 'all' of them, for signed callers (needs --trust)\n"
        "factory, kam and orchestrator need a factory made by 'aifactory init'.",
        "examples:\n"
        "  aifactory serve factory --home ./factory --port 8000\n"
        "  aifactory serve worker all --home ./factory --port 8101 --trust trusted.keys",
    )
    serve.add_argument(
        "role", choices=["factory", "kam", "orchestrator", "worker"], help="what to serve"
    )
    serve.add_argument(
        "workers",
        nargs="*",
        metavar="NAME",
        help="for 'worker': the built-in workers to serve (e.g. content_granulator), or 'all'",
    )
    _home_argument(serve, _HOME)
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="the port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--deployment",
        metavar="FILE",
        help="a JSON file naming the signing key, remote workers and other services",
    )
    serve.add_argument(
        "--trust", metavar="FILE", help="worker: the callers' keys, one id:secret per line"
    )
    serve.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve https with this PEM certificate chain (with --tls-key); answers then "
        "carry HSTS",
    )
    serve.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="the PEM file of CAs whose certificates the worker and other services called "
        "over https must have (default $AIFACTORY_CA_BUNDLE, else the system's CAs)",
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default: %(default)s)",
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text (uvicorn's lines) or json: one JSON object a line, with the execution, "
        "stage and request ids (default $AIFACTORY_LOG_FORMAT, else text)",
    )
    serve.add_argument(
        "--lease-seconds",
        type=float,
        metavar="S",
        help="how long a replica's hold on an execution lasts unrenewed; another replica "
        "takes over a dead one's executions after that (default 30)",
    )
    _feed_arguments(serve)
    _storage_arguments(serve)
    _state_argument(serve)
    migrate = _command(
        sub,
        "migrate",
        "bring the state's schema up to date",
        "Bring the state database's schema up to date (opening it does so too), e.g. before\n"
        "starting several services on a new version. Refuses a schema newer than this version.",
    )
    _home_argument(migrate, _HOME)
    _state_argument(migrate)
    keys = _command(
        sub,
        "keys",
        "make signing keys and master keys",
        "  new ID         print a new signing key for a service as id:secret on one line: it\n"
        "                 goes in that service's deployment file and in the --trust file of\n"
        "                 the services it calls\n"
        "  new-master     make a master key for blobs at rest (in HOME/master.key, 0600, or\n"
        "                 --file FILE; '--file -' prints it once)\n"
        "  rotate-master  re-wrap every data key by the master key in --to FILE; blobs are\n"
        "                 not rewritten. The current master key comes from\n"
        "                 AIFACTORY_MASTER_KEY, AIFACTORY_MASTER_KEY_FILE or HOME/master.key",
        "examples:\n  aifactory keys new orchestrator > orchestrator.key\n"
        "  aifactory keys new-master --home ./factory\n"
        "  aifactory keys new-master --file new-master.key\n"
        "  aifactory keys rotate-master --home ./factory --to new-master.key",
    )
    keys.add_argument(
        "action", choices=["new", "new-master", "rotate-master"], help="what to do (see above)"
    )
    keys.add_argument("id", nargs="?", help="the key's id, e.g. orchestrator")
    keys.add_argument("--file", metavar="FILE", help="new-master: where to write it ('-': print)")
    keys.add_argument("--to", metavar="FILE", help="rotate-master: the new master key's file")
    _home_argument(keys, _HOME)
    _storage_arguments(keys)
    stats = _command(
        sub,
        "stats",
        "show the factory-wide metrics",
        "Show the factory's metrics as a table, one line per group and the total: executions\n"
        "and how they ended, request latency, stages and retries, queue waits, model calls,\n"
        "tokens, cost, bytes stored, CPU time and peak memory. Reads the data folder (or\n"
        "--state) directly: no server need run.",
        "example:\n  aifactory stats --home ./factory --since 24h --by worker",
    )
    _home_argument(stats, _HOME)
    stats.add_argument(
        "--since",
        metavar="T",
        help="executions created from T: an ISO-8601 time or a duration back (24h, 7d; default 7d)",
    )
    stats.add_argument("--until", metavar="T", help="... until T (default: now)")
    stats.add_argument(
        "--by",
        default="template",
        choices=["client", "template", "worker", "stage"],
        help="one line per (default: %(default)s)",
    )
    _state_argument(stats)
    _command(sub, "version", "print the installed version", "Print the installed version.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.command == "init":
            return _init(args, console)
        if args.command == "admin":
            return _reset_password(args, console)
        if args.command == "templates":
            return _templates(args, console)
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "serve":
            return _serve(args, console)
        if args.command == "keys":
            return _keys(args, console)
        if args.command == "migrate":
            return _migrate(args, console)
        if args.command == "stats":
            return _stats(args, console)
        print(__version__)
        return 0
    except AIFactoryError as exc:
        # One line, however long (scripts grep it), escaped: messages quote user input and
        # hints such as 'aifactory[s3]', which rich would take for markup.
        console.print(f"[red]error:[/] {escape(exc.message)}", soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

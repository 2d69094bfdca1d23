"""The `aifactory` command: `init`, `demo`, `serve`, `keys` and `version`.

This and `FactoryConfig.from_environment` are the only places that read the environment
(`AIFACTORY_HOME`, `AIFACTORY_STORAGE`, `AIFACTORY_STORAGE_ENDPOINT`, the language model's
variables); everything below them receives a `FactoryConfig`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import attrs
import fsspec.core  # type: ignore[import-untyped]
from rich.console import Console
from rich.markup import escape

from . import __version__
from ._exceptions import AIFactoryError, ConflictError, StorageError
from ._sync import Factory
from .auth import generate_password
from .config import FactoryConfig
from .state import open_store
from .storage._roots import redact

__all__ = ["main"]

DEMO_ADMIN = "admin@factory.example"


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
        environ=environ,
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


def _init(args: argparse.Namespace, console: Console) -> int:
    config = _config(args)
    with Factory.embedded(config=config) as factory:
        password = factory.bootstrap_admin(args.admin_email, _read_password(args.admin_password))
    console.print(f"Initialised factory in [bold]{config.home}[/]")
    console.print(f"Admin: [bold]{args.admin_email}[/]")
    if args.admin_password is None:
        console.print(f"Generated admin password (shown once, store it now): [bold]{password}[/]")
    return 0


def _demo(args: argparse.Namespace, console: Console) -> int:
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="aifactory-demo-"))
    fresh = not (home / "state.sqlite3").exists()
    # A reused home already has the demo's client and user: give this run its own.
    suffix = "" if fresh else f"-{generate_password()[:6].lower()}"
    config = _config(args, home, with_llm=args.llm)
    if args.llm and config.llm is None:
        console.print("[red]--llm needs AIFACTORY_LLM_BASE_URL or an API key in the environment[/]")
        return 2
    blobs = _reach_storage(config)
    model = f", model {config.llm.model}" if config.llm else ", no language model"
    console.print(f"[bold]aifactory demo[/] — embedded factory in {home}{model}, blobs in {blobs}")
    with Factory.embedded(config=config) as factory:
        admin_password = _read_password(args.admin_password)
        try:
            admin_password = factory.bootstrap_admin(DEMO_ADMIN, admin_password)
            console.print(f"• created admin {DEMO_ADMIN} (generated password, not shown)")
        except ConflictError:
            if admin_password is None:
                console.print(
                    "[red]this home already has an admin: pass --admin-password "
                    f"for {DEMO_ADMIN}, or use a fresh --home[/]"
                )
                return 2
        admin = factory.login(DEMO_ADMIN, admin_password, login_type="admin")
        client = admin.clients.create(name=f"Acme{suffix}", tier="standard", monthly_budget_usd=50)
        user_password = generate_password()
        email = f"ana{suffix}@acme.example"
        admin.users.create(email=email, password=user_password, role="client", client_id=client.id)
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
        ranked = admin.templates.recommend(request.id)
        best = ranked[0] if ranked else None
        if best is not None:
            console.print(
                f"• recommended [bold]{best.template}[/] ({best.confidence:.0%}): "
                f"{'; '.join(best.reasons)}"
            )
        admin.requests.assign_template(request.id, template, parameters={"granularity": 3})
        execution = admin.requests.execute(request.id)
        console.print(f"• executing template [bold]{template}[/] as {execution.id}")
        for event in admin.executions.events(execution.id):
            if event.kind == "stage.succeeded":
                console.print(
                    f"  [green]✓[/] stage {event.stage_id:<10} {event.data.get('method', '')}"
                    f"  ({event.data.get('progress', 0):.0%})"
                )
            elif event.kind in ("stage.failed", "stage.retrying"):
                console.print(f"  [red]✗[/] stage {event.stage_id}: {event.data.get('error')}")
        final = admin.executions.get(execution.id)
        if final.status.value != "completed":
            console.print(f"[red]execution {final.status.value}: {final.error}[/]")
            return 1
        deliverables = ana.deliverables.list(request.id)
        report = ana.deliverables.download(deliverables[0].id)
        out = Path(args.out) if args.out else home / "demo-report.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(report)
        unread = ana.notifications.list(unread_only=True)
        console.print(
            f"• cost {final.cost.total_usd} USD · {len(unread)} notification(s) for {email}"
        )
        console.print(f"Report ({len(report)} bytes) written to [bold]{out}[/]")
        print(out)
    return 0


def _serve(args: argparse.Namespace, console: Console) -> int:
    import uvicorn

    from .server.deploy import Deployment, factory_service, load_keys, worker_service

    config = _config(args, with_llm=args.llm)
    if args.lease_seconds is not None:
        if not 0 < args.lease_seconds <= 3600:
            console.print("[red]--lease-seconds is between 0 and 3600[/]")
            return 2
        config = attrs.evolve(config, lease_s=args.lease_seconds)
    blobs = _reach_storage(config)
    if args.role in ("kam", "orchestrator"):
        from .server.deploy import kam_service, orchestrator_service

        if not args.deployment:
            console.print(f"[red]serve {args.role} needs --deployment FILE[/]")
            return 2
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
            console.print("[red]a worker service needs --trust FILE (aifactory keys new ID)[/]")
            return 2
        app = worker_service(config, args.workers, load_keys(args.trust))
        console.print(f"worker service for {', '.join(args.workers)}")
    console.print(f"state in {_state_label(config)}")
    console.print(f"blobs in {blobs}")
    console.print(f"listening on http://{args.host}:{args.port}")
    # Worker services answer only the orchestrator: no Server/Date headers on every reply.
    lean = args.role == "worker"
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        server_header=not lean,
        date_header=not lean,
    )
    return 0


def _migrate(args: argparse.Namespace, console: Console) -> int:
    config = _config(args)
    if config.state_url is None and config.home is not None:
        config.home.mkdir(parents=True, exist_ok=True)

    async def migrate() -> int:
        store = open_store(config.database)  # migrates, or refuses a newer schema
        try:
            return await store.schema_version()
        finally:
            await store.aclose()

    version = anyio.run(migrate)
    console.print(f"state in {_state_label(config)}: schema version {version}, up to date")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from .auth.signing import generate_worker_key

    print(generate_worker_key(args.id).to_text())
    return 0


def _storage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="blob storage shared by all services: a folder or s3://bucket/prefix "
        "(default $AIFACTORY_STORAGE, else HOME/blobs); S3 credentials come from the AWS "
        "environment (AWS_ACCESS_KEY_ID, ...)",
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aifactory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the data folder and the first admin")
    init.add_argument("--home", help="data folder (default $AIFACTORY_HOME or ./.aifactory)")
    init.add_argument("--admin-email", required=True)
    init.add_argument(
        "--admin-password", help="the admin's password ('-' reads stdin); generated if omitted"
    )
    _state_argument(init)
    demo = sub.add_parser("demo", help="run one request from login to deliverable")
    demo.add_argument("--home", help="data folder (default: a fresh temporary folder)")
    demo.add_argument("--admin-password", help="admin password of an existing --home ('-': stdin)")
    demo.add_argument("--out", help="where to write the report (default HOME/demo-report.md)")
    demo.add_argument("--topic", default="Market analysis for AI tools")
    demo.add_argument(
        "--llm",
        action="store_true",
        help="use the language model configured by AIFACTORY_LLM_MODEL, AIFACTORY_LLM_BASE_URL "
        "and AIFACTORY_LLM_API_KEY / OPENAI_API_KEY",
    )
    demo.add_argument(
        "--template",
        default="quick_research",
        choices=["quick_research", "educational_course_basic"],
    )
    _storage_arguments(demo)
    _state_argument(demo)
    serve = sub.add_parser("serve", help="serve the factory API or worker services over HTTP")
    serve.add_argument("role", choices=["factory", "kam", "orchestrator", "worker"])
    serve.add_argument("workers", nargs="*", help="worker names (for role 'worker')")
    serve.add_argument("--home", help="data folder (default $AIFACTORY_HOME or ./.aifactory)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--deployment", help="factory: JSON file naming remote workers and the key")
    serve.add_argument("--trust", help="worker: file of caller keys (one id:secret per line)")
    serve.add_argument("--llm", action="store_true", help="use the model from the environment")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument(
        "--lease-seconds",
        type=float,
        metavar="S",
        help="how long a replica's hold on an execution lasts unrenewed; another replica "
        "takes over a dead one's executions after that (default 30)",
    )
    _storage_arguments(serve)
    _state_argument(serve)
    migrate = sub.add_parser(
        "migrate", help="bring the state's schema up to date (opening it does so too)"
    )
    migrate.add_argument("--home", help="data folder (default $AIFACTORY_HOME or ./.aifactory)")
    _state_argument(migrate)
    keys = sub.add_parser("keys", help="make a service signing key")
    keys.add_argument("action", choices=["new"])
    keys.add_argument("id", help="the service's id, e.g. orchestrator")
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.command == "init":
            return _init(args, console)
        if args.command == "demo":
            return _demo(args, console)
        if args.command == "serve":
            return _serve(args, console)
        if args.command == "keys":
            return _keys(args)
        if args.command == "migrate":
            return _migrate(args, console)
        print(__version__)
        return 0
    except AIFactoryError as exc:
        # One line, however long (scripts grep it), escaped: messages quote user input and
        # hints such as 'aifactory[s3]', which rich would take for markup.
        console.print(f"[red]error:[/] {escape(exc.message)}", soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The whole flow, embedded: run `python examples/embedded_quickstart.py [HOME]`.

Passwords are generated here and never written anywhere but the factory's hashed store.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import aifactory
from aifactory.auth import generate_password


def main(home: Path) -> Path:
    with aifactory.embedded(home=home) as factory:
        admin_password = factory.bootstrap_admin("admin@example.com")
        admin = factory.login("admin@example.com", admin_password, login_type="admin")

        acme = admin.clients.create(name="Acme", tier="standard", monthly_budget_usd=50)
        ana_password = generate_password()
        admin.users.create(
            email="ana@acme.example", password=ana_password, role="client", client_id=acme.id
        )

        ana = factory.login("ana@acme.example", ana_password)
        request = ana.requests.create(
            title="A course on sourdough baking",
            description="For home bakers: starters, hydration, shaping, scoring and baking.",
            urgency="normal",
            category="education",
        )
        admin.requests.assign_template(
            request.id, "educational_course_basic", parameters={"target_audience": "home bakers"}
        )
        execution = admin.requests.execute(request.id)
        for event in admin.executions.events(execution.id):
            print(f"{event.seq:>3} {event.kind:<20} {event.stage_id or ''}")

        [deliverable] = ana.deliverables.list(request.id)
        out = home / deliverable.filename
        out.write_bytes(ana.deliverables.download(deliverable.id))
        for note in ana.notifications.list():
            print("notification:", note.message)
        return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="aif-"))
    print("report written to", main(target))

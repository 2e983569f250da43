"""A multi-tenant SaaS API in FastAPI on one DynamoDB table.

- Tenant isolation by key design: every item lives under `TENANT#{tenant_id}`, and the
  tenant comes from the `X-Tenant-ID` header (in production: from the verified token).
  Key slots are escaped, so no tenant id, however crafted, reaches another partition.
- Entities are the response models: FastAPI serializes `Project` and `Task` directly.
- Cursor pagination: `GET /projects?limit=2` returns `{"items": [...], "cursor": ...}`;
  pass `?cursor=` to continue. Cursors are HMAC-signed and bound to the query and its
  partition, so a cursor issued to tenant A is refused (400) when tenant B sends it.

Run it with `uvicorn saas_api:app` after `pip install fastapi uvicorn`; run this file
to exercise it with FastAPI's TestClient on the embedded backend.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from dynaorm import Entity, Session, Table
from dynaorm.errors import InvalidCursor

saas = Table("saas")


class Project(Entity, table=saas, pk="TENANT#{tenant_id}", sk="PROJECT#{project_id}"):
    tenant_id: str
    project_id: str
    name: str
    created_at: datetime


class Task(
    Entity,
    table=saas,
    pk="TENANT#{tenant_id}",
    sk="PROJECT#{project_id}#TASK#{created_at}#{task_id}",
):
    tenant_id: str
    project_id: str
    task_id: str
    title: str
    done: bool = False
    created_at: datetime


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    cursor: str | None = Field(description="pass as ?cursor= for the next page")


# -- dependencies ----------------------------------------------------------------------

TenantId = Annotated[str, Header(alias="X-Tenant-ID", min_length=1, max_length=64)]
Limit = Annotated[int, Query(ge=1, le=100)]


def get_session(request: Request) -> Session:
    session: Session = request.app.state.session
    return session


Db = Annotated[Session, Depends(get_session)]


def now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(session: Session) -> FastAPI:
    """The API on `session` (created once per process and shared: it is thread-safe)."""
    api = FastAPI(title="Projects")
    api.state.session = session

    @api.exception_handler(InvalidCursor)
    def invalid_cursor(request: Request, error: InvalidCursor) -> JSONResponse:
        return JSONResponse({"detail": f"invalid cursor: {error}"}, status_code=400)

    @api.post("/projects", status_code=201)
    def create_project(body: ProjectIn, tenant: TenantId, db: Db) -> Project:
        project = Project(
            tenant_id=tenant, project_id=uuid.uuid4().hex[:8], name=body.name, created_at=now()
        )
        db.create(project)
        return project

    @api.get("/projects")
    def list_projects(
        tenant: TenantId, db: Db, limit: Limit = 20, cursor: str | None = None
    ) -> PageOut[Project]:
        page = db.query(Project, tenant_id=tenant).page(limit, cursor=cursor)
        return PageOut(items=page.items, cursor=page.cursor)

    @api.get("/projects/{project_id}")
    def get_project(project_id: str, tenant: TenantId, db: Db) -> Project:
        project = db.get(Project, tenant_id=tenant, project_id=project_id)
        if project is None:
            raise HTTPException(404, "no such project")
        return project

    @api.post("/projects/{project_id}/tasks", status_code=201)
    def add_task(project_id: str, body: TaskIn, tenant: TenantId, db: Db) -> Task:
        get_project(project_id, tenant, db)
        task = Task(
            tenant_id=tenant,
            project_id=project_id,
            task_id=uuid.uuid4().hex[:8],
            title=body.title,
            created_at=now(),
        )
        db.create(task)
        return task

    @api.get("/projects/{project_id}/tasks")
    def list_tasks(
        project_id: str, tenant: TenantId, db: Db, limit: Limit = 20, cursor: str | None = None
    ) -> PageOut[Task]:
        get_project(project_id, tenant, db)  # 404 rather than an empty list
        query = db.query(Task, tenant_id=tenant, project_id=project_id)
        page = query.page(limit, cursor=cursor)
        return PageOut(items=page.items, cursor=page.cursor)

    return api


def make_session() -> Session:
    secret = os.environ.get("CURSOR_SECRET", "change-me").encode()
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return Session(table_prefix="saas_demo_", cursor_secret=secret)
    return Session.in_memory(table_prefix="saas_demo_", cursor_secret=secret)


def demo() -> None:
    session = make_session()
    session.create_table(saas, exists_ok=True)
    client = TestClient(create_app(session))
    acme, globex = {"X-Tenant-ID": "acme"}, {"X-Tenant-ID": "globex"}

    for name in ("Website", "Mobile app", "Billing", "Onboarding", "Data platform"):
        client.post("/projects", json={"name": name}, headers=acme).raise_for_status()
    secret = client.post("/projects", json={"name": "Globex secret"}, headers=globex).json()
    print(f"Created 5 projects for acme and 1 for globex ({secret['project_id']})")

    print("\nacme's projects, two per page:")
    cursors: list[str] = []
    while True:
        params = {"limit": 2, **({"cursor": cursors[-1]} if cursors else {})}
        body = client.get("/projects", params=params, headers=acme).json()
        print(f"  page {len(cursors) + 1}: {[p['name'] for p in body['items']]}")
        if body["cursor"] is None:
            break
        cursors.append(body["cursor"])

    stolen = client.get("/projects", params={"cursor": cursors[0]}, headers=globex)
    print(f"\nglobex replays acme's cursor -> {stolen.status_code} {stolen.json()['detail']}")
    tampered = client.get("/projects", params={"cursor": cursors[0][:-2] + "AA"}, headers=acme)
    print(f"acme sends a tampered cursor -> {tampered.status_code}")
    peek = client.get(f"/projects/{secret['project_id']}", headers=acme)
    print(f"acme asks for globex's project by id -> {peek.status_code}")
    forged = client.get("/projects", headers={"X-Tenant-ID": "acme#PROJECT#x"}).json()
    print(f"a crafted tenant id 'acme#PROJECT#x' sees {len(forged['items'])} projects")
    missing = client.get("/projects")
    print(f"no tenant header -> {missing.status_code}")

    project = client.get("/projects", params={"limit": 1}, headers=acme).json()["items"][0]
    tasks_url = f"/projects/{project['project_id']}/tasks"
    for title in ("Design", "Build", "Ship"):
        client.post(tasks_url, json={"title": title}, headers=acme).raise_for_status()
    tasks = client.get(tasks_url, headers=acme).json()
    print(f"\nTasks of {project['name']!r}, oldest first: {[t['title'] for t in tasks['items']]}")
    print(f"globex asks for them -> {client.get(tasks_url, headers=globex).status_code}")


if __name__ == "__main__":
    demo()

"""A multi-tenant SaaS API in FastAPI on one DynamoDB table.

- Tenant isolation by key design: every item lives under `TENANT#{tenant_id}`, and the
  tenant comes from the `X-Tenant-ID` header (in production: from the verified token).
  Key slots are escaped, so no tenant id, however crafted, reaches another partition.
- Entities are the response models: FastAPI serializes `Project` and `Task` directly.
- Cursor pagination: `GET /projects?limit=2` returns `{"items": [...], "cursor": ...}`;
  pass `?cursor=` to continue. Cursors are sealed with `cursor_secret` and bound to the
  query and its partition, so a cursor issued to tenant A is refused (400) when tenant B
  sends it.
- Async all the way: one `AsyncSession` per process, opened in the app's lifespan (which
  creates the table if needed) and closed at shutdown; handlers await it and never block
  the event loop.

Run it with `uvicorn --factory saas_api:make_app` after `pip install fastapi uvicorn
"dynaorm[async]"`; run this file to exercise it with FastAPI's TestClient on the embedded
backend (or on the endpoint in `AWS_ENDPOINT_URL_DYNAMODB`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from dynaorm import AsyncSession, Entity, Table
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


def get_session(request: Request) -> AsyncSession:
    session: AsyncSession = request.app.state.session
    return session


Db = Annotated[AsyncSession, Depends(get_session)]


def now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(session: AsyncSession) -> FastAPI:
    """The API on `session` (one per process, shared by every request's task)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await session.create_table(saas, exists_ok=True)
        api.state.session = session
        yield
        await session.close()

    api = FastAPI(title="Projects", lifespan=lifespan)

    @api.exception_handler(InvalidCursor)
    def invalid_cursor(request: Request, error: InvalidCursor) -> JSONResponse:
        return JSONResponse({"detail": f"invalid cursor: {error}"}, status_code=400)

    @api.post("/projects", status_code=201)
    async def create_project(body: ProjectIn, tenant: TenantId, db: Db) -> Project:
        project = Project(
            tenant_id=tenant, project_id=uuid.uuid4().hex[:8], name=body.name, created_at=now()
        )
        await db.create(project)
        return project

    @api.get("/projects")
    async def list_projects(
        tenant: TenantId, db: Db, limit: Limit = 20, cursor: str | None = None
    ) -> PageOut[Project]:
        page = await db.query(Project, tenant_id=tenant).page(limit, cursor=cursor)
        return PageOut(items=page.items, cursor=page.cursor)

    @api.get("/projects/{project_id}")
    async def get_project(project_id: str, tenant: TenantId, db: Db) -> Project:
        project = await db.get(Project, tenant_id=tenant, project_id=project_id)
        if project is None:
            raise HTTPException(404, "no such project")
        return project

    @api.post("/projects/{project_id}/tasks", status_code=201)
    async def add_task(project_id: str, body: TaskIn, tenant: TenantId, db: Db) -> Task:
        await get_project(project_id, tenant, db)
        task = Task(
            tenant_id=tenant,
            project_id=project_id,
            task_id=uuid.uuid4().hex[:8],
            title=body.title,
            created_at=now(),
        )
        await db.create(task)
        return task

    @api.get("/projects/{project_id}/tasks")
    async def list_tasks(
        project_id: str, tenant: TenantId, db: Db, limit: Limit = 20, cursor: str | None = None
    ) -> PageOut[Task]:
        await get_project(project_id, tenant, db)  # 404 rather than an empty list
        query = db.query(Task, tenant_id=tenant, project_id=project_id)
        page = await query.page(limit, cursor=cursor)
        return PageOut(items=page.items, cursor=page.cursor)

    return api


def make_session() -> AsyncSession:
    secret = os.environ.get("CURSOR_SECRET", "change-me").encode()
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return AsyncSession(table_prefix="saas_demo_", cursor_secret=secret)
    return AsyncSession.in_memory(table_prefix="saas_demo_", cursor_secret=secret)


def make_app() -> FastAPI:
    """The app on this process's session: `uvicorn --factory saas_api:make_app`."""
    return create_app(make_session())


def demo() -> None:
    with TestClient(make_app()) as client:  # runs the lifespan: table created, then closed
        exercise(client)


def exercise(client: TestClient) -> None:
    acme, globex = {"X-Tenant-ID": "acme"}, {"X-Tenant-ID": "globex"}

    for name in ("Website", "Mobile app", "Billing", "Onboarding", "Data platform"):
        client.post("/projects", json={"name": name}, headers=acme).raise_for_status()
    secret = client.post("/projects", json={"name": "Globex secret"}, headers=globex).json()
    print(f"Created 5 projects for acme and 1 for globex ({secret['project_id']})")

    print("\nacme's projects, two per page:")
    cursors: list[str] = []
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursors:
            params["cursor"] = cursors[-1]
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

"""The GraphQL clients frontends use (tests/clients/, Node), each against a live Herald.

Every `*.test.mjs` file in tests/clients/ is one test here: it runs under the Node.js that
tests/clients/package-lock.json pins (`npm ci` installs it with the clients on first use),
with the server's address and an admin key in its environment:

- `HERALD_URL`: the GraphQL endpoint (`http://127.0.0.1:<port>/graphql`);
- `HERALD_WS_URL`: the same over WebSocket;
- `HERALD_KEY`: an admin key; `HERALD_VIEWER_KEY`: a viewer's;
- `HERALD_CAMPAIGN_ID`: a draft campaign of 3 contacts, for subscriptions to watch.

A file fails the test with Node's own report (`node --test`) as the message.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from tests.conftest import Server, create_api_key
from tests.fake_whatsapp import seed_campaign

CLIENTS = Path(__file__).parent / "clients"
NODE = CLIENTS / "node_modules" / ".bin" / "node"
SUITES = sorted(p.name for p in CLIENTS.glob("*.test.mjs"))


@pytest.fixture(scope="session")
def node() -> Path:
    """The pinned Node.js with the clients installed from the lockfile (once per checkout)."""
    lock = CLIENTS / "package-lock.json"
    installed = CLIENTS / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install the client tests' packages (tests/clients/)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENTS, check=True)
    return NODE


@pytest.mark.asyncio
@pytest.mark.parametrize("suite", SUITES)
async def test_client(
    suite: str,
    node: Path,
    server: Server,
    settings: Settings,
    admin_key: str,
    session: AsyncSession,
) -> None:
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 3)
    env = {
        **os.environ,
        "HERALD_URL": f"{server.url}/graphql",
        "HERALD_WS_URL": f"{server.url.replace('http', 'ws', 1)}/graphql",
        "HERALD_KEY": admin_key,
        "HERALD_VIEWER_KEY": viewer,
        "HERALD_CAMPAIGN_ID": str(campaign_id),
    }
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        "--test-reporter=spec",
        suite,
        cwd=CLIENTS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, output.decode()

"""The GraphQL clients frontends use (tests/clients/, Node), each against a live Herald.

Every `*.test.mjs` file in tests/clients/ is one test here: it runs under the Node.js that
tests/clients/package-lock.json pins (`npm ci` installs it with the clients on first use),
with the server's address and an admin key in its environment:

- `HERALD_URL`: the GraphQL endpoint (`http://127.0.0.1:<port>/graphql`);
- `HERALD_WS_URL`: the same over WebSocket;
- `HERALD_KEY`: an admin key; `HERALD_VIEWER_KEY`: a viewer's;
- `HERALD_CAMPAIGN_ID`: a draft campaign of 3 contacts, for suites that watch one (the
  others start from an empty database).

A file fails the test with Node's own report (`node --test`) as the message.
`graphql-ws.test.mjs` runs against `herald serve` in a process of its own, restarted once
the client's subscription is counted, with a draft campaign's id in `HERALD_CAMPAIGN_ID`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from tests.conftest import Server, create_api_key
from tests.fake_whatsapp import WAIT_S, free_port, seed_campaign

CLIENTS = Path(__file__).parent / "clients"
NODE = CLIENTS / "node_modules" / ".bin" / "node"
RESTARTED = "graphql-ws.test.mjs"  # against a server restarted under it
SUITES = sorted(p.name for p in CLIENTS.glob("*.test.mjs") if p.name != RESTARTED)


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
    more = {"HERALD_VIEWER_KEY": viewer}
    if "HERALD_CAMPAIGN_ID" in (CLIENTS / suite).read_text():  # others start from no data
        more["HERALD_CAMPAIGN_ID"] = str(await seed_campaign(session, 3))
    process = await start_suite(node, suite, server.url, admin_key, **more)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, output.decode()


async def start_suite(
    node: Path, suite: str, url: str, key: str, **more: str
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HERALD_URL": f"{url}/graphql",
        "HERALD_WS_URL": f"{url.replace('http', 'ws', 1)}/graphql",
        "HERALD_KEY": key,
        **more,
    }
    return await asyncio.create_subprocess_exec(
        node,
        "--test",
        "--test-reporter=spec",
        suite,
        cwd=CLIENTS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


class HeraldServe:
    """`herald serve` on a port of its own, in a process of its own, that can be restarted."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        self.env.update(
            HERALD_DATABASE_URL=str(settings.database_url),
            HERALD_REDIS_URL=str(settings.redis_url),
            HERALD_ENV="dev",
            HERALD_PROGRESS_SETTLE_S="0.5",
        )
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            Path(sys.executable).with_name("herald"),
            *("serve", "--port", str(self.port)),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT_S
        async with httpx.AsyncClient() as http:
            while True:
                with suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                assert self.process.returncode is None, "herald serve exited"
                assert time.monotonic() < deadline, "herald serve did not start"
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM, as a deployment restarts it: open sockets are closed with 1012."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 30)


@pytest.mark.asyncio
async def test_graphql_ws_resubscribes_after_a_restart(
    node: Path, session: AsyncSession, settings: Settings, admin_key: str, tmp_path: Path
) -> None:
    # given a draft campaign, and the README's graphql-ws client subscribed to its progress
    campaign_id = await seed_campaign(session, 3)
    herald = HeraldServe(settings)
    await herald.start()
    shown = tmp_path / "shown"  # written by the client once it shows the first event
    suite = await start_suite(
        node,
        RESTARTED,
        herald.url,
        admin_key,
        HERALD_CAMPAIGN_ID=str(campaign_id),
        HERALD_SHOWN_FILE=str(shown),
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while not shown.exists():
            assert suite.returncode is None, (await suite.communicate())[0].decode()
            assert time.monotonic() < deadline, "the client never showed the progress"
            await asyncio.sleep(0.05)

        # when the server restarts (the client's socket closes with it)
        await herald.stop()
        await herald.start()
        output, _ = await asyncio.wait_for(suite.communicate(), timeout=300)
    finally:
        if suite.returncode is None:
            suite.kill()
        await herald.stop()

    # then the client reconnected, resubscribed and followed the campaign to its end
    # (tests/clients/graphql-ws.test.mjs)
    assert suite.returncode == 0, output.decode()

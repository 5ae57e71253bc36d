"""Dependencies point one way: HTTP → schema → loaders and services → repositories.

`app/` (configuration, models, repositories, services, workers) never imports `schema/` or
`loaders/`, except its composition root (`app/main.py`, `app/cli.py`, `app/actors.py`,
`app/process/dev.py`), which assembles the application. `loaders/` never imports `schema/`.
Inside `app/`, the worker (`app/worker/`: broker, enqueueing, process) and the domains
(`app/<domain>/`) never import each other: the actors that run the domains' tasks are
declared at the composition root, and what a task needs (`app/deps.py`) sits below the
domains. A domain's tasks are imported by nothing but their domain and the composition root;
a repository imports no other domain, nor another repository. What a transaction changed
takes effect in app/changes/apply.py alone, called by the boundaries that commit. Read from
the code's own imports, so a wrong arrow fails here before a reviewer has to spot it.
Modules stay small enough to read in one sitting.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOT = {"app/main.py", "app/cli.py", "app/actors.py", "app/process/dev.py"}
FORBIDDEN = {"app": ("schema", "loaders"), "loaders": ("schema",)}
MAX_LINES = 400


def _imports(path: Path) -> set[str]:
    """Top-level packages a module imports (TYPE_CHECKING blocks included: a type is a
    dependency too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules(path: Path) -> set[str]:
    """Full names of the modules (or packages) a module imports, `from` imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _wrong_arrows(package: str) -> list[str]:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name in COMPOSITION_ROOT:
            continue
        for target in sorted(_imports(path) & set(FORBIDDEN[package])):
            wrong.append(f"{name} -> {target}")
    return wrong


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_against_the_flow(package: str) -> None:
    assert _wrong_arrows(package) == []


def test_the_check_sees_imports() -> None:
    """The composition root does import schema; a check blind to imports would pass anyway."""
    assert "schema" in _imports(ROOT / "app/main.py")
    assert "loaders" in _imports(ROOT / "schema/request.py")
    assert "app.worker.jobs.Jobs" in _modules(ROOT / "schema/context.py")


# The domains: the folders of app/ that hold a repository.
DOMAINS = frozenset(path.parent.name for path in (ROOT / "app").glob("*/repository.py"))
ROOT_MODULES = {name.removesuffix(".py").replace("/", ".") for name in COMPOSITION_ROOT}


def _domain(module: str) -> str | None:
    """The domain of a module (`app.campaigns.tasks` → campaigns), if it is in one."""
    parts = module.split(".")
    return parts[1] if parts[0] == "app" and len(parts) > 1 and parts[1] in DOMAINS else None


def _arrows_in_app() -> list[tuple[str, str]]:
    """(importer, imported) for every import between two modules of app/."""
    graph = _import_graph()
    return sorted(
        (module, target)
        for module, targets in graph.items()
        if module.startswith("app.")
        for target in targets
        if target.startswith("app.")
    )


def test_the_worker_and_the_domains_import_each_other_in_no_direction() -> None:
    """The worker is the broker and the process; the domains enqueue through `deps.jobs` or
    `context.jobs`, and only the composition root declares the actors that run their tasks."""
    wrong = [
        f"{a} -> {b}"
        for a, b in _arrows_in_app()
        if (a.startswith("app.worker.") and _domain(b))
        or (_domain(a) and b.startswith("app.worker."))
    ]
    assert wrong == []


def test_a_domains_tasks_are_imported_by_its_domain_and_the_composition_root_alone() -> None:
    """Tasks are the top of their domain: what two domains' tasks share lives below both."""
    wrong = [
        f"{a} -> {b}"
        for a, b in _arrows_in_app()
        if b.endswith(".tasks") and _domain(b) not in (None, _domain(a)) and a not in ROOT_MODULES
    ]
    assert wrong == []


def test_no_repository_imports_another_domain_or_repository() -> None:
    """A repository holds its domain's SQL; the service (or the caller) composes several."""
    wrong = [
        f"{a} -> {b}"
        for a, b in _arrows_in_app()
        if a.endswith(".repository")
        and ((_domain(b) and _domain(b) != _domain(a)) or b.endswith(".repository"))
    ]
    assert wrong == []


def test_the_checks_inside_app_see_the_domains() -> None:
    """Checks blind to the domains or to their imports would pass anyway."""
    arrows = _arrows_in_app()
    assert {"campaigns", "contacts", "messages", "stats"} <= DOMAINS
    assert {_domain(b) for a, b in arrows if a == "app.actors"} >= {"campaigns", "stats"}
    assert ("app.campaigns.service", "app.categories.repository") in arrows
    assert ("app.deps", "app.worker.jobs") in arrows


def test_modules_stay_small() -> None:
    """A module past MAX_LINES holds more than one concern: split it along its seams."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for folder in ("app", "schema", "loaders")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
    assert max(sizes.values()) > MAX_LINES // 2  # the walk does see the modules


# Modules allowed to import each other: the ORM models (relationships name each other) and
# the GraphQL object types (fields return each other). Nothing else may form a circle.
CIRCLES_ALLOWED = ("app.models.", "schema.campaigns.types", "schema.categories.types",
                   "schema.contacts.types", "schema.messages.")  # fmt: skip


def _import_graph() -> dict[str, set[str]]:
    """Each module of app/, schema/ and loaders/ with the modules of theirs it imports."""
    paths = _module_paths()
    return {name: (_modules(path) & paths.keys()) - {name} for name, path in paths.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_outside_the_models_and_the_object_types() -> None:
    circles = _circles(_import_graph())

    assert [c for c in circles if not all(m.startswith(CIRCLES_ALLOWED) for m in c)] == []
    assert circles  # the allowed ones: a walk blind to imports would find none


# What a transaction changed takes effect in one place (app/changes/apply.py): nothing else
# bumps generations or sends progress notices and pause announcements.
NOTICES = {
    # progress.py bumps one campaign's scope (debounced); `herald stats verify --repair`
    # fixes counters outside any request or task.
    "app.cache.bump_generations": {"app.changes.apply", "app.campaigns.progress", "app.stats.cli"},
    "app.cache.keys.bump_generations": {"app.cache"},  # its re-export
    "app.campaigns.progress.notify_campaign_progress": {"app.changes.apply", "app.campaigns.halts"},
    "app.campaigns.halts.announce_paused": {"app.changes.apply"},
}


def test_changes_take_effect_in_one_place() -> None:
    graph = {name: _modules(path) for name, path in _module_paths().items()}
    wrong = sorted(
        f"{module} -> {notice}"
        for module, imported in graph.items()
        for notice, allowed in NOTICES.items()
        if notice in imported and module not in allowed
    )
    assert wrong == []
    assert "app.campaigns.halts.announce_paused" in graph["app.changes.apply"]


def test_changes_are_applied_by_the_boundaries_that_commit() -> None:
    """Services and repositories record; the request's boundary, the webhook and the
    worker tasks apply, once committed. No resolver applies them itself."""
    appliers = sorted(
        name for name, path in _module_paths().items() if "app.changes.apply" in _modules(path)
    )
    wrong = [
        name
        for name in appliers
        if name.endswith((".service", ".repository"))
        or name.startswith("loaders.")
        or (name.startswith("schema.") and name != "schema.extensions")
    ]
    assert wrong == []
    assert {"schema.extensions", "app.http.webhooks", "app.messages.tasks"} <= set(appliers)


def test_every_savepoint_keeps_its_changes_with_its_writes() -> None:
    """A savepoint opened with `begin_nested` directly would keep, once rolled back, the
    changes recorded inside it: `nested` (app/changes/record.py) drops them together."""
    calls = {
        name
        for name, path in _module_paths().items()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr == "begin_nested"
    }
    assert calls == {"app.changes.record"}


def _module_paths() -> dict[str, Path]:
    """Each module of app/, schema/ and loaders/ by its dotted name."""
    paths = {}
    for folder in ("app", "schema", "loaders"):
        for path in (ROOT / folder).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            paths[name.removesuffix(".__init__")] = path
    return paths

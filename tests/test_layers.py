"""The layers depend inwards only: web -> application/projections -> domain.

Every module under the layer packages is parsed (not imported), so a rule
broken anywhere, even in a branch that never runs, fails here with the file
and line of each offending import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("domain", "application", "projections", "web")
OURS = frozenset({*LAYERS, "smartscheduler"})


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def is_within(self, package: str) -> bool:
        return self.module == package or self.module.startswith(package + ".")

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def _package_of(relative: Path) -> list[str]:
    parts = list(relative.with_suffix("").parts)
    return parts if relative.name == "__init__.py" else parts[:-1]


def imports_in(source: str, relative: Path) -> Iterator[Import]:
    """Every module the source imports, with relative imports made absolute."""
    file = relative.as_posix()
    for node in ast.walk(ast.parse(source, filename=file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(file, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = _package_of(relative)
                base = package[:len(package) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if not module:
                # `from .. import web`: each name is a top-level module.
                for alias in node.names:
                    yield Import(file, node.lineno, alias.name)
            elif module in OURS or module == "eventsourcing":
                # `from web import app`, `from eventsourcing import domain`: the names
                # may be submodules, so count each one.
                for alias in node.names:
                    yield Import(file, node.lineno, f"{module}.{alias.name}")
            else:
                yield Import(file, node.lineno, module)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__")):
            yield Import(file, node.lineno, node.args[0].value)


def layer_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def imports_of(layer: str) -> list[Import]:
    found: list[Import] = []
    for path in layer_files(layer):
        relative = path.relative_to(ROOT)
        found.extend(imports_in(path.read_text(encoding="utf-8"), relative))
    return found


def report(rule: str, offenders: list[Import]) -> str:
    lines = "\n".join(f"  {offender}" for offender in offenders)
    return f"{rule}; {len(offenders)} offending import(s):\n{lines}"


# Rules --------------------------------------------------------------------------


def domain_violations(imports: list[Import]) -> list[Import]:
    return [i for i in imports
            if i.top in OURS - {"domain"}
            or (i.top not in sys.stdlib_module_names and i.top != "domain"
                and not i.is_within("eventsourcing.domain"))]


def outer_layer_violations(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.top in ("web", "smartscheduler")]


def projection_violations(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.top == "application"]


# The code base keeps the rules ----------------------------------------------------


def test_the_domain_imports_only_itself_the_standard_library_and_eventsourcing_domain():
    offenders = domain_violations(imports_of("domain"))

    assert not offenders, report(
        "domain/ may import only domain, the standard library and eventsourcing.domain",
        offenders)


@pytest.mark.parametrize("layer", ["application", "projections"])
def test_application_and_projections_import_nothing_of_web_or_smartscheduler(layer):
    offenders = outer_layer_violations(imports_of(layer))

    assert not offenders, report(
        f"{layer}/ must not import web or smartscheduler", offenders)


def test_web_does_not_import_the_composition_root():
    offenders = [i for i in imports_of("web") if i.top == "smartscheduler"]

    assert not offenders, report(
        "web/ must not import smartscheduler (the composition root builds web, "
        "not the other way round)", offenders)


def test_projections_do_not_import_the_application():
    offenders = projection_violations(imports_of("projections"))

    assert not offenders, report("projections/ must not import application", offenders)


# The rules can fail ---------------------------------------------------------------


def test_every_layer_but_web_has_modules_to_check():
    counts = {layer: len(layer_files(layer)) for layer in LAYERS}

    assert all(counts[layer] > 0 for layer in ("domain", "application", "projections")), (
        counts)


def test_the_scan_sees_the_imports_the_domain_really_has():
    modules = {i.module for i in imports_of("domain")}

    assert {"eventsourcing.domain", "domain.errors", "domain.job"} <= modules


def test_a_domain_module_importing_an_outer_layer_is_reported_with_its_line():
    source = "import os\nfrom application.dispatch import Dispatch\n"

    offenders = domain_violations(list(imports_in(source, Path("domain/bad.py"))))

    assert [str(o) for o in offenders] == [
        "domain/bad.py:2 imports application.dispatch"]


@pytest.mark.parametrize("source, module", [
    ("import redis", "redis"),
    ("from eventsourcing.application import Application", "eventsourcing.application"),
    ("from eventsourcing import persistence", "eventsourcing.persistence"),
    ("from .. import web", "web"),
    ("from ..smartscheduler.cli import main", "smartscheduler.cli"),
    ("import importlib\nimportlib.import_module('projections.views')", "projections.views"),
])
def test_a_domain_module_importing_a_third_party_or_outer_module_is_reported(
        source, module):
    offenders = domain_violations(list(imports_in(source, Path("domain/bad.py"))))

    assert [o.module for o in offenders] == [module]


def test_relative_imports_inside_the_domain_are_allowed():
    source = "from .errors import InvalidJob\nfrom . import catalog\n"

    imports = list(imports_in(source, Path("domain/job.py")))

    assert [i.module for i in imports] == ["domain.errors", "domain.catalog"]
    assert domain_violations(imports) == []


def test_an_application_module_importing_web_is_reported():
    source = "from web.app import create_app\nimport smartscheduler.cli\nimport domain\n"

    offenders = outer_layer_violations(list(imports_in(source, Path("application/x.py"))))

    assert [str(o) for o in offenders] == [
        "application/x.py:1 imports web.app",
        "application/x.py:2 imports smartscheduler.cli"]


def test_a_projection_importing_the_application_is_reported():
    source = "from application.dispatch import Dispatch\nfrom domain.job import Job\n"

    offenders = projection_violations(list(imports_in(source, Path("projections/x.py"))))

    assert [str(o) for o in offenders] == [
        "projections/x.py:1 imports application.dispatch"]

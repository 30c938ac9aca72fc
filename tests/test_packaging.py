"""The package's dependency ranges: wide enough for Colab's preinstalled versions, and holding
the exact versions requirements.txt pins for CI."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {requirement.name.lower(): requirement.specifier for requirement in requirements}


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (version,) = [spec.version for spec in requirement.specifier]
            pins[requirement.name.lower()] = version
    return pins


def test_every_pinned_runtime_dependency_is_in_the_package_ranges():
    ranges, pins = _ranges(), _pins(ROOT / "requirements.txt")
    assert set(pins) == set(ranges)
    outside = {name: version for name, version in pins.items() if version not in ranges[name]}
    assert not outside, f"pins outside pyproject.toml's ranges: {outside}"


def test_installing_on_colab_keeps_its_preinstalled_packages():
    ranges = _ranges()
    preinstalled = _pins(ROOT / "tests" / "data" / "colab_preinstalled.txt")
    replaced = {name: version for name, version in preinstalled.items()
                if version not in ranges[name]}
    assert not replaced, f"pip install -e . would replace Colab's {replaced}"

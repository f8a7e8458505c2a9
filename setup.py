"""Map the design card's top-level folders into the single import package `tirgym`.

pyproject.toml holds the metadata; this file only computes the package list so that a
new sub-package (say envs/games/) is picked up without editing a hand-kept list.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "tirgym": "tirgym",
    "tirgym.envs": "envs",
    "tirgym.rewards": "rewards",
    "tirgym.sandbox": "sandbox",
    "tirgym.agents": "agents",
    "tirgym.trainer": "trainer",
    "tirgym.configs": "configs",
}

packages, package_dir = [], {}
for package, folder in FOLDERS.items():
    package_dir[package] = folder
    packages.append(package)
    for sub in find_packages(folder, exclude=["tests", "tests.*"]):
        packages.append(f"{package}.{sub}")
        package_dir[f"{package}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)

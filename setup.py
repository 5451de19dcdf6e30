"""One build step pyproject.toml cannot say: the wheel carries templates/ and locale/ inside the package.

They stay at the top of the repository, where people edit them; a built package gets a copy as
tracker/_data/templates and tracker/_data/locale (tracker.config.shipped finds either). An editable
install (`make install`) copies nothing: it reads the checkout's own folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("templates", "locale")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED:
            target = Path(self.build_lib, "tracker", "_data", name)
            shutil.rmtree(target, ignore_errors=True)  # a reused build/ folder keeps no template since removed
            shutil.copytree(HERE / name, target, ignore=shutil.ignore_patterns("__pycache__", ".*", "*~"))


setup(cmdclass={"build_py": BuildWithData})

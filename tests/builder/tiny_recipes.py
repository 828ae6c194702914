"""Small recipes for the `nanodistro build` behaviour tests: no sources, one sandboxed step that
installs a script, optionally a step before it that fails, naps or runs somewhere else."""

from __future__ import annotations

from pathlib import Path

INSTALL = """  - name: install
    runs: |
      mkdir -p ${{targets.destdir}}/usr/bin
      printf '#!/bin/sh\\necho tiny\\n' > ${{targets.destdir}}/usr/bin/tiny
      chmod 755 ${{targets.destdir}}/usr/bin/tiny
"""


def tiny_recipe(first_step: str = "", test: str = "tiny | grep -qx tiny") -> str:
    """A recipe named ``tiny`` (0.1-r0) whose pipeline is ``first_step`` (YAML list items)
    then ``install``; its test runs ``test`` with the host toolchain's sh."""
    return f"""package:
  name: tiny
  version: "0.1"
  epoch: 0
  description: a script
  copyright:
    - license: CC0-1.0
pipeline:
{first_step}{INSTALL}test:
  environment:
    contents:
      packages: [busybox]
  pipeline:
    - runs: {test}
"""


FAILING_STEP = """  - name: explode
    working-directory: /home/build/sub
    environment:
      DEBUGVAR: from-the-step
    runs: |
      echo 'about to fail: the answer is 42'
      exit 3
"""


def napping_step(marker: str) -> str:
    """A step that sleeps until killed; ``marker`` is in its command line (to find it)."""
    return f"""  - name: nap
    runs: |
      echo napping
      sleep 300 # {marker}
"""


def write(directory: Path, text: str, name: str = "tiny.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path

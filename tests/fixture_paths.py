"""Where the ecosystem's real files are: ../shared/fixtures (override with NANODISTRO_SHARED).

A module of its own (not conftest) so test files in any folder can import it unambiguously.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NANODISTRO_SHARED", REPO_ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
THIRD_PARTY = FIXTURES / "third_party"
# wolfictl's advisory package test data (documents, secdb and OSV expectations)
WOLFICTL_ADVISORY_TESTDATA = (
    THIRD_PARTY / "wolfi-dev+wolfictl@af8a800a-parent" / "pkg" / "advisory" / "testdata"
)

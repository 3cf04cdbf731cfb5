"""Where the tests find the project, its config, the bundled test data and the shared parity cases: one place, so
that no test depends on the folder it sits in."""

import os
import pathlib

TEST_DIR = pathlib.Path(__file__).resolve().parent.parent
PROJECT_DIR = TEST_DIR.parent
CONFIG_DIR = PROJECT_DIR / "config"
DATA_DIR = TEST_DIR / "data"
BAGS_DIR = DATA_DIR / "bags"
PARITY_DIR = TEST_DIR / "fixtures" / "parity"
# The project's shared folder (parity cases, reference weights; absent on some machines): $DAV2_SHARED_DIR where it
# is not beside the checkout (a git worktree), else ../shared as CI has it.
SHARED_DIR = pathlib.Path(os.environ.get("DAV2_SHARED_DIR") or PROJECT_DIR.parent / "shared")
SHARED_CASES_DIR = SHARED_DIR / "reference" / "cases"

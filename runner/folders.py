"""Where the runner writes when told nowhere: ``out/``, beside the folder it runs in.

Kept apart and light, so the command line can name these defaults in its help
without importing the recipe model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

# Outputs (``out/<recipe>/<item>``, unless ``output.dir`` or ``--out`` says otherwise)
# and the run's manifest (``out/run.json``, unless ``--manifest``).
DEFAULT_OUT: Final = Path("out")
MANIFEST_FILE: Final = "run.json"
DEFAULT_MANIFEST: Final = DEFAULT_OUT / MANIFEST_FILE

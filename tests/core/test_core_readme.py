"""The README's code example runs as written against a real Redis (only the URL is pointed at the test's)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_readme_example_runs(redis_url: str) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README lost its python example"
    code = blocks[0].replace("redis://127.0.0.1:6379/0", redis_url)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "product 1" in proc.stdout

"""The fake Xero imports nothing of the product (issue 13 §4): it models Xero from the outside, so a
product bug can never leak into the fake that is supposed to catch it. The product may read the
fake's demo-app values (xero_core.fake.demo_app), never the other way round."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "xero_core" / "fake"


def _product_imports(source: str, name: str) -> list[str]:
    """Imports in a module of the fake that reach xero_core outside xero_core.fake (absolute or relative)."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2:  # from .. / ..x: above xero_core.fake
                names = ["." * node.level + (node.module or "")]
            elif node.level == 1:
                continue
            else:
                names = [node.module or ""]
                names += [f"{node.module}.{a.name}" for a in node.names] if node.module == "xero_core" else []
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args \
                and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        else:
            continue
        for n in names:
            if n.startswith("..") or (n == "xero_core" or n.startswith("xero_core.")) and not (
                    n == "xero_core.fake" or n.startswith("xero_core.fake.")):
                found.append(f"{name}:{node.lineno}: {n}")
    return found


def test_no_module_of_the_fake_imports_the_product():
    modules = sorted(FAKE.rglob("*.py"))
    assert len(modules) > 10
    bad = [hit for m in modules for hit in _product_imports(m.read_text(), str(m.relative_to(ROOT)))]
    assert bad == [], "the fake imports the product:\n" + "\n".join(bad)


def test_the_checker_sees_each_way_of_importing_the_product():
    for src in ("from ..settings import DEMO_CLIENT_ID", "from .. import settings", "import xero_core.settings",
                "from xero_core import settings", "from xero_core.sync.weeks import week_ending_for",
                "def f():\n    from ...xero_core import db", "__import__('xero_core.client')"):
        assert _product_imports(src, "xero_core/fake/m.py"), src
    for src in ("from . import chart", "from .demo_app import DEMO_CLIENT_ID", "import xero_core.fake.chart",
                "from xero_core.fake import chart", "from xero_core.fake.ledger import Org", "import httpx"):
        assert _product_imports(src, "xero_core/fake/m.py") == [], src


@pytest.mark.slow
def test_running_the_fake_loads_no_module_of_the_product():
    code = (
        "import sys, httpx\n"
        "from xero_core.fake import FakeXero, FakeClock, serve\n"
        "import xero_core.fake.server, xero_core.fake.admin, xero_core.fake.webhooks\n"
        "fake = FakeXero(seed=3, clock=FakeClock(), invoices=5)\n"
        "with httpx.Client(transport=fake.transport(), base_url='http://fake.test') as c:\n"
        "    assert c.get('/identity/connect/authorize').status_code < 500\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('xero_core'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    assert "xero_core.fake.app" in loaded
    assert [m for m in loaded if m != "xero_core" and not m.startswith("xero_core.fake")] == []


def test_settings_read_the_demo_app_from_the_fake_without_loading_the_fake():
    code = ("import sys\nfrom xero_core import settings\nfrom xero_core.fake import demo_app\n"
            "assert (settings.DEMO_CLIENT_ID, settings.DEMO_CLIENT_SECRET) == "
            "(demo_app.DEMO_CLIENT_ID, demo_app.DEMO_CLIENT_SECRET)\n"
            "s = settings.load_settings({'XERO_MOCK_MODE': 'true', 'XERO_ENCRYPTION_KEY': bytes(range(32)).hex()})\n"
            "assert (s.client_id, s.client_secret) == (demo_app.DEMO_CLIENT_ID, demo_app.DEMO_CLIENT_SECRET)\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('xero_core.fake'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["xero_core.fake", "xero_core.fake.demo_app"]

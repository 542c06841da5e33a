"""The core is pure: importing it loads neither trio nor matplotlib (nor sockets' users)."""

import subprocess
import sys


def test_importing_core_loads_neither_trio_nor_matplotlib() -> None:
    code = (
        "import sys, pkgutil, importlib, portstorm.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n"
        "    importlib.import_module('portstorm.core.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('trio', 'matplotlib'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"portstorm.core pulled in: {out.stdout.strip()}"


def test_the_purity_check_would_notice_trio() -> None:
    # Guard against a check that cannot fail: the same probe sees trio when it is imported.
    code = "import sys, trio; print('trio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"

"""Writes the `berth` command into the venv: `python -m shell.launcher TARGET`, which
`make install` runs with the venv's interpreter (`site` on, so that `sys.path` holds
what `site` would add: the venv's site-packages and the editable install's paths).

The command it writes runs the interpreter with `-S`: no `site` at start-up (the venv's
`.pth` files, setuptools' distutils shim, the system's sitecustomize: ~3 ms of every
one-shot command). The paths `site` would have added are written into it as they stand,
where working them out at every start (finding the venv, listing its site-packages,
reading the `.pth` files) and compiling that code (a script is never cached) cost 0.5 ms
of every command (docs/performance.md). They change only with the install, and every
`make install` writes the command again. An install that needs `site` itself (an editable
install by import hook rather than by path) keeps it: no `-S` then.

`shell/berth` is what a plain `pip install` puts there instead: it leaves `site` on.
"""

import os
import site
import sys


def site_paths() -> list[str]:
    """The entries `site` put on `sys.path`: site-packages and, after it, the `.pth`
    files' paths."""
    packages = [p for p in site.getsitepackages() if p in sys.path]
    return sys.path[min(map(sys.path.index, packages)):] if packages else []


def command_text() -> str:
    """The launcher for this interpreter and its paths as they are now."""
    # setuptools' editable install by import hook imports a `__editable___<name>_finder`
    hooked = any(name.startswith("__editable__") and name.endswith("_finder") for name in sys.modules)
    paths = "" if hooked else f"sys.path += {site_paths()!r}\n"
    return (f"#!{sys.executable}{'' if hooked else ' -S'}\n"
            '"""berth\'s command line, written by `make install` (shell/launcher.py)."""\n'
            f"import sys\n\n{paths}"
            "from shell.cli import main\n\nmain()\n")


def write(target: str) -> bool:
    """Write the launcher to `target` unless it holds that already; whether it changed."""
    text = command_text()
    try:
        with open(target, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    directory, _, name = target.rpartition("/")
    new = f"{directory}/.{name}.new" if directory else f".{name}.new"  # not on PATH as a command meanwhile
    with open(new, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(new, 0o755)
    os.replace(new, target)
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m shell.launcher TARGET")
    write(sys.argv[1])

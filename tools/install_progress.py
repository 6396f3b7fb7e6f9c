"""Run pip (the command after `--`) and show its progress in a few lines, for `make install`.

pip --quiet leaves a newcomer looking at a silent minute; pip's own output is a wall of
text. This prints a line per ten packages collected, one when the install starts and one at
the end, keeps pip's whole output in `--log`, and on failure shows its tail and exits with
pip's code. Standard library only: it runs before anything is installed.

    python tools/install_progress.py --log .venv/pip-install.log -- python -m pip install ...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

EVERY = 10  # packages collected between two progress lines
TAIL = 20  # lines of pip's output shown when it fails


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="where pip's output goes")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- pip's command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")
    began = time.monotonic()
    collected = 0
    lines: list[str] = []
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            lines = [*lines[-(TAIL - 1) :], line.rstrip("\n")]
            if line.startswith("Collecting "):
                collected += 1
                if collected % EVERY == 0:
                    say(f"  collected {collected} packages ({elapsed(began)})")
            elif line.startswith("Installing collected packages:"):
                count = len(line.split(":", 1)[1].split(","))
                say(f"  installing {count} packages ({elapsed(began)})")
            elif line.startswith("Successfully installed "):
                count = len(line.split()) - 2
                say(f"installed {count} packages in {elapsed(began)}")
        code = proc.wait()
    if code != 0:
        print("\n".join(lines), file=sys.stderr)
        print(f"pip failed (exit {code}); its whole output: {args.log}", file=sys.stderr)
    return code


def elapsed(began: float) -> str:
    return f"{time.monotonic() - began:.0f} s"


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

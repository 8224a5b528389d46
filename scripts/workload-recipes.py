#!/usr/bin/env python3
"""Runs the curl recipes of docs/workload.md, as written, against a running
myapp, and checks what they print.

Usage: workload-recipes.py ADDRESS (host:port of a myapp started with its
default flags; the recipes' localhost:8080 is replaced by it).

Each `curl` line of a ```sh block that calls localhost:8080 (not Prometheus,
not in the background) runs through the shell. When the block is
followed by a ```json block, the last command's output must be that JSON (as a
value, so the key order does not matter); otherwise each command must print
the settings object that a successful PUT answers with. Lines that are
comments, loops or other programs are not run. The page ends with the
defaults restored, so that it can run again against the same server. Prints
one line per command and exits 1 if any failed (or none ran).
"""
import json
import re
import subprocess
import sys
from pathlib import Path

PAGE = Path("docs/workload.md")
SETTINGS = {"min_delay_ms", "max_delay_ms", "error_rate", "slow_rate", "slow_delay_ms"}


def blocks(markdown):
    """(language, text) of each fenced block of the page, in order."""
    return re.findall(r"```(\w*)\n(.*?)```", markdown, re.S)


def run(command, address):
    command = command.replace("localhost:8080", address)
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout


def main():
    address = sys.argv[1]
    found = blocks(PAGE.read_text())
    failed = ran = 0
    for index, (language, text) in enumerate(found):
        if language != "sh":
            continue
        commands = [
            line
            for line in text.splitlines()
            if line.startswith("curl ") and "localhost:8080" in line and not line.endswith("&")
        ]
        following = found[index + 1] if index + 1 < len(found) else ("", "")
        expected = json.loads(following[1]) if following[0] == "json" else None
        for position, command in enumerate(commands):
            code, output = run(command, address)
            ran += 1
            try:
                answer = json.loads(output)
            except json.JSONDecodeError:
                answer = None
            if expected is not None and position == len(commands) - 1:
                ok = code == 0 and answer == expected
                want = json.dumps(expected)
            else:
                ok = code == 0 and isinstance(answer, dict) and set(answer) == SETTINGS
                want = "the settings object"
            failed += not ok
            print(f"  {'ok  ' if ok else 'FAIL'}  {command}" + ("" if ok else f"\n        got {output!r}, want {want}"))
    print(f"{PAGE} recipes: {ran - failed} passed, {failed} failed")
    sys.exit(1 if failed or ran == 0 else 0)


if __name__ == "__main__":
    main()

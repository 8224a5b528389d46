#!/usr/bin/env python3
"""Check that the rule tests catch every small change to the rules.

    scripts/rules-mutants.py

Derives mutants from deploy/prometheus/rules.yml, one change each, and runs
`promtool test rules` on every mutant next to a copy of rules.test.yml. A
mutant the tests still pass on is a SURVIVOR: a rule could be that wrong and
nobody would know. Exits 1 listing the survivors.

The changes, each applied to one place of one rule's expr or for:
- a number: times 0.99 and 1.01 (a zero: -0.01 and +0.01). A threshold off by
  1% is a different alert; tests pin it with cases exactly at, just above and
  just below it.
- a comparison: each of the five other ones (> to >=, <, <=, ==, !=).
- a range [5m] and the `for:`: one evaluation interval (read from the tests,
  15s) shorter and longer, the finest change a rule test can observe.
- a label matcher: dropped; a regex one (=~) loosened, each run of `.` to `.*`
  (5.. to 5.*). A negative one (!~) loosens by being dropped.
- a label of by (...), on (...) and the like: dropped.

EQUIVALENT lists the mutants that cannot change what a rule does, each with
the reason; one that no longer matches a mutant is an error, so the list
cannot go stale.
"""
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/prometheus/rules.yml"
TESTS = ROOT / "deploy/prometheus/rules.test.yml"

# (rule, change) -> why the mutant behaves exactly as the rule does.
EQUIVALENT = {
    ("MyappTargetDown", "`==` to `<=` at 0"): "up is only ever 0 or 1",
    ("MyappNoTraffic", "`==` to `<=` at 0"): "a sum of rates is never negative",
}

# Tokens of a PromQL expression. Strings, label matchers and ranges are taken
# whole, and names before numbers, so that the 5 of rate5m is not a number.
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<matchers>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<grouping>\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))
  | (?P<name>[A-Za-z_:][\w:]*)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<comparison>==|!=|>=|<=|>|<)
""", re.X)
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
COMPARISONS = ["==", "!=", ">", ">=", "<", "<="]
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
           "w": 604_800_000, "y": 31_536_000_000}


def parse_duration(text):
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        sys.exit(f"rules-mutants: cannot read the duration {text!r}")
    return sum(int(n) * UNIT_MS[u] for n, u in parts)


def format_duration(ms):
    text = ""
    for unit in ("h", "m", "s", "ms"):
        count, ms = divmod(ms, UNIT_MS[unit])
        if count:
            text += f"{count}{unit}"
    return text or "0s"


def expr_mutants(expr, step_ms):
    """(change, mutated expr) for each single change to expr."""
    for token in TOKEN.finditer(expr):
        kind, text = token.lastgroup, token.group()

        def at(new):
            return expr[:token.start()] + new + expr[token.end():]

        if kind == "number":
            value = float(text)
            for new in ([value * 0.99, value * 1.01] if value else [-0.01, 0.01]):
                yield f"{text} to {new:g}", at(f"{new:g}")
        elif kind == "comparison":
            number = re.match(r"\s*([\d.]+)", expr[token.end():])
            where = f" at {number.group(1)}" if number else ""
            for new in COMPARISONS:
                if new != text:
                    yield f"`{text}` to `{new}`{where}", at(new)
        elif kind == "range":
            ms = parse_duration(text[1:-1])
            for new in (ms - step_ms, ms + step_ms):
                yield f"{text} to [{format_duration(new)}]", at(f"[{format_duration(new)}]")
        elif kind == "matchers":
            matchers = MATCHER.findall(text)
            for i, (label, op, value) in enumerate(matchers):
                rest = ",".join(f"{l}{o}{v}" for l, o, v in matchers[:i] + matchers[i + 1:])
                yield f"{label}{op}{value} dropped", at(f"{{{rest}}}" if rest else "")
                loose = re.sub(r"(?<!\\)\.+(?![*+?{])", ".*", value)
                if op == "=~" and loose != value:
                    yield f"{label}{op}{value} to {loose}", at(text.replace(f"{label}{op}{value}", f"{label}{op}{loose}"))
        elif kind == "grouping":
            keyword, labels = re.fullmatch(r"(\w+)\s*\(([^)]*)\)", text).groups()
            labels = [l.strip() for l in labels.split(",") if l.strip()]
            for label in labels:
                rest = ", ".join(l for l in labels if l != label)
                yield f"{label} dropped from {keyword}", at(f"{keyword}({rest})")


def mutants(groups, step_ms):
    """(rule name, change, groups with that one change) for every mutant."""
    for g, group in enumerate(groups):
        for r, rule in enumerate(group["rules"]):
            name = rule.get("alert") or rule["record"]
            changes = [("expr", change, new) for change, new in expr_mutants(rule["expr"], step_ms)]
            if "for" in rule:
                ms = parse_duration(rule["for"])
                changes += [("for", f"for: {rule['for']} to {format_duration(new)}", format_duration(new))
                            for new in (ms - step_ms, ms + step_ms)]
            for key, change, new in changes:
                mutated = copy.deepcopy(groups)
                mutated[g]["rules"][r][key] = new
                yield name, change, mutated


def promtool_test(directory):
    """True if the rule tests pass on the rules.yml in directory."""
    run = subprocess.run(["promtool", "test", "rules", "rules.test.yml"], cwd=directory,
                         capture_output=True, text=True)
    return run.returncode == 0


def main():
    if not shutil.which("promtool"):
        sys.exit("rules-mutants: needs promtool (apt-get install prometheus)")
    groups = yaml.safe_load(RULES.read_text())["groups"]
    step_ms = parse_duration(yaml.safe_load(TESTS.read_text()).get("evaluation_interval", "1m"))

    with tempfile.TemporaryDirectory(prefix="rules-mutants.") as tmp:
        def write(directory, rule_groups):
            directory.mkdir()
            (directory / "rules.yml").write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
            shutil.copy(TESTS, directory / "rules.test.yml")
            return directory

        # Unchanged but written as the mutants are: if the tests fail on this,
        # every mutant would count as killed.
        if not promtool_test(write(Path(tmp, "unchanged"), groups)):
            sys.exit("rules-mutants: the rule tests fail on the unchanged rules; fix that first")
        found = [(name, change, write(Path(tmp, str(i)), mutated))
                 for i, (name, change, mutated) in enumerate(mutants(groups, step_ms))]

        # A mutant promtool cannot even load would count as killed: refuse it.
        check = subprocess.run(["promtool", "check", "rules", *(str(d / "rules.yml") for _, _, d in found)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"rules-mutants: some mutants are not valid rules (a bug of this script):\n{check.stderr}")

        excluded = [(n, c) for n, c, _ in found if (n, c) in EQUIVALENT]
        stale = set(EQUIVALENT) - set(excluded)
        if stale:
            sys.exit(f"rules-mutants: EQUIVALENT names mutants that no longer exist: {sorted(stale)}")
        to_run = [(n, c, d) for n, c, d in found if (n, c) not in EQUIVALENT]
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            passed = list(pool.map(promtool_test, [d for _, _, d in to_run]))

    survivors = [(n, c) for (n, c, _), ok in zip(to_run, passed) if ok]
    for name, change in excluded:
        print(f"  equivalent  {name}: {change} ({EQUIVALENT[name, change]})")
    for name, change in survivors:
        print(f"  SURVIVED    {name}: {change}")
    print(f"rules-mutants: {len(found)} mutants, {len(to_run) - len(survivors)} killed, "
          f"{len(excluded)} excluded as equivalent, {len(survivors)} survived")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Check that the rule tests catch every small change to the rules.

    scripts/rules-mutants.py            # every rule file
    scripts/rules-mutants.py slo-rules  # only deploy/prometheus/slo-rules.yml

Derives mutants from each rule file of SUITES, one change each, and runs
`promtool test rules` on every mutant next to copies of that file's tests. A
mutant the tests still pass on is a SURVIVOR: a rule could be that wrong and
nobody would know. Exits 1 listing the survivors. Each test group runs as a
file of its own, in the order of the test files, and a mutant stops at the
first group that fails: most mutants die in the first, short groups.

The changes, each applied to one place of one rule's expr or for:
- a number: times 0.99 and 1.01 (a zero: -0.01 and +0.01). A threshold off by
  1% is a different alert; tests pin it with cases exactly at, just above and
  just below it.
- a comparison: each of the five other ones (> to >=, <, <=, ==, !=).
- a range [5m] and the `for:`: one evaluation interval (read from the tests,
  15s) shorter and longer, the finest change a rule test can observe. With
  several test files, the longest evaluation interval under half the range
  (the SLO rules: 1m up to 6h, 8h for 1d and longer). Over a recorded series,
  two: its samples sit on the evaluations, so a window one evaluation shorter
  differs only by the sample on its edge, which Prometheus 2 keeps and 3 drops.
- a label matcher: dropped; a regex one (=~) loosened, each run of `.` to `.*`
  (5.. to 5.*). A negative one (!~) loosens by being dropped.
- a label of by (...), on (...) and the like: dropped.

EQUIVALENT lists the mutants that cannot change what a rule does, each with
the reason; one that no longer matches a mutant is an error, so the list
cannot go stale. EQUIVALENT_KINDS does the same for a kind of change that
recurs in every generated SLO rule, and must match at least one mutant.
A rule is named by its record or alert name, and for the SLO rules also by
the SLO and severity, which tell apart the rules sharing a name.
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
PROMETHEUS = ROOT / "deploy/prometheus"
# Each rule file and the test files that pin it, fastest first.
SUITES = {
    "rules": ("rules.yml", ["rules.test.yml"]),
    "slo-rules": ("slo-rules.yml", ["slo-rules-long.test.yml", "slo-rules.test.yml"]),
}

# (rule, change) -> why the mutant behaves exactly as the rule does.
EQUIVALENT = {
    ("MyappTargetDown", "`==` to `<=` at 0"): "up is only ever 0 or 1",
    ("MyappNoTraffic", "`==` to `<=` at 0"): "a sum of rates is never negative",
}

# (rule name pattern, change pattern) -> why every such mutant is equivalent.
EQUIVALENT_KINDS = {
    (r"slo:|Myapp.*BudgetBurn", r'sloth_(id|service|slo)="[^"]*" dropped'):
        "the two matchers left still select the one SLO: sloth_id is <sloth_service>-<sloth_slo>",
    (r"slo:", r"sloth_(id|service|slo) dropped from on"):
        "each side is one series of the same SLO: the two labels left pair them as the three do",
    (r"slo:sli_error:ratio_rate30d", r"sloth_window dropped from ignoring"):
        "both sides are _over_time of the same series and carry its sloth_window alike",
    (r"Myapp.*BudgetBurn", r"`>` to `>=`"):
        "the threshold is a float product (14.4 * 0.02 is 0.28800000000000003) and the ratio a "
        "quotient of extrapolated rates: they meet only by a rounding accident no test can set up; "
        "the tests hold each threshold 0.5% either side",
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


def expr_mutants(expr, steps_ms):
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
            step_ms = max([s for s in steps_ms if s < ms / 2] or [min(steps_ms)])
            selected = re.search(r"([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*$", expr[:token.start()])
            if selected and ":" in selected.group(1):
                step_ms *= 2
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


def rule_name(rule):
    """The record or alert name; for an SLO rule also its SLO and its window or
    severity, which tell apart the rules that Sloth gives one name."""
    name = rule.get("alert") or rule["record"]
    labels = rule.get("labels", {})
    slo = labels.get("sloth_slo") or next(iter(re.findall(r'sloth_slo="([^"]+)"', rule["expr"])), None)
    detail = [d for d in (slo, labels.get("sloth_window"), labels.get("sloth_severity")) if d]
    return f"{name}{{{','.join(detail)}}}" if detail else name


def mutants(groups, steps_ms):
    """(rule name, change, groups with that one change) for every mutant."""
    for g, group in enumerate(groups):
        for r, rule in enumerate(group["rules"]):
            name = rule_name(rule)
            step_ms = min(steps_ms)  # for: changes at every evaluation of the finest tests
            changes = [("expr", change, new) for change, new in expr_mutants(rule["expr"], steps_ms)]
            if "for" in rule:
                ms = parse_duration(rule["for"])
                changes += [("for", f"for: {rule['for']} to {format_duration(new)}", format_duration(new))
                            for new in (ms - step_ms, ms + step_ms)]
            for key, change, new in changes:
                mutated = copy.deepcopy(groups)
                mutated[g]["rules"][r][key] = new
                yield name, change, mutated


def split_tests(test_files):
    """[(file name, text)]: each test group of each file as a file of its own."""
    out = []
    for name in test_files:
        document = yaml.safe_load((PROMETHEUS / name).read_text())
        for i, test in enumerate(document["tests"]):
            out.append((f"{Path(name).stem}.{i}.yml", yaml.safe_dump({**document, "tests": [test]}, sort_keys=False)))
    return out


def promtool_test(directory):
    """True if every rule test passes on the rules in directory."""
    for test in sorted(directory.glob("*.test.*.yml"), key=lambda p: int(p.name.split(".")[-2])
                       + 1000 * ORDER.index(p.name.rsplit(".", 2)[0])):
        run = subprocess.run(["promtool", "test", "rules", test.name], cwd=directory,
                             capture_output=True, text=True)
        if run.returncode != 0:
            return False
    return True


ORDER = []


def main():
    if not shutil.which("promtool"):
        sys.exit("rules-mutants: needs promtool (apt-get install prometheus)")
    chosen = sys.argv[1:] or list(SUITES)
    unknown = set(chosen) - set(SUITES)
    if unknown:
        sys.exit(f"rules-mutants: no rule file {sorted(unknown)}; choose among {sorted(SUITES)}")
    failed = False
    for suite in chosen:
        failed |= check(*SUITES[suite])
    sys.exit(1 if failed else 0)


def check(rules_name, test_files):
    """Mutate RULES_NAME, run TEST_FILES on each mutant; True if any survived."""
    print(f"rules-mutants: {rules_name} against {', '.join(test_files)}")
    groups = yaml.safe_load((PROMETHEUS / rules_name).read_text())["groups"]
    steps_ms = [parse_duration(yaml.safe_load((PROMETHEUS / name).read_text()).get("evaluation_interval", "1m"))
                for name in test_files]
    ORDER[:] = [Path(name).stem for name in test_files]
    tests = split_tests(test_files)

    with tempfile.TemporaryDirectory(prefix="rules-mutants.") as tmp:
        def write(directory, rule_groups):
            directory.mkdir()
            (directory / rules_name).write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
            for name, text in tests:
                (directory / name).write_text(text)
            return directory

        # Unchanged but written as the mutants are: if the tests fail on this,
        # every mutant would count as killed.
        if not promtool_test(write(Path(tmp, "unchanged"), groups)):
            sys.exit("rules-mutants: the rule tests fail on the unchanged rules; fix that first")
        found = [(name, change, write(Path(tmp, str(i)), mutated))
                 for i, (name, change, mutated) in enumerate(mutants(groups, steps_ms))]

        # A mutant promtool cannot even load would count as killed: refuse it.
        check = subprocess.run(["promtool", "check", "rules", *(str(d / rules_name) for _, _, d in found)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            sys.exit(f"rules-mutants: some mutants are not valid rules (a bug of this script):\n{check.stderr}")

        def why(name, change):
            if (name, change) in EQUIVALENT:
                return EQUIVALENT[name, change]
            for (rule_pattern, change_pattern), reason in EQUIVALENT_KINDS.items():
                if re.match(rule_pattern, name) and re.fullmatch(change_pattern, change):
                    return reason
            return None

        excluded = [(n, c, why(n, c)) for n, c, _ in found if why(n, c)]
        stale = {k for k in EQUIVALENT if k[0] in {n for n, _, _ in found}} - {(n, c) for n, c, _ in excluded}
        stale |= {k for k in EQUIVALENT_KINDS
                  if any(re.match(k[0], n) for n, _, _ in found)
                  and not any(re.match(k[0], n) and re.fullmatch(k[1], c) for n, c, _ in excluded)}
        if stale:
            sys.exit(f"rules-mutants: EQUIVALENT names mutants that no longer exist: {sorted(stale)}")
        to_run = [(n, c, d) for n, c, d in found if not why(n, c)]
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            passed = list(pool.map(promtool_test, [d for _, _, d in to_run]))

    survivors = [(n, c) for (n, c, _), ok in zip(to_run, passed) if ok]
    for name, change, reason in excluded:
        print(f"  equivalent  {name}: {change} ({reason})")
    for name, change in survivors:
        print(f"  SURVIVED    {name}: {change}")
    print(f"rules-mutants: {rules_name}: {len(found)} mutants, {len(to_run) - len(survivors)} killed, "
          f"{len(excluded)} excluded as equivalent, {len(survivors)} survived")
    return bool(survivors)


if __name__ == "__main__":
    main()

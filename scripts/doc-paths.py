#!/usr/bin/env python3
"""Checks that every path the README and docs/*.md name exists.

    python3 scripts/doc-paths.py

What it checks, in README.md and every docs/*.md:
- each repository path it names, in text or code, that starts with one of
  PREFIXES (src/..., deploy/..., scripts/..., examples/..., ...), relative to
  the repository's root;
- each relative markdown link, relative to the page, and its #anchor (against
  the headings of the target page, slugged as GitHub does);
- each `myapp::a::b` log target: src/a/b.rs or src/a/b/mod.rs (src/a.rs for
  the last segment when it is a file module), or a target that a source file
  names explicitly (`LOG_TARGET: &str = "myapp::a::b"`), or a prefix of one;
and that every docs/*.md page is linked from the README, and that the README
has at most 300 lines (docs rule, /work/shared/STYLE.md's "Docs").

Prints one line per missing path, then "doc paths: N checked, M missing", and
exits 1 if anything is missing or a rule is broken.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ("src", "deploy", "scripts", "docs", "examples", "crates", "benches", "openapi", "tests", ".ci", "slo",
            "scenarios")
README_MAX_LINES = 300
# A path: one of the prefixes, a slash, then path characters; not part of a
# URL, an absolute path or a longer word (the look-behind).
PATH = re.compile(r"(?<![\w./:-])((?:%s)/[\w./-]*)" % "|".join(re.escape(p) for p in PREFIXES))
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"(?<![\w:])myapp((?:::\w+)+)")


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_\[\]]|\(([^)]*)\)", lambda m: m.group(1) or "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    found = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def explicit_targets():
    """The log targets that source files set by hand (`LOG_TARGET`)."""
    found = set()
    for source in (ROOT / "src").rglob("*.rs"):
        found.update(re.findall(r'LOG_TARGET: &str = "(myapp(?:::\w+)+)"', source.read_text()))
    return found


def module_exists(segments):
    """src/a/b.rs or src/a/b/mod.rs for every prefix of the module path, or
    an explicit target that starts with it."""
    target = "::".join(["myapp", *segments])
    if any(t == target or t.startswith(target + "::") for t in explicit_targets()):
        return True
    for depth in range(1, len(segments) + 1):
        base = ROOT / "src" / Path(*segments[:depth])
        if not (base.with_suffix(".rs").is_file() or (base / "mod.rs").is_file()):
            return False
    return True


def check(page, problems):
    """Every path of one page; returns how many it checked."""
    text = page.read_text()
    name = page.relative_to(ROOT)
    checked = 0
    for path in sorted(set(PATH.findall(text))):
        path = path.rstrip(".")
        checked += 1
        if not (ROOT / path).exists():
            problems.append(f"{name}: {path} does not exist")
    for target in sorted(set(LINK.findall(text))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not a path of ours
        checked += 1
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            problems.append(f"{name}: link {target} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{name}: link {target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    for module in sorted(set(MODULE.findall(text))):
        segments = module.strip(":").split("::")
        checked += 1
        if not module_exists(segments):
            problems.append(f"{name}: log target myapp{module} is no module of src/")
    return checked


def main():
    readme = ROOT / "README.md"
    pages = sorted((ROOT / "docs").glob("*.md"))
    problems = []
    checked = sum(check(page, problems) for page in [readme, *pages])
    links = {(readme.parent / target.partition("#")[0]).resolve() for target in LINK.findall(readme.read_text())}
    for page in pages:
        checked += 1
        if page.resolve() not in links:
            problems.append(f"README.md: no link to {page.relative_to(ROOT)}")
    lines = len(readme.read_text().splitlines())
    if lines > README_MAX_LINES:
        problems.append(f"README.md: {lines} lines, more than {README_MAX_LINES}")
    for problem in problems:
        print(problem)
    print(f"doc paths: {checked} checked, {len(problems)} missing")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

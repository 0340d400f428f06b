"""The docs stay honest: links and images resolve, every command shown parses, no lab notebook."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
VENDORED = ROOT / "src" / "genspot" / "serve" / "static" / "docs"  # third-party Swagger UI / ReDoc bundles
SKIP_DIRS = {".git", ".venv", ".venv-gpu", "__pycache__", ".pytest_cache", "runs", "build", "dist", "wheels"}


def _code_lines(page: Path) -> list[str]:
    """Command lines shown in a page's code blocks: in a block with `$ ` prompts only the prompted
    lines (the rest is output), else every line; continuations joined."""
    blocks, current, inside, lang = [], [], False, ""
    for raw in page.read_text().splitlines():
        if raw.startswith("```"):
            if inside and lang != "python":
                blocks.append(current)
            inside, current, lang = not inside, [], raw[3:].strip()
        elif inside:
            current.append(raw.strip())
    lines = []
    for block in blocks:
        prompted = any(ln.startswith("$ ") for ln in block)
        pending = ""
        for raw in block:
            if prompted and not pending and not raw.startswith("$ "):
                continue
            line = pending + raw.removeprefix("$ ")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            lines.append(line)
    return lines


def genspot_commands(page: Path) -> list[list[str]]:
    """Each `genspot ...` invocation shown (also after `&&`, and as `python -m genspot.cli`), as argv."""
    out = []
    for line in _code_lines(page):
        for part in re.split(r"\s(?:&&|\|\||;|\|)\s", line):
            part = part.strip().replace("python -m genspot.cli", "genspot").replace("-m genspot.cli", "genspot")
            words = shlex.split(part, comments=True) if part else []
            starts = [i for i, w in enumerate(words) if w == "genspot" or w.endswith("/genspot")]
            if starts:
                out.append(words[starts[0] + 1 :])
    return out


def test_every_relative_link_and_image_resolves():
    missing = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, missing


def test_readme_is_short_and_links_the_manual():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 12_500, len(text.encode())
    for page in ("data", "training", "evaluation", "explain", "predict", "serve", "detectors", "benchmarks"):
        assert f"docs/{page}.md" in text, page
    index = (ROOT / "docs" / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name == "README.md" or f"]({page.name})" in index, f"docs/README.md does not link {page.name}"


@pytest.fixture(scope="module")
def cli():
    import typer.main

    from genspot.cli import app

    return typer.main.get_command(app)


def _resolve(cli, args: list[str]):
    """The click command an argument list names, and the arguments left for it."""
    cmd, path = cli, []
    while getattr(cmd, "commands", None) and args and args[0] in cmd.commands:
        path.append(args[0])
        cmd, args = cmd.commands[args[0]], args[1:]
    return cmd, path, args


@pytest.mark.parametrize("page", ["README.md", *[str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md"))]])
def test_every_genspot_command_shown_parses(cli, page):
    from typer._click.exceptions import UsageError  # typer vendors its own click

    commands = genspot_commands(ROOT / page)
    if page == "README.md":
        assert len(commands) >= 6
    subcommands = set()
    for args in commands:
        cmd, path, rest = _resolve(cli, args)
        subcommands.add(tuple(path))
        if "--help" in rest or "--version" in rest:
            continue
        placeholders = [a for a in rest if a != "..."]  # "..." stands for options shown elsewhere
        try:
            cmd.make_context("genspot " + " ".join(path), placeholders, resilient_parsing=False)
        except UsageError as e:
            raise AssertionError(f"{page}: `genspot {' '.join(args)}` does not parse: {e}") from None
    for path in subcommands:
        r = subprocess.run([sys.executable, "-m", "genspot.cli", *path, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (path, r.stderr)


def test_no_file_numbers_the_projects_work_periods():
    """History lives in the experiment log, dated or named by commit; the word for a work period is
    built here so that this file does not hold it (pytest's fixture scope of that name is fine)."""
    word = "ses" + "sion"
    hits = []
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT)
        if p.is_dir() or any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts) or VENDORED in p.parents:
            continue
        if p.suffix in {".png", ".safetensors", ".npy", ".ckpt", ".zip", ".jpg"}:
            continue
        try:
            text = p.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            cleaned = line.replace(f'scope="{word}"', "").replace(f"scope='{word}'", "")
            for api in ("Inference" + word.title(), word.title() + "Options", f"add_{word}_config_entry", f'"{word}.intra_op'):
                cleaned = cleaned.replace(api, "")  # ONNX Runtime's own names for its objects
            if re.search(word, cleaned, re.I):
                hits.append(f"{rel}:{i}: {line.strip()[:100]}")
    assert not hits, hits

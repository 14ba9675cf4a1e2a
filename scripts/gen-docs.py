#!/usr/bin/env python3
"""The CLI reference, the man pages and the shell completions, from the CLIs themselves.

    gen-docs.py cli --bin DIR                 docs/cli.md on stdout
    gen-docs.py man --bin DIR --out DIR       berth.1 and berthd.8
    gen-docs.py completions --bin DIR --out DIR   berth.bash, _berth (zsh), berth.fish

DIR holds the built `berth` and `berthd`. Everything comes from swift-argument-parser: the help
each command prints (`--help`), its structure (`--experimental-dump-help`) and its completion
scripts (`--generate-completion-script`), so none of it can drift from the code.
`make docs` rewrites docs/cli.md; a test fails when the committed page is stale.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

# Help is wrapped to the terminal's width; a fixed one makes the page the same everywhere.
ENV = dict(os.environ, COLUMNS="100")
TOOLS = [("berth", 1, "the command-line client of berthd"), ("berthd", 8, "the berth daemon")]


def run(argv):
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def structure(binary):
    return json.loads(run([binary, "--experimental-dump-help"]))["command"]


def commands(command, path=()):
    """Every command with its path of names, the root first."""
    path = path + (command["commandName"],)
    yield path, command
    for sub in command.get("subcommands") or []:
        if sub.get("shouldDisplay", True) and sub["commandName"] != "help":
            yield from commands(sub, path)


def cli_page(bin_dir):
    out = [
        "# Command-line reference",
        "",
        "What `berth` and `berthd` print for `--help`, command by command. This page is generated",
        "from the binaries by `scripts/gen-docs.py` (`make docs`); a test fails when it is stale.",
        "The same text is in the man pages `berth(1)` and `berthd(8)` that `make install` installs.",
        "[usage.md](usage.md) walks through the commands with real output; exit statuses are in",
        "[usage.md](usage.md#exit-statuses).",
        "",
    ]
    for tool, _, _ in TOOLS:
        binary = os.path.join(bin_dir, tool)
        for path, _ in commands(structure(binary)):
            out += [f"## {' '.join(path)}", "", "```text", run([binary, *path[1:], "--help"]).rstrip(), "```", ""]
    return "\n".join(out)


def roff(text):
    """Escapes text for a roff line: backslashes, and a leading dot or quote."""
    text = (text or "").replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line if line.startswith((".", "'")) else line) for line in text.split("\n"))


def synopsis(path, command):
    parts = [" ".join(path)]
    for argument in command.get("arguments") or []:
        if not argument.get("shouldDisplay", True):
            continue
        name = argument.get("preferredName") or {}
        flag = ("--" if name.get("kind") == "long" else "-") + name.get("name", "") if name else ""
        value = argument.get("valueName") or ""
        if argument["kind"] == "positional":
            word = f"<{value}>"
        elif argument["kind"] == "flag":
            word = flag
        else:
            word = f"{flag} <{value}>"
        if argument.get("isRepeating"):
            word += " ..."
        parts.append(f"[{word}]" if argument.get("isOptional") else word)
    return " ".join(parts)


def man_page(tool, section, title, root, bin_dir):
    # Reproducible builds set SOURCE_DATE_EPOCH; otherwise the page carries today's date.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    day = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).date() if epoch else datetime.date.today()
    date = day.isoformat()
    version = run([os.path.join(bin_dir, tool), "--version"]).strip()
    lines = [
        f'.TH {tool.upper()} {section} "{date}" "berth {version}" "berth manual"',
        ".SH NAME",
        f"{tool} \\- {roff(root.get('abstract') or title)}",
        ".SH SYNOPSIS",
    ]
    for path, command in commands(root):
        lines += [".PP", roff(synopsis(path, command))]
    if root.get("discussion"):
        lines += [".SH DESCRIPTION", roff(root["discussion"])]
    lines.append(".SH COMMANDS")
    for path, command in commands(root):
        lines += [f'.SS "{" ".join(path)}"', roff(command.get("abstract") or "")]
        if command.get("discussion") and len(path) > 1:
            lines += [".PP", roff(command["discussion"])]
        for argument in command.get("arguments") or []:
            if not argument.get("shouldDisplay", True):
                continue
            names = ", ".join(("--" if n["kind"] == "long" else "-") + n["name"] for n in argument.get("names") or [])
            label = names or f"<{argument.get('valueName', '')}>"
            if argument["kind"] == "option" and argument.get("valueName"):
                label += f" <{argument['valueName']}>"
            text = argument.get("abstract") or ""
            values = argument.get("allValues") or argument.get("allValueStrings")
            if values:
                text += f" (one of: {', '.join(values)})"
            if argument.get("defaultValue"):
                text += f" (default: {argument['defaultValue']})"
            lines += [".TP", f"\\fB{roff(label)}\\fR", roff(text)]
    lines += [
        ".SH FILES",
        "/etc/berth/berthd.toml, /run/berth/berthd.sock, /var/lib/berth/berth.db, /var/log/berth/jobs/",
        ".SH SEE ALSO",
        "berth(1), berthd(8); the manual in share/doc/berth (operating.md, usage.md, api.md, runners.md).",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["cli", "man", "completions"])
    parser.add_argument("--bin", required=True, help="the folder with the built berth and berthd")
    parser.add_argument("--out", help="the folder to write man pages or completions to")
    options = parser.parse_args()
    if options.what == "cli":
        sys.stdout.write(cli_page(options.bin))
        return
    if not options.out:
        parser.error(f"{options.what} needs --out DIR")
    os.makedirs(options.out, exist_ok=True)
    if options.what == "man":
        for tool, section, title in TOOLS:
            page = man_page(tool, section, title, structure(os.path.join(options.bin, tool)), options.bin)
            with open(os.path.join(options.out, f"{tool}.{section}"), "w") as file:
                file.write(page)
    else:
        for tool, _, _ in TOOLS:
            binary = os.path.join(options.bin, tool)
            for shell, name in [("bash", f"{tool}.bash"), ("zsh", f"_{tool}"), ("fish", f"{tool}.fish")]:
                with open(os.path.join(options.out, name), "w") as file:
                    file.write(run([binary, "--generate-completion-script", shell]))


if __name__ == "__main__":
    main()

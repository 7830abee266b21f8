"""Every `aws`, `make` and `sam` command in docs/ checked against what it calls, so that the docs
cannot drift from the tools (issue #20):

- `aws <service> <operation> --option …`: the service and operation exist in botocore's models
  (the AWS CLI's own), and every option is a member of the operation's input, an AWS CLI global
  option, or one of the CLI's documented customizations (`aws lambda invoke`'s outfile, `aws s3`'s
  high-level commands);
- `make <target>`: the Makefile has the target, and every `VAR=value` is a variable it reads;
- `sam <command>`: a command of the SAM CLI, whose options `make lint` checks (`--sam PATH`).

`breakwater` commands are parsed by the command itself (cli/src/main.rs's tests) and the DR drill's
block is run against the sandbox (tests/tests/operators.rs). Usage:
`python sandbox/docs_commands.py [--sam .venv-sam/bin/sam]`; exit 1 names each command that drifted.
"""

import pathlib
import re
import shlex
import subprocess
import sys

import botocore.session
from botocore import xform_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ("aws", "make", "sam", "breakwater", "kubectl")

# AWS CLI v2 global options ("aws help", "Global Options").
AWS_GLOBAL = {
    "--debug", "--endpoint-url", "--no-verify-ssl", "--no-paginate", "--output", "--query",
    "--profile", "--region", "--version", "--color", "--no-sign-request", "--ca-bundle",
    "--cli-read-timeout", "--cli-connect-timeout", "--cli-binary-format", "--no-cli-pager",
    "--cli-auto-prompt", "--no-cli-auto-prompt",
}
# The CLI's high-level `aws s3` commands (not API operations).
AWS_S3 = {"cp", "mv", "rm", "ls", "sync", "mb", "rb", "presign", "website"}
# Options the AWS CLI adds to an operation ("aws cloudwatch put-metric-data" synopsis, AWS CLI
# Command Reference: a single datum without --metric-data).
AWS_CUSTOM = {
    ("cloudwatch", "put-metric-data"): {
        "--metric-name", "--timestamp", "--unit", "--value", "--dimensions",
        "--statistic-values", "--storage-resolution",
    },
}
# Service names the CLI spells differently from botocore's.
AWS_SERVICES = {"s3api": "s3"}


def commands(root=ROOT):
    """(file, line, text) of every command of TOOLS in docs/: the lines of fenced blocks
    (continuations joined), and inline code spans that begin with a tool's name (a span may wrap:
    the prose is read as one text, each span numbered by the line it begins on)."""
    for path in sorted((root / "docs").rglob("*.md")):
        fenced = False
        pending = ""
        prose = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("```"):
                fenced = not fenced
                continue
            if not fenced:
                prose.append((n, line.strip()))
                continue
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            text = text.split("  #")[0].split(" # ")[0].strip()
            if text.split(" ", 1)[0] in TOOLS:
                yield path.relative_to(root), n, text
        joined, starts = "", []
        for n, line in prose:
            starts.append((len(joined), n))
            joined += line + " "
        for match in re.finditer(r"`([^`]+)`", joined):
            span = match.group(1).strip()
            if span.split(" ", 1)[0] in TOOLS and " " in span:
                n = max(line for at, line in starts if at <= match.start())
                yield path.relative_to(root), n, span


def words(text):
    """The command's words, placeholders (`<…>`, `…`) made plain values."""
    text = re.sub(r"<[^>]*>", "X", text).replace("…", "X")
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def check_aws(argv, session):
    if len(argv) < 3:
        return "no operation"
    service, operation = AWS_SERVICES.get(argv[1], argv[1]), argv[2]
    if argv[1] == "s3":
        return None if operation in AWS_S3 else f"aws s3 has no command {operation}"
    try:
        model = session.get_service_model(service)
    except Exception:
        return f"no service {argv[1]}"
    names = {xform_name(op, "-"): op for op in model.operation_names}
    if operation not in names:
        return f"{argv[1]} has no operation {operation}"
    shape = model.operation_model(names[operation]).input_shape
    members = {"--" + xform_name(m, "-") for m in (shape.members if shape else {})}
    # Boolean members also take --no-<name>.
    members |= {"--no-" + m[2:] for m in members}
    allowed = members | AWS_GLOBAL | AWS_CUSTOM.get((argv[1], operation), set())
    for word in argv[3:]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            if option not in allowed:
                return f"aws {argv[1]} {operation} has no option {option}"
    return None


def make_targets():
    text = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))
    variables = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*[?:]?=", text, re.M))
    return targets, variables


def check_make(argv, targets, variables):
    for word in argv[1:]:
        if "=" in word:
            name = word.split("=", 1)[0]
            if name not in variables:
                return f"the Makefile reads no variable {name}"
        elif word not in targets:
            return f"the Makefile has no target {word}"
    return None


def check_sam(argv, sam):
    if len(argv) < 2:
        return "no command"
    if sam is None:
        return None
    help_text = subprocess.run([sam, argv[1], "--help"], capture_output=True, text=True)
    if help_text.returncode != 0:
        return f"sam has no command {argv[1]}"
    for word in argv[2:]:
        if word.startswith("--") and word.split("=", 1)[0] not in help_text.stdout:
            return f"sam {argv[1]} has no option {word}"
    return None


def main(args):
    sam = args[args.index("--sam") + 1] if "--sam" in args else None
    session = botocore.session.get_session()
    targets, variables = make_targets()
    checked, failed = 0, []
    for path, n, text in commands():
        argv = words(text)
        tool = argv[0]
        if tool == "aws":
            error = check_aws(argv, session)
        elif tool == "make":
            error = check_make(argv, targets, variables)
        elif tool == "sam":
            error = check_sam(argv, sam)
        else:
            continue
        checked += 1
        if error:
            failed.append(f"{path}:{n}: {text}\n    {error}")
    for line in failed:
        print(line)
    print(f"docs commands: {checked} aws/make/sam commands checked, {len(failed)} drifted")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The README's examples, run as written: the API calls against the edge with the example
configuration, and the commands.

Each `curl` line of the README's examples is parsed (basic-auth key, headers,
body, method, URL) and sent to a live edge on the shipped `config/`; what the
README says the steps show must hold: decisions come back, the next page view
is personal after the server's identify, and the profile can be read.

`make serve` installs `kairos` into `.venv`, not onto the PATH, so the README's
command lines name it there (or go through `make check`), and they work.
"""

from __future__ import annotations

import re
import shlex
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import LiveEdge

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def curl_commands(text: str) -> list[list[str]]:
    """The curl command lines of the README's shell blocks, with $J expanded."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        variables: dict[str, str] = {}
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #")[0].strip() if not line.strip().startswith("#") else ""
            assignment = re.fullmatch(r"(\w+)=(.+)", line)
            if assignment:
                variables[assignment.group(1)] = shlex.split(assignment.group(2))[0]
            elif line.startswith("curl "):
                for name, value in variables.items():
                    line = line.replace(f'"${name}"', shlex.quote(value))
                commands.append(shlex.split(line))
    return commands


def to_request(argv: list[str], base_url: str) -> httpx.Request:
    """One curl command line as an httpx request (only the options the README uses)."""
    method, headers, body, url = None, {}, None, None
    auth: tuple[str, str] | None = None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-s", "--silent"):
            continue
        if arg in ("-u", "--user"):
            user, _, password = next(args).partition(":")
            auth = (user, password)
        elif arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data"):
            body = next(args).encode()
        elif arg in ("-X", "--request"):
            method = next(args)
        elif arg.startswith("http"):
            url = re.sub(r"^https?://[^/]+", base_url, arg)
        else:
            raise AssertionError(f"the README uses a curl option this test does not know: {arg}")
    assert url, argv
    if auth:
        headers["Authorization"] = httpx.BasicAuth(*auth)._auth_header
    return httpx.Request(method or ("POST" if body is not None else "GET"), url,
                         headers=headers, content=body)


def test_the_parser_reads_what_the_readme_writes():
    text = '```sh\nJ=\'Content-Type: application/json\'\n# note\ncurl -s -u k: -H "$J" \\\n' \
           '     http://127.0.0.1:8000/v1/page -d \'{"a": 1}\'\n```\n'
    [argv] = curl_commands(text)
    request = to_request(argv, "http://edge")
    assert request.method == "POST" and str(request.url) == "http://edge/v1/page"
    assert request.headers["content-type"] == "application/json"
    assert request.content == b'{"a": 1}'
    assert request.headers["authorization"] == "Basic azo="


@pytest.fixture
def example_edge(example_config: Path, redis_url: str):
    with LiveEdge(example_config, redis_url) as live:
        yield live


def test_readme_examples_run_as_documented(example_edge: LiveEdge):
    commands = curl_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 4, "the README's API examples are gone: update this test"
    answers = []
    for argv in commands:
        response = example_edge.http.send(to_request(argv, example_edge.url))
        assert response.status_code == 200, (argv, response.text)
        answers.append((argv, response.json()))

    pages = [body for argv, body in answers if any(a.endswith("/v1/page") for a in argv)]
    assert len(pages) >= 2
    first, later = pages[0], pages[-1]
    assert first["success"] is True and {"slots", "messages", "push", "segments"} <= first.keys()
    # After the server's identify, the same visitor's page is personal: it shows
    # something the anonymous first view did not.
    assert later["slots"] != first["slots"] or later["messages"] != first["messages"]
    profile = next(body for argv, body in answers if any("/v1/profiles/" in a for a in argv))
    assert profile["traits"]["first_name"] == "Ada"
    assert {"user:42", "anon:visitor-1"} <= set(profile["identities"])


def shell_lines(text: str) -> list[str]:
    """The command lines of the README's shell blocks, without comments."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_the_readme_runs_kairos_from_the_venv():
    lines = shell_lines(README.read_text(encoding="utf-8"))
    commands = [line for line in lines if re.match(r"(\S*/)?kairos\b", line)]
    assert commands, "the README's kairos commands are gone: update this test"
    assert [line for line in commands if not line.startswith(".venv/bin/kairos ")] == []
    assert "make check" in lines


def test_make_check_is_kairos_check_config():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # -n: what it would run, without installing anything
    # Under `make test` the variables of the outer make would reach this one (and it would
    # print the directories it enters): run it as a newcomer's shell would.
    shell = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    planned = subprocess.run(["make", "--no-print-directory", "-n", "check"], cwd=ROOT, env=shell,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert planned[-1] == ".venv/bin/kairos check config"


def test_the_readme_s_check_command_passes_on_the_example_configuration():
    runnable = [line for line in shell_lines(README.read_text(encoding="utf-8"))
                if line.startswith(".venv/bin/kairos check") and "[" not in line]
    assert runnable
    for line in runnable:
        argv = shlex.split(line)
        # the kairos beside the interpreter running the tests: .venv's, when run as documented
        argv[0] = str(Path(sys.executable).with_name("kairos"))
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, (line, done.stderr)
        assert done.stdout.startswith("ok: "), done.stdout

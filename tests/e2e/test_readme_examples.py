"""Every worked example of README's "Who sends what" works against a real ``concord serve``.

The examples are kept once (``adapters.who_sends_what.EXAMPLES``) and the README is checked
against their rendering (``tests/unit/test_who_sends_what.py``); here each one is run as a
newcomer would: ``concord keys create`` in a separate process on the server's data folder,
then the request, which must answer 2xx.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from adapters.who_sends_what import BASE_URL, EXAMPLES, Example
from tests.e2e.serving import ROOT, free_port, interrupt, serve_env, start_serve, wait_healthy

KEY = re.compile(r"cnc_[A-Za-z0-9_-]{43}")


def _create_key(example: Example, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *example.key_command()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [key] = set(KEY.findall(done.stdout))
    return key


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$([A-Z_]+)", lambda m: variables[m.group(1)], text)


def test_every_readme_example_answers_2xx(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    port = free_port()
    env = serve_env(database_url, pg_schema, nats_url, stream_name, tmp_path)
    server = start_serve(env, port, capture=False)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_healthy(base, time.monotonic() + 60), "concord serve did not start"
        variables: dict[str, str] = {}
        for example in EXAMPLES:
            key = _create_key(example, env)
            body = json.loads(_expand(json.dumps(example.body), variables))
            url = BASE_URL.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            response = httpx.post(
                url + _expand(example.path, variables),
                json=body,
                headers={"Authorization": f"Bearer {key}", **example.headers},
                timeout=30,
            )
            assert 200 <= response.status_code < 300, (example.system, response.text)
            answer = response.json()
            if example.capture:
                variables[example.capture] = answer["id"]
            assert answer["events"], answer  # a real change, not a no-op
            [event] = answer["events"][-1:]
            source = "api" if example.system == "admin" else example.system
            assert event["provenance"]["source_system"] == source
            assert event["provenance"]["actor"] == example.client_id
    finally:
        interrupt(server)

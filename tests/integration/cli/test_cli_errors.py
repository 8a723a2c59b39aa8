"""Every CLI error is one line on stderr and a non-zero status, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamgate.server.app import Gateway

from .helpers import clean_env, error_line, streamgate
from support.cluster import free_port

COMMANDS = [
    ["serve"],
    ["apikey"],
    ["apikey", "create"],
    ["apikey", "revoke"],
    ["apikey", "list"],
    ["markets"],
    ["tail"],
    ["push"],
    ["push", "tail"],
    ["book"],
    ["publish"],
    ["bench"],
    ["config"],
    ["config", "show"],
    [],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "streamgate")
async def test_help_is_complete_with_examples(command: list[str]) -> None:
    done = await streamgate(*command, "--help")
    assert done.code == 0, done.err
    assert "usage: streamgate" in done.out
    assert "example" in done.out  # every command's epilog shows how it is used
    assert "streamgate " + " ".join(command) in done.out


async def test_serve_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = await streamgate("serve", "--port", str(port), cwd=tmp_path)
    assert error_line(done) == (
        f"streamgate: cannot listen on 127.0.0.1:{port}: the address is already in use"
    )
    assert done.code == 1


async def test_serve_on_an_unknown_host(tmp_path: Path) -> None:
    done = await streamgate("serve", "--host", "no-such-host.invalid", "--port", "0", cwd=tmp_path)
    assert error_line(done).startswith(
        "streamgate: cannot listen on no-such-host.invalid:0: unknown host"
    )


async def test_serve_with_a_bad_redis_url(tmp_path: Path) -> None:
    env = clean_env(STREAMGATE_BROKER="redis", STREAMGATE_REDIS_URL="localhost:6379")
    done = await streamgate("serve", "--port", "0", cwd=tmp_path, env=env)
    assert "redis_url must be a redis://" in error_line(done)
    assert done.code == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("port = \n", "cannot read config file"),
        ("prot = 8080\n", "unknown configuration key 'prot'"),
        ('port = "eighty"\n', "port: expected an integer"),
        ("port = 70000\n", "port must be within 0..65535"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["config", "show"], ["apikey", "list"]])
async def test_a_malformed_config_file(
    tmp_path: Path, text: str, says: str, command: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    done = await streamgate(*command, "--config", str(path), cwd=tmp_path)
    assert says in error_line(done)
    assert done.code == 2


async def test_a_missing_config_file(tmp_path: Path) -> None:
    done = await streamgate("config", "show", "--config", str(tmp_path / "none.toml"))
    assert "cannot read config file" in error_line(done)


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "trade/0xabc", "--seconds", "5"],
        ["book", "0xabc", "--seconds", "5"],
        ["push", "tail", "--api-key", "k", "--sub-user", "u", "--seconds", "5"],
        ["bench", "--seconds", "1", "--key", "k"],
    ],
    ids=lambda c: c[0],
)
async def test_an_unreachable_gateway(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = await streamgate(*command, "--url", url)
    line = error_line(done)
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in line, line
    assert done.code == 1


async def test_publish_to_an_unreachable_gateway(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    args = ["publish", "--url", url, "--key", "k", "--retries", "1"]
    done = await streamgate(*args, stdin=b'{"topic":"trade/0xabc","data":{}}\n')
    assert error_line(done).startswith(f"streamgate: cannot reach the gateway at {url}")


@pytest.mark.parametrize(
    "topic", ["trades/0xabc", "trade/", "order/0xabc", "trade/a/b", "ticker/a b"]
)
async def test_a_bad_topic(topic: str) -> None:
    done = await streamgate("tail", topic, "--url", f"http://127.0.0.1:{free_port()}")
    assert error_line(done).startswith(f"streamgate: bad topic {topic!r}")
    assert done.code == 2


async def test_an_unknown_market(gw: Gateway) -> None:
    done = await streamgate("tail", "trade/NO-SUCH", "--url", f"http://127.0.0.1:{gw.port}")
    assert "NO-SUCH" in error_line(done)


async def test_private_topics_need_a_bearer() -> None:
    done = await streamgate("tail", "order")
    assert error_line(done) == (
        "streamgate: order, fill and position are private topics: give --bearer"
    )


async def test_a_bad_bearer(gw: Gateway) -> None:
    url = f"http://127.0.0.1:{gw.port}"
    done = await streamgate("tail", "order", "--bearer", "not-a-jwt", "--url", url)
    assert "INVALID_TOKEN" in error_line(done)


async def test_a_bad_api_key(gw: Gateway) -> None:
    url = f"http://127.0.0.1:{gw.port}"
    args = ["push", "tail", "--api-key", "sgk_nope", "--sub-user", "alice", "--url", url]
    line = error_line(await streamgate(*args))
    assert "refused the credentials" in line and "INVALID_API_KEY" in line, line


async def test_a_bad_producer_key(gw: Gateway) -> None:
    url = f"http://127.0.0.1:{gw.port}"
    done = await streamgate("publish", "--url", url, "--key", "wrong", stdin=b'{"a": 1}\n')
    assert error_line(done) == (
        "streamgate: the gateway refused the producer key (401 UNAUTHORIZED); nothing was published"
    )


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:1", "http://127.0.0.1:port", "http://"])
async def test_a_bad_gateway_url(url: str) -> None:
    done = await streamgate("tail", "trade/0xabc", "--url", url)
    assert error_line(done).startswith(f"streamgate: bad gateway URL {url!r}")
    assert done.code == 2

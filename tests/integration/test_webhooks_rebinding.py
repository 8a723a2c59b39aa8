"""Webhook requests go to the vetted address, never to a second lookup (issue 11 point 12).

The test controls the resolver the dispatcher vets with: it answers 127.0.0.2 for
``localhost``, where the real receiver listens. A decoy listens on the same port at
127.0.0.1, where the system's resolver sends ``localhost``: a client that resolved the
name again when connecting (the DNS-rebinding window) would reach the decoy. Over TLS,
SNI and the certificate check stay on the name.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streamgate.webhooks.sender import Dispatcher
from streamgate.webhooks.store import OutboxMessage, SqliteWebhookStore, WebhookStore

from support import UNIT
from support.webhook_receiver import Receiver

VETTED = "127.0.0.2"


async def resolve(host: str, port: int) -> list[str]:
    """The resolver under the test's control: ``*localhost`` is 127.0.0.2."""
    if host == "localhost" or host.endswith(".localhost"):
        return [VETTED]
    raise OSError(f"{host}: no such name here")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WebhookStore]:
    opened = SqliteWebhookStore.in_data_dir(tmp_path)
    yield opened
    await opened.close()


async def receivers(ssl_context: ssl.SSLContext | None = None) -> tuple[Receiver, Receiver]:
    """The real receiver on 127.0.0.2 and a decoy on 127.0.0.1, on one port."""
    for _ in range(5):
        real = await Receiver(host=VETTED, ssl=ssl_context).start()
        try:
            decoy = await Receiver(host="127.0.0.1", port=real.port).start()
        except OSError:  # that port is taken on 127.0.0.1: another pair
            await real.stop()
            continue
        return real, decoy
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")


async def deliver(
    store: WebhookStore, url: str, n: int, *, verify: ssl.SSLContext | bool = True
) -> None:
    """Deliver one message to ``url`` through a dispatcher; wait for its attempt."""
    ep = await store.create_endpoint("acme", url, None, "whsec_" + "A" * 43)
    body = b'{"n":%d}' % n
    await store.enqueue([OutboxMessage(f"msg_{n}", "acme", "system.notice", 0.0, body, (ep.id,))])
    dispatcher = Dispatcher(
        store, node="t", allow_private=True, poll=0.05, timeout=5.0, resolver=resolve, verify=verify
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10 * UNIT
        while not await store.attempts("acme", f"msg_{n}"):
            assert loop.time() < deadline, "no attempt recorded"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_connection_goes_to_the_vetted_address(store: WebhookStore) -> None:
    real, decoy = await receivers()
    try:
        await deliver(store, f"http://localhost:{real.port}/hook", 1)
    finally:
        await real.stop()
        await decoy.stop()
    [attempt] = await store.attempts("acme", "msg_1")
    assert (attempt.status_code, attempt.error) == (200, None)
    assert decoy.received == []
    [got] = real.at("hook")
    assert got.headers["host"] == f"localhost:{real.port}"  # the name, not the address


def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for ``localhost`` it signed: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamgate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_tls_keeps_sni_and_the_certificate_check_on_the_name(
    store: WebhookStore, tmp_path: Path
) -> None:
    ca, cert, key = tls_files(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server.sni_callback = lambda sock, name, ctx: sni.append(name)
    client = ssl.create_default_context(cafile=str(ca))
    real, decoy = await receivers(server)
    try:
        await deliver(store, f"https://localhost:{real.port}/tls", 1, verify=client)
        # Another name at the same vetted address: the certificate (localhost) must fail.
        await deliver(store, f"https://hooks.localhost:{real.port}/tls", 2, verify=client)
    finally:
        await real.stop()
        await decoy.stop()
    [ok] = await store.attempts("acme", "msg_1")
    assert (ok.status_code, ok.error) == (200, None)
    [got] = real.at("tls")
    assert got.headers["host"] == f"localhost:{real.port}"
    [refused] = await store.attempts("acme", "msg_2")
    assert refused.status_code is None and "certificate" in (refused.error or "").lower()
    assert sni == ["localhost", "hooks.localhost"]
    assert decoy.received == []

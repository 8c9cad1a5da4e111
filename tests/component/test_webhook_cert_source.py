"""The webhook with a certificate issued by someone else (cert-manager's Secret mounted as a
directory): it serves that certificate, registers its CA, and follows a renewal without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from services.observe import poll
from services.webhook import certs
from services.webhook.server import WebhookOptions, WebhookServer


def issue(directory: Path) -> certs.CertBundle:
    bundle = certs.generate(["kruisebus-webhook.kruisebus-system.svc", "127.0.0.1"], validity=dt.timedelta(days=1))
    for name, pem in (("ca.crt", bundle.ca_pem), ("tls.crt", bundle.cert_pem), ("tls.key", bundle.key_pem)):
        tmp = directory / f".{name}"
        tmp.write_bytes(pem)
        tmp.replace(directory / name)  # whole files, as the kubelet swaps a Secret volume
    return bundle


async def served_certificate(port: int, ca_pem: bytes | None = None) -> bytes:
    """The certificate the server presents (verified against `ca_pem` when given)."""
    if ca_pem is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
        ctx.check_hostname = False
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


async def test_serves_and_follows_the_issued_certificate(tmp_path: Path) -> None:
    source = tmp_path / "secret"
    source.mkdir()
    first = issue(source)
    server = WebhookServer(WebhookOptions(host="127.0.0.1", port=0, cert_source=source, cert_poll_seconds=0.05,
                                          cert_dir=tmp_path / "serving"))
    port = await server.start()
    stop = asyncio.Event()
    follow = asyncio.create_task(server.keep_renewed(None, stop))
    try:
        assert await served_certificate(port, first.ca_pem) == first.cert_pem
        assert server.ca_bundle() == first.ca_pem

        second = issue(source)

        async def current() -> bytes:
            return await served_certificate(port)  # the first or the second, until the switch

        assert await poll(current, lambda pem: pem == second.cert_pem, timeout=10,
                          what="the renewed certificate to be served") == second.cert_pem
        assert await served_certificate(port, second.ca_pem) == second.cert_pem
        # during the change the API server must trust both CAs
        assert server.ca_bundle() == second.ca_pem + first.ca_pem
    finally:
        stop.set()
        await follow
        await server.close()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_bytes(b"")
    with pytest.raises(ValueError, match="ca.crt"):
        certs.load(tmp_path)

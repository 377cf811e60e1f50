# What the network probes (http, tcp) share: their failure and how an error reads.
import socket
import ssl

from . import certs, timing


class ProbeFailed(Exception):
    """The service did not behave (down or misbehaving): the reason is the failure message."""


def describe_error(exc, budget):
    """One line for a failed connection or exchange that took at most budget seconds."""
    if isinstance(exc, ProbeFailed):
        return str(exc)
    if isinstance(exc, socket.timeout):
        return "timed out after %s" % timing.seconds(budget)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name: %s" % exc.strerror
    if certs.is_cert_error(exc):
        return "TLS certificate verification failed: %s" % (
            getattr(exc, "verify_message", None) or exc
        )
    if isinstance(exc, ssl.SSLError):
        return "TLS error: %s" % (exc.reason or exc)
    return getattr(exc, "strerror", None) or str(exc)

# X.509 expiry without third-party libraries: enough DER to reach the validity field.
import calendar
import ssl
import time

# Certificate verification errors: ssl.CertificateError exists on every Python 3,
# SSLCertVerificationError from 3.7 on (and is the same class there).
CERT_ERRORS = (ssl.CertificateError,) + (
    (ssl.SSLCertVerificationError,) if hasattr(ssl, "SSLCertVerificationError") else ()
)


def is_cert_error(exc):
    return (
        isinstance(exc, CERT_ERRORS) or getattr(exc, "reason", None) == "CERTIFICATE_VERIFY_FAILED"
    )


def _der_element(data, pos):
    """(tag, content start, content end) of the DER element starting at pos."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _der_children(data, start, end):
    children = []
    pos = start
    while pos < end:
        element = _der_element(data, pos)
        children.append(element)
        pos = element[2]
    return children


def _asn1_time(tag, text):
    """Seconds since the epoch of an ASN.1 UTCTime (0x17) or GeneralizedTime (0x18)."""
    text = text.rstrip("Z").split(".")[0]
    if tag == 0x17:
        year = int(text[0:2])
        text = str(1900 + year if year >= 50 else 2000 + year) + text[2:]
    elif tag != 0x18:
        raise ValueError("not an ASN.1 time (tag 0x%02x)" % tag)
    fields = [int(text[i : i + 2]) for i in range(4, len(text), 2)]
    fields += [0] * (5 - len(fields))
    month, day, hour, minute, second = fields[:5]
    return calendar.timegm((int(text[0:4]), month, day, hour, minute, second, 0, 0, 0))


def parse_cert_not_after(der):
    """Expiry (seconds since the epoch, UTC) of a DER-encoded X.509 certificate.

    Certificate ::= SEQUENCE { tbsCertificate, ... }; tbsCertificate ::= SEQUENCE {
    [0] version OPTIONAL, serialNumber, signature, issuer, validity, ... };
    validity ::= SEQUENCE { notBefore Time, notAfter Time }.
    """
    try:
        _, cert_start, _ = _der_element(der, 0)
        _, tbs_start, tbs_end = _der_element(der, cert_start)
        fields = _der_children(der, tbs_start, tbs_end)
        if fields and fields[0][0] == 0xA0:
            fields = fields[1:]
        _, validity_start, validity_end = fields[3]
        tag, start, end = _der_children(der, validity_start, validity_end)[1]
        return _asn1_time(tag, der[start:end].decode("ascii"))
    except (IndexError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("cannot read the certificate's expiry: %s" % exc) from None


def days_left(cert_der):
    """Days until the certificate expires, or None when its DER cannot be read."""
    try:
        return (parse_cert_not_after(cert_der) - time.time()) / 86400.0
    except ValueError:
        return None

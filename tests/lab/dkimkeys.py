"""
dkimkeys.py -- throwaway DKIM keys for the lab, made at run time.

LabDkim(directory, domains) writes, for each domain, an Ed25519 key
(selector "ed") and an RSA-2048 key (selector "rsa") as PKCS#8 PEM files of
mode 0600, and knows their public TXT records ("v=DKIM1; k=...; p=...").
verify(message) checks every DKIM-Signature of a message with dkimpy
(python3-dkim), given the public keys without DNS.
"""

import base64
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

SELECTORS = (("ed", "ed25519"), ("rsa", "rsa"))


def write_private(path, key):
    """PKCS#8 PEM of a private key, mode 0600; returns the PEM."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return pem


def txt_record(key):
    """The DKIM TXT record value for a private key object."""
    pub = key.public_key()
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def make_key(kind, bits=2048):
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class LabDkim:
    def __init__(self, directory, domains=("lab.test", "alias.lab.test")):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.keys = {}       # (domain, selector) -> dict(file, txt, pem, kind)
        for dom in domains:
            for sel, kind in SELECTORS:
                self.add(dom, sel, kind)

    def add(self, domain, selector, kind, bits=2048, mode=0o600):
        key = make_key(kind, bits)
        path = os.path.join(self.dir, "%s.%s.key" % (selector, domain))
        pem = write_private(path, key)
        os.chmod(path, mode)
        self.keys[(domain, selector)] = {"file": path, "txt": txt_record(key), "pem": pem,
                                         "kind": kind}
        return path

    def config(self, domains=None):
        """[dkim "DOMAIN"] sections for the given domains (default: all)."""
        out = []
        doms = []
        for (dom, _sel) in self.keys:
            if dom not in doms and (domains is None or dom in domains):
                doms.append(dom)
        for dom in doms:
            out.append('[dkim "%s"]' % dom)
            for (d, sel), k in self.keys.items():
                if d == dom:
                    out.append("key = %s %s" % (sel, k["file"]))
            out.append("")
        return "\n".join(out) + "\n"

    def dnsfunc(self, name, timeout=5):
        """dkimpy's DNS hook: TXT of SELECTOR._domainkey.DOMAIN."""
        if isinstance(name, bytes):
            name = name.decode()
        name = name.rstrip(".").lower()
        for (dom, sel), k in self.keys.items():
            if name == "%s._domainkey.%s" % (sel, dom):
                return k["txt"].encode()
        return None

    def verify(self, message):
        """[(domain, selector, ok)] for each DKIM-Signature field of message."""
        import dkim   # python3-dkim
        d = dkim.DKIM(message)
        results = []
        sigs = [v for (n, v) in d.headers if n.lower() == b"dkim-signature"]
        for i, sig in enumerate(sigs):
            tags = dkim.util.parse_tag_value(b"".join(sig.split()))
            try:
                ok = bool(d.verify(idx=i, dnsfunc=self.dnsfunc))
            except dkim.DKIMException:     # e.g. "body hash mismatch"
                ok = False
            results.append((tags.get(b"d", b"").decode(), tags.get(b"s", b"").decode(), ok))
        return results

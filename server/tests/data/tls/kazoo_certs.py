# Certificates and stores made as kazoo 2.11.0's test harness makes them
# (kazoo/testing/common.py, perform_ssl_certs_generation): pyOpenSSL, RSA 2048, an X.509
# v3 CA and X.509 v1 server and client certificates, JKS stores written by pyjks with the
# password "apassword". Valid for 100 years instead of one day.
import OpenSSL, jks
DAYS = 36500 * 24 * 60 * 60
def key():
    k = OpenSSL.crypto.PKey(); k.generate_key(OpenSSL.crypto.TYPE_RSA, 2048); return k
ca_key = key()
ca = OpenSSL.crypto.X509(); ca.set_version(2); ca.set_serial_number(1)
ca.get_subject().CN = "ca.kazoo.org"; ca.gmtime_adj_notBefore(0); ca.gmtime_adj_notAfter(DAYS)
ca.set_issuer(ca.get_subject()); ca.set_pubkey(ca_key)
ca.add_extensions([
    OpenSSL.crypto.X509Extension(b"basicConstraints", True, b"CA:TRUE, pathlen:0"),
    OpenSSL.crypto.X509Extension(b"keyUsage", True, b"keyCertSign, cRLSign"),
    OpenSSL.crypto.X509Extension(b"subjectKeyIdentifier", False, b"hash", subject=ca),
])
ca.sign(ca_key, "sha256")
def leaf(cn, serial):
    k = key(); c = OpenSSL.crypto.X509(); c.get_subject().CN = cn; c.set_serial_number(serial)
    c.gmtime_adj_notBefore(0); c.gmtime_adj_notAfter(DAYS); c.set_issuer(ca.get_subject())
    c.set_pubkey(k); c.sign(ca_key, "sha256"); return c, k
server, server_key = leaf("localhost", 2)
client, client_key = leaf("client", 3)
A, P = OpenSSL.crypto.FILETYPE_ASN1, OpenSSL.crypto.FILETYPE_PEM
dump = OpenSSL.crypto.dump_certificate
jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("kazoo ca", dump(A, ca))]).save("kazoo.truststore.jks", "apassword")
pke = jks.PrivateKeyEntry.new("server cert", [dump(A, server)], OpenSSL.crypto.dump_privatekey(A, server_key), "rsa_raw")
jks.KeyStore.new("jks", [pke]).save("kazoo.keystore.jks", "apassword")
open("kazoo.ca.pem", "wb").write(dump(P, ca))
open("kazoo.client.pem", "wb").write(OpenSSL.crypto.dump_privatekey(P, client_key) + dump(P, client))

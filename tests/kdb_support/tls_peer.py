# An OpenSSL-backed kdb+ TLS peer (kdb+ -E) for tests/kdb_tls.rs: Python's ssl
# module (OpenSSL) for TLS, aiokdb 0.1.38 for the kdb+ IPC inside it.
#
# server CERT KEY CLIENT_CA|- CONNECTIONS
#   Listens on 127.0.0.1 (a free port, printed first), serves CONNECTIONS
#   connection attempts one after the other, then exits. Requires a client
#   certificate signed by CLIENT_CA unless it is "-". Prints one JSON line per
#   event: {"event": "tls_error"} when the TLS handshake fails, "session"
#   (TLS version, client certificate's CN), "hello" (the kdb+ login: it is
#   only ever seen after a good handshake), "msg" (a decoded message: a
#   .u.upd with its columns, or a string), "end". Logins other than
#   feed:secret are refused by closing, as kdb+ does.
#
# client CA PORT SERVER_NAME CERT|- KEY|-
#   An aiokdb client over an ssl-wrapped asyncio connection to our stand-in:
#   verifies the server against CA, logs in as feed:pw, publishes .u.upd
#   async and sync, sends a bad update, and prints one line per reply.
import asyncio
import json
import math
import socket
import ssl
import struct
import sys

import aiokdb as a
from aiokdb.server import KdbReader, KdbWriter

T = a.TypeEnum
TIMEOUT_S = 30


def emit(obj):
    print(json.dumps(obj), flush=True)


def col(k):
    t = int(k.t)
    if t == T.KS:
        return [t, list(k.kS())]
    if t in (T.KJ, T.KN, T.KP):
        return [t, list(k.kJ())]
    if t == T.KF:
        return [t, [None if math.isnan(x) else x for x in k.kF()]]
    if t == T.KI:
        return [t, list(k.kI())]
    if t == T.KG:
        return [t, list(k.kG())]
    if t == T.KI:
        return [t, list(k.kI())]
    return [t, None]


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def session(tls):
    hello = b""
    while not hello.endswith(b"\0"):
        chunk = tls.recv(1)
        if not chunk:
            return
        hello += chunk
    creds = hello[:-2].decode()
    emit({"event": "hello", "user": creds.split(":")[0], "capability": hello[-2]})
    if creds != "feed:secret":
        return
    tls.sendall(bytes([min(hello[-2], 3)]))
    while True:
        head = read_exact(tls, 8)
        if head is None:
            return
        (length,) = struct.unpack_from("<I", head, 4)
        rest = read_exact(tls, length - 8)
        if rest is None:
            return
        mt = head[1]
        k = a.d9(head + rest)
        if k.t == T.K:
            items = k.kK()
            out = {"event": "msg", "mt": mt, "fn": items[0].aS(), "table": items[1].aS(),
                   "compressed": head[2], "cols": [col(c) for c in items[2].kK()]}
        else:
            out = {"event": "msg", "mt": mt, "text": k.aS() if k.t == T.KC else None}
        emit(out)
        if mt == 1:
            tls.sendall(a.b9(a.kNil, msgtype=2))


def serve(cert, key, client_ca, connections):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca != "-":
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(TIMEOUT_S * 2)
    print(listener.getsockname()[1], flush=True)
    for _ in range(connections):
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT_S)
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            emit({"event": "tls_error", "reason": getattr(e, "reason", None) or str(e)})
            conn.close()
            continue
        peer = tls.getpeercert()
        cn = None
        if peer:
            for rdn in peer.get("subject", ()):
                for name, value in rdn:
                    if name == "commonName":
                        cn = value
        emit({"event": "session", "version": tls.version(), "client_cn": cn})
        try:
            session(tls)
        except (ssl.SSLError, OSError) as e:
            emit({"event": "io_error", "reason": str(e)})
        emit({"event": "end"})
        try:
            tls.close()
        except OSError:
            pass


def vec(t, accessor, values):
    k = a.ktn(t)
    getattr(k, accessor)().extend(values)
    return k


def cols(n, seq0):
    return a.kk(vec(T.KN, "kJ", list(range(n))),
                vec(T.KS, "kS", ["s%d" % (i % 3) for i in range(n)]),
                vec(T.KS, "kS", ["dev"] * n), vec(T.KF, "kF", [i * 0.5 for i in range(n)]),
                vec(T.KI, "kI", [0] * n), vec(T.KJ, "kJ", list(range(seq0, seq0 + n))))


async def client(ca, port, server_name, cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert != "-":
        ctx.load_cert_chain(cert, key)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", int(port), ssl=ctx, server_hostname=server_name), TIMEOUT_S)
        writer.write(b"feed:pw" + bytes([3]) + b"\0")
        await writer.drain()
        ver = (await asyncio.wait_for(reader.readexactly(1), TIMEOUT_S))[0]
    except (ssl.SSLError, OSError, asyncio.IncompleteReadError) as e:
        # TLS 1.3: a refused client certificate shows only after the handshake.
        print("refused", type(e).__name__, flush=True)
        return
    print("tls", writer.get_extra_info("ssl_object").version(), flush=True)
    print("capability", ver, flush=True)
    q_reader = KdbReader(reader)
    q = KdbWriter(writer, q_reader, version=ver)
    q.write(a.kk(a.ks(".u.upd"), a.ks("plc"), cols(10, 0)), a.MessageType.ASYNC)
    res = await asyncio.wait_for(q.sync_req(a.kk(a.ks(".u.upd"), a.ks("plc"), cols(5, 10))),
                                 TIMEOUT_S)
    print("ok", int(res.t), flush=True)
    bad = a.kk(vec(T.KJ, "kJ", [1]), vec(T.KS, "kS", ["a"]))
    try:
        await asyncio.wait_for(q.sync_req(a.kk(a.ks(".u.upd"), a.ks("plc"), bad)), TIMEOUT_S)
        print("no error", flush=True)
    except a.KException as e:
        print("error", e, flush=True)
    writer.close()


def main():
    mode = sys.argv[1]
    if mode == "server":
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif mode == "client":
        asyncio.run(client(*sys.argv[2:7]))
    else:
        raise SystemExit("unknown mode " + mode)


main()

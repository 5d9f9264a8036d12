"""The OPC UA peer: FreeOpcUa's asyncua server (pure Python), security None
unless `secure=DIR`.
argv: port, first k, then any of: `user:password`, the one user name
identity it then accepts (anonymous refused); `many=N`: N more Double
variables `ns=2;s=ua.many.I` holding I, written once; `secure=DIR`: the
only endpoint is POLICY (Basic256Sha256 SignAndEncrypt unless
`policy=POLICY` names another `ua.SecurityPolicyType`, e.g.
`policy=Aes128Sha256RsaOaep_Sign`), with a certificate (DIR/server.der,
application URI `urn:millrace:peer:server`, host 127.0.0.1) and key
(DIR/server.pem) made here if absent; every request but GetEndpoints and
FindServers on a channel of another policy or mode is refused
(BadSecurityPolicyRejected: asyncua itself keeps serving a channel of
policy None, its channels' first policy, when it offers no such endpoint), and each ActivateSession prints
`session on POLICY-NAME MODE` (`session on Aes128_Sha256_RsaOaep Sign`),
the channel's own policy and mode; `usercert=FILE`:
the one identity it accepts is the X.509 user certificate FILE (DER);
`refuse-monitor=N`: the first N CreateMonitoredItems requests are refused
whole (BadTooManyOperations, as a busy server answers), each printing
`monitor-refused`; `argbomb`: one more variable `ns=2;s=ua.argument`, written once, holding an
Argument structure whose ValueRank (0x65000000) claims far more array
dimensions than its bytes carry, as a hostile server could send it.

Every PERIOD it writes tick k to every variable of namespace `urn:millrace:peer`
(`ns=2;s=ua.NAME`), each value a function of k (see VALUES), all with the
SourceTimestamp T0 + k seconds, so a row names its tick by its time alone.
`ua.status` carries k with a status that cycles Good, Uncertain, Bad
(STATUSES). After each tick it prints `tick k` on stdout.
"""
import asyncio
import datetime
import sys

from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.security_policies import SECURITY_POLICY_TYPE_MAP
from asyncua.server.uaprocessor import UaProcessor
from asyncua.server.user_managers import UserManager
from asyncua.common.utils import ServiceError

PORT = int(sys.argv[1])
FIRST = int(sys.argv[2])
EXTRAS = sys.argv[3:]
MANY = next((int(e[5:]) for e in EXTRAS if e.startswith("many=")), 0)
SECURE = next((Path(e[7:]) for e in EXTRAS if e.startswith("secure=")), None)
USER = next((e.split(":", 1) for e in EXTRAS if ":" in e and "=" not in e), None)
ARGBOMB = "argbomb" in EXTRAS
REFUSE_MONITOR = next((int(e[15:]) for e in EXTRAS if e.startswith("refuse-monitor=")), 0)
USER_CERT = next((Path(e[9:]).read_bytes() for e in EXTRAS if e.startswith("usercert=")), None)
POLICY = ua.SecurityPolicyType[
    next((e[7:] for e in EXTRAS if e.startswith("policy=")), "Basic256Sha256_SignAndEncrypt")
]
SERVER_URI = "urn:millrace:peer:server"
PERIOD = 0.05
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
V = ua.VariantType
# name: (variant type, value at tick k)
VALUES = {
    "bool": (V.Boolean, lambda k: k % 2 == 0),
    "sbyte": (V.SByte, lambda k: -(k % 100)),
    "byte": (V.Byte, lambda k: k % 256),
    "int16": (V.Int16, lambda k: -(k % 30000)),
    "uint16": (V.UInt16, lambda k: k % 60000),
    "int32": (V.Int32, lambda k: -k * 1000),
    "uint32": (V.UInt32, lambda k: 3_000_000_000 + k),
    "int64": (V.Int64, lambda k: -k * 1_000_000_007),
    "uint64": (V.UInt64, lambda k: 2**53 + 2 * k),
    "float": (V.Float, lambda k: k * 0.25),
    "double": (V.Double, lambda k: k * 0.5 + 0.125),
    "string": (V.String, lambda k: f"text {k} \u00e9"),
    "datetime": (V.DateTime, lambda k: T0 + datetime.timedelta(seconds=2 * k)),
    "status": (V.Int32, lambda k: k),
    # three elements: a tag of count 4 sees its last element missing
    "array": (V.Double, lambda k: [k + 0.25 * i for i in range(3)]),
    # 0.1 a tick: a deadband of 0.25 lets about every third change through
    "ramp": (V.Double, lambda k: k * 0.1),
}
STATUSES = [
    ua.StatusCodes.Good,
    ua.StatusCodes.UncertainLastUsableValue,
    ua.StatusCodes.BadSensorFailure,
]


class OneUser(UserManager):
    def get_user(self, iserver, username=None, password=None, certificate=None):
        if USER_CERT is not None:
            der = certificate
            if certificate is not None and not isinstance(certificate, bytes):
                der = certificate.public_bytes(Encoding.DER)
            return User(role=UserRole.User, name="cert") if der == USER_CERT else None
        if [username, password] == USER:
            return User(role=UserRole.User, name=username)
        return None


# The requests a client makes before it has chosen an endpoint.
DISCOVERY = [
    ua.NodeId(ua.ObjectIds.GetEndpointsRequest_Encoding_DefaultBinary),
    ua.NodeId(ua.ObjectIds.FindServersRequest_Encoding_DefaultBinary),
]
ACTIVATE = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)


def only_the_offered_channel():
    """Wraps asyncua's request handler: a request of a session on a
    channel of another policy or mode than POLICY is refused."""
    policy, mode, _ = SECURITY_POLICY_TYPE_MAP[POLICY]
    handle = UaProcessor._process_message

    async def checked(self, typeid, requesthdr, seqhdr, body):
        used = self._connection.security_policy
        if typeid not in DISCOVERY:
            if used.URI != policy.URI or used.Mode != mode:
                raise ServiceError(ua.StatusCodes.BadSecurityPolicyRejected)
            if typeid == ACTIVATE:
                print(f"session on {used.URI.rsplit('#', 1)[-1]} {used.Mode.name}", flush=True)
        return await handle(self, typeid, requesthdr, seqhdr, body)

    UaProcessor._process_message = checked


CREATE_MONITORED = ua.NodeId(ua.ObjectIds.CreateMonitoredItemsRequest_Encoding_DefaultBinary)


def refuse_monitoring(times):
    """Wraps asyncua's request handler: the first `times`
    CreateMonitoredItems requests are refused whole."""
    handle = UaProcessor._process_message
    left = [times]

    async def refusing(self, typeid, requesthdr, seqhdr, body):
        if typeid == CREATE_MONITORED and left[0] > 0:
            left[0] -= 1
            print("monitor-refused", flush=True)
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        return await handle(self, typeid, requesthdr, seqhdr, body)

    UaProcessor._process_message = refusing


async def main():
    server = Server(user_manager=OneUser() if USER or USER_CERT else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{PORT}/")
    if SECURE:
        await server.set_application_uri(SERVER_URI)
        key, cert = SECURE / "server.pem", SECURE / "server.der"
        await setup_self_signed_certificate(
            key, cert, SERVER_URI, "127.0.0.1",
            [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "millrace peer"},
        )
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([POLICY])
        only_the_offered_channel()
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    if REFUSE_MONITOR:
        refuse_monitoring(REFUSE_MONITOR)
    if USER:
        server.set_security_IDs(["Username"])
    if USER_CERT is not None:
        server.set_security_IDs(["Basic256Sha256"])
    ns = await server.register_namespace("urn:millrace:peer")
    cell = await server.nodes.objects.add_object(ns, "Cell")
    nodes = {}
    for name, (vtype, value) in VALUES.items():
        node_id = ua.NodeId(f"ua.{name}", ns)
        nodes[name] = await cell.add_variable(node_id, name, ua.Variant(value(FIRST), vtype))
    for i in range(MANY):
        node_id = ua.NodeId(f"ua.many.{i}", ns)
        await cell.add_variable(node_id, f"many{i}", ua.Variant(float(i), V.Double))
    if ARGBOMB:
        bomb = ua.Argument(
            Name="bomb", DataType=ua.NodeId(11), ValueRank=0x65000000, ArrayDimensions=[2]
        )
        node_id = ua.NodeId("ua.argument", ns)
        await cell.add_variable(node_id, "argument", ua.Variant(bomb, V.ExtensionObject))
    async with server:
        print("ready", flush=True)
        k = FIRST
        while True:
            stamp = T0 + datetime.timedelta(seconds=k)
            for name, (vtype, value) in VALUES.items():
                status = STATUSES[k % 3] if name == "status" else ua.StatusCodes.Good
                dv = ua.DataValue(
                    ua.Variant(value(k), vtype),
                    StatusCode=ua.StatusCode(status),
                    SourceTimestamp=stamp,
                )
                await nodes[name].write_value(dv)
            print(f"tick {k}", flush=True)
            k += 1
            await asyncio.sleep(PERIOD)


asyncio.run(main())

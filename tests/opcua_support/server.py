"""The OPC UA peer: FreeOpcUa's asyncua server (pure Python), security None.
argv: port, first k, and optionally `user:password`, the one user name
identity it then accepts (anonymous refused), or `many=N`: N more Double
variables `ns=2;s=ua.many.I` holding I, written once.

Every PERIOD it writes tick k to every variable of namespace `urn:millrace:peer`
(`ns=2;s=ua.NAME`), each value a function of k (see VALUES), all with the
SourceTimestamp T0 + k seconds, so a row names its tick by its time alone.
`ua.status` carries k with a status that cycles Good, Uncertain, Bad
(STATUSES). After each tick it prints `tick k` on stdout.
"""
import asyncio
import datetime
import sys

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

PORT = int(sys.argv[1])
FIRST = int(sys.argv[2])
EXTRA = sys.argv[3] if len(sys.argv) > 3 else ""
MANY = int(EXTRA[5:]) if EXTRA.startswith("many=") else 0
USER = EXTRA.split(":", 1) if ":" in EXTRA else None
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
}
STATUSES = [
    ua.StatusCodes.Good,
    ua.StatusCodes.UncertainLastUsableValue,
    ua.StatusCodes.BadSensorFailure,
]


class OneUser(UserManager):
    def get_user(self, iserver, username=None, password=None, certificate=None):
        if [username, password] == USER:
            return User(role=UserRole.User, name=username)
        return None


async def main():
    server = Server(user_manager=OneUser() if USER else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{PORT}/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    if USER:
        server.set_security_IDs(["Username"])
    ns = await server.register_namespace("urn:millrace:peer")
    cell = await server.nodes.objects.add_object(ns, "Cell")
    nodes = {}
    for name, (vtype, value) in VALUES.items():
        node_id = ua.NodeId(f"ua.{name}", ns)
        nodes[name] = await cell.add_variable(node_id, name, ua.Variant(value(FIRST), vtype))
    for i in range(MANY):
        node_id = ua.NodeId(f"ua.many.{i}", ns)
        await cell.add_variable(node_id, f"many{i}", ua.Variant(float(i), V.Double))
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
